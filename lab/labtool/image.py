"""The lab hosts' base image: Debian 12 from debootstrap, imported into podman, cached."""

import hashlib
import os
import shutil
import subprocess

from .podman import LAB_PODMAN, log, podman, run
from .state import STATE, write

SUITE = 'bookworm'
PACKAGES = ['python3', 'python3-apt', 'openssh-server', 'iproute2', 'iptables', 'nftables',
            'sudo', 'procps', 'systemd', 'systemd-sysv', 'dbus', 'netcat-openbsd',
            'ca-certificates', 'kmod',
            # the audit's vantage sends SPA packets (module_utils/spa.py); debootstrap does not
            # resolve virtual packages: cryptography's python3-cffi-backend-api-* come from the backend
            'python3-cryptography', 'python3-cffi-backend']
IMAGE_RECIPE_VERSION = '3'


def debian_mirror(paths=('/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list')):
    """The Debian mirror this machine's apt uses (hosts fetch through the proxy from it)."""
    for path in paths:
        try:
            with open(path) as fh:
                for line in fh:
                    words = line.split()
                    if words[:1] == ['URIs:'] and 'security' not in words[1]:
                        return words[1]
                    if words[:1] == ['deb'] and 'security' not in line:
                        return [w for w in words[1:] if '://' in w][0]
        except (OSError, IndexError):
            continue
    return 'http://deb.debian.org/debian'


def image_name():
    if os.environ.get('PKLAB_IMAGE'):   # a registry image may be named instead
        return os.environ['PKLAB_IMAGE']
    digest = hashlib.sha256((IMAGE_RECIPE_VERSION + SUITE + ' '.join(PACKAGES)).encode()).hexdigest()[:12]
    return 'localhost/pklab-debian12:%s' % digest


def build_image():
    image = image_name()
    if podman('image', 'exists', image, check=False).returncode == 0:
        return image
    if os.environ.get('PKLAB_IMAGE'):
        podman('pull', image)
        return image
    cache = os.path.join(STATE, 'cache')
    rootfs = os.path.join(cache, 'rootfs-' + image.rsplit(':', 1)[1])
    if not os.path.exists(os.path.join(rootfs, '.pklab-complete')):
        shutil.rmtree(rootfs, ignore_errors=True)
        os.makedirs(cache, exist_ok=True)
        log('debootstrap %s into %s (about a minute, once)' % (SUITE, rootfs))
        run(['debootstrap', '--variant=minbase', '--include=' + ','.join(PACKAGES),
             SUITE, rootfs, debian_mirror()])
        customise_rootfs(rootfs)
        write(os.path.join(rootfs, '.pklab-complete'), 'ok\n')
    log('importing %s' % image)
    tar = subprocess.Popen(['tar', '-C', rootfs, '--exclude=./.pklab-complete', '-c', '.'],
                           stdout=subprocess.PIPE)
    run([LAB_PODMAN, 'import', '--change', 'CMD ["/sbin/init"]',
         '--change', 'STOPSIGNAL SIGRTMIN+3', '-', image], stdin=tar.stdout)
    tar.wait()
    return image


def customise_rootfs(root):
    write(os.path.join(root, 'etc/apt/apt.conf.d/02pklab-norecommends'), 'APT::Install-Recommends "false";\n')
    write(os.path.join(root, 'etc/apt/sources.list'),
          'deb http://deb.debian.org/debian %s main\n' % SUITE)
    write(os.path.join(root, 'etc/ssh/sshd_config.d/pklab.conf'),
          'PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n'
          'MaxStartups 100:30:200\nMaxSessions 50\n')
    os.makedirs(os.path.join(root, 'root/.ssh'), mode=0o700, exist_ok=True)
    # Fresh host keys per container: generated at first boot by a oneshot unit.
    for name in os.listdir(os.path.join(root, 'etc/ssh')):
        if name.startswith('ssh_host_'):
            os.unlink(os.path.join(root, 'etc/ssh', name))
    write(os.path.join(root, 'etc/systemd/system/pklab-hostkeys.service'),
          '[Unit]\nDescription=Generate ssh host keys\nBefore=ssh.service\n'
          'ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n'
          '[Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -A\n'
          '[Install]\nWantedBy=multi-user.target\n')
    wants = os.path.join(root, 'etc/systemd/system/multi-user.target.wants')
    os.makedirs(wants, exist_ok=True)
    link = os.path.join(wants, 'pklab-hostkeys.service')
    if not os.path.lexists(link):
        os.symlink('/etc/systemd/system/pklab-hostkeys.service', link)
    for unit in ('console-getty.service', 'getty@tty1.service', 'systemd-logind.service',
                 'systemd-timesyncd.service', 'apt-daily.timer', 'apt-daily-upgrade.timer'):
        path = os.path.join(root, 'etc/systemd/system', unit)
        if not os.path.lexists(path):
            os.symlink('/dev/null', path)
    # Containers have no consoles; journald to memory keeps hosts light.
    write(os.path.join(root, 'etc/systemd/journald.conf.d/pklab.conf'),
          '[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n')
