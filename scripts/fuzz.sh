#!/usr/bin/env bash
# Fuzzes the request decode path (header, version check, length check, kafka-protocol decode)
# and the SASL path (PLAIN / SCRAM / JAAS parsers, the per-connection authenticator fed frames),
# each for a bounded time: ./scripts/fuzz.sh [seconds] (default 120). Not part of CI.
# cargo-fuzz needs nightly-only compiler flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN="${1:-120}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
cd fuzz
export RUSTC_BOOTSTRAP=1
for target in request_decode sasl_tokens; do
  mkdir -p "corpus/$target"
  cargo fuzz run "$target" "corpus/$target" -- \
    -max_total_time="$SECONDS_TO_RUN" -rss_limit_mb=1024 -malloc_limit_mb=256 -print_final_stats=1
done
