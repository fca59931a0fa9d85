#!/usr/bin/env python3
"""Runnel and Apache Kafka side by side on this machine (not a test; prints figures).

Apache Kafka 4.1.1 comes from Maven Central through tests/java/pom.xml (the jars in
.deps/kafka-libs, installed by scripts/install-test-deps.sh) and runs in KRaft mode as a single
broker+controller. Runnel is the release build. Each gets a fresh data directory on the same disk
and runs alone; the rounds alternate A B A B. Figures are medians over rounds:

- kafka-producer-perf-test (Java client), 100 B and 1 KiB records, acks=1 and acks=all, unthrottled;
- kafka-consumer-perf-test in a new consumer group, reading back the acks=1 topics; the group join
  time is reported too;
- a latency run at a fixed rate (half of Kafka's measured 1 KiB acks=all throughput): p50/p99/p99.9;
- librdkafka's rdkafka_performance (native client; built from the rdkafka-sys crate's source by
  scripts/peer/librdkafka.py) producing and consuming (partition mode, no group);
- each broker's peak RSS and CPU seconds per GiB moved.

Usage: bench/side_by_side.py [--rounds N] [--seconds S]. Writes bench/results/<date>.md."""

import argparse
import datetime
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBS = ROOT / ".deps" / "kafka-libs"
RUNNEL = ROOT / "target" / "release" / "runnel"
RDPERF = ROOT / ".deps" / "librdkafka-2.12.1" / "examples" / "rdkafka_performance"
CP = f"{LIBS}/*"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"broker exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("broker did not start")


def proc_stats(pid):
    """(peak RSS in MiB, CPU seconds) of a process."""
    hwm = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    return hwm, cpu


