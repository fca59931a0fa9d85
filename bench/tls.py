#!/usr/bin/env python3
"""Produce and consume throughput over TLS: Runnel against Apache Kafka 4.1.1 (not a test; prints
figures).

Each broker runs alone with two listeners, PLAINTEXT and SSL (PEM keystore and trust store made
with openssl by tests/helpers.make_tls_certs, ssl.client.auth=none), rounds alternating
Kafka / Runnel. On each listener: kafka-producer-perf-test (Java client, 1 KiB records, acks=1 and
acks=all) and kafka-consumer-perf-test reading the acks=1 topic back in a new group, so the table
shows each broker's TLS throughput and what TLS costs it against its own plaintext figure. Also
the broker's CPU seconds per GiB moved over TLS. Medians over rounds.

Usage: bench/tls.py [--rounds N] [--seconds S] [--runnel BIN]. Writes bench/results/<date>-tls.md."""

import argparse
import datetime
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from side_by_side import CP, ROOT, free_port, java_tool, proc_stats, wait_port  # noqa: E402
from helpers import make_tls_certs  # noqa: E402

import re  # noqa: E402


class Broker:
    def __init__(self, certs):
        self.certs = certs

    def client_props(self, tmp, tls):
        p = Path(tmp) / ("client-ssl.properties" if tls else "client-plain.properties")
        if tls:
            p.write_text("security.protocol=SSL\nssl.truststore.type=PEM\n"
                         f"ssl.truststore.location={self.certs / 'ca.crt'}\n")
        else:
            p.write_text("security.protocol=PLAINTEXT\n")
        return p


class Runnel(Broker):
    name = "Runnel"
    binary = ROOT / "target" / "release" / "runnel"

    def start(self, tmp):
        self.port, self.ssl_port = free_port(), free_port()
        sets = {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},SSL://127.0.0.1:{self.ssl_port}",
            "log.dirs": f"{tmp}/data", "group.initial.rebalance.delay.ms": "0",
            "ssl.keystore.type": "PEM", "ssl.keystore.location": str(self.certs / "server.pem"),
        }
        args = [a for k, v in sets.items() for a in ("--override", f"{k}={v}")]
        self.proc = subprocess.Popen([str(self.binary), "serve", *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.ssl_port, self.proc)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


class Kafka(Broker):
    name = "Kafka"

    def start(self, tmp):
        self.port, self.ssl_port, cport = free_port(), free_port(), free_port()
        conf = Path(tmp) / "server.properties"
        conf.write_text(
            "process.roles=broker,controller\nnode.id=1\n"
            f"controller.quorum.bootstrap.servers=127.0.0.1:{cport}\n"
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},SSL://127.0.0.1:{self.ssl_port},"
            f"CONTROLLER://127.0.0.1:{cport}\n"
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL,CONTROLLER:PLAINTEXT\n"
            "controller.listener.names=CONTROLLER\ninter.broker.listener.name=PLAINTEXT\n"
            f"log.dirs={tmp}/data\noffsets.topic.replication.factor=1\n"
            "transaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\n"
            "group.initial.rebalance.delay.ms=0\n"
            f"ssl.keystore.type=PEM\nssl.keystore.location={self.certs / 'server.pem'}\n")
        subprocess.run(["java", "-cp", CP, "kafka.tools.StorageTool", "format", "-t", "Mk3OEYBSD34fcwNTJENDM2",
                        "-c", str(conf), "--standalone"], check=True, capture_output=True)
        self.proc = subprocess.Popen(["java", "-Xmx1G", "-Xms1G", "-cp", CP, "kafka.Kafka", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.ssl_port, self.proc)
        time.sleep(3)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def create_topic(bootstrap, props, topic):
    java_tool("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", bootstrap, "--command-config",
              str(props), "--create", "--topic", topic, "--partitions", "1", "--replication-factor", "1")


def producer_perf(bootstrap, props, topic, records, size, acks):
    out = java_tool("org.apache.kafka.tools.ProducerPerformance", "--topic", topic, "--num-records", str(records),
                    "--record-size", str(size), "--throughput", "-1", "--producer.config", str(props),
                    "--producer-props", f"bootstrap.servers={bootstrap}", f"acks={acks}", "linger.ms=5",
                    "batch.size=131072")
    m = re.findall(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\)", out)
    return float(m[-1][2]) if m else None


def consumer_perf(bootstrap, props, topic, records):
    out = java_tool("org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server", bootstrap,
                    "--topic", topic, "--messages", str(records), "--group", f"perf-{int(time.time() * 1000)}",
                    "--timeout", "60000", "--consumer.config", str(props))
    for line in out.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) >= 10 and re.match(r"\d{4}-\d\d-\d\d", cells[0]):
            return float(cells[8])
    return None


