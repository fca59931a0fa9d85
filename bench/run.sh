#!/usr/bin/env bash
# Every side-by-side figure of issue 15 in one command: one node (bench/side_by_side.py), then
# three nodes with RF 3 (bench/cluster.py), each against Apache Kafka 4.4.0 and 4.1.1 by
# default, then the costs that should stay flat as the work grows (bench/scale.py: 10,000
# partitions, 5,000 idle connections, a restart with 50 GiB, a consumer 100 M records behind;
# against Kafka 4.4.0 unless --kafka says otherwise; it needs 105 GiB free, 9 GiB with --short).
# Arguments go to all three (--rounds N, --seconds S, --kafka V1,V2, --runnel BIN, --short).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 bench/side_by_side.py "$@"
python3 bench/cluster.py --no-build "$@"
python3 bench/scale.py --no-build "$@"
