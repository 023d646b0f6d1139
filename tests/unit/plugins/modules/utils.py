# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a module's ``main()`` in this process, as AnsiballZ would, and get what it prints.

    with set_module_args(dict(name='x', ...)):
        main()                      # reads these arguments

    result = run_module(main, args, check_mode=False, diff=False, verbosity=0)
        -> raises AnsibleExitJson / AnsibleFailJson carrying ``.result`` (the parsed JSON)
           and ``.output`` (the exact text the module printed)

Unlike patching ``exit_json``/``fail_json``, the real ones run: the result goes through
``no_log`` masking (``remove_values``) exactly as on a host, so a test can look for secrets
in what the controller would receive and print at ``-vvv``.  Any other exception raised by
the module (a traceback on a host) propagates unchanged.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import io
import json
import os
from unittest import mock

from ansible.module_utils import basic

try:  # ansible-core >= 2.19
    from ansible.module_utils.testing import patch_module_args as _patch_module_args
except ImportError:  # ansible-core 2.17, 2.18: the arguments are a JSON buffer
    _patch_module_args = None


class AnsibleExitJson(Exception):
    """The module ended with exit_json."""

    def __init__(self, result, output):
        super(AnsibleExitJson, self).__init__(result)
        self.result = result
        self.output = output


class AnsibleFailJson(Exception):
    """The module ended with fail_json."""

    def __init__(self, result, output):
        super(AnsibleFailJson, self).__init__(result)
        self.result = result
        self.output = output


@contextlib.contextmanager
def set_module_args(args):
    """Make ``args`` the arguments of every AnsibleModule built inside the block."""
    args = dict(args or {})
    if _patch_module_args is not None:
        with _patch_module_args(args):
            yield
        return
    buffer = json.dumps({'ANSIBLE_MODULE_ARGS': args}).encode('utf-8')
    with mock.patch.object(basic, '_ANSIBLE_ARGS', buffer):
        yield


def run_module(main, args, check_mode=False, diff=False, verbosity=0):
    """Run ``main`` with ``args``; always raises AnsibleExitJson or AnsibleFailJson."""
    full = dict(args)
    full.update(_ansible_check_mode=check_mode, _ansible_diff=diff, _ansible_verbosity=verbosity)
    out = io.StringIO()
    code = None
    with set_module_args(full), contextlib.redirect_stdout(out):
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        else:
            raise AssertionError('the module returned without exit_json or fail_json')
    output = out.getvalue()
    result = json.loads(output.strip().splitlines()[-1])
    if code in (0, None):
        raise AnsibleExitJson(result, output)
    raise AnsibleFailJson(result, output)


def module_result(main, args, **kwargs):
    """(result dict, printed text, failed?) of one run."""
    try:
        run_module(main, args, **kwargs)
    except AnsibleExitJson as exc:
        return exc.result, exc.output, False
    except AnsibleFailJson as exc:
        return exc.result, exc.output, True


def knockd_conf(tmp_path, text, mode=0o600):
    """``tmp_path``/knockd.conf holding ``text``, chmod ``mode`` (None: as the umask leaves it); its path."""
    path = str(tmp_path / 'knockd.conf')
    with open(path, 'w') as handle:
        handle.write(text)
    if mode is not None:
        os.chmod(path, mode)
    return path
