#!/usr/bin/env bash
# The main job: install what is needed, build the lab, roll the doors out with site.yml,
# then report from a probe host, per fleet host, whether plain ssh is refused and ssh after
# a knock works.  The lab stays up (a second run reuses it and reports changed=0).
#   tools/site.sh [--fresh] [extra ansible-playbook args, e.g. --check --diff]
# Remove the lab with: python3 lab/pklab.py down --lab site
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$REPO"
reuse=--reuse; [ "${1:-}" = --fresh ] && { reuse=; shift; }
hosts=${PKLAB_SITE_HOSTS:-6}
t0=$SECONDS
python lab/pklab.py up --lab site -n $((hosts + 1)) $reuse >/dev/null
fleet=.lab/labs/site/fleet.yml
python tools/site_fleet.py .lab/labs/site/hosts.json "$fleet" --probe
export ANSIBLE_FORKS=${ANSIBLE_FORKS:-10}
ansible-playbook -i inventory/ -i "$fleet" site.yml "$@"
rollout=$((SECONDS - t0))
case " $* " in *" --check "*|*" -C "*) exit 0 ;; esac
ansible-playbook -i inventory/ -i "$fleet" tools/site-report.yml -e "site_rollout_seconds=$rollout"
