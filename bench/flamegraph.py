#!/usr/bin/env python3
"""Flame graphs of Runnel's hot paths: where the broker's CPU time goes while it serves the
benchmark's load.

One `runnel serve` (the binary given by --runnel, default target/release/runnel) is sampled with
`perf record` (the cpu-clock software event, which works where hardware counters do not; DWARF
call graphs, so no frame-pointer build is needed) during each load, one at a time:
- produce: kafka-producer-perf-test, 1 KiB records, acks=1, 6 partitions (side_by_side's client);
- produce-acks-all-durable: the same to a topic with flush.messages=1 (an fsync per write);
- consume: kafka-consumer-perf-test reading what the produce load wrote, in a consumer group.
Only the broker's process is sampled; the clients' CPU is not in the graphs.

Each load's samples are folded and drawn with inferno (`inferno-collapse-perf`,
`inferno-flamegraph`, installed from crates.io into target/tools when missing) into
bench/results/<date>-flame-<load>.svg, with the folded stacks beside them (.folded) and the
hottest frames printed (self time, the leaf of each stack).

Usage: bench/flamegraph.py [--runnel BIN] [--seconds S] [--out DIR]. Needs perf (Debian's
linux-perf) and perf_event_paranoid <= 1 or root."""

import argparse
import collections
import datetime
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from side_by_side import (ROOT, RUNNEL, Runnel, consumer_perf, create_topic,  # noqa: E402
                          producer_perf)

TOOLS = ROOT / "target" / "tools"


def inferno():
    """(collapse, flamegraph) commands, installing inferno into target/tools if needed."""
    bins = [TOOLS / "bin" / "inferno-collapse-perf", TOOLS / "bin" / "inferno-flamegraph"]
    if not all(b.exists() for b in bins):
        subprocess.run(["cargo", "install", "--quiet", "--locked", "inferno", "--version", "0.12.8",
                        "--root", str(TOOLS)], check=True)
    return bins


def record(pid, seconds, data, load):
    """Samples process `pid` while `load()` runs (at most `seconds` + 60 s); load's result."""
    perf = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "499", "--call-graph",
                             "dwarf,16384", "-p", str(pid), "-o", str(data), "--", "sleep",
                             str(seconds + 60)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    try:
        return load()
    finally:
        perf.send_signal(2)
        perf.wait(120)


def draw(data, name, out, collapse, flamegraph):
    """Folds `data` and draws `name`'s SVG in `out`; the ten hottest leaf frames."""
    script = subprocess.run(["perf", "script", "-i", str(data)], capture_output=True, check=True)
    folded = subprocess.run([str(collapse)], input=script.stdout, capture_output=True,
                            check=True).stdout
    (out / f"{name}.folded").write_bytes(folded)
    svg = subprocess.run([str(flamegraph), "--title", f"runnel serve: {name}"], input=folded,
                         capture_output=True, check=True).stdout
    (out / f"{name}.svg").write_bytes(svg)
    leaves = collections.Counter()
    total = 0
    for line in folded.decode(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        leaves[stack.rsplit(";", 1)[-1]] += int(count)
        total += int(count)
    return [(frame, n / max(total, 1)) for frame, n in leaves.most_common(10)], total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runnel", default=str(RUNNEL), help="the runnel binary to sample")
    ap.add_argument("--seconds", type=int, default=15, help="about how long each load runs")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"), help="where the SVGs go")
    args = ap.parse_args()
    if not shutil.which("perf"):
        raise SystemExit("perf not found (Debian: apt-get install linux-perf)")
    collapse, flamegraph = inferno()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    date = datetime.date.today().isoformat()
    records = 60_000 * args.seconds
    with tempfile.TemporaryDirectory() as tmp:
        broker = Runnel(binary=args.runnel)
        broker.start(tmp)
        try:
            boot = f"127.0.0.1:{broker.port}"
            create_topic(boot, "flame", 6)
            create_topic(boot, "flame-durable", 6, {"flush.messages": "1"})
            loads = [
                ("produce", lambda: producer_perf(boot, "flame", records, 1024, "1")),
                ("produce-acks-all-durable",
                 lambda: producer_perf(boot, "flame-durable", records // 8, 1024, "all")),
                ("consume", lambda: consumer_perf(boot, "flame", records)),
            ]
            for name, load in loads:
                data = Path(tmp) / f"{name}.perf.data"
                result = record(broker.proc.pid, args.seconds, data, load)
                top, samples = draw(data, f"{date}-flame-{name}", out, collapse, flamegraph)
                print(f"== {name}: {result}")
                print(f"   {samples} samples; hottest frames (self time):")
                for frame, share in top:
                    print(f"   {share:6.1%}  {frame[:120]}")
        finally:
            broker.stop()
    print(f"flame graphs in {out}/{date}-flame-*.svg")


if __name__ == "__main__":
    main()
