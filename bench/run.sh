#!/usr/bin/env bash
# Every side-by-side figure of issue 15 in one command: one node (bench/side_by_side.py), then
# three nodes with RF 3 (bench/cluster.py), each against Apache Kafka 4.4.0 and 4.1.1 by
# default. Arguments go to both (--rounds N, --seconds S, --kafka V1,V2, --runnel BIN, --short).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 bench/side_by_side.py "$@"
python3 bench/cluster.py --no-build "$@"
