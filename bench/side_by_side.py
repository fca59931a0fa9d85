#!/usr/bin/env python3
"""Runnel and Apache Kafka side by side on this machine (not a test; prints figures).

Apache Kafka comes from Maven Central (the jars that scripts/install-test-deps.sh fetches:
.deps/kafka-libs for 4.1.1, .deps/kafka-libs-4.4.0 for the newest) and runs in KRaft mode as a
single broker+controller; by default both versions are measured. Runnel is the release build (or
--runnel BIN). Each broker gets a fresh data directory on the same disk and runs alone; the
rounds alternate (Kafka 4.4.0, Kafka 4.1.1, Runnel, ...). The clients are the same for every
broker (Kafka 4.1.1's Java tools, librdkafka's rdkafka_performance, `runnel perf`). Figures are
medians over rounds:

- kafka-producer-perf-test (Java client), 100 B and 1 KiB records, acks=1 and acks=all, unthrottled;
- kafka-consumer-perf-test in a new consumer group reading back the acks=1 topics, with the page
  cache warm ("hot") and, when /proc/sys/vm/drop_caches is writable, dropped first ("cold"); the
  group join time is reported too;
- a latency run at a fixed rate (half of Kafka's measured 1 KiB acks=all throughput): p50/p99/p99.9;
- end-to-end latency (produce to consume, Kafka's EndToEndLatency tool, acks=all, 1 KiB):
  p50/p99/p99.9;
- durable writes: 1 KiB acks=all to a topic with flush.messages=1 (fsync before the answer), next
  to what `dd` writes on the same disk in 128 KiB blocks (the producer's batch.size) with
  oflag=dsync (a data sync after every block);
- librdkafka's rdkafka_performance (native client) producing and consuming (partition mode, no
  group), and producing the durable writes too: linked with the librdkafka 2.15.1 that
  scripts/peer/librdkafka.py builds; the npm package carrying that source has no examples/, so
  the program's source comes from the `rdkafka-sys` crate (librdkafka 2.12.1's examples/), which
  `cargo fetch` downloads into a throwaway manifest under target/tools;
- `runnel perf produce` / `runnel perf consume` (Runnel's own client);
- each broker's peak RSS and CPU seconds per GiB moved.

Usage: bench/side_by_side.py [--rounds N] [--seconds S] [--kafka 4.4.0,4.1.1] [--runnel BIN]
[--no-build] [--short]. Writes bench/results/<date>.md (--short: target/bench-short.md, one round
of 3 s runs, the form CI prints)."""

import argparse
import datetime
import json
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
sys.path.insert(0, str(ROOT / "tests"))
from helpers import KAFKA_NEWEST, KAFKA_VERSION, kafka_libs  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts" / "peer"))
from librdkafka import SRC as RDKAFKA_SRC  # noqa: E402

LIBS = ROOT / ".deps" / "kafka-libs"
RUNNEL = ROOT / "target" / "release" / "runnel"
RDPERF = ROOT / "target" / "tools" / "rdkafka_performance"
# The crate that carries librdkafka's examples/ (the npm package that carries 2.15.1 has none).
RDKAFKA_SYS = ("rdkafka-sys", "4.10.0+2.12.1")
# The clients (Java tools) of every run: Kafka 4.1.1's.
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
    # A file the broker's output is appended to (None: discarded).
    log = None

    def __init__(self, extra=None, binary=None):
        """`extra`: more broker properties (key -> value); `binary`: the runnel to run."""
        self.extra = extra or {}
        self.binary = Path(binary) if binary else RUNNEL

    def start(self, tmp):
        self.port = free_port()
        # The metrics endpoint is on, as in production, and tells where request time goes.
        self.metrics_port = free_port()
        extra = [a for k, v in self.extra.items() for a in ("--override", f"{k}={v}")]
        self.cmd = [str(self.binary), "serve", "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "--override", f"log.dirs={tmp}/data",
                    "--override", f"metrics.listeners=http://127.0.0.1:{self.metrics_port}",
                    # As the Kafka broker below (and Kafka's shipped server.properties).
                    "--override", "group.initial.rebalance.delay.ms=0", *extra]
        self.launch()
        wait_port(self.port, self.proc)

    def launch(self):
        """Starts the process of `start` (again: same port, same data) and returns at once."""
        self.proc = spawn(self.cmd, self.log)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


