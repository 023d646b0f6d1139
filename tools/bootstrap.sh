#!/usr/bin/env bash
# Installs everything the demo and the tests need on a fresh Debian 12 (as root), then
# builds and installs the collection offline.  Re-runnable: apt and pip are skipped when
# nothing is missing; the collection is rebuilt every time (it is quick).
# Sourced by tools/site.sh and tools/test.sh; exports PATH, ANSIBLE_COLLECTIONS_PATH.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export REPO
[ "$(id -u)" = 0 ] || { echo "run as root (the lab uses rootful podman and iptables)" >&2; exit 1; }

# The lab's podman stack is named in full: with --no-install-recommends apt would satisfy
# podman's "container-network-stack" with the CNI plugins, and podman 4.3 then gives an
# --internal network's bridge no address (no route to the lab: see docs/lab.md).
# lab/containers.conf pins network_backend = "netavark" and runtime = "runc" to match.
LAB_PACKAGES="podman netavark runc conmon golang-github-containers-common debootstrap apt-cacher-ng"
APT_PACKAGES="$LAB_PACKAGES iptables nftables openssh-client openssh-server
 python3 python3-venv python3-iptables python3-nftables python3-cryptography knockd fwknop-server fwknop-client
 netcat-openbsd iproute2 tcpdump git prometheus
 uidmap procps"
export LAB_PACKAGES
missing=$(for p in $APT_PACKAGES; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || echo "$p"; done)
if [ -n "$missing" ]; then
  echo "bootstrap: apt-get install $(echo $missing)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # prometheus is here for promtool only: no package may start a server on this machine
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  rc=0; apt-get install -y -qq --no-install-recommends $missing >/dev/null || rc=$?
  [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
  [ $rc = 0 ] || exit $rc
fi

PY=${PKLAB_PYTHON:-python3}
if [ ! -x "$REPO/.venv/bin/python" ]; then
  "$PY" -m venv "$REPO/.venv"
fi
stamp="$REPO/.venv/.requirements.sha"
want=$(sha256sum "$REPO/tools/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: pip install -r tools/requirements.txt"
  "$REPO/.venv/bin/pip" install -q --upgrade pip 2>/dev/null
  "$REPO/.venv/bin/pip" install -q -r "$REPO/tools/requirements.txt" 2>/dev/null
  echo "$want" > "$stamp"
fi
export PATH="$REPO/.venv/bin:$PATH"
export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ in the installed collection (roles copy its files)

# Build the collection and install the tarball offline: tests run against the installed copy.
# Each build goes to its own directory and a symlink is switched atomically, so a test run
# never sees a half-installed collection when another bootstrap runs beside it.
cache="$REPO/.cache"
mkdir -p "$cache"
build=$(mktemp -d "$cache/build.XXXXXX")
(cd "$REPO" && ansible-galaxy collection build --force --output-path "$build/dist" >/dev/null)
ansible-galaxy collection install --offline --force -p "$build/collections" "$build"/dist/portknock-knock-*.tar.gz >/dev/null
[ -d "$cache/dist" ] && [ ! -L "$cache/dist" ] && rm -rf "$cache/dist"
[ -d "$cache/collections" ] && [ ! -L "$cache/collections" ] && rm -rf "$cache/collections"
ln -sfn "$build/dist" "$cache/dist.new" && mv -T "$cache/dist.new" "$cache/dist"
ln -sfn "$build/collections" "$cache/collections.new" && mv -T "$cache/collections.new" "$cache/collections"
# builds older than an hour are nobody's any more
find "$cache" -maxdepth 1 -name 'build.*' -mmin +60 ! -path "$build" -exec rm -rf {} + 2>/dev/null || true
export ANSIBLE_COLLECTIONS_PATH="$build/collections"
export PORTKNOCK_COLLECTION="$ANSIBLE_COLLECTIONS_PATH/ansible_collections/portknock/knock"
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
echo "bootstrap: portknock.knock installed in $PORTKNOCK_COLLECTION"

# ansible-test downloads get-pip.py from a host outside the package registries: give it ours.
pipver=$(python - <<'PY'
import re, ansible_test, os
src = open(os.path.join(os.path.dirname(ansible_test.__file__), '_internal', 'python_requirements.py')).read()
print(re.search(r"pip='([0-9.]+)'", src).group(1))
PY
)
mkdir -p ~/.ansible/test/cache
cp "$REPO/tools/ansible-test-get-pip.py" ~/.ansible/test/cache/get_pip_${pipver//./_}.py
