#!/usr/bin/env python3
"""The `runnel` tool's client against Apache Kafka's Java client, both driving the same Runnel
broker (release build) on this machine (not a test; prints figures).

Per round, on a fresh broker: `runnel perf produce` and kafka-producer-perf-test, 100 B records,
acks=1, linger.ms=5, batch.size=131072, one partition each; then `runnel perf consume` and
kafka-consumer-perf-test reading them back (its fetch.MB.sec, which leaves out the group join).
Client and broker share the machine's cores. Figures are medians over rounds.

Usage: bench/client_perf.py [--rounds N] [--records N]. Writes bench/results/client-<date>.md."""

import argparse
import datetime
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from side_by_side import RUNNEL, ROOT, Runnel, consumer_perf, create_topic, producer_perf, runnel_perf  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--records", type=int, default=3_000_000)
    a = ap.parse_args()
    rows = {k: ([], []) for k in ("produce records/s", "produce MB/s", "produce p99 ms", "consume MB/s")}
    for r in range(a.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            b = Runnel()
            b.start(tmp)
            boot = f"127.0.0.1:{b.port}"
            try:
                create_topic(boot, "ours")
                create_topic(boot, "java")
                ours = runnel_perf(RUNNEL, boot, "produce", "ours", "-n", str(a.records), "-s", "100", "--acks", "1",
                                   "--linger-ms", "5", "--batch-size", "131072")
                java = producer_perf(boot, "java", a.records, 100, "1")
                rows["produce records/s"][0].append(ours["records_per_sec"])
                rows["produce records/s"][1].append(java["rps"])
                rows["produce MB/s"][0].append(ours["mb_per_sec"])
                rows["produce MB/s"][1].append(java["mbps"])
                rows["produce p99 ms"][0].append(ours["latency_ms"]["p99"])
                rows["produce p99 ms"][1].append(java["p99"])
                oc = runnel_perf(RUNNEL, boot, "consume", "ours", "-n", str(a.records))
                jc = consumer_perf(boot, "java", a.records)
                rows["consume MB/s"][0].append(oc["mb_per_sec"])
                rows["consume MB/s"][1].append(jc["fetch_mbps"])
            finally:
                b.stop()
        print(f"round {r + 1} done", file=sys.stderr)
    lines = ["| figure | runnel client | Java client | ratio |", "|---|---|---|---|"]
    for k, (o, j) in rows.items():
        mo, mj = statistics.median(o), statistics.median(j)
        lines.append(f"| {k} | {mo:.1f} | {mj:.1f} | {mo / mj:.2f} |")
    table = "\n".join(lines)
    print(table)
    out = ROOT / "bench" / "results" / f"client-{datetime.date.today().isoformat()}.md"
    out.write_text(f"# runnel client vs Java client, {a.records} records of 100 B, {a.rounds} rounds\n\n"
                   "Both against one Runnel broker (release), 2 cores shared by client and broker; "
                   "see bench/client_perf.py.\n\n" + table + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
