#!/usr/bin/env python3
"""The collection's execution environment (execution-environment.yml), made on this machine.

    ee_local.py context [--out DIR]          ansible-builder create -> DIR/context (default .cache/ee)
    ee_local.py requirements [--out DIR]     the requirement files the context's builder stage writes, as JSON
    ee_local.py image --lab LAB [--out DIR]  build the EE-style image from that context; prints its name

`context` is what `ansible-builder build` does before it calls podman: the definition and the
collection tarball (the one tools/bootstrap.sh built) go into a staging directory beside the
build context, and ansible-builder writes the Containerfile and _build/ from them.

`requirements` runs what that Containerfile's galaxy and builder stages run, on this machine:
the collection installed from the context's requirements.yml (the tarball in the context), and
the context's own copy of ansible-builder's introspect.py over it, writing requirements.txt and
bindep.txt as the builder stage does.

`image` builds the context's Containerfile, unchanged, with lab/lab-podman.  Production builds
it FROM an ee-minimal image (RPM-based, with ansible-core and ansible-runner); no registry is
reachable here, so the base is made locally and passed as the build argument EE_BASE_IMAGE:
the lab's Debian image plus python3-pip and python3-venv (apt, through the lab's apt proxy, in
a container on the lab network, committed), ansible-core and ansible-runner, and a directory of
wheels downloaded on this machine (PIP_NO_INDEX/PIP_FIND_LINKS) standing in for the package
index: the collection's requirements as the builder stage computes them, plus what the
Containerfile's own steps install.  The build itself runs without network (--network none),
with PKGMGR=/usr/bin/apt-get for the base's package manager and PYCMD for its Python: Debian
keeps ensurepip (which ansible-builder's pip_install runs) from its system python, so the
base's ansible-core and ansible-runner live in a venv (/opt/ee-python, first on PATH).
"""
import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
LAB_PODMAN = os.path.join(REPO, 'lab', 'lab-podman')
STATE = os.environ.get('PKLAB_STATE', os.path.join(REPO, '.lab'))
DEFAULT_OUT = os.path.join(REPO, '.cache', 'ee')
BIN = os.path.dirname(os.path.abspath(sys.executable))   # the venv's ansible-builder, ansible-galaxy
# What the generated Containerfile's own steps pip-install (checked against it in image()).
CONTAINERFILE_PIP = ['bindep', 'pyyaml', 'packaging']
BASE_RECIPE = '2'
VENV = '/opt/ee-python'            # the EE's Python (build argument PYCMD)
PYCMD = VENV + '/bin/python3'
SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'


class EEError(Exception):
    pass


def sh(cmd, **kwargs):
    kwargs.setdefault('check', False)
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, **kwargs)
    if res.returncode != 0:
        raise EEError('%s failed (%d):\n%s' % (' '.join(cmd[:3]), res.returncode, res.stdout[-4000:]))
    return res.stdout


def collection_version():
    with open(os.path.join(REPO, 'galaxy.yml')) as fh:
        return re.search(r'^version:\s*(\S+)', fh.read(), re.M).group(1)


def tarball():
    """The collection tarball tools/bootstrap.sh built (PORTKNOCK_TARBALL names another)."""
    path = os.environ.get('PORTKNOCK_TARBALL')
    if not path:
        found = glob.glob(os.path.join(REPO, '.cache', 'dist', 'portknock-knock-%s.tar.gz' % collection_version()))
        if not found:
            raise EEError('no collection tarball in .cache/dist: source tools/bootstrap.sh first')
        path = found[0]
    return os.path.realpath(path)


def create_context(out):
    """ansible-builder create over execution-environment.yml and the tarball; returns the context dir."""
    staging = os.path.join(out, 'definition')
    context = os.path.join(out, 'context')
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(context, ignore_errors=True)
    os.makedirs(os.path.join(staging, 'dist'))
    shutil.copy(os.path.join(REPO, 'execution-environment.yml'), staging)
    shutil.copy(tarball(), os.path.join(staging, 'dist'))
    sh([os.path.join(BIN, 'ansible-builder'), 'create', '-f', os.path.join(staging, 'execution-environment.yml'),
        '-c', context, '--output-filename', 'Containerfile', '-v', '1'], cwd=staging)
    return context


