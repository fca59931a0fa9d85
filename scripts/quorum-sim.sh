#!/usr/bin/env bash
# The long form of the metadata quorum's fault simulation (crates/metadata/src/raft/sim_tests.rs):
# ./scripts/quorum-sim.sh [seeds] [first seed] (default 500 from 0). RUNNEL_QUORUM_SIM_JOBS sets how
# many seeds run at once (default 2). A failing seed prints its trace and the command replaying it.
# CI runs the short form (20 seeds) with `cargo test -p runnel-metadata`.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUNNEL_QUORUM_SIM_SEEDS="${1:-500}"
export RUNNEL_QUORUM_SIM_SEED_BASE="${2:-0}"
export RUNNEL_QUORUM_SIM_VERBOSE="${RUNNEL_QUORUM_SIM_VERBOSE:-1}"
exec cargo test -p runnel-metadata --lib raft::sim_tests -- --nocapture
