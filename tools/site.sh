#!/usr/bin/env bash
# The main job: install what is needed, build the lab, roll the doors out with site.yml,
# then audit every door from a probe host (portknock.knock.audit: closed to a stranger and
# to the knocker before its knock, a wrong-order knock (an SPA packet with wrong keys) stays
# closed, opens for the knocker, closes after its window, a replayed SPA packet stays closed;
# IPv4 and IPv6).  The lab stays up (a second run reuses it and
# reports changed=0).
#   tools/site.sh [--fresh] [extra ansible-playbook args, e.g. --check --diff]
# Remove the lab with: python3 lab/pklab.py down --lab site
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$REPO"
reuse=--reuse; [ "${1:-}" = --fresh ] && { reuse=; shift; }
hosts=${PKLAB_SITE_HOSTS:-7}            # fleet hosts; the last PKLAB_SITE_SPA_HOSTS are SPA hosts (knock_fwknop)
spa_hosts=${PKLAB_SITE_SPA_HOSTS:-1}
t0=$SECONDS
python lab/pklab.py up --lab site -n $((hosts + 1)) $reuse >/dev/null
labdir=${PKLAB_STATE:-$REPO/.lab}/labs/site
fleet=$labdir/fleet.yml
python tools/site_fleet.py "$labdir/hosts.json" "$fleet" --probe --fwknop-hosts "$spa_hosts"
export ANSIBLE_FORKS=${ANSIBLE_FORKS:-10}
ansible-playbook -i inventory/ -i "$fleet" site.yml "$@"
rollout=$((SECONDS - t0))
case " $* " in *" --check "*|*" -C "*) exit 0 ;; esac
t1=$SECONDS
reports=$labdir/audit
rm -rf "$reports"
rc=0
ANSIBLE_DISPLAY_SKIPPED_HOSTS=false ansible-playbook -i inventory/ -i "$fleet" portknock.knock.audit \
  -e audit_report_dir="$reports" || rc=$?
echo
echo "site.sh: rollout $rollout s, audit $((SECONDS - t1)) s; reports: $reports/audit.json, $reports/audit.junit.xml"
[ -f "$reports/audit.json" ] && PYTHONPATH="$ANSIBLE_COLLECTIONS_PATH" python - "$reports/audit.json" <<'PY'
import json, sys
from ansible_collections.portknock.knock.plugins.module_utils.audit_report import table, failures
probes = json.load(open(sys.argv[1]))['probes']
print('\n'.join(table(probes)))
print('\n'.join(failures(probes)) or 'every door passed every check')
PY
exit $rc