class Kafka:
    name = "Kafka"
    # A file the broker's output is appended to (None: discarded).
    log = None

    def __init__(self, extra=None, version=KAFKA_VERSION):
        """`extra`: more broker properties (key -> value); `version`: which Kafka (its jars)."""
        self.extra = extra or {}
        self.version = version
        self.name = f"Kafka {version}"
        self.cp = f"{kafka_libs(version)}/*"

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
        subprocess.run(["java", "-cp", self.cp, "kafka.tools.StorageTool", "format", "-t", "Mk3OEYBSD34fcwNTJENDM2",
                        "-c", str(conf), "--standalone"], check=True, capture_output=True)
        self.cmd = ["java", "-Xmx1G", "-Xms1G", "-cp", self.cp, "kafka.Kafka", str(conf)]
        self.launch()
        wait_port(self.port, self.proc)
        time.sleep(3)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def launch(self):
        """Starts the process of `start` (again: same ports, same data) and returns at once."""
        self.proc = spawn(self.cmd, self.log)


def spawn(cmd, log=None):
    """A broker process, its output appended to `log` (a path) or discarded."""
    if not log:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


def java_tool(cls, *args, timeout=600):
    p = subprocess.run(["java", "-cp", CP, cls, *args], capture_output=True, text=True, timeout=timeout)
    return p.stdout + p.stderr


def create_topic(bootstrap, topic, partitions=1, configs=None):
    extra = [a for k, v in (configs or {}).items() for a in ("--config", f"{k}={v}")]
    java_tool("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", bootstrap, "--create",
              "--topic", topic, "--partitions", str(partitions), "--replication-factor", "1", *extra)


def end_to_end_latency(bootstrap, topic, records, size):
    """Kafka's EndToEndLatency: one record at a time produced (acks=all) and consumed back;
    {p50, p99, p999} in ms."""
    out = java_tool("org.apache.kafka.tools.EndToEndLatency", bootstrap, topic, str(records), "all", str(size))
    m = re.search(r"Percentiles: 50th = ([\d.]+), 99th = ([\d.]+), 99.9th = ([\d.]+)", out)
    if not m:
        return None
    return {"p50": float(m.group(1)), "p99": float(m.group(2)), "p999": float(m.group(3))}


def runnel_perf(binary, bootstrap, *args):
    """`runnel perf ...` (JSON), or None."""
    p = subprocess.run([str(binary), "-b", bootstrap, "--format", "json", "perf", *args, "--quiet"],
                       capture_output=True, text=True, timeout=600)
    try:
        return json.loads(p.stdout) if p.returncode == 0 else None
    except json.JSONDecodeError:
        return None


