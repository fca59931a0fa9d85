#!/usr/bin/env bash
# The long form of the 3-node fault tests (CI runs the short form through scripts/test.sh):
# more leader SIGKILL/restart cycles, more active-controller kills and more coordinator kills
# (group and transaction coordinators), against the debug build.
# Usage: scripts/cluster-soak.sh [bounce cycles, default 10] [controller kills, default 10]
#                                [coordinator kills per test, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo build --bins
RUNNEL_BOUNCE_CYCLES="${1:-10}" RUNNEL_CONTROLLER_CYCLES="${2:-10}" RUNNEL_COORDINATOR_CYCLES="${3:-10}" \
  tests/.venv/bin/python -m pytest tests/test_cluster.py tests/test_cluster_coordinators.py -v \
  -p no:cacheprovider --timeout=1800
