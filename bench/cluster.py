#!/usr/bin/env python3
"""Three Runnel processes against three Apache Kafka processes on this machine, replicated
(not a test; prints figures).

Each side is a 3-node cluster of combined broker+controller nodes on 127.0.0.1 (Kafka 4.1.1 in
KRaft mode from the Maven jars in .deps/kafka-libs, a static quorum; Runnel's release build with
the same keys). Topics have replication factor 3 and min.insync.replicas=2; the producer uses
acks=all. Rounds alternate Kafka / Runnel; only one cluster runs at a time. Figures (medians):

- kafka-producer-perf-test, 100 B and 1 KiB records, acks=all, unthrottled (MB/s);
- a latency run at a fixed rate (half of Kafka's 1 KiB acks=all throughput): p50/p99/p99.9;
- the summed peak RSS of the three processes.

Usage: bench/cluster.py [--rounds N] [--seconds S] [--no-build]. Writes bench/results/<date>-cluster.md."""

import argparse
import datetime
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import side_by_side  # noqa: E402
from side_by_side import (KAFKA_NEWEST, KAFKA_VERSION, ROOT, consumer_perf, free_port, java_tool,  # noqa: E402
                          kafka_libs, proc_stats, producer_perf, ratio_table, wait_port)

NODES = 3


class Cluster:
    """Three nodes of one kind; `conf(i, ports, voters, tmp)` gives node i's properties."""

    name = ""

    def start(self, tmp):
        ports = [free_port() for _ in range(2 * NODES)]
        self.client_ports = ports[0::2]
        voters = ",".join(f"{i + 1}@127.0.0.1:{ports[2 * i + 1]}" for i in range(NODES))
        self.procs = []
        for i in range(NODES):
            conf = Path(tmp) / f"node{i + 1}.properties"
            conf.write_text(
                "process.roles=broker,controller\n"
                f"node.id={i + 1}\n"
                f"controller.quorum.voters={voters}\n"
                f"listeners=PLAINTEXT://127.0.0.1:{ports[2 * i]},CONTROLLER://127.0.0.1:{ports[2 * i + 1]}\n"
                "controller.listener.names=CONTROLLER\ninter.broker.listener.name=PLAINTEXT\n"
                f"log.dirs={tmp}/data{i + 1}\n"
                "default.replication.factor=3\nmin.insync.replicas=2\n"
                "offsets.topic.replication.factor=3\ngroup.initial.rebalance.delay.ms=0\n")
            self.procs.append(self.launch(conf))
        for port, proc in zip(self.client_ports, self.procs):
            wait_port(port, proc)
        time.sleep(5)

    def stop(self):
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()

    @property
    def bootstrap(self):
        return ",".join(f"127.0.0.1:{p}" for p in self.client_ports)

    def rss_mib(self):
        return sum(proc_stats(p.pid)[0] for p in self.procs)


class RunnelCluster(Cluster):
    name = "Runnel"

    def launch(self, conf):
        return subprocess.Popen([str(side_by_side.RUNNEL), "serve", "--config", str(conf)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class KafkaCluster(Cluster):
    def __init__(self, version=KAFKA_VERSION):
        self.name = f"Kafka {version}"
        self.cp = f"{kafka_libs(version)}/*"

    def launch(self, conf):
        subprocess.run(["java", "-cp", self.cp, "kafka.tools.StorageTool", "format", "-t", "Mk3OEYBSD34fcwNTJENDM2",
                        "-c", str(conf)], check=True, capture_output=True)
        return subprocess.Popen(["java", "-Xmx1G", "-Xms1G", "-cp", self.cp, "kafka.Kafka", str(conf)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def create_topic(bootstrap, topic, partitions=6):
    java_tool("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", bootstrap, "--create",
              "--topic", topic, "--partitions", str(partitions), "--replication-factor", "3",
              "--config", "min.insync.replicas=2")


latency_rate = {}


def run(cluster, seconds):
    tmp = tempfile.mkdtemp(prefix=f"bench-cluster-{cluster.name}-", dir=str(ROOT / "target"))
    figures = {}
    try:
        cluster.start(tmp)
        for key, size in (("p100", 100), ("p1k", 1024)):
            topic = f"rf3-{key}-{int(time.time() * 1000)}"
            create_topic(cluster.bootstrap, topic)
            records = max(10_000, int(seconds * (200_000 if size <= 100 else 60_000)))
            figures[key] = producer_perf(cluster.bootstrap, topic, records, size, "all")
            if key == "p1k" and figures[key]:
                figures["c1k"] = consumer_perf(cluster.bootstrap, topic, records)
        if cluster.name.startswith("Kafka") and "rate" not in latency_rate and figures.get("p1k"):
            latency_rate["rate"] = figures["p1k"]["rps"] / 2
        rate = latency_rate.get("rate")
        if rate:
            topic = f"rf3-lat-{int(time.time() * 1000)}"
            create_topic(cluster.bootstrap, topic)
            figures["latency"] = producer_perf(cluster.bootstrap, topic, int(rate * seconds), 1024, "all",
                                               throughput=int(rate))
        figures["rss_mib"] = cluster.rss_mib()
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return figures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--kafka", default=f"{KAFKA_NEWEST},{KAFKA_VERSION}",
                    help="the Kafka versions to measure, comma-separated")
    ap.add_argument("--runnel", help="the runnel binary (default: the release build)")
    ap.add_argument("--no-build", action="store_true", help="use target/release/runnel as it is")
    ap.add_argument("--short", action="store_true", help="one round of 3 s runs (CI's form)")
    args = ap.parse_args()
    if args.short:
        args.rounds, args.seconds = 1, 3
    if args.runnel:
        side_by_side.RUNNEL = Path(args.runnel)
    elif not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--bins"], check=True, cwd=ROOT)
    versions = [v for v in args.kafka.split(",") if v]
    runs = {}
    for rnd in range(args.rounds):
        for cluster in [KafkaCluster(v) for v in versions] + [RunnelCluster()]:
            print(f"round {rnd + 1}: {cluster.name}", flush=True)
            runs.setdefault(cluster.name, []).append(run(cluster, args.seconds))

    kafkas = [f"Kafka {v}" for v in versions]
    rows = ratio_table(runs, kafkas, [
        ("produce 100 B acks=all, RF 3 (MB/s)", "p100", "mbps"),
        ("produce 1 KiB acks=all, RF 3 (MB/s)", "p1k", "mbps"),
        ("consume 1 KiB, consumer group (MB/s)", "c1k", "fetch_mbps"),
        ("latency p50 at fixed rate (ms)", "latency", "p50"), ("latency p99 (ms)", "latency", "p99"),
        ("latency p99.9 (ms)", "latency", "p999"), ("peak RSS, 3 processes (MiB)", "rss_mib", None),
    ])
    date = datetime.date.today().isoformat()
    text = "\n".join([
        f"# 3 Runnel nodes vs 3 Apache Kafka nodes ({', '.join(versions)}): {date}", "",
        f"Same machine, one cluster at a time, {args.rounds} round(s) alternating {' / '.join(kafkas + ['Runnel'])},",
        f"about {args.seconds:.0f} s of records per run; medians. RF 3, min.insync.replicas=2, acks=all,",
        "6 partitions. Ratio = Runnel / Kafka.",
        f"Latency run at {latency_rate.get('rate', 0):.0f} records/s of 1 KiB (half the first Kafka's throughput).", "",
        *rows, ""])
    print(text)
    out = ROOT / "target" / "bench-short-cluster.md" if args.short else ROOT / "bench" / "results" / f"{date}-cluster.md"
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