def drop_caches():
    """Drops the page cache (root only); whether it could."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def dd_fdatasync_mbps(directory, mib=256, block_kib=128):
    """MB/s that dd writes in `directory` with a data sync after every block (oflag=dsync), the
    blocks as large as the producer's batch.size: the disk's speed for writes that must each be
    on disk before the next is acknowledged."""
    target = Path(directory) / "dd.bin"
    count = mib * 1024 // block_kib
    p = subprocess.run(["dd", "if=/dev/zero", f"of={target}", f"bs={block_kib}k", f"count={count}", "oflag=dsync"],
                       capture_output=True, text=True)
    target.unlink(missing_ok=True)
    m = re.search(r"copied, ([\d.]+) s", p.stderr)
    return (mib * 1048576 / 1e6) / float(m.group(1)) if m else None


def producer_perf(bootstrap, topic, records, size, acks, throughput=-1, props=(), timeout=600):
    """kafka-producer-perf-test; `props`: more producer properties ("key=value", these win)."""
    out = java_tool("org.apache.kafka.tools.ProducerPerformance", "--topic", topic, "--num-records", str(records),
                    "--record-size", str(size), "--throughput", str(throughput), "--producer-props",
                    f"bootstrap.servers={bootstrap}", f"acks={acks}", "linger.ms=5", "batch.size=131072", *props,
                    timeout=timeout)
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


def build_rdperf():
    """Builds `RDPERF` when missing and librdkafka's static library is built: the program's source
    from librdkafka's examples/ when the source tree has it, else from the `rdkafka-sys` crate
    (fetched by cargo into its registry cache and read from the .crate archive). Whether it exists."""
    if RDPERF.exists():
        return True
    lib = RDKAFKA_SRC / "src" / "librdkafka.a"
    if not lib.exists():
        return False
    source = RDKAFKA_SRC / "examples" / "rdkafka_performance.c"
    RDPERF.parent.mkdir(parents=True, exist_ok=True)
    if not source.exists():
        import tarfile
        name, version = RDKAFKA_SYS
        manifest = RDPERF.parent / "rdkafka-src"
        (manifest / "src").mkdir(parents=True, exist_ok=True)
        (manifest / "src" / "lib.rs").write_text("")
        (manifest / "Cargo.toml").write_text(
            '[package]\nname = "rdkafka-src"\nversion = "0.0.0"\nedition = "2021"\n\n[workspace]\n\n'
            f'[dependencies]\n{name} = {{ version = "={version}", default-features = false }}\n')
        subprocess.run(["cargo", "fetch", "--manifest-path", str(manifest / "Cargo.toml")], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
        crates = sorted(home.glob(f"registry/cache/*/{name}-{version}.crate"))
        if not crates:
            return False
        member = f"{name}-{version}/librdkafka/examples/rdkafka_performance.c"
        with tarfile.open(crates[0]) as t:
            source = manifest / "rdkafka_performance.c"
            source.write_bytes(t.extractfile(member).read())
    subprocess.run(["cc", "-O2", f"-I{RDKAFKA_SRC / 'src'}", "-o", str(RDPERF), str(source), str(lib),
                    "-lm", "-lssl", "-lcrypto", "-lz", "-ldl", "-lpthread", "-lrt"], check=True)
    return RDPERF.exists()


def rdkafka_perf(bootstrap, topic, records, size, mode, acks="1"):
    """rdkafka_performance producing (`acks`: 1, or all as -1) or consuming partition 0; MB/s."""
    if not RDPERF.exists():
        return None
    env = dict(os.environ)
    if mode == "produce":
        args = ["-P", "-t", topic, "-b", bootstrap, "-s", str(size), "-c", str(records),
                "-a", "-1" if acks == "all" else acks, "-X", "linger.ms=5", "-u"]
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


# The request stages Runnel times (its /metrics histograms), in order, with short names.
STAGES = [("read", "runnel_network_requestmetrics_requestreadtimems"),
          ("queue", "kafka_network_requestmetrics_requestqueuetimems"),
          ("local", "kafka_network_requestmetrics_localtimems"),
          ("remote", "kafka_network_requestmetrics_remotetimems"),
          ("response queue", "kafka_network_requestmetrics_responsequeuetimems"),
          ("send", "kafka_network_requestmetrics_responsesendtimems"),
          ("total", "kafka_network_requestmetrics_totaltimems")]


def stage_totals(broker, api="Produce"):
    """{stage: (sum ms, count)} of `api`'s requests so far, from a Runnel broker's /metrics (None
    for a broker without it)."""
    port = getattr(broker, "metrics_port", None)
    if not port:
        return None
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return None
    values, buckets = {}, {}
    total = dict(STAGES)["total"]
    for line in text.splitlines():
        if line.startswith("#") or f'request="{api}"' not in line:
            continue
        name, _, v = line.rpartition(" ")
        if name.startswith(f"{total}_bucket"):
            le = re.search(r'le="([^"]+)"', name).group(1)
            buckets[float("inf") if le == "+Inf" else float(le)] = float(v)
        values[name.split("{")[0]] = float(v)
    out = {short: (values.get(f"{m}_sum", 0.0), values.get(f"{m}_count", 0.0)) for short, m in STAGES}
    out["buckets"] = buckets
    return out


def bucket_quantile(before, after, q):
    """The upper bound (ms) of the histogram bucket holding quantile `q` of the requests between
    two cumulative bucket snapshots {le: count}."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    for b, c in zip(bounds, counts):
        if c >= q * counts[-1]:
            return b
    return bounds[-1]


