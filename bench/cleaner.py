#!/usr/bin/env python3
"""The log cleaner of Runnel against Apache Kafka's, on the same topic (not a test; prints figures).

Each broker (Runnel's release build, Apache Kafka 4.1.1 from the Maven jars in .deps/kafka-libs)
runs alone with a fresh data dir, `log.cleaner.threads=1`, the default
`log.cleaner.dedupe.buffer.size` (128 MiB) and `log.cleaner.backoff.ms=100`. A compacted topic
(`segment.bytes` 16 MiB) gets `--mib` MiB of 1 KiB records over `--keys` keys while
`min.compaction.lag.ms` holds the cleaner back; then the lag is set to 0 (IncrementalAlterConfigs)
and the clock runs until the partition's `.log` files on disk come down to what the live keys
need. The figures: MB/s of dirty log cleaned (the closed segments' bytes over that time), the
bytes before and after, and the broker's resident memory before the cleaning and at its peak
during it (sampled every 50 ms). Rounds alternate Kafka / Runnel; medians.

Usage: bench/cleaner.py [--rounds N] [--mib M] [--keys K] [--no-build] [--runnel BIN]. Writes
bench/results/<date>-cleaner.md."""

import argparse
import datetime
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import side_by_side  # noqa: E402
from side_by_side import ROOT, Kafka, Runnel  # noqa: E402

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,  # noqa: E402
                                   ConfigResource, NewTopic)

SEGMENT = 16 * 2**20
VALUE = 1024
HOLD_MS = 24 * 3600 * 1000
BROKER = {"log.cleaner.backoff.ms": "100", "log.cleaner.threads": "1"}


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def log_sizes(data, topic):
    """(all .log bytes, the active (last) segment's bytes) of partition 0."""
    files = sorted((data / f"{topic}-0").glob("*.log"))
    sizes = [f.stat().st_size for f in files]
    return sum(sizes), (sizes[-1] if sizes else 0)


def fill(bootstrap, topic, mib, keys):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1 << 20,
                  "compression.type": "none", "acks": "1", "queue.buffering.max.kbytes": 1 << 20})
    rng = random.Random(7)
    pool = rng.randbytes(VALUE * 64)
    for i in range(mib * 1024):
        key = b"key-%08d" % rng.randrange(keys)
        start = (i * 37) % (len(pool) - VALUE)
        while True:
            try:
                p.produce(topic, key=key, value=pool[start:start + VALUE], partition=0)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(120) == 0, "records left unsent"


def run(broker, mib, keys):
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-cleaner-{broker.name}-", dir=str(ROOT / "target")))
    try:
        broker.start(tmp)
        bootstrap = f"127.0.0.1:{broker.port}"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        topic = "cleaned"
        config = {"cleanup.policy": "compact", "segment.bytes": str(SEGMENT),
                  "min.compaction.lag.ms": str(HOLD_MS), "min.cleanable.dirty.ratio": "0.1"}
        for f in admin.create_topics([NewTopic(topic, 1, 1, config=config)]).values():
            f.result(60)
        fill(bootstrap, topic, mib, keys)
        time.sleep(1)
        before, active = log_sizes(tmp / "data", topic)
        dirty = before - active
        # The live keys take about keys * (value + record/batch overhead) once cleaned.
        target = active + keys * (VALUE + 80) * 1.2
        rss0 = rss_mib(broker.proc.pid)
        peak = rss0
        res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
            ConfigEntry("min.compaction.lag.ms", "0", incremental_operation=AlterConfigOpType.SET)])
        t0 = time.monotonic()
        for f in admin.incremental_alter_configs([res]).values():
            f.result(30)
        deadline = t0 + 600
        while True:
            size, _ = log_sizes(tmp / "data", topic)
            peak = max(peak, rss_mib(broker.proc.pid))
            if size <= target:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{broker.name}: still {size} bytes after 600 s (target {target:.0f})")
            time.sleep(0.05)
        seconds = time.monotonic() - t0
        after, _ = log_sizes(tmp / "data", topic)
        return {"mbps": dirty / 1e6 / seconds, "seconds": seconds, "dirty_mib": dirty / 2**20,
                "after_mib": after / 2**20, "rss0": rss0, "peak": peak, "grow": peak - rss0}
    finally:
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mib", type=int, default=512, help="MiB of records written")
    ap.add_argument("--keys", type=int, default=50_000)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--runnel", help="the runnel binary (default: the release build here)")
    args = ap.parse_args()
    if args.runnel:
        side_by_side.RUNNEL = Path(args.runnel)
    elif not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--bins"], check=True, cwd=ROOT)
    runs = {}
    for rnd in range(args.rounds):
        for broker in (Kafka(BROKER), Runnel(BROKER)):
            r = run(broker, args.mib, args.keys)
            print(f"round {rnd + 1} {broker.name}: {r['dirty_mib']:.0f} MiB dirty cleaned in "
                  f"{r['seconds']:.2f} s = {r['mbps']:.1f} MB/s, {r['after_mib']:.1f} MiB left; "
                  f"RSS {r['rss0']:.0f} -> peak {r['peak']:.0f} MiB", flush=True)
            runs.setdefault(broker.name, []).append(r)

    def med(name, field):
        return statistics.median(r[field] for r in runs[name])

    rows = []
    for label, field in [("dirty log cleaned (MB/s)", "mbps"), ("cleaning time (s)", "seconds"),
                         ("dirty log (MiB)", "dirty_mib"), ("log left (MiB)", "after_mib"),
                         ("RSS before cleaning (MiB)", "rss0"), ("peak RSS while cleaning (MiB)", "peak"),
                         ("RSS growth while cleaning (MiB)", "grow")]:
        r, k = med("Runnel", field), med(Kafka(BROKER).name, field)
        ratio = f"{r / k:.2f}" if k else "n/a"
        rows.append(f"| {label} | {r:.1f} | {k:.1f} | {ratio} |")
    date = datetime.date.today().isoformat()
    text = "\n".join([
        f"# Log cleaner: Runnel vs Apache Kafka 4.1.1 — {date}", "",
        f"Same machine (2 cores), one broker at a time, {args.rounds} rounds alternating Kafka/Runnel;",
        f"medians. One partition, {args.mib} MiB of {VALUE} B values over {args.keys} keys, segments of",
        f"{SEGMENT >> 20} MiB, one cleaner thread, dedupe buffer 128 MiB (both defaults), backoff 100 ms.",
        "Time from setting min.compaction.lag.ms to 0 until the log's files are down to the live keys",
        "(backoff and 50 ms polling included). Ratio = Runnel / Kafka.", "",
        "| figure | Runnel | Kafka | ratio |", "|---|---|---|---|", *rows, ""])
    print(text)
    out = ROOT / "bench" / "results" / f"{date}-cleaner.md"
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