def builder_requirements(context, out):
    """What the context's builder stage writes: {'python': path, 'system': path, 'collections': dir}."""
    work = os.path.join(out, 'builder')
    shutil.rmtree(work, ignore_errors=True)
    collections = os.path.join(work, 'collections')
    build = os.path.join(context, '_build')
    # the galaxy stage: WORKDIR /build, ansible-galaxy collection install -r requirements.yml
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith('ANSIBLE_COLLECTIONS_'))
    env['ANSIBLE_GALAXY_DISABLE_GPG_VERIFY'] = '1'
    sh([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'install', '--offline', '--force', '-r', 'requirements.yml',
        '--collections-path', collections], cwd=build, env=env)
    # the builder stage: introspect.py introspect --write-bindep=... --write-pip=...
    paths = {'python': os.path.join(work, 'requirements.txt'), 'system': os.path.join(work, 'bindep.txt'),
             'collections': collections}
    sh([sys.executable, os.path.join(build, 'scripts', 'introspect.py'), 'introspect', collections,
        '--write-pip=' + paths['python'], '--write-bindep=' + paths['system']])
    return paths


def requirement_lines(path):
    """The requirement lines of a file the builder stage wrote, without its '# from collection' notes."""
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [re.sub(r'\s+#.*$', '', line).strip() for line in fh if line.strip() and not line.startswith('#')]


def _dist_version(name):
    from importlib.metadata import version
    return version(name)


def lab_record(lab):
    path = os.path.join(STATE, 'labs', lab, 'hosts.json')
    if not os.path.exists(path):
        raise EEError('no lab %s (python3 lab/pklab.py up --lab %s -n 2)' % (lab, lab))
    with open(path) as fh:
        return json.load(fh)


def lab_address(record, last_octet):
    """An address of the lab's own /24 (and /112) that no lab host uses (hosts are .11 up)."""
    v4 = record['subnet4'].split('/')[0].rsplit('.', 1)[0] + '.%d' % last_octet
    v6 = record['subnet6'].split('/')[0].rsplit(':', 1)[0] + ':%x' % last_octet
    return v4, v6


def podman(*args, **kwargs):
    return sh([LAB_PODMAN] + list(args), **kwargs)


def image_exists(name):
    return subprocess.run([LAB_PODMAN, 'image', 'exists', name], check=False).returncode == 0


def download_wheels(out, requirements):
    """Wheels for the base and the build, from the package index, on this machine (cached)."""
    wheels = os.path.join(out, 'base', 'wheels')
    wanted = sorted(requirements)
    stamp = os.path.join(wheels, '.wanted')
    if os.path.exists(stamp) and open(stamp).read() == '\n'.join(wanted):
        return wheels
    shutil.rmtree(wheels, ignore_errors=True)
    os.makedirs(wheels)
    sh([sys.executable, '-m', 'pip', 'download', '-q', '--only-binary', ':all:', '-d', wheels] + wanted)
    with open(stamp, 'w') as fh:
        fh.write('\n'.join(wanted))
    return wheels


