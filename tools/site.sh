#!/usr/bin/env bash
# The main job: install what is needed, build the lab, run site.yml against it.
#   tools/site.sh [--keep] [extra ansible-playbook args]
# --keep leaves the lab running afterwards (inventory: .lab/labs/site/inventory.yml).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$REPO"
keep=0; [ "${1:-}" = --keep ] && { keep=1; shift; }
hosts=${PKLAB_SITE_HOSTS:-6}
inv=$(python lab/pklab.py up --lab site -n "$hosts")
[ $keep = 1 ] || trap 'python lab/pklab.py down --lab site' EXIT
ansible-playbook -i "$inv" site.yml "$@"
