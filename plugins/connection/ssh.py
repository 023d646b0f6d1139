# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: ssh
short_description: ansible.builtin.ssh that knocks before each new TCP connection
description:
  - Everything C(ansible.builtin.ssh) does (this plugin subclasses it and accepts all of its
    options, documented below from the installed ansible-core), plus a port knock before ssh
    opens a new TCP connection to the host.
  - The knock is done by an ssh C(ProxyCommand) running the collection's C(knock) client in
    proxy mode, so it happens only when ssh really opens a TCP connection. With ControlPersist
    (the default C(ssh_args)) a play knocks once per host; when the master expired, after
    C(meta reset_connection) or a reboot, the next task knocks again. Tasks that reuse the
    master cost nothing extra.
  - The proxy resolves the host once, knocks that address and connects to the very same
    address, so the knock and the ssh connection always use the same address family.
  - The sequence is passed to the proxy in the environment, never on a command line, so it
    shows neither in C(ps) nor in C(-vvv) output.
  - With O(knock_spa_key) and O(knock_spa_hmac_key) set, the proxy sends ONE fwknop-compatible
    single packet authorization (SPA) packet instead of a knock sequence, also once per new TCP
    connection, to a host behind Debian's C(fwknopd) or the collection's C(portknock-fwknopd)
    (docs/spa.md). The keys reach the proxy in its environment, never on a command line.
  - If C(ssh_args), C(ssh_common_args) or C(ssh_extra_args) already set a C(ProxyCommand) or
    C(ProxyJump), the plugin cannot chain its proxy; it then knocks from the controller before
    any ssh command when no ControlPersist master socket exists yet.
version_added: 0.1.0
author: portknock.knock contributors (@portknock)
extends_documentation_fragment:
  - portknock.knock.builtin_ssh
notes:
  - A C(ProxyCommand)/C(ProxyJump) set in C(~/.ssh/config) for the host is overridden by the
    knock proxy (command line options win over ssh_config); set it in C(ssh_common_args) instead
    to get the fallback described above.
  - When the port stays closed after the knock, the task fails with a connection error saying
    that the knock was sent and the port stayed closed.
  - Ansible has no C(no_log) for connection options; the SPA keys and the sequence are never
    put on a command line nor logged by this plugin, keep them in a vault.
seealso:
  - name: The knock client
    description: docs/knock-client.md in the collection.
    link: https://github.com/portknock/knock/blob/main/docs/knock-client.md
