#!/usr/bin/env bash
# The long form of the nemesis run (CI runs the short form, tests/test_nemesis.py): a 3-node
# cluster (in network namespaces when possible: root and iproute2) under idempotent and
# transactional producers and a read_committed consumer group, one fault a cycle (SIGKILL and
# restart, SIGSTOP shorter or longer than the session timeout, a node cut off from the network),
# then the checker's summary: lost, duplicated, reordered, moved records, offsets reused, aborted
# reads, committed transactions incomplete, group commits lost. Exits non-zero unless all are zero.
# Usage: scripts/nemesis.sh [cycles, default 100] [seed, default random]
# The history and the nodes' logs stay in the directory it prints.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo build --bins
args=(run --cycles "${1:-100}")
[ -n "${2:-}" ] && args+=(--seed "$2")
exec tests/.venv/bin/python tests/nemesis.py "${args[@]}"
