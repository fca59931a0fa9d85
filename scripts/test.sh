#!/usr/bin/env bash
# The whole test suite: installs what the tests need, builds once, runs the Rust unit and
# integration tests, then the real-client suite (pytest) against real `runnel serve` processes.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each phase prints its start with the time since the run began (CI's limit is 60 minutes),
# and all of them again when the run ends, where CI's tail of the output shows them.
START=$(date +%s)
PHASES=""
phase() {
  local t=$(( $(date +%s) - START ))
  local line="== $1 (at $((t / 60)) min $((t % 60)) s)"
  echo "$line"
  PHASES="$PHASES$line"$'\n'
}
trap 'phase "end"; printf "%s" "$PHASES"' EXIT

phase "install test deps"
scripts/install-test-deps.sh

phase "cargo fmt --check"
cargo fmt --all -- --check
phase "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

phase "cargo build"
cargo build --bins
phase "cargo test"
cargo test --workspace

phase "real clients (pytest)"
set +e
# Two workers, a test file each at a time (module fixtures stay whole): most of the suite's time
# is spent waiting (sessions, rebalances, failovers), not computing.
tests/.venv/bin/python -m pytest tests -v -p no:cacheprovider --timeout=300 --durations=25 \
  -n 2 --dist loadfile
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
[ "$rc" -eq 0 ] || exit "$rc"

echo "== peer suites (allowlisted tests must pass)"
status=0
phase "franz_go.py"
python3 scripts/peer/franz_go.py || status=1
phase "librdkafka.py"
python3 scripts/peer/librdkafka.py || status=1
# The same suites against a 3-node cluster (replication factor 3), with their own allowlists.
phase "franz_go.py --rf3"
python3 scripts/peer/franz_go.py --rf3 || status=1
phase "librdkafka.py --rf3"
python3 scripts/peer/librdkafka.py --rf3 || status=1
python3 scripts/peer/compat_page.py || true
echo "peer suites: status $status"

# The short form of the benchmark (bench/side_by_side.py): prints its table, asserts nothing (the
# machines are shared and noisy). The dev build, against Kafka 4.4.0 only, one round of 3 s runs.
phase "benchmark, short form"
python3 bench/side_by_side.py --short --kafka 4.4.0 --runnel target/debug/runnel ||
  echo "benchmark short form did not finish (not a test failure)"
exit "$status"
