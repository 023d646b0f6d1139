# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""Edit a knockd.conf on the host from a module: read, validate, edit, diff, atomic write.

The one flow shared by the ``knockd_stanza`` and ``knockd_options`` modules::

    edit_knockd_conf(module, path, edit, create=True, backup=False)

``edit(conf)`` receives the parsed ``KnockdConf`` and returns a list of
changed keys (``[]``: nothing to do).  The existing file is parsed first (a
file knockd could not read, or with duplicate sections, fails naming the line
and value and is left untouched), the edited text is parsed again before it
is written, the write goes through a temporary file in the same directory
that has the final mode from the start (0600 by default) and is renamed over the file.
Owner, group, mode, SELinux context and attributes are Ansible's own file common
arguments (``add_file_common_args=True``, fragment ``ansible.builtin.files``), applied
with ``module.set_fs_attributes_if_different``.  Check mode and diff are
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

# with add_file_common_args=True (owner, group, seuser, attributes, ... from Ansible); only the
# default of mode differs from Ansible's: the file may hold secret sequences and commands
COMMON_ARGUMENT_SPEC = dict(
    path=dict(type='path', default='/etc/knockd.conf'),
    backup=dict(type='bool', default=False),
    mode=dict(type='raw', default='0600'),
    create=dict(type='bool', default=True),
)


def _final_mode(module, mode, current):
    """The permission bits ``mode`` gives a file whose bits are ``current``, parsed the way
    ``AnsibleModule.set_mode_if_different`` parses it; fails naming the value."""
    if isinstance(mode, int) and not isinstance(mode, bool):
        return mode
    try:
        if isinstance(mode, str) and re.match(r'[0-7]+\Z', mode):
            return int(mode, 8)
        if isinstance(mode, str) and mode:
            return module._symbolic_mode_to_octal(os.stat_result((current,) + (0,) * 9), mode)
    except Exception:   # Ansible raises ValueError or others for a mode it cannot parse
        pass
    module.fail_json(msg='mode %r is not an octal or symbolic file mode' % (mode,))


def _read(module, path, create, what='knockd.conf'):
    if os.path.isdir(path):
        module.fail_json(msg='%s is a directory, not a %s' % (path, what))
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


def _knockd_secrets(text):
    """The knock ports of every stanza of ``text``, valid or not."""
    return secret_ports(parse(text, validate=False))


def _write(module, path, text, mode, unsafe_writes=False):
    """Write ``text`` to a temporary file of mode ``mode`` (and the owner of the file it replaces),
    fsync it, then rename it over ``path``: no moment shows the content with other permissions."""
    directory = os.path.dirname(path) or '.'
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)  # mode 0600
    try:
        with os.fdopen(fd, 'wb') as handle:
            os.fchmod(handle.fileno(), mode)
            if os.path.exists(path):
                st = os.stat(path)
                os.fchown(handle.fileno(), st.st_uid, st.st_gid)
            handle.write(text.encode('utf-8', 'surrogateescape'))
            handle.flush()
            os.fsync(handle.fileno())
        if os.path.exists(path):
            # keep_dest_attrs=False: the temporary file has its final mode already
            module.atomic_move(tmp, path, unsafe_writes=unsafe_writes, keep_dest_attrs=False)
        else:
            os.rename(tmp, path)    # atomic_move would make a new file 0666 & ~umask first
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def plan_edit(module, path, edit, create=True, parser=parse, secrets=_knockd_secrets,
              error=KnockdConfError, what='knockd.conf'):
    """Read, parse, ``edit`` and re-parse the file at ``path`` without writing it: the plan that
    ``apply_edit`` carries out.  ``parser(text)`` returns the editable object (with ``render()``)
    or raises ``error``; ``secrets(text)`` lists what to mask (``module.no_log_values``) before
    anything is returned or fails.  Fails the module, file untouched, on a bad file or edit."""
    file_args = module.load_file_common_arguments(module.params, path=path)
    before = _read(module, path, create, what)
    exists = before is not None
    current = os.stat(path).st_mode & 0o7777 if exists else 0o600
    mode = _final_mode(module, file_args['mode'], current)
    before = before or ''
    module.no_log_values.update(secrets(before))
    try:
        conf = parser(before)
    except error as exc:
        module.fail_json(msg='%s: %s (file left untouched)' % (path, exc))
    try:
        changed_keys = edit(conf)
        after = conf.render()
        module.no_log_values.update(secrets(after))
        parser(after)
    except error as exc:
        module.fail_json(msg='%s: the edited file would be invalid: %s' % (path, exc))
    except KnockValueError as exc:
        module.fail_json(msg=str(exc))
    return dict(path=path, before=before, after=after, exists=exists, mode=mode, file_args=file_args,
                changed_keys=list(changed_keys))


def apply_edit(module, plan, backup=False):
    """Write a ``plan_edit`` plan (not in check mode); returns (changed, changed_keys, backup_file, diff)."""
    path, before, after, exists = plan['path'], plan['before'], plan['after'], plan['exists']
    content_changed = after != before
    will_exist = exists or (content_changed and after != '')
    backup_file = None
    if content_changed and not module.check_mode:
        if backup and exists:
            backup_file = module.backup_local(path)
        _write(module, path, after, plan['mode'], module.params.get('unsafe_writes', False))
    changed = content_changed
    if will_exist and (exists or not module.check_mode):
        changed = module.set_fs_attributes_if_different(plan['file_args'], changed)
    changed_keys = plan['changed_keys']
    if changed and not content_changed:
        changed_keys = changed_keys + ['mode']
    diff = dict(before=before, after=after, before_header=path, after_header=path)
    return changed, changed_keys, backup_file, diff


def edit_knockd_conf(module, path, edit, create=True, backup=False, result=None):
    """Apply ``edit`` to the knockd.conf at ``path`` and end the module (see module docstring)."""
    result = dict(result or {})
    fail_json = module.fail_json

    def fail_with_result(**kwargs):    # the caller's result (e.g. the stanza names) also on failure
        kwargs.update((key, value) for key, value in result.items() if key not in kwargs)
        fail_json(**kwargs)

    module.fail_json = fail_with_result
    try:
        plan = plan_edit(module, path, edit, create)
        changed, changed_keys, backup_file, diff = apply_edit(module, plan, backup)
    finally:
        module.fail_json = fail_json
    result.update(changed_keys=changed_keys, backup_file=backup_file)
    if module._diff:
        result['diff'] = diff
    module.exit_json(changed=changed, **result)
