#!/usr/bin/env bash
# The whole test suite: installs what the tests need, builds once, runs the Rust unit and
# integration tests, then the real-client suite (pytest) against real `runnel serve` processes.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

echo "== cargo build"
cargo build --bins
echo "== cargo test"
cargo test --workspace

echo "== real clients (pytest)"
set +e
tests/.venv/bin/python -m pytest tests -v -p no:cacheprovider --timeout=300
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
[ "$rc" -eq 0 ] || exit "$rc"

echo "== peer suites (allowlisted tests must pass)"
status=0
python3 scripts/peer/franz_go.py || status=1
python3 scripts/peer/librdkafka.py || status=1
# The same suites against a 3-node cluster (replication factor 3), with their own allowlists.
python3 scripts/peer/franz_go.py --rf3 || status=1
python3 scripts/peer/librdkafka.py --rf3 || status=1
python3 scripts/peer/compat_page.py || true
exit "$status"