def run_broker(broker, seconds):
    tmp = tempfile.mkdtemp(prefix=f"bench-tls-{broker.name}-", dir=str(ROOT / "target"))
    figures = {}
    try:
        broker.start(tmp)
        cpu_tls = 0.0
        moved_tls = 0
        for tls in (False, True):
            port = broker.ssl_port if tls else broker.port
            bootstrap = f"127.0.0.1:{port}"
            props = broker.client_props(tmp, tls)
            tag = "tls" if tls else "plain"
            records = max(10_000, int(seconds * 100_000))
            _, cpu0 = proc_stats(broker.proc.pid)
            for acks in ("1", "all"):
                topic = f"perf-{tag}-{acks}-{int(time.time() * 1000)}"
                create_topic(bootstrap, props, topic)
                figures[f"{tag}_p_acks{acks}"] = producer_perf(bootstrap, props, topic, records, 1024, acks)
                if acks == "1":
                    figures[f"{tag}_c"] = consumer_perf(bootstrap, props, topic, records)
            _, cpu1 = proc_stats(broker.proc.pid)
            if tls:
                cpu_tls = cpu1 - cpu0
                moved_tls = 3 * records * 1024
        figures["cpu_s_per_gib_tls"] = cpu_tls / max(moved_tls / 2**30, 1e-9)
        figures["rss_mib"], _ = proc_stats(broker.proc.pid)
    finally:
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return figures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--runnel", help="a runnel binary to use instead of building the release one")
    args = ap.parse_args()
    if args.runnel:
        Runnel.binary = Path(args.runnel)
    else:
        subprocess.run(["cargo", "build", "--release", "--bins"], check=True, cwd=ROOT)
    certs = make_tls_certs(Path(tempfile.mkdtemp(prefix="bench-tls-certs-")), clients=())
    runs = {"Kafka": [], "Runnel": []}
    for rnd in range(args.rounds):
        for broker in (Kafka(certs), Runnel(certs)):
            print(f"round {rnd + 1}: {broker.name}", flush=True)
            runs[broker.name].append(run_broker(broker, args.seconds))

    def med(name, key):
        vals = [r.get(key) for r in runs[name] if isinstance(r.get(key), (int, float))]
        return statistics.median(vals) if vals else None

    fmt = lambda v: f"{v:.1f}" if v is not None else "n/a"  # noqa: E731
    rows = []
    for label, key in [("produce 1 KiB acks=1 (MB/s)", "p_acks1"), ("produce 1 KiB acks=all (MB/s)", "p_acksall"),
                       ("consume 1 KiB, consumer group (MB/s)", "c")]:
        r_tls, k_tls = med("Runnel", f"tls_{key}"), med("Kafka", f"tls_{key}")
        r_pl, k_pl = med("Runnel", f"plain_{key}"), med("Kafka", f"plain_{key}")
        ratio = f"{r_tls / k_tls:.2f}" if r_tls and k_tls else "n/a"
        cost = lambda t, p: f"{t / p:.2f}" if t and p else "n/a"  # noqa: E731
        rows.append(f"| {label} | {fmt(r_tls)} | {fmt(k_tls)} | {ratio} | {cost(r_tls, r_pl)} | {cost(k_tls, k_pl)} |")
    r, k = med("Runnel", "cpu_s_per_gib_tls"), med("Kafka", "cpu_s_per_gib_tls")
    rows.append(f"| broker CPU s per GiB over TLS | {fmt(r)} | {fmt(k)} | "
                f"{f'{r / k:.2f}' if r and k else 'n/a'} | | |")
    r, k = med("Runnel", "rss_mib"), med("Kafka", "rss_mib")
    rows.append(f"| peak RSS (MiB) | {fmt(r)} | {fmt(k)} | {f'{r / k:.2f}' if r and k else 'n/a'} | | |")
    date = datetime.date.today().isoformat()
    text = "\n".join([
        f"# Runnel vs Apache Kafka 4.1.1 over TLS — {date}", "",
        f"Same machine (2 cores), one broker at a time, {args.rounds} rounds alternating Kafka/Runnel,",
        f"about {args.seconds:.0f} s of 1 KiB records per run, Java client (kafka-producer-perf-test,",
        "kafka-consumer-perf-test) over an SSL listener (PEM keystore, RSA 2048, no client auth); medians.",
        "Ratio = Runnel / Kafka over TLS; TLS/plain = each broker's TLS figure over its own PLAINTEXT one.",
        "", "| figure | Runnel TLS | Kafka TLS | ratio | Runnel TLS/plain | Kafka TLS/plain |",
        "|---|---|---|---|---|---|", *rows, ""])
    print(text)
    out = ROOT / "bench" / "results" / f"{date}-tls.md"
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
