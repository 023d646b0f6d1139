#!/usr/bin/env bash
# The whole test suite (what .ci/run calls): unit tests, ansible-test sanity, ansible-lint,
# integration tests on real kernels (network namespaces) and every molecule scenario on the
# lab.  Every stage runs even when an earlier one failed; the exit code is non-zero if any
# failed, and the last line is a plain "stages: N passed, N failed" summary.
#   tools/test.sh [stage ...]     stages: unit sanity lint compat ee integration molecule (default: all)
#   PK_SCENARIOS="lab knockd" tools/test.sh molecule      only these molecule scenarios
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$REPO"
stages=("$@"); [ ${#stages[@]} -gt 0 ] || stages=(unit sanity lint compat ee integration molecule)
passed=0; failed=0; report=()
export PYTHONPATH="$ANSIBLE_COLLECTIONS_PATH"   # tests import the INSTALLED collection
export PYTHONDONTWRITEBYTECODE=1

stage() {   # stage NAME COMMAND...
  local name=$1; shift
  local t0=$SECONDS
  echo "=== stage $name: $*"
  if "$@"; then passed=$((passed+1)); report+=("PASS $name ($((SECONDS-t0)) s)")
  else failed=$((failed+1)); report+=("FAIL $name ($((SECONDS-t0)) s)"); fi
}

unit() { python -m pytest -q -p no:cacheprovider tests/unit; }

sanity() {
  # ansible-test wants the collection at .../ansible_collections/portknock/knock: use the
  # built tarball's content (what users get), as its own git repo.
  local dir="$REPO/.cache/sanity/ansible_collections/portknock/knock"
  rm -rf "$REPO/.cache/sanity" && mkdir -p "$dir"
  tar -C "$dir" -xzf "$build"/dist/portknock-knock-*.tar.gz
  rm -f "$dir/MANIFEST.json" "$dir/FILES.json"
  (cd "$dir" && git init -q . && git add -A && ansible-test sanity --python "$(python -c 'import sys;print("%d.%d" % sys.version_info[:2])')" --color no)
}

lint() {
  # a scratch HOME: a copy of the collection in ~/.ansible/collections (installed by hand,
  # or by an older run) would otherwise be what ansible-lint resolves portknock.knock.* to
  local home="$REPO/.cache/lint-home"
  rm -rf "$home" && mkdir -p "$home"
  HOME="$home" ansible-lint --profile production --offline -q
}

compat() {
  # The oldest ansible-core meta/runtime.yml claims (2.17): every plugin's docs, the unit
  # tests and the connection/lookup/action plugins end to end, with that ansible-core.
  local venv="$REPO/.venv-compat" rc=0
  # the unit tests' own needs, as in tools/requirements.txt (pip skips what is there)
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'ansible-core>=2.17,<2.18' pytest hypothesis 'junitparser>=3' 'prometheus-client>=0.17' 2>/dev/null
  (
    export PATH="$venv/bin:$PATH"
    echo "compat: ansible-core $(python -c 'import ansible.release as r; print(r.__version__)')"
    for type in module connection lookup filter; do
      for plugin in $(ansible-doc -t "$type" -l portknock.knock 2>/dev/null | awk '{print $1}'); do
        ansible-doc -t "$type" "$plugin" >/dev/null || { echo "ansible-doc -t $type $plugin failed"; exit 1; }
      done
    done
    # bad_inputs/test_modules.py asserts that fail_json carries no 'exception': ansible-core 2.17
    # attaches the handled exception of every fail_json called in an except block (2.19 does not)
    python -m pytest -q -p no:cacheprovider tests/unit --deselect tests/unit/plugins/bad_inputs/test_modules.py && \
      python -m pytest -q -p no:cacheprovider -m integration tests/integration/test_connection_lab.py
  ) || rc=1
  return $rc
}

ee() {
  # The execution environment: ansible-builder introspect lists exactly the collection's
  # dependencies, ansible-builder create makes the build context (.cache/ee/) and its
  # builder stage's requirement files carry them (no registry needed).
  python -m pytest -q -p no:cacheprovider tests/ee
}

integration() {
  # Two workers (the lab tests mostly wait on containers and packets), a file per worker at a
  # time, the shared site lab's files on one (tests/integration/conftest.py, LabScheduling);
  # Then alone: test_lab.py (what `down --all` leaves when no other lab is up) and
  # test_connection_lab.py (its IPv6 knock once stayed unanswered beside another worker's lab).
  local rc=0 one alone=(tests/integration/test_lab.py tests/integration/test_connection_lab.py)
  python -m pytest -q -p no:cacheprovider -m integration -n 2 --durations=15 \
    "${alone[@]/#/--ignore=}" tests/integration || rc=$?
  [ $rc = 5 ] && rc=0    # no test collected is not a failure of the code
  python -m pytest -q -p no:cacheprovider -m integration "${alone[@]}" || { one=$?; [ $one = 5 ] || rc=$one; }
  return $rc
}

molecule_all() {
  local rc=0 s
  for s in ${PK_SCENARIOS:-$(cd molecule && ls -d */ | tr -d / )}; do
    [ -f "molecule/$s/molecule.yml" ] || continue
    echo "--- molecule test -s $s"
    molecule test -s "$s" || { echo "molecule scenario $s FAILED"; rc=1; }
    python "$REPO/lab/pklab.py" down --lab "m-$s" >/dev/null 2>&1 || true   # even if destroy never ran
  done
  return $rc
}

for s in "${stages[@]}"; do
  case $s in
    unit) stage unit unit ;;
    sanity) stage sanity sanity ;;
    lint) stage lint lint ;;
    compat) stage compat compat ;;
    ee) stage ee ee ;;
    integration) stage integration integration ;;
    molecule) stage molecule molecule_all ;;
    *) echo "unknown stage $s"; failed=$((failed+1)) ;;
  esac
done
printf '%s\n' "${report[@]}"
echo "stages: $passed passed, $failed failed"
[ "$failed" = 0 ]