class Runnel:
    name = "Runnel"

    def __init__(self, extra=None):
        """`extra`: more broker properties (key -> value)."""
        self.extra = extra or {}

    def start(self, tmp):
        self.port = free_port()
        extra = [a for k, v in self.extra.items() for a in ("--override", f"{k}={v}")]
        self.proc = subprocess.Popen(
            [str(RUNNEL), "serve", "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
             "--override", f"log.dirs={tmp}/data",
             # As the Kafka broker below (and Kafka's shipped server.properties).
             "--override", "group.initial.rebalance.delay.ms=0", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


class Kafka:
    name = "Kafka"

    def __init__(self, extra=None):
        """`extra`: more broker properties (key -> value)."""
        self.extra = extra or {}

    def start(self, tmp):
        self.port, cport = free_port(), free_port()
        conf = Path(tmp) / "server.properties"
        conf.write_text(
            "process.roles=broker,controller\nnode.id=1\n"
            f"controller.quorum.bootstrap.servers=127.0.0.1:{cport}\n"
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{cport}\n"
            "controller.listener.names=CONTROLLER\ninter.broker.listener.name=PLAINTEXT\n"
            f"log.dirs={tmp}/data\noffsets.topic.replication.factor=1\n"
            "transaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\n"
            "group.initial.rebalance.delay.ms=0\n"
            + "".join(f"{k}={v}\n" for k, v in self.extra.items()))
        subprocess.run(["java", "-cp", CP, "kafka.tools.StorageTool", "format", "-t", "Mk3OEYBSD34fcwNTJENDM2",
                        "-c", str(conf), "--standalone"], check=True, capture_output=True)
        self.proc = subprocess.Popen(["java", "-Xmx1G", "-Xms1G", "-cp", CP, "kafka.Kafka", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)
        time.sleep(3)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def java_tool(cls, *args, timeout=600):
    p = subprocess.run(["java", "-cp", CP, cls, *args], capture_output=True, text=True, timeout=timeout)
    return p.stdout + p.stderr


def create_topic(bootstrap, topic, partitions=1):
    java_tool("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", bootstrap, "--create",
              "--topic", topic, "--partitions", str(partitions), "--replication-factor", "1")


def producer_perf(bootstrap, topic, records, size, acks, throughput=-1):
    out = java_tool("org.apache.kafka.tools.ProducerPerformance", "--topic", topic, "--num-records", str(records),
                    "--record-size", str(size), "--throughput", str(throughput), "--producer-props",
                    f"bootstrap.servers={bootstrap}", f"acks={acks}", "linger.ms=5", "batch.size=131072")
    m = re.findall(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
                   r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th", out)
    if not m:
        return None
    sent, rps, mbps, avg, mx, p50, p95, p99, p999 = m[-1]
    return {"rps": float(rps), "mbps": float(mbps), "p50": float(p50), "p99": float(p99), "p999": float(p999)}


def consumer_perf(bootstrap, topic, records):
    """kafka-consumer-perf-test (ConsumerPerformance) in a fresh consumer group: it joins, reads
    `records` from the beginning and reports MB/s (fetch.MB.sec excludes the group join)."""
    out = java_tool("org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server", bootstrap,
                    "--topic", topic, "--messages", str(records), "--group", f"perf-{int(time.time() * 1000)}",
                    "--timeout", "60000")
    for line in out.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) >= 10 and re.match(r"\d{4}-\d\d-\d\d", cells[0]):
            return {"mbps": float(cells[3]), "rps": float(cells[5]), "rebalance_ms": float(cells[6]),
                    "fetch_mbps": float(cells[8])}
    return None


def rdkafka_perf(bootstrap, topic, records, size, mode):
    if not RDPERF.exists():
        return None
    env = dict(os.environ, LD_LIBRARY_PATH=str(RDPERF.parent.parent / "src"))
    if mode == "produce":
        args = ["-P", "-t", topic, "-b", bootstrap, "-s", str(size), "-c", str(records), "-a", "1",
                "-X", "linger.ms=5", "-u"]
    else:
        args = ["-C", "-t", topic, "-p", "0", "-b", bootstrap, "-o", "beginning", "-c", str(records), "-u"]
    p = subprocess.run([str(RDPERF), *args], capture_output=True, text=True, timeout=600, env=env)
    out = p.stdout + p.stderr
    # With -u the tool prints a table: a header row, then rows; the last row is the total.
    header, last = None, None
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if "elapsed" in cells:
            header = cells
        elif header and len(cells) == len(header) and cells[0].isdigit():
            last = dict(zip(header, cells))
    if not last:
        return None
    if mode == "produce":
        return {"rps": float(last["dr_m/s"]), "mbps": float(last["dr_MB/s"])}
    return {"rps": float(last["m/s"]), "mbps": float(last["MB/s"])}


def run_broker(broker, plan, seconds):
    tmp = tempfile.mkdtemp(prefix=f"bench-{broker.name}-", dir=str(ROOT / "target"))
    figures = {}
    try:
        broker.start(tmp)
        bootstrap = f"127.0.0.1:{broker.port}"
        _, cpu0 = proc_stats(broker.proc.pid)
        moved = 0
        produced = {}
        for key, size, acks in plan:
            records = max(10_000, int(seconds * (300_000 if size <= 100 else 100_000)))
            topic = f"perf-{size}-{acks.replace('-', 'm')}-{int(time.time() * 1000)}"
            create_topic(bootstrap, topic)
            r = producer_perf(bootstrap, topic, records, size, acks)
            figures[key] = r
            if r:
                moved += records * size
                produced[key] = (topic, records, size)
        for key in ("p100_acks1", "p1k_acks1"):
            if key in produced:
                topic, records, size = produced[key]
                figures[f"c{key[1:]}"] = consumer_perf(bootstrap, topic, records)
                moved += records * size
        if broker.name == "Kafka" and "rate" not in plan_latency_rate and figures.get("p1k_acksall"):
            plan_latency_rate["rate"] = figures["p1k_acksall"]["rps"] / 2
        lat_rate = plan_latency_rate.get("rate")
        if lat_rate:
            topic = f"lat-{int(time.time() * 1000)}"
            create_topic(bootstrap, topic)
            figures["latency"] = producer_perf(bootstrap, topic, int(lat_rate * seconds), 1024, "all", throughput=int(lat_rate))
            moved += int(lat_rate * seconds) * 1024
        topic = f"rd-{int(time.time() * 1000)}"
        create_topic(bootstrap, topic)
        n = max(10_000, int(seconds * 200_000))
        figures["rd_produce"] = rdkafka_perf(bootstrap, topic, n, 100, "produce")
        figures["rd_consume"] = rdkafka_perf(bootstrap, topic, n, 100, "consume")
        moved += 2 * n * 100
        rss, cpu1 = proc_stats(broker.proc.pid)
        figures["rss_mib"] = rss
        figures["cpu_s_per_gib"] = (cpu1 - cpu0) / max(moved / 2**30, 1e-9)
    finally:
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return figures


plan_latency_rate = {}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=20)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--bins"], check=True, cwd=ROOT)
    if not RDPERF.exists() and (RDPERF.parent.parent / "src" / "librdkafka.a").exists():
        subprocess.run(["make", "-C", str(RDPERF.parent), "rdkafka_performance"], check=True,
                       stdout=subprocess.DEVNULL)
    plan = [("p100_acks1", 100, "1"), ("p100_acksall", 100, "all"), ("p1k_acks1", 1024, "1"), ("p1k_acksall", 1024, "all")]
    runs = {"Kafka": [], "Runnel": []}
    for rnd in range(args.rounds):
        for broker in (Kafka(), Runnel()):
            print(f"round {rnd + 1}: {broker.name}", flush=True)
            f = run_broker(broker, plan, args.seconds)
            runs[broker.name].append(f)
    rows = []

    def med(name, key, field):
        vals = [r[key][field] if isinstance(r.get(key), dict) else r.get(key) for r in runs[name]]
        vals = [v for v in vals if isinstance(v, (int, float))]
        return statistics.median(vals) if vals else None

    for label, key, field in [
        ("produce 100 B acks=1 (MB/s)", "p100_acks1", "mbps"), ("produce 100 B acks=all (MB/s)", "p100_acksall", "mbps"),
        ("produce 1 KiB acks=1 (MB/s)", "p1k_acks1", "mbps"), ("produce 1 KiB acks=all (MB/s)", "p1k_acksall", "mbps"),
        ("consume 100 B, consumer group (MB/s)", "c100_acks1", "fetch_mbps"),
        ("consume 1 KiB, consumer group (MB/s)", "c1k_acks1", "fetch_mbps"),
        ("consumer group join (ms)", "c1k_acks1", "rebalance_ms"),
        ("latency p50 at fixed rate (ms)", "latency", "p50"), ("latency p99 (ms)", "latency", "p99"),
        ("latency p99.9 (ms)", "latency", "p999"),
        ("rdkafka_performance produce 100 B (MB/s)", "rd_produce", "mbps"),
        ("rdkafka_performance consume 100 B (MB/s)", "rd_consume", "mbps"),
        ("peak RSS (MiB)", "rss_mib", None), ("CPU s per GiB moved", "cpu_s_per_gib", None),
    ]:
        k = med("Kafka", key, field)
        r = med("Runnel", key, field)
        ratio = f"{r / k:.2f}" if k and r else "n/a"
        fmt = lambda v: f"{v:.1f}" if v is not None else "n/a"
        rows.append(f"| {label} | {fmt(r)} | {fmt(k)} | {ratio} |")
    date = datetime.date.today().isoformat()
    text = "\n".join([
        f"# Runnel vs Apache Kafka 4.1.1 — {date}", "",
        f"Same machine (2 cores), one broker at a time, {args.rounds} rounds alternating Kafka/Runnel,",
        f"about {args.seconds:.0f} s of records per run; medians. Ratio = Runnel / Kafka.",
        f"Latency run at {plan_latency_rate.get('rate', 0):.0f} records/s of 1 KiB (half Kafka's acks=all throughput).",
        "Consume figures: kafka-consumer-perf-test in a new consumer group, reading what the acks=1 run wrote",
        "(fetch MB/s, the group join excluded; the join time is its own row). Both brokers run with",
        "group.initial.rebalance.delay.ms=0, as Kafka's shipped server.properties has it.", "",
        "| figure | Runnel | Kafka | ratio |", "|---|---|---|---|", *rows, ""])
    print(text)
    out = ROOT / "bench" / "results" / f"{date}.md"
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
