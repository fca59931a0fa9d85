"""The nemesis run, short form for CI (tests/nemesis.py: the workload, the faults, the checker):
a 3-node cluster (in network namespaces when they can be made here, else on 127.0.0.1 without
partitions) under idempotent and transactional producers and a read_committed consumer group,
RUNNEL_NEMESIS_CYCLES faults (default 6) of kill -9 and restart, SIGSTOP and SIGCONT, and network
partitions; then every anomaly count must be zero. RUNNEL_NEMESIS_SEED replays a schedule (the
seed is printed). scripts/nemesis.sh is the long form (100 cycles)."""

import os
import random

from nemesis import run_nemesis, summary

CYCLES = int(os.environ.get("RUNNEL_NEMESIS_CYCLES", "6"))


def test_nemesis_cycles_lose_duplicate_reorder_and_reuse_nothing(tmp_path):
    seed = int(os.environ.get("RUNNEL_NEMESIS_SEED") or random.randrange(1 << 31))
    report, run = run_nemesis(tmp_path, CYCLES, seed, recovery_timeout=60)
    text = summary(report, run)
    print(text)
    assert run["cycles done"] == CYCLES, text
    assert sum(n for k, n in run["faults"].items() if not k.startswith("victim")) == CYCLES, text
    assert report.ok, text
