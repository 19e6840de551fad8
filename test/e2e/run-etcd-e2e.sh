#!/usr/bin/env bash
# Runs etcd 3.4's own end-to-end suite (go.etcd.io/etcd/tests/e2e, built from Debian's packages by
# ../shared/etcd-tools/run-etcd-e2e.sh) against this checkout's build, for the tests listed in
# test/e2e/etcd-e2e-pass.txt (or the REGEX / LIST_FILE given). Exit status 0 when every test passed.
#
#   bash test/e2e/run-etcd-e2e.sh [REGEX | LIST_FILE]
#
# As root on Debian bookworm (the tools install golang-go, golang-etcd-server-dev and curl, and run each test in its
# own network namespace). It builds this checkout first (npm run build) unless E2E_NO_BUILD=1.
# Environment: ETCD_TOOLS (default ../shared/etcd-tools beside the checkout), E2E_WORK (default
# /var/tmp/ts-etcd-e2e: the suite is built there once, about a minute, and reused), E2E_TIMEOUT (seconds per test,
# default 60), and the tools' other settings (E2E_RUN, E2E_KEEP, ...). Output: one PASS|FAIL|SKIP line per test,
# then "N passed, N failed"; logs in E2E_WORK/logs/<run>/<Test>.log.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tools=${ETCD_TOOLS:-$root/../shared/etcd-tools}
[ -f "$tools/run-etcd-e2e.sh" ] || { echo "run-etcd-e2e: no $tools/run-etcd-e2e.sh (set ETCD_TOOLS)" >&2; exit 2; }
export E2E_WORK=${E2E_WORK:-/var/tmp/ts-etcd-e2e}
export E2E_TIMEOUT=${E2E_TIMEOUT:-60}
sel=${1:-$root/test/e2e/etcd-e2e-pass.txt}

t0=$SECONDS
if [ "${E2E_NO_BUILD:-0}" != 1 ]; then (cd "$root" && npm run --silent build) >&2; fi
bash "$tools/run-etcd-e2e.sh" build >/dev/null
bash "$tools/run-etcd-e2e.sh" mkbin-ts "$E2E_WORK/ts-etcd-bin" "$root"
echo "run-etcd-e2e: builds took $((SECONDS - t0)) s" >&2
# The tools' last line ("N passed, N failed") stays the last line of this script's output.
exec bash "$tools/run-etcd-e2e.sh" "$E2E_WORK/ts-etcd-bin" "$sel"