options:
  knock_sequence:
    description:
      - The knock sequence, a list of C(port) or C(port:proto) (C(tcp) or C(udp)) steps, or the
        knockd string form C(7311,9127:udp,8243).
      - Treat it as a secret (vault it).
    type: list
    elements: raw
    vars:
      - name: knock_sequence
    env:
      - name: PORTKNOCK_KNOCK_SEQUENCE
  knock_delay:
    description: Milliseconds to wait between two knocks.
    type: int
    default: 50
    vars:
      - name: knock_delay
    env:
      - name: PORTKNOCK_KNOCK_DELAY
  knock_host:
    description:
      - Host to knock on when it is not the host ssh connects to (for example a firewall doing
        DNAT). It is resolved in the same address family as the ssh target.
      - Default is the address ssh connects to.
      - Not used for SPA (O(knock_spa_key)); the SPA packet goes to the address ssh connects to.
    type: str
    vars:
      - name: knock_host
  knock_before_connect:
    description:
      - Knock before each new TCP connection.
      - Default is on when O(knock_sequence) is set, off otherwise.
    type: bool
    vars:
      - name: knock_before_connect
    env:
      - name: PORTKNOCK_KNOCK_BEFORE_CONNECT
  knock_spa_key:
    description:
      - SECRET. The SPA encryption key, base64 (fwknop's C(KEY_BASE64)). With O(knock_spa_hmac_key)
        it makes the plugin send an SPA packet instead of a knock sequence.
      - Never on a command line nor in C(-vvv) output (the proxy gets it in its environment);
        keep it in a vault.
    type: str
    vars:
      - name: knock_spa_key
  knock_spa_hmac_key:
    description:
      - SECRET. The SPA HMAC key, base64 (fwknop's C(HMAC_KEY_BASE64)). Handled like O(knock_spa_key).
    type: str
    vars:
      - name: knock_spa_hmac_key
  knock_spa_hmac_digest_type:
    description: HMAC digest type of the SPA packet (fwknop's C(HMAC_DIGEST_TYPE)).
    type: str
    default: sha256
    choices: [md5, sha1, sha256, sha384, sha512, sha3_256, sha3_512]
    vars:
      - name: knock_spa_hmac_digest_type
  knock_spa_port:
    description: UDP port the SPA server listens on (fwknop's C(SPA_SERVER_PORT)).
    type: int
    default: 62201
    vars:
      - name: knock_spa_port
  knock_spa_access:
    description:
      - What the SPA packet asks to open, C(proto/port) items separated by commas (fwknop's C(-A)).
      - Default is C(tcp/) and the port ssh connects to.
    type: str
    vars:
      - name: knock_spa_access
  knock_spa_source:
    description:
      - The address the SPA packet asks to open (fwknop's C(-a)); C(0.0.0.0) asks for the address
        the packet arrives from (fwknop's C(-s); refused by C(REQUIRE_SOURCE_ADDRESS)).
      - Default is the address the controller's kernel picks toward the host.
    type: str
    vars:
      - name: knock_spa_source
'''

EXAMPLES = r'''
# inventory (group_vars/knocked.yml)
ansible_connection: portknock.knock.ssh
knock_sequence: "{{ vault_knock_sequence }}"   # e.g. [7311, '9127:udp', 8243]
knock_delay: 50

# ad hoc
# ansible -i inventory -m ping knocked -e ansible_connection=portknock.knock.ssh

# a host behind fwknopd (SPA), in host_vars/spa1.yml: one SPA packet per new TCP connection
# ansible_connection: portknock.knock.ssh
# knock_spa_key: "{{ vault_spa_key_base64 }}"
# knock_spa_hmac_key: "{{ vault_spa_hmac_key_base64 }}"
# knock_spa_access: tcp/22        # default: tcp/<ansible_port>
'''

import os
import re
import shlex
import tempfile
import uuid

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection.ssh import Connection as SSHConnection
from ansible.utils.display import Display

# Only the small proxy-command module here: every worker process compiles what the plugin imports.
from ansible_collections.portknock.knock.plugins.module_utils.knock_proxy_command import (
    CLOSED_MARKER, SEQUENCE_ENV, SPA_CLOSED_MARKER, SPA_ENVS, SPA_HMAC_DIGEST_ENV, SPA_HMAC_KEY_ENV, SPA_KEY_ENV,
    STATUS_FILE_ENV, build_proxy_command)
from ansible_collections.portknock.knock.plugins.module_utils.sequence import (
    KnockValueError, format_sequence, parse_sequence)

display = Display()

ARG_OPTIONS = ('ssh_args', 'ssh_common_args', 'ssh_extra_args', 'sftp_extra_args', 'scp_extra_args')
_PROXY_RE = re.compile(r'^(?:-o\s*)?(proxycommand|proxyjump)\s*[= ]', re.I)
_FAMILY_RE = re.compile(r'^(?:-o\s*)?addressfamily\s*[= ]\s*(inet6?|any)\s*$', re.I)


def knock(host, steps, **kwargs):
    """knock_sender.knock, imported on first use: only the own-ProxyCommand fallback sends from here."""
    from ansible_collections.portknock.knock.plugins.module_utils.knock_sender import knock as send_knocks
    return send_knocks(host, steps, **kwargs)


def user_proxy_and_family(arg_strings):
    """From ssh argument strings: (True if a ProxyCommand/ProxyJump/-J is set, 4, 6 or None).

    Options are read in order and the first value wins, as ssh does.
    """
    words = []
    for text in arg_strings:
        if text:
            words.extend(shlex.split(text))
    proxy = False
    family = None
    for index, word in enumerate(words):
        value = word
        if word == '-o' and index + 1 < len(words):
            value = words[index + 1]
        if word == '-J' or word.startswith('-J') and len(word) > 2 or _PROXY_RE.match(value + ' '):
            proxy = True
        match = _FAMILY_RE.match(value)
        if family is None and match:
            family = {'inet': 4, 'inet6': 6}.get(match.group(1).lower(), 0)
        if family is None and word in ('-4', '-6'):
            family = int(word[1])
    return proxy, (family or None)


def resolve_knock_settings(sequence, before_connect, delay):
    """Validate the knock options: returns the Steps to knock, or None when not knocking."""
    if before_connect is None:
        before_connect = bool(sequence)
    if not before_connect:
        return None
    if not sequence:
        raise AnsibleError('portknock.knock.ssh: knock_before_connect is on but knock_sequence is not set')
    if delay is None or int(delay) < 0:
        raise AnsibleError('portknock.knock.ssh: knock_delay %r must be 0 or more milliseconds' % (delay,))
    try:
        return parse_sequence(sequence)
    except KnockValueError as exc:
        raise AnsibleError('portknock.knock.ssh: knock_sequence is invalid: %s' % exc)


def resolve_spa_settings(key, hmac_key, digest_type, spa_port, access, source, ssh_port, sequence=None):
    """Validate the SPA options: None when not sending SPA, else the dict the proxy command takes
    plus ``env`` (the keys, for the proxy's environment).  Errors name the option, never a key."""
    if not key and not hmac_key:
        return None
    if not key or not hmac_key:
        raise AnsibleError('portknock.knock.ssh: set both knock_spa_key and knock_spa_hmac_key (%s is missing)'
                           % ('knock_spa_hmac_key' if key else 'knock_spa_key'))
    if sequence:
        raise AnsibleError('portknock.knock.ssh: set knock_sequence or knock_spa_key/knock_spa_hmac_key, not both '
                           '(a door is either a knock sequence or SPA)')
    # the codec only now: hosts without SPA never pay for compiling it
    from ansible_collections.portknock.knock.plugins.module_utils import spa
    from ansible_collections.portknock.knock.plugins.module_utils.sequence import parse_port
    try:
        spa.key_from_base64(key, 'knock_spa_key')
        spa.hmac_key_from_base64(hmac_key, 'knock_spa_hmac_key')
        digest = spa.parse_digest_type(digest_type or spa.DEFAULT_HMAC_DIGEST, 'knock_spa_hmac_digest_type')
        port = parse_port(spa_port if spa_port is not None else spa.DEFAULT_SPA_PORT, 'knock_spa_port')
        access = access or 'tcp/%d' % int(ssh_port or 22)
        spa.encode(source or '127.0.0.1', access, b'k', b'h')    # access and source, with the codec's messages
    except KnockValueError as exc:
        raise AnsibleError('portknock.knock.ssh: %s' % exc)
    return dict(access=access, spa_port=port, allow_ip=source or None,
                env={SPA_KEY_ENV: key.strip(), SPA_HMAC_KEY_ENV: hmac_key.strip(), SPA_HMAC_DIGEST_ENV: digest})


def explain_failure(message, host, port, spa_port=None):
    """The error to raise when ssh failed: clear text when the knock went out and the port stayed closed."""
    if SPA_CLOSED_MARKER in message:
        return ('portknock.knock.ssh: the SPA packet was sent to %s (udp/%s) but port %s stayed closed '
                '(wrong knock_spa_key, knock_spa_hmac_key or knock_spa_hmac_digest_type, knock_spa_source not '
                'what the server sees, or no SPA server?). %s' % (host, spa_port or 62201, port or 22, message))
    if CLOSED_MARKER not in message:
        return None
    return ('portknock.knock.ssh: the knock sequence was sent to %s but port %s stayed closed '
            '(wrong knock_sequence, knock_host or firewall?). %s' % (host, port or 22, message))


def send_spa_from_controller(host, spa, family):
    """One SPA packet from the controller (own-ProxyCommand fallback): spa_client, imported on first use."""
    from ansible_collections.portknock.knock.plugins.module_utils.knock_sender import resolve
    from ansible_collections.portknock.knock.plugins.module_utils.spa_client import keys_from_environment, send_spa
    fam, address = resolve(host, family)
    send_spa(address, keys_from_environment(spa['env']), spa['access'], family=fam, spa_port=spa['spa_port'],
             allow_ip=spa['allow_ip'])
    return address


class Connection(SSHConnection):
    """ansible.builtin.ssh plus a knock before each new TCP connection."""

    def __init__(self, *args, **kwargs):
        super(Connection, self).__init__(*args, **kwargs)
        self._knocked_directly = False

    def _knock_steps(self):
        return resolve_knock_settings(self.get_option('knock_sequence'),
                                      self.get_option('knock_before_connect'),
                                      self.get_option('knock_delay'))

    def _spa_settings(self):
        return resolve_spa_settings(self.get_option('knock_spa_key'), self.get_option('knock_spa_hmac_key'),
                                    self.get_option('knock_spa_hmac_digest_type'), self.get_option('knock_spa_port'),
                                    self.get_option('knock_spa_access'), self.get_option('knock_spa_source'),
                                    self.get_option('port'), self.get_option('knock_sequence'))

    def _arg_strings(self):
        values = []
        for name in ARG_OPTIONS:
            try:
                values.append(self.get_option(name))
            except KeyError:
                pass
        return values

    def _build_command(self, binary, subsystem, *other_args):
        b_command = super(Connection, self)._build_command(binary, subsystem, *other_args)
        spa = self._spa_settings()
        steps = None if spa else self._knock_steps()
        if (steps is None and spa is None) or b'-O' in b_command:
            return b_command
        user_proxy, family = user_proxy_and_family(self._arg_strings())
        if user_proxy:
            self._knock_from_controller(steps, family, spa)
            return b_command
        # The proxy reads the sequence (or the SPA keys) from the environment ssh passes on,
        # and reports a closed port in the status file.
        for name in (SEQUENCE_ENV,) + SPA_ENVS:
            os.environ.pop(name, None)
        if spa:
            os.environ.update(spa['env'])
        else:
            os.environ[SEQUENCE_ENV] = format_sequence(steps)
        os.environ[STATUS_FILE_ENV] = self._status_file()
        timeout = int(self.get_option('timeout') or 10)
        proxy = build_proxy_command(delay_ms=self.get_option('knock_delay'), family=family,
                                    knock_host=None if spa else self.get_option('knock_host'),
                                    connect_timeout=max(1, timeout - 1), fdpass=True,
                                    spa=dict((k, v) for k, v in spa.items() if k != 'env') if spa else None)
        index = b_command.index(to_bytes(binary, errors='surrogate_or_strict')) + 1
        # ProxyUseFdpass: the proxy knocks, connects and hands the socket to ssh, then exits,
        # so no relay process sits in the data path of the connection.
        b_command[index:index] = [b'-o', to_bytes('ProxyCommand=' + proxy, errors='surrogate_or_strict'),
                                  b'-o', b'ProxyUseFdpass=yes']
        return b_command

    def _status_file(self):
        """Where the proxy reports a closed port; only created by the proxy on failure."""
        if not getattr(self, '_knock_status_file', None):
            self._knock_status_file = os.path.join(
                tempfile.gettempdir(), 'portknock-status-%d-%s' % (os.getpid(), uuid.uuid4().hex))
        return self._knock_status_file

    def _read_status(self):
        path = getattr(self, '_knock_status_file', None)
        if not path or not os.path.exists(path):
            return ''
        try:
            with open(path) as handle:
                text = handle.read().strip()
            os.unlink(path)
            return text
        except (IOError, OSError):
            return ''

    def _master_alive(self):
        path = getattr(self, 'control_path', None)
        directory = getattr(self, 'control_path_dir', None)
        if not path or not getattr(self, '_persistent', False):
            return False
        try:
            from ansible.utils.path import unfrackpath
            path = path % dict(directory=unfrackpath(directory))
        except (TypeError, ValueError, KeyError):
            return False
        return os.path.exists(path)

    def _knock_from_controller(self, steps, family, spa=None):
        """Fallback when the user has their own ProxyCommand/ProxyJump."""
        if self._master_alive() or self._knocked_directly:
            return
        from ansible_collections.portknock.knock.plugins.module_utils.knock_sender import KnockSendError
        host = self.get_option('knock_host') or self.host
        try:
            if spa:
                address = send_spa_from_controller(host, spa, family)
            else:
                address = knock(host, steps, delay_ms=self.get_option('knock_delay'), family=family)
        except (KnockSendError, KnockValueError) as exc:
            raise AnsibleConnectionFailure('portknock.knock.ssh: could not knock on %s: %s' % (host, exc))
        self._knocked_directly = True
        display.vvv('%s on %s (own ProxyCommand/ProxyJump configured)'
                    % ('sent one SPA packet' if spa else 'knocked %d ports' % len(steps), address), host=self.host)

    def _explained(self, exc):
        status = self._read_status()
        text = explain_failure(to_text(exc) + ('\n' + status if status else ''), self.host, self.get_option('port'),
                               self.get_option('knock_spa_port'))
        if text is None:
            return exc
        return AnsibleConnectionFailure(text)

    def _run(self, *args, **kwargs):
        try:
            return super(Connection, self)._run(*args, **kwargs)
        except AnsibleConnectionFailure as exc:
            raise self._explained(exc)

    def _file_transport_command(self, *args, **kwargs):
        try:
            return super(Connection, self)._file_transport_command(*args, **kwargs)
        except AnsibleConnectionFailure as exc:
            raise self._explained(exc)

    def reset(self):
        self._knocked_directly = False
        return super(Connection, self).reset()

    def close(self):
        self._read_status()   # removes a report nobody asked for
        return super(Connection, self).close()


FQCN = 'portknock.knock.ssh'
BUILTIN_NAMES = ('ssh', 'ansible_collections.ansible.builtin.plugins.connection.ssh')


def register_config_definitions(config=None, names=(FQCN, __name__)):
    """Give ansible-core this plugin's option definitions without parsing its documentation.

    ansible-playbook preloads the builtin connection plugins' option definitions in the
    main process (so its workers inherit them), but not a collection's: every worker process
    (one per task and host) would parse this plugin's documentation, which includes all of
    ansible.builtin.ssh's options, again.  Our options are exactly the builtin's plus those in
    DOCUMENTATION's own ``options`` (tests/unit/plugins/connection/test_ssh.py checks that this
    equals what ansible-core derives from the documentation), so when the builtin's are
    already loaded they are registered from there, under the names ansible-core looks up
    (the FQCN and the plugin's Python module name), and ansible-core skips the parse.
    Returns True when it registered them.
    """
    if config is None:
        from ansible import constants as C
        config = C.config
    if all(config.has_configuration_definition('connection', name) for name in names):
        return False
    builtin = None
    for name in BUILTIN_NAMES:
        builtin = builtin or config.get_configuration_definitions('connection', name)
    if not builtin:
        return False   # not preloaded here (ansible-doc, ad hoc): ansible-core reads the docs
    import yaml
    own = yaml.load(DOCUMENTATION, Loader=getattr(yaml, 'CSafeLoader', yaml.SafeLoader)).get('options') or {}  # nosec
    definitions = dict(builtin)
    definitions.update(own)
    for name in names:
        config.initialize_plugin_configuration_definitions('connection', name, definitions)
    return True


register_config_definitions()