def stage_means(before, after):
    """Mean ms per stage of the requests between two `stage_totals` snapshots."""
    if not before or not after:
        return None
    out = {}
    for short, _ in STAGES:
        (s0, c0), (s1, c1) = before[short], after[short]
        out[short] = (s1 - s0) / (c1 - c0) if c1 > c0 else None
    out["requests"] = after["total"][1] - before["total"][1]
    # The broker-side tail of the total time (network read done to response written).
    out["p99"] = bucket_quantile(before["buckets"], after["buckets"], 0.99)
    out["p999"] = bucket_quantile(before["buckets"], after["buckets"], 0.999)
    return out


def run_broker(broker, plan, seconds, client):
    """Every figure of one broker run; `client` is the runnel binary that `runnel perf` uses."""
    tmp = tempfile.mkdtemp(prefix=f"bench-{broker.name.replace(' ', '-')}-", dir=str(ROOT / "target"))
    figures = {}
    stamp = lambda: int(time.time() * 1000)
    try:
        broker.start(tmp)
        bootstrap = f"127.0.0.1:{broker.port}"
        _, cpu0 = proc_stats(broker.proc.pid)
        moved = 0
        produced = {}
        for key, size, acks in plan:
            records = max(10_000, int(seconds * (300_000 if size <= 100 else 100_000)))
            topic = f"perf-{size}-{acks.replace('-', 'm')}-{stamp()}"
            create_topic(bootstrap, topic)
            before = stage_totals(broker)
            r = producer_perf(bootstrap, topic, records, size, acks)
            figures[key] = r
            figures[f"stages_{key}"] = stage_means(before, stage_totals(broker))
            if r:
                moved += records * size
                produced[key] = (topic, records, size)
        for key in ("p100_acks1", "p1k_acks1"):
            if key in produced:
                topic, records, size = produced[key]
                figures[f"c{key[1:]}"] = consumer_perf(bootstrap, topic, records)
                moved += records * size
        if "p1k_acks1" in produced and drop_caches():
            topic, records, size = produced["p1k_acks1"]
            figures["c1k_cold"] = consumer_perf(bootstrap, topic, records)
            moved += records * size
        if broker.name.startswith("Kafka") and "rate" not in plan_latency_rate and figures.get("p1k_acksall"):
            plan_latency_rate["rate"] = figures["p1k_acksall"]["rps"] / 2
        lat_rate = plan_latency_rate.get("rate")
        if lat_rate:
            topic = f"lat-{stamp()}"
            create_topic(bootstrap, topic)
            before = stage_totals(broker)
            figures["latency"] = producer_perf(bootstrap, topic, int(lat_rate * seconds), 1024, "all", throughput=int(lat_rate))
            figures["stages_latency"] = stage_means(before, stage_totals(broker))
            moved += int(lat_rate * seconds) * 1024
        topic = f"e2e-{stamp()}"
        create_topic(bootstrap, topic)
        e2e_n = max(500, int(seconds * 100))
        figures["e2e"] = end_to_end_latency(bootstrap, topic, e2e_n, 1024)
        moved += 2 * e2e_n * 1024
        # Durable writes: fsync before the answer (flush.messages=1), several producers' batches
        # in flight (the Java producer's 5 per connection).
        topic = f"fsync-{stamp()}"
        create_topic(bootstrap, topic, configs={"flush.messages": "1"})
        n = max(5_000, int(seconds * 20_000))
        before = stage_totals(broker)
        figures["fsync"] = producer_perf(bootstrap, topic, n, 1024, "all")
        figures["stages_fsync"] = stage_means(before, stage_totals(broker))
        moved += n * 1024
        # The same with the native client (the Java producer on these 2 cores tops out near
        # 100 MB/s even without fsync) and with runnel perf, one partition each.
        topic = f"fsync-rd-{stamp()}"
        create_topic(bootstrap, topic, partitions=1, configs={"flush.messages": "1"})
        figures["fsync_rd"] = rdkafka_perf(bootstrap, topic, n, 1024, "produce", acks="all")
        moved += n * 1024
        topic = f"fsync-rp-{stamp()}"
        create_topic(bootstrap, topic, partitions=1, configs={"flush.messages": "1"})
        figures["fsync_rp"] = runnel_perf(client, bootstrap, "produce", topic, "-n", str(n), "-s", "1024",
                                          "--acks", "all", "--linger-ms", "5", "--batch-size", "131072")
        moved += n * 1024
        topic = f"rd-{stamp()}"
        create_topic(bootstrap, topic)
        n = max(10_000, int(seconds * 200_000))
        figures["rd_produce"] = rdkafka_perf(bootstrap, topic, n, 100, "produce")
        figures["rd_consume"] = rdkafka_perf(bootstrap, topic, n, 100, "consume")
        moved += 2 * n * 100
        topic = f"rp-{stamp()}"
        create_topic(bootstrap, topic)
        n = max(10_000, int(seconds * 200_000))
        figures["rp_produce"] = runnel_perf(client, bootstrap, "produce", topic, "-n", str(n), "-s", "100",
                                            "--acks", "1", "--linger-ms", "5", "--batch-size", "131072")
        figures["rp_consume"] = runnel_perf(client, bootstrap, "consume", topic, "-n", str(n))
        moved += 2 * n * 100
        rss, cpu1 = proc_stats(broker.proc.pid)
        figures["rss_mib"] = rss
        figures["cpu_s_per_gib"] = (cpu1 - cpu0) / max(moved / 2**30, 1e-9)
    finally:
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return figures