def base_image(record, out, pip_requirements):
    """The stand-in for ee-minimal (see the module's doc); returns its name."""
    from_image = lab_image()
    core, runner = 'ansible-core==' + _dist_version('ansible-core'), 'ansible-runner==' + _dist_version('ansible-runner')
    wheels = download_wheels(out, [core, runner, 'pip'] + CONTAINERFILE_PIP + pip_requirements)
    names = sorted(n for n in os.listdir(wheels) if n.endswith('.whl'))
    digest = hashlib.sha256('\n'.join([BASE_RECIPE, from_image, core, runner] + names).encode()).hexdigest()[:12]
    name = 'localhost/portknock-ee-base:' + digest
    if image_exists(name):
        return name
    # Debian keeps ensurepip from its system python (ansible-builder's pip_install runs it):
    # the EE's python is a venv (PYCMD=VENV/bin/python3), made with python3-venv from apt, on the lab
    # network through the lab's apt proxy, then committed.
    proxy = os.path.join(out, 'base', 'apt-proxy.conf')
    with open(proxy, 'w') as fh:
        fh.write('Acquire::http::Proxy "%s";\nAcquire::Retries "5";\n' % record['proxy'])
    v4, v6 = lab_address(record, 251)
    work = 'portknock-ee-base-build'
    podman('rm', '-f', work)
    try:
        podman('run', '--name', work, '--network', 'pklab', '--ip', v4, '--ip6', v6,
               '-v', '%s:/etc/apt/apt.conf.d/01pklab-proxy:ro' % proxy, '-v', '%s:/mnt/wheels:ro' % wheels,
               from_image, 'sh', '-ec',
               'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; '
               'apt-get install -y -qq --no-install-recommends python3-venv >/dev/null; apt-get clean; '
               'cp -r /mnt/wheels /wheels; rm -f /wheels/.wanted; python3 -m venv %s; '
               '%s -m pip install -q --no-index --find-links /wheels "%s" "%s"' % (VENV, PYCMD, core, runner))
        podman('commit', '-q', '--change', 'CMD ["bash"]', '--change', 'ENV PATH=%s/bin:%s' % (VENV, SYSTEM_PATH),
               '--change', 'ENV PIP_NO_INDEX=1', '--change', 'ENV PIP_FIND_LINKS=/wheels',
               '--change', 'ENV PIP_ROOT_USER_ACTION=ignore', '--change', 'ENV PIP_DISABLE_PIP_VERSION_CHECK=1',
               '--change', 'LABEL io.portknock.ee-base=stand-in for ee-minimal', work, name)
    finally:
        podman('rm', '-f', work)
    return name


def lab_image():
    sys.path.insert(0, os.path.join(REPO, 'lab'))
    from labtool.image import build_image
    return build_image()


def ee_image(record, out):
    """The EE-style image, from the context ansible-builder created; returns its name."""
    context = create_context(out)
    reqs = builder_requirements(context, out)
    with open(os.path.join(context, 'Containerfile')) as fh:
        containerfile = fh.read()
    if 'pip install --no-cache-dir %s' % ' '.join(CONTAINERFILE_PIP) not in containerfile:
        raise EEError('the Containerfile no longer installs %s: update CONTAINERFILE_PIP' % CONTAINERFILE_PIP)
    extra = re.findall(r"pip install --no-cache-dir '([^']+)'", containerfile)   # container_init (dumb-init)
    base = base_image(record, out, requirement_lines(reqs['python']) + extra)
    name = 'localhost/portknock-ee:' + collection_version()
    podman('build', '-q', '--network', 'none', '-f', os.path.join(context, 'Containerfile'),
           '--build-arg', 'EE_BASE_IMAGE=' + base, '--build-arg', 'PKGMGR=/usr/bin/apt-get',
           '--build-arg', 'PYCMD=' + PYCMD,
           '-t', name, context)
    return name


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('action', choices=['context', 'requirements', 'image'])
    parser.add_argument('--out', default=DEFAULT_OUT)
    parser.add_argument('--lab', default='ee')
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    try:
        if args.action == 'context':
            print(create_context(args.out))
        elif args.action == 'requirements':
            reqs = builder_requirements(create_context(args.out), args.out)
            print(json.dumps(dict(reqs, python_lines=requirement_lines(reqs['python']),
                                  system_lines=requirement_lines(reqs['system'])), indent=2))
        else:
            print(ee_image(lab_record(args.lab), args.out))
    except EEError as exc:
        print('ee_local: %s' % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
