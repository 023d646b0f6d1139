# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""Edit a knockd.conf on the host from a module: read, validate, edit, diff, atomic write.

The one flow shared by the ``knockd_stanza`` and ``knockd_options`` modules::

    edit_knockd_conf(module, path, edit, create=True, backup=False, mode='0600')

``edit(conf)`` receives the parsed ``KnockdConf`` and returns a list of
changed keys (``[]``: nothing to do).  The existing file is parsed first (a
file knockd could not read, or with duplicate sections, fails naming the line
and value and is left untouched), the edited text is parsed again before it
is written, the write goes through a temporary file in the same directory
created with mode 0600 and ``module.atomic_move``.  Check mode and diff are
handled here: the whole file is returned as ``diff`` only in diff mode, and
every knock port of every stanza (before and after the edit) is added to
``module.no_log_values`` first, so no sequence shows in the result, the diff
or an error message.  The function ends the module with ``exit_json``/``fail_json``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import tempfile

from .knockd_conf import KnockdConfError, parse, secret_ports
from .sequence import KnockValueError

COMMON_ARGUMENT_SPEC = dict(
    path=dict(type='path', default='/etc/knockd.conf'),
    backup=dict(type='bool', default=False),
    mode=dict(type='raw', default='0600'),
    create=dict(type='bool', default=True),
)


_MODE_RE = re.compile(r'^(0?[0-7]{3,4}|([ugoa]*[-+=][rwxXstugo]*)(,[ugoa]*[-+=][rwxXstugo]*)*)\Z')


def _check_mode_value(module, mode):
    """Fail before anything is written when ``mode`` cannot be applied."""
    if isinstance(mode, int) and not isinstance(mode, bool):
        return
    if not isinstance(mode, str) or not _MODE_RE.match(mode):
        module.fail_json(msg='mode %r is not an octal or symbolic file mode' % (mode,))


def _read(module, path, create):
    if os.path.isdir(path):
        module.fail_json(msg='%s is a directory, not a knockd.conf' % path)
    if not os.path.exists(path):
        if not create:
            module.fail_json(msg='%s does not exist and create=false' % path)
        if not os.path.isdir(os.path.dirname(path) or '.'):
            module.fail_json(msg='directory of %s does not exist' % path)
        return None
    try:
        with open(path, 'rb') as handle:
            return handle.read().decode('utf-8', 'surrogateescape')
    except (IOError, OSError) as error:
        module.fail_json(msg='cannot read %s: %s' % (path, error))


def _hide(module, text):
    """Mask (no_log) the knock ports of every stanza of ``text``, valid or not."""
    module.no_log_values.update(secret_ports(parse(text, validate=False)))


def _write(module, path, text):
    directory = os.path.dirname(path) or '.'
    fd, tmp = tempfile.mkstemp(prefix='.knockd.conf.', dir=directory)  # mode 0600
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(text.encode('utf-8', 'surrogateescape'))
        module.atomic_move(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def edit_knockd_conf(module, path, edit, create=True, backup=False, mode='0600', result=None):
    """Apply ``edit`` to the knockd.conf at ``path`` and end the module (see module docstring)."""
    result = dict(result or {})
    _check_mode_value(module, mode)
    before = _read(module, path, create)
    exists = before is not None
    before = before or ''
    # every knock port of every stanza is a secret, in the result, the diff and any message
    _hide(module, before)
    try:
        conf = parse(before)
    except KnockdConfError as error:
        module.fail_json(msg='%s: %s (file left untouched)' % (path, error), **result)
    try:
        changed_keys = edit(conf)
        after = conf.render()
        _hide(module, after)
        parse(after)
    except KnockdConfError as error:
        module.fail_json(msg='%s: the edited file would be invalid: %s' % (path, error), **result)
    except KnockValueError as error:
        module.fail_json(msg=str(error), **result)

    content_changed = after != before
    will_exist = exists or (content_changed and after != '')
    result.update(changed_keys=list(changed_keys), backup_file=None)
    if content_changed and not module.check_mode:
        if backup and exists:
            result['backup_file'] = module.backup_local(path)
        _write(module, path, after)
    changed = content_changed
    if will_exist and (exists or not module.check_mode):
        changed = module.set_mode_if_different(path, mode, changed)
    if changed and not content_changed:
        result['changed_keys'] = result['changed_keys'] + ['mode']
    if module._diff:
        result['diff'] = dict(before=before, after=after, before_header=path, after_header=path)
    module.exit_json(changed=changed, **result)