plan_latency_rate = {}

ROWS = [
    ("produce 100 B acks=1 (MB/s)", "p100_acks1", "mbps"), ("produce 100 B acks=all (MB/s)", "p100_acksall", "mbps"),
    ("produce 1 KiB acks=1 (MB/s)", "p1k_acks1", "mbps"), ("produce 1 KiB acks=all (MB/s)", "p1k_acksall", "mbps"),
    ("consume 100 B, consumer group, hot (MB/s)", "c100_acks1", "fetch_mbps"),
    ("consume 1 KiB, consumer group, hot (MB/s)", "c1k_acks1", "fetch_mbps"),
    ("consume 1 KiB, consumer group, cold cache (MB/s)", "c1k_cold", "fetch_mbps"),
    ("consumer group join (ms)", "c1k_acks1", "rebalance_ms"),
    ("produce latency p50 at fixed rate (ms)", "latency", "p50"), ("produce latency p99 (ms)", "latency", "p99"),
    ("produce latency p99.9 (ms)", "latency", "p999"),
    ("end-to-end latency p50 (ms)", "e2e", "p50"), ("end-to-end latency p99 (ms)", "e2e", "p99"),
    ("end-to-end latency p99.9 (ms)", "e2e", "p999"),
    ("durable produce 1 KiB acks=all, flush.messages=1 (MB/s)", "fsync", "mbps"),
    ("durable produce, rdkafka_performance, 1 partition (MB/s)", "fsync_rd", "mbps"),
    ("durable produce, runnel perf, 1 partition (MB/s)", "fsync_rp", "mb_per_sec"),
    ("rdkafka_performance produce 100 B (MB/s)", "rd_produce", "mbps"),
    ("rdkafka_performance consume 100 B (MB/s)", "rd_consume", "mbps"),
    ("runnel perf produce 100 B (MB/s)", "rp_produce", "mb_per_sec"),
    ("runnel perf consume 100 B (MB/s)", "rp_consume", "mb_per_sec"),
    ("peak RSS (MiB)", "rss_mib", None), ("CPU s per GiB moved", "cpu_s_per_gib", None),
]


def median_of(runs, name, key, field):
    """The median over `name`'s runs of figure `key` (its `field` when the figure is a dict)."""
    vals = [r[key][field] if isinstance(r.get(key), dict) else r.get(key) for r in runs.get(name, [])]
    vals = [v for v in vals if isinstance(v, (int, float))]
    return statistics.median(vals) if vals else None


def fmt(v):
    """A figure for the table (n/a when missing)."""
    return f"{v:.1f}" if v is not None else "n/a"


def ratio_table(runs, kafkas, rows):
    """The markdown table: per (label, key, field) of `rows`, Runnel's median, then each Kafka's
    (names in `kafkas`) with the ratio Runnel / Kafka."""
    out = ["| " + " | ".join(["figure", "Runnel"] + [c for k in kafkas for c in (k, "ratio")]) + " |",
           "|" + "---|" * (2 + 2 * len(kafkas))]
    for label, key, field in rows:
        r = median_of(runs, "Runnel", key, field)
        cells = []
        for k in kafkas:
            kv = median_of(runs, k, key, field)
            cells += [fmt(kv), f"{r / kv:.2f}" if kv and r else "n/a"]
        out.append("| " + " | ".join([label, fmt(r)] + cells) + " |")
    return out


STAGE_ROWS = [("produce 100 B acks=1", "p100_acks1"), ("produce 100 B acks=all", "p100_acksall"),
              ("produce 1 KiB acks=1", "p1k_acks1"), ("produce 1 KiB acks=all", "p1k_acksall"),
              ("fixed-rate latency run", "latency"), ("durable produce (flush.messages=1)", "fsync")]


def stage_table(runs):
    """Where Runnel's Produce time went (its /metrics stage histograms): mean ms per stage per
    run, medians over rounds; empty when no run has them."""
    lines = []
    for label, key in STAGE_ROWS:
        cells = []
        for short in [s for s, _ in STAGES] + ["p99", "p999"]:
            vals = [r[f"stages_{key}"][short] for r in runs.get("Runnel", [])
                    if r.get(f"stages_{key}") and r[f"stages_{key}"].get(short) is not None]
            if short in ("p99", "p999"):
                cells.append(f"≤ {max(vals):g}" if vals else "n/a")
            else:
                cells.append(f"{statistics.median(vals):.3f}" if vals else "n/a")
        counts = [r[f"stages_{key}"]["requests"] for r in runs.get("Runnel", []) if r.get(f"stages_{key}")]
        if counts:
            lines.append(f"| {label} | {statistics.median(counts):.0f} | " + " | ".join(cells) + " |")
    if not lines:
        return []
    return ["Where a Produce request's time goes inside Runnel (its /metrics stage histograms): mean ms",
            "per stage over each run's requests, medians over rounds. Read: first byte to last; queue:",
            "read to handling; local: decode, append, encode; remote: waiting for fsyncs or followers;",
            "response queue: behind earlier answers of the connection; send: writing the answer.",
            "total p99 / p99.9: the histogram bucket bound (ms) under which 99 % / 99.9 % of the run's",
            "requests took their total time inside the broker (the largest over rounds).", "",
            "| run | requests | " + " | ".join(s for s, _ in STAGES) + " | total p99 | total p99.9 |",
            "|" + "---|" * (4 + len(STAGES)), *lines, ""]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--kafka", default=f"{KAFKA_NEWEST},{KAFKA_VERSION}",
                    help="the Kafka versions to measure, comma-separated")
    ap.add_argument("--runnel", help="the runnel binary (default: the release build)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--short", action="store_true", help="one round of 3 s runs (CI's form)")
    args = ap.parse_args()
    if args.short:
        args.rounds, args.seconds = 1, 3
    binary = Path(args.runnel) if args.runnel else RUNNEL
    if not args.runnel and not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--bins"], check=True, cwd=ROOT)
    if not build_rdperf():
        print("rdkafka_performance unavailable (librdkafka not built): its rows are n/a", flush=True)
    versions = [v for v in args.kafka.split(",") if v]
    plan = [("p100_acks1", 100, "1"), ("p100_acksall", 100, "all"), ("p1k_acks1", 1024, "1"), ("p1k_acksall", 1024, "all")]
    brokers = [lambda v=v: Kafka(version=v) for v in versions] + [lambda: Runnel(binary=binary)]
    runs = {}
    for rnd in range(args.rounds):
        for make in brokers:
            broker = make()
            print(f"round {rnd + 1}: {broker.name}", flush=True)
            runs.setdefault(broker.name, []).append(run_broker(broker, plan, args.seconds, binary))
    disk = dd_fdatasync_mbps(ROOT / "target")
    # librdkafka's producer sends batches up to 1 MB (its batch.size): dd with blocks that large too.
    disk_1m = dd_fdatasync_mbps(ROOT / "target", mib=512, block_kib=1024)

    kafkas = [f"Kafka {v}" for v in versions]
    rows = ratio_table(runs, kafkas, ROWS)
    stages = stage_table(runs)
    durable = max((v for v in (median_of(runs, "Runnel", "fsync", "mbps"),
                                median_of(runs, "Runnel", "fsync_rd", "mbps"),
                                median_of(runs, "Runnel", "fsync_rp", "mb_per_sec")) if v), default=None)
    rows.append(f"| dd oflag=dsync, 128 KiB blocks, same disk (MB/s) | {fmt(disk)} | "
                + " | ".join(["", ""] * len(kafkas)) + " |")
    rows.append(f"| dd oflag=dsync, 1 MiB blocks, same disk (MB/s) | {fmt(disk_1m)} | "
                + " | ".join(["", ""] * len(kafkas)) + " |")
    date = datetime.date.today().isoformat()
    text = "\n".join([
        f"# Runnel vs Apache Kafka {', '.join(versions)}: one node, {date}", "",
        f"Same machine ({os.cpu_count()} cores), one broker at a time, {args.rounds} round(s) alternating",
        f"{' / '.join(kafkas + ['Runnel'])}, about {args.seconds:.0f} s of records per run; medians.",
        "Ratio = Runnel / Kafka. Clients: Kafka 4.1.1's Java perf tools, rdkafka_performance, runnel perf.",
        f"Latency run at {plan_latency_rate.get('rate', 0):.0f} records/s of 1 KiB (half the first Kafka's acks=all throughput).",
        "Consume: kafka-consumer-perf-test in a new consumer group reading what the acks=1 run wrote",
        "(fetch MB/s, the group join excluded; the join time is its own row); cold = page cache dropped first.",
        "Durable produce: a topic with flush.messages=1 (each write fsynced before its answer), against dd",
        "writing 128 KiB blocks (the producer's batch.size) with a data sync after each"
        + (f": Runnel's best durable row reaches {100 * durable / disk:.0f} % of dd's figure"
           + (f" ({100 * durable / disk_1m:.0f} % of dd's with 1 MiB blocks, librdkafka's batch size)." if disk_1m else ".")
           if durable and disk else "."),
        "Both brokers run with group.initial.rebalance.delay.ms=0, as Kafka's shipped server.properties has it.", "",
        *rows, "", *stages])
    print(text)
    out = ROOT / "target" / "bench-short.md" if args.short else ROOT / "bench" / "results" / f"{date}.md"
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
