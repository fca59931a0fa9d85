#!/usr/bin/env python3
"""Costs that stay flat as the work grows: Runnel and Apache Kafka on one node, side by side (not a
test; prints figures).

Each row below runs once per broker, the brokers one after the other (Kafka, then Runnel), each
alone on a fresh data directory in target/ that is deleted afterwards. Apache Kafka (KRaft,
broker+controller, -Xmx1G, from the Maven jars; the newest version by default) and Runnel are
started by bench/side_by_side.py's classes; the clients are Kafka 4.1.1's Java perf tools, and the
admin requests, readiness checks and idle connections a small raw-protocol client here (requests
both brokers serve: ApiVersions v0, Metadata v4, CreateTopics v2, CreatePartitions v1,
ListOffsets v1, Fetch v4). Before anything runs, the open-file soft limit is raised to the hard
limit (the brokers are children and inherit it). RSS is the broker's resident set (VmRSS) at that
moment, not its peak. Figures, with the default sizes (--short in brackets):

1. N = 10,000 partitions on one broker (--partitions; [1,000]):
   - time to create: a topic of 1,000 partitions (CreateTopics), then CreatePartitions raising it
     by 1,000 a request (--batch; Kafka's controller refuses more than 10,000 records in one
     operation) until N, each request answered before the next, until a Metadata request lists
     all N partitions with a leader and a ListOffsets request answers for every one of them
     without an error (Kafka lists a new partition's leader before it has created its log);
   - RSS, open file descriptors and threads right after that, and the broker's CPU use while
     idle with them (CPU seconds from /proc over min(10 s, --seconds) from 5 s after, in % of
     one core);
   - clean stop (SIGTERM to exit) and start-up: from the process's start to the port accepting
     a connection, to a Metadata request listing all N partitions with a leader, and to
     ListOffsets answering for all of them (polled every 0.1 s); RSS then;
   - produce throughput spread over all of them: kafka-producer-perf-test, 1 KiB records,
     acks=1, RoundRobinPartitioner (every record to the next partition), batch.size=16384,
     linger.ms=5, buffer.memory=256 MiB (so that a batch for every partition fits), sized to
     last about --seconds (15 s [5 s]): a warm-up run of 20,000 records (not reported), then
     runs sized by the previous one's rate until one lasts 60 % of that; its MB/s and p99.
2. C = 5,000 idle client connections (--connections; [500]) plus load, on a topic of one
   partition: produce 1 KiB acks=1 (sized as above) with no other connection; then C
   connections are opened (in groups of 32, each sending one ApiVersions v0 request and reading
   the answer) and left idle; RSS with them open and per connection (the growth over the RSS
   just before opening them; Kafka's heap is resident from the start, -Xms1G, so its figure
   shows little of what a connection costs it); the same producer run (same record count) with
   them open; how many the broker still held open after it; once they are closed, the same run
   again: "without" is the mean of the runs before and after (neither side gets only the warmer
   run). MB/s and p99 with and without, and with/without in % per broker.
3. Restart with D = 50 GiB of data (--data-gib; [2]): a topic of 6 partitions filled with 1 KiB
   records at acks=1, in runs of at most 1 GiB, by rdkafka_performance when it is built
   (side_by_side.RDPERF) or else kafka-producer-perf-test with 1 MiB batches and linger.ms=20;
   the fill's MB/s (ListOffsets must then count every record) and the data directory's size.
   Then (b) kill -9 straight after the writes and a restart, and (a) a clean stop (SIGTERM) and
   a restart; for each, from the process's start to the port accepting a connection, and to
   serving: a Metadata request shows a leader for all 6 partitions, ListOffsets gives their
   end offsets and one Fetch returns, for every partition, the batch holding its last record
   (polled every 0.1 s); RSS once serving. The script refuses to start without 2 x D + 5 GiB
   free on the disk of target/ (only one broker's data exists at a time).
4. A consumer R = 100,000,000 records behind (--records; [2,000,000]): R records of 100 B into
   a topic of one partition (as in 3); then a producer at a fixed rate, 5,000 records/s of
   1 KiB, acks=1 (--rate; kafka-producer-perf-test --throughput) for --seconds, first alone,
   then again while kafka-consumer-perf-test (a new group each time) reads R records from the
   start of the same partition, passes repeated until the producer is done; the page cache is
   dropped before the first pass when /proc/sys/vm/drop_caches is writable (root). Producer
   p50/p99/p99.9 both times; the consumer's MB/s (fetch MB/s of the first pass, the group join
   excluded).

Each row's figures come from one run per broker (--rounds N repeats everything and takes
medians). A step that fails ends that broker's row; the table shows n/a and the failure is listed
under it.

Usage: bench/scale.py [--short] [--rows 1,2,3,4] [--seconds S] [--kafka 4.4.0[,4.1.1] | ""]
[--runnel BIN] [--no-build] [--partitions N] [--batch B] [--connections C] [--data-gib D]
[--records R] [--rate RPS] [--rounds N]. Writes bench/results/<date>-scale.md (--short:
target/bench-scale-short.md)."""

import argparse
import datetime
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import side_by_side  # noqa: E402
from side_by_side import (KAFKA_NEWEST, ROOT, Kafka, Runnel, consumer_perf, drop_caches, proc_stats,  # noqa: E402
                          producer_perf, ratio_table, rdkafka_perf)

GIB = 1 << 30
# Producer settings of row 1: every record to the next partition, and room for a batch per partition.
SPREAD = ("partitioner.class=org.apache.kafka.clients.producer.RoundRobinPartitioner", "batch.size=16384",
          "buffer.memory=268435456")
# Producer settings of the fills with the Java client.
BIG_BATCHES = ("batch.size=1048576", "linger.ms=20")


class Failed(Exception):
    """A step of a row that did not work (the row ends there for that broker)."""


# ---------------------------------------------------------------------------------------------
# A raw Kafka protocol client: just the non-flexible request versions this script needs.

def string(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def array(items):
    return struct.pack(">i", len(items)) + b"".join(items)


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        buf += chunk
    return bytes(buf)


class Reader:
    """Reads a response body."""

    def __init__(self, data, pos=0):
        self.data, self.pos = data, pos

    def take(self, fmt):
        (v,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def i8(self):
        return self.take(">b")

    def i16(self):
        return self.take(">h")

    def i32(self):
        return self.take(">i")

    def i64(self):
        return self.take(">q")

    def text(self):
        n = self.i16()
        if n < 0:
            return None
        self.pos += n
        return self.data[self.pos - n:self.pos].decode()

    def blob(self):
        n = self.i32()
        if n < 0:
            return None
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def array(self, item):
        n = self.i32()
        return [item(self) for _ in range(max(n, 0))]


class Wire:
    """One blocking connection to a broker."""

    def __init__(self, port, timeout=60):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.corr = 0

    def close(self):
        self.sock.close()

    def send(self, api_key, version, body=b""):
        self.corr += 1
        msg = struct.pack(">hhi", api_key, version, self.corr) + string("runnel-scale-bench") + body
        self.sock.sendall(struct.pack(">i", len(msg)) + msg)

    def receive(self):
        (size,) = struct.unpack(">i", recv_exact(self.sock, 4))
        data = recv_exact(self.sock, size)
        if struct.unpack_from(">i", data)[0] != self.corr:
            raise Failed("response out of order")
        return Reader(data, 4)

    def call(self, api_key, version, body=b""):
        self.send(api_key, version, body)
        return self.receive()


def api_versions(w):
    """ApiVersions v0: its error code."""
    return w.call(18, 0).i16()


def metadata(w, topic):
    """Metadata v4 of one topic: (topic error, [(partition error, partition, leader)])."""
    r = w.call(3, 4, array([string(topic)]) + b"\0")
    r.i32()
    r.array(lambda r: (r.i32(), r.text(), r.i32(), r.text()))
    r.text()
    r.i32()
    topics = r.array(lambda r: (r.i16(), r.text(), r.i8(), r.array(
        lambda r: (r.i16(), r.i32(), r.i32(), r.array(Reader.i32), r.array(Reader.i32)))))
    for err, name, _, parts in topics:
        if name == topic:
            return err, [(p[0], p[1], p[2]) for p in parts]
    return -1, []


def led(w, topic, partitions):
    """Whether Metadata lists `partitions` partitions of `topic`, each with a leader."""
    err, parts = metadata(w, topic)
    return err == 0 and len(parts) == partitions and all(e == 0 and leader >= 0 for e, _, leader in parts)


def check_results(results, what):
    for name, err, message in results:
        if err:
            raise Failed(f"{what} {name}: error {err} {message or ''}".strip())


def create_topic(w, topic, partitions, timeout_ms=120_000):
    """CreateTopics v2, replication factor 1."""
    body = array([string(topic) + struct.pack(">ih", partitions, 1) + array([]) + array([])])
    r = w.call(19, 2, body + struct.pack(">ib", timeout_ms, 0))
    r.i32()
    check_results(r.array(lambda r: (r.text(), r.i16(), r.text())), "CreateTopics")


def create_partitions(w, topic, count, timeout_ms=120_000):
    """CreatePartitions v1: `topic` grows to `count` partitions."""
    body = array([string(topic) + struct.pack(">ii", count, -1)])
    r = w.call(37, 1, body + struct.pack(">ib", timeout_ms, 0))
    r.i32()
    check_results(r.array(lambda r: (r.text(), r.i16(), r.text())), "CreatePartitions")


def end_offsets(w, topic, partitions):
    """ListOffsets v1 (latest): {partition: (error, offset)}."""
    body = struct.pack(">i", -1) + array([string(topic) + array([struct.pack(">iq", p, -1) for p in partitions])])
    r = w.call(2, 1, body)
    out = {}
    for _, parts in r.array(lambda r: (r.text(), r.array(lambda r: (r.i32(), r.i16(), r.i64(), r.i64())))):
        for p, err, _, offset in parts:
            out[p] = (err, offset)
    return out


def fetch(w, topic, offsets):
    """Fetch v4, no waiting, up to 4 MiB a partition: {partition: (error, record bytes)}."""
    body = struct.pack(">iiiib", -1, 0, 0, 64 << 20, 0) + array(
        [string(topic) + array([struct.pack(">iqi", p, o, 4 << 20) for p, o in offsets.items()])])
    r = w.call(1, 4, body)
    r.i32()
    out = {}
    for _, parts in r.array(lambda r: (r.text(), r.array(lambda r: (
            r.i32(), r.i16(), r.i64(), r.i64(), r.array(lambda r: (r.i64(), r.i64())), r.blob())))):
        for p, err, _, _, _, records in parts:
            out[p] = (err, records or b"")
    return out


def holds(records, offset):
    """Whether the record batches in `records` hold a whole batch containing `offset`."""
    pos = 0
    while pos + 27 <= len(records):
        base, length = struct.unpack_from(">qi", records, pos)
        (last_delta,) = struct.unpack_from(">i", records, pos + 23)
        if pos + 12 + length > len(records):
            return False
        if base <= offset <= base + last_delta:
            return True
        pos += 12 + length
    return False


def answer_list_offsets(w, topic, partitions):
    """Whether ListOffsets answers for every partition without an error (Kafka lists a new
    partition's leader in Metadata before its log exists; ListOffsets needs the log)."""
    ends = end_offsets(w, topic, range(partitions))
    return len(ends) == partitions and not any(err for err, _ in ends.values())


def serves_last_records(w, topic, partitions):
    """Whether ListOffsets and a Fetch give the last record of every (non-empty) partition."""
    ends = end_offsets(w, topic, range(partitions))
    if len(ends) != partitions or any(err for err, _ in ends.values()):
        return False
    wanted = {p: end - 1 for p, (_, end) in ends.items() if end > 0}
    got = fetch(w, topic, wanted) if wanted else {}
    return all(p in got and got[p][0] == 0 and holds(got[p][1], o) for p, o in wanted.items())


def wait_ready(w, topic, partitions, limit=600):
    """Polls until Metadata lists every partition with a leader and ListOffsets answers for
    every one; {"led": s, "ready": s} from now."""
    t0, times = time.time(), {}
    while True:
        if "led" not in times and led(w, topic, partitions):
            times["led"] = time.time() - t0
        if "led" in times and answer_list_offsets(w, topic, partitions):
            times["ready"] = time.time() - t0
            return times
        if time.time() - t0 > limit:
            raise Failed(f"{topic}: not all {partitions} partitions ready after {limit} s")
        time.sleep(0.1)


def start_up(broker, topic, partitions, last_records=False, limit=1800):
    """Starts the broker's process again (same port, same data) and polls it: {"port": s,
    "led": s, "ready": s} from the process's start to a connection accepted, to Metadata listing
    every partition with a leader, and to ListOffsets answering for all of them (with
    `last_records`: and a Fetch returning the last record of each)."""
    t0 = time.time()
    broker.launch()
    times, w = {}, None
    while True:
        if time.time() - t0 > limit:
            raise Failed(f"not serving {limit} s after a restart")
        if broker.proc.poll() is not None:
            raise Failed(f"exited with {broker.proc.returncode} while starting up")
        try:
            if w is None:
                w = Wire(broker.port, timeout=10)
                times.setdefault("port", time.time() - t0)
            if "led" not in times and led(w, topic, partitions):
                times["led"] = time.time() - t0
            if "led" in times and (serves_last_records if last_records else answer_list_offsets)(
                    w, topic, partitions):
                times["ready"] = time.time() - t0
                w.close()
                return times
        except (OSError, struct.error, Failed):
            if w is not None:
                w.close()
            w = None
        time.sleep(0.1)


def open_idle(port, count, group=32):
    """`count` connections, each having sent ApiVersions v0 and read its answer."""
    conns = []
    try:
        while len(conns) < count:
            batch = [Wire(port, timeout=60) for _ in range(min(group, count - len(conns)))]
            conns += batch
            for w in batch:
                w.send(18, 0)
            for w in batch:
                if w.receive().i16():
                    raise Failed("ApiVersions refused")
    except (OSError, Failed) as e:
        for w in conns:
            w.close()
        raise Failed(f"opening idle connections: {len(conns)} open when it failed: {e}")
    return conns


def still_open(conns):
    """How many of `conns` the broker has not closed."""
    n = 0
    for w in conns:
        w.sock.setblocking(False)
        try:
            if w.sock.recv(1, socket.MSG_PEEK):
                n += 1
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n


# ---------------------------------------------------------------------------------------------
# The broker process.

def status(pid, key):
    """A field of /proc/PID/status (the number; kB for memory)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def rss_mib(broker):
    return status(broker.proc.pid, "VmRSS") / 1024


def stop(broker, limit=300):
    """SIGTERM and the time to exit (killed after `limit` s: Failed)."""
    t0 = time.time()
    broker.proc.send_signal(signal.SIGTERM)
    try:
        broker.proc.wait(limit)
    except subprocess.TimeoutExpired:
        broker.proc.kill()
        broker.proc.wait()
        raise Failed(f"still running {limit} s after SIGTERM (killed)")
    return time.time() - t0


def crash(broker):
    broker.proc.kill()
    broker.proc.wait()


# ---------------------------------------------------------------------------------------------
# Producers.

def produce_for(bootstrap, topic, size, seconds, props=()):
    """kafka-producer-perf-test, acks=1, unthrottled, sized to last about `seconds`: a warm-up
    run of 20,000 records (not reported), then runs sized by the last one's rate until one lasts
    at least 60 % of `seconds`; (records, figures of that run)."""
    n, warm = 20_000, True
    while True:
        r = producer_perf(bootstrap, topic, n, size, "1", props=props)
        if not r:
            raise Failed("kafka-producer-perf-test failed")
        if not warm and (n / max(r["rps"], 1) >= 0.6 * seconds or n >= 50_000_000):
            return n, r
        n, warm = max(1000, min(int(r["rps"] * seconds), 50_000_000)), False


def fill(broker, topic, partitions, total, size):
    """Writes `total` bytes of `size`-byte records, acks=1, in runs of at most 1 GiB, and checks
    with ListOffsets that they all landed; MB/s."""
    bootstrap, label = f"127.0.0.1:{broker.port}", broker.name
    written, records, t0 = 0, 0, time.time()
    while written < total:
        n = max(1, min(total - written, GIB) // size)
        if side_by_side.RDPERF.exists():
            r = rdkafka_perf(bootstrap, topic, n, size, "produce")
        else:
            r = producer_perf(bootstrap, topic, n, size, "1", props=BIG_BATCHES, timeout=1800)
        if not r:
            raise Failed(f"filling {topic}: the producer failed after {written / GIB:.1f} GiB")
        written, records = written + n * size, records + n
        print(f"    {label}: {written / 1e6:,.0f} of {total / 1e6:,.0f} MB written", flush=True)
    mbps = written / 1e6 / (time.time() - t0)
    w = Wire(broker.port)
    landed = sum(offset for _, offset in end_offsets(w, topic, range(partitions)).values())
    w.close()
    if landed < records:
        raise Failed(f"filling {topic}: {landed:,} of {records:,} records landed")
    return mbps


def du_gib(path):
    p = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True)
    return int(p.stdout.split()[0]) / GIB if p.returncode == 0 else None


# ---------------------------------------------------------------------------------------------
# The rows: each fills `fig` as it goes (what it got before a failure stays).

def row_partitions(broker, tmp, args, fig):
    n, topic = args.partitions, "wide"
    w = Wire(broker.port, timeout=300)
    t0 = time.time()
    count = min(n, args.batch)
    create_topic(w, topic, count)
    while count < n:
        count = min(n, count + args.batch)
        create_partitions(w, topic, count)
    wait_ready(w, topic, n)
    fig["create_s"] = time.time() - t0
    w.close()
    pid = broker.proc.pid
    fig["create_rss"] = rss_mib(broker)
    fig["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    fig["threads"] = status(pid, "Threads")
    idle = min(10, args.seconds)
    time.sleep(5)
    cpu0 = proc_stats(pid)[1]
    time.sleep(idle)
    fig["idle_cpu"] = 100 * (proc_stats(pid)[1] - cpu0) / idle
    fig["stop_s"] = stop(broker)
    times = start_up(broker, topic, n)
    fig["start_port_s"], fig["start_led_s"], fig["start_s"] = times["port"], times["led"], times["ready"]
    fig["restart_rss"] = rss_mib(broker)
    _, r = produce_for(f"127.0.0.1:{broker.port}", topic, 1024, args.seconds, props=SPREAD)
    fig["spread_mbps"], fig["spread_p99"] = r["mbps"], r["p99"]


def row_connections(broker, tmp, args, fig):
    topic, bootstrap = "load", f"127.0.0.1:{broker.port}"
    w = Wire(broker.port)
    create_topic(w, topic, 1)
    wait_ready(w, topic, 1)
    w.close()
    records, alone = produce_for(bootstrap, topic, 1024, args.seconds)
    before = rss_mib(broker)
    t0 = time.time()
    conns = open_idle(broker.port, args.connections)
    try:
        fig["open_s"] = time.time() - t0
        time.sleep(1)
        fig["conn_rss"] = rss_mib(broker)
        fig["per_conn_kib"] = (fig["conn_rss"] - before) * 1024 / args.connections
        r = producer_perf(bootstrap, topic, records, 1024, "1")
        if not r:
            raise Failed("kafka-producer-perf-test failed with the idle connections open")
        fig["idle_mbps"], fig["idle_p99"] = r["mbps"], r["p99"]
        fig["still_open"] = still_open(conns)
    finally:
        for c in conns:
            c.close()
    # Without them again, so that neither side has the later (warmer) run alone.
    time.sleep(1)
    after = producer_perf(bootstrap, topic, records, 1024, "1")
    if not after:
        raise Failed("kafka-producer-perf-test failed after the idle connections closed")
    fig["alone_mbps"] = (alone["mbps"] + after["mbps"]) / 2
    fig["alone_p99"] = (alone["p99"] + after["p99"]) / 2
    fig["mbps_pct"] = 100 * fig["idle_mbps"] / fig["alone_mbps"]
    if fig["alone_p99"] > 0:
        fig["p99_pct"] = 100 * fig["idle_p99"] / fig["alone_p99"]


def row_data(broker, tmp, args, fig):
    topic, parts = "big", 6
    w = Wire(broker.port)
    create_topic(w, topic, parts)
    wait_ready(w, topic, parts)
    w.close()
    fig["fill_mbps"] = fill(broker, topic, parts, int(args.data_gib * GIB), 1024)
    fig["data_gib"] = du_gib(Path(tmp) / "data")
    crash(broker)
    times = start_up(broker, topic, parts, last_records=True)
    fig["kill_port_s"], fig["kill_s"] = times["port"], times["ready"]
    fig["kill_rss"] = rss_mib(broker)
    fig["data_stop_s"] = stop(broker)
    times = start_up(broker, topic, parts, last_records=True)
    fig["clean_port_s"], fig["clean_s"] = times["port"], times["ready"]
    fig["clean_rss"] = rss_mib(broker)


def row_backlog(broker, tmp, args, fig):
    topic, bootstrap = "backlog", f"127.0.0.1:{broker.port}"
    w = Wire(broker.port)
    create_topic(w, topic, 1)
    wait_ready(w, topic, 1)
    w.close()
    fig["backlog_fill_mbps"] = fill(broker, topic, 1, args.records * 100, 100)
    n = int(args.rate * args.seconds)
    r = producer_perf(bootstrap, topic, n, 1024, "1", throughput=args.rate)
    if not r:
        raise Failed("the fixed-rate producer failed")
    for k in ("p50", "p99", "p999"):
        fig[f"alone_{k}"] = r[k]
    fig["cold"] = drop_caches()
    done, passes = threading.Event(), []

    def consume():
        while not done.is_set():
            c = consumer_perf(bootstrap, topic, args.records)
            passes.append(c)
            if not c:
                return

    reader = threading.Thread(target=consume)
    reader.start()
    try:
        r = producer_perf(bootstrap, topic, n, 1024, "1", throughput=args.rate)
    finally:
        done.set()
        reader.join()
    if not r:
        raise Failed("the fixed-rate producer failed beside the consumer")
    for k in ("p50", "p99", "p999"):
        fig[f"lag_{k}"] = r[k]
    fig["passes"] = len(passes)
    if not passes or not passes[0]:
        raise Failed("kafka-consumer-perf-test failed")
    fig["consumer_mbps"] = passes[0]["fetch_mbps"]


ROWS = {1: row_partitions, 2: row_connections, 3: row_data, 4: row_backlog}


def table_rows(args):
    n, c, d, r = args.partitions, args.connections, args.data_gib, args.records
    rows = {
        1: [(f"{n:,} partitions: time to create, {args.batch:,} a request (s)", "create_s", None),
            ("RSS after creating them (MiB)", "create_rss", None),
            ("open file descriptors then", "fds", None),
            ("threads then", "threads", None),
            ("CPU while idle with them (% of a core)", "idle_cpu", None),
            ("clean stop (s)", "stop_s", None),
            ("start-up: port open (s)", "start_port_s", None),
            (f"start-up: Metadata lists all {n:,} with leaders (s)", "start_led_s", None),
            ("start-up: ListOffsets answers for all of them (s)", "start_s", None),
            ("RSS after the restart (MiB)", "restart_rss", None),
            (f"produce 1 KiB acks=1 round-robin over all {n:,} (MB/s)", "spread_mbps", None),
            ("its p99 latency (ms)", "spread_p99", None)],
        2: [("produce 1 KiB acks=1, 1 partition, no idle connections (MB/s)", "alone_mbps", None),
            ("its p99 latency (ms)", "alone_p99", None),
            (f"opening {c:,} connections, one ApiVersions each (s)", "open_s", None),
            (f"RSS with {c:,} idle connections (MiB)", "conn_rss", None),
            ("RSS per idle connection (KiB)", "per_conn_kib", None),
            (f"produce with {c:,} idle connections open (MB/s)", "idle_mbps", None),
            ("its p99 latency (ms)", "idle_p99", None),
            ("throughput with / without them (%)", "mbps_pct", None),
            ("p99 with / without them (%)", "p99_pct", None),
            ("idle connections still open at the end", "still_open", None)],
        3: [(f"{d:g} GiB of 1 KiB records into 6 partitions (MB/s)", "fill_mbps", None),
            ("data directory (GiB)", "data_gib", None),
            ("clean stop, SIGTERM (s)", "data_stop_s", None),
            ("clean restart: port open (s)", "clean_port_s", None),
            ("clean restart: serving, leaders and every last record (s)", "clean_s", None),
            ("RSS after the clean restart (MiB)", "clean_rss", None),
            ("kill -9 after the writes, restart: port open (s)", "kill_port_s", None),
            ("kill -9 restart: serving, leaders and every last record (s)", "kill_s", None),
            ("RSS after the kill -9 restart (MiB)", "kill_rss", None)],
        4: [(f"{r:,} records of 100 B into 1 partition (MB/s)", "backlog_fill_mbps", None),
            (f"producer at {args.rate:,}/s of 1 KiB, alone: p50 (ms)", "alone_p50", None),
            ("alone: p99 (ms)", "alone_p99", None),
            ("alone: p99.9 (ms)", "alone_p999", None),
            (f"beside a consumer {r:,} records behind: p50 (ms)", "lag_p50", None),
            ("beside it: p99 (ms)", "lag_p99", None),
            ("beside it: p99.9 (ms)", "lag_p999", None),
            ("that consumer, reading from the start (MB/s)", "consumer_mbps", None),
            ("its passes over the backlog during the producer's run", "passes", None)],
    }
    return [row for i in args.rows for row in rows[i]]


def run_row(make, number, args):
    """Row `number` on a fresh broker: (broker name, figures, failure or None)."""
    broker = make()
    tmp = tempfile.mkdtemp(prefix=f"scale-{number}-{broker.name.replace(' ', '-')}-", dir=str(ROOT / "target"))
    broker.log = Path(tmp) / "broker.log"
    fig, failure = {}, None
    print(f"row {number}: {broker.name}", flush=True)
    try:
        broker.start(tmp)
        ROWS[number](broker, tmp, args, fig)
    except (Exception, SystemExit) as e:
        failure = f"row {number}, {broker.name}: {type(e).__name__}: {e}"
        print(f"  FAILED: {failure}", flush=True)
        try:
            tail = broker.log.read_text(errors="replace").splitlines()[-15:]
            print("  " + "\n  ".join(tail), flush=True)
        except OSError:
            pass
    finally:
        proc = getattr(broker, "proc", None)
        if proc is not None and proc.poll() is None:
            try:
                stop(broker, limit=120)
            except Failed:
                pass
        shutil.rmtree(tmp, ignore_errors=True)
    print("  " + ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in fig.items()),
          flush=True)
    return broker.name, fig, failure


def raise_fd_limit(args):
    """Soft open-file limit up to the hard one; fewer idle connections if even that is short."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    print(f"open files limit: {target} (was {soft})", flush=True)
    if 2 in args.rows and args.connections + 500 > target:
        args.connections = max(target - 500, 1)
        print(f"  only {args.connections} idle connections fit under it", flush=True)
    if 1 in args.rows and args.partitions + 500 > target:
        print(f"  warning: {args.partitions} partitions may need more open files than {target}", flush=True)
    return target


def check_disk(args):
    free = shutil.disk_usage(ROOT / "target").free
    need = 0
    if 3 in args.rows:
        need = max(need, 2 * args.data_gib * GIB + 5 * GIB)
    if 4 in args.rows:
        need = max(need, args.records * 150 + 5 * GIB)
    if free < need:
        raise SystemExit(f"{free / GIB:.0f} GiB free in {ROOT / 'target'}, {need / GIB:.0f} GiB needed "
                         "(rows 3 and 4 write --data-gib and --records): not starting")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--short", action="store_true", help="small sizes and 5 s runs")
    ap.add_argument("--rows", default="1,2,3,4", help="which rows, comma-separated")
    ap.add_argument("--seconds", type=float, help="length of each producer run (15; --short 5)")
    ap.add_argument("--kafka", default=KAFKA_NEWEST, help='Kafka versions, comma-separated ("" for none)')
    ap.add_argument("--runnel", help="the runnel binary (default: the release build)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--partitions", type=int, help="row 1 (10000; --short 1000)")
    ap.add_argument("--batch", type=int, default=1000, help="partitions a create request")
    ap.add_argument("--connections", type=int, help="row 2 (5000; --short 500)")
    ap.add_argument("--data-gib", type=float, help="row 3 (50; --short 2)")
    ap.add_argument("--records", type=int, help="row 4 (100000000; --short 2000000)")
    ap.add_argument("--rate", type=int, default=5000, help="row 4's producer, records/s")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    defaults = {"seconds": (15, 5), "partitions": (10_000, 1_000), "connections": (5_000, 500),
                "data_gib": (50, 2), "records": (100_000_000, 2_000_000)}
    for key, (full, short) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, short if args.short else full)
    args.rows = sorted({int(x) for x in args.rows.split(",") if x})
    if not set(args.rows) <= set(ROWS):
        raise SystemExit(f"--rows: 1 to {len(ROWS)}")
    (ROOT / "target").mkdir(exist_ok=True)
    check_disk(args)
    raise_fd_limit(args)
    binary = Path(args.runnel) if args.runnel else side_by_side.RUNNEL
    if not args.runnel and not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--bins"], check=True, cwd=ROOT)
    if not binary.exists():
        raise SystemExit(f"{binary} is missing")
    side_by_side.build_rdperf()
    versions = [v for v in args.kafka.split(",") if v]
    brokers = [lambda v=v: Kafka(version=v) for v in versions] + [lambda: Runnel(binary=binary)]
    runs, failures = {}, []
    for _ in range(args.rounds):
        figures = {}
        for number in args.rows:
            for make in brokers:
                name, fig, failure = run_row(make, number, args)
                figures.setdefault(name, {}).update(fig)
                if failure:
                    failures.append(failure)
        for name, fig in figures.items():
            runs.setdefault(name, []).append(fig)

    kafkas = [f"Kafka {v}" for v in versions]
    date = datetime.date.today().isoformat()
    fill_tool = "rdkafka_performance" if side_by_side.RDPERF.exists() else "kafka-producer-perf-test"
    text = "\n".join([
        f"# Costs that stay flat as the work grows: Runnel vs Apache Kafka {', '.join(versions) or '(none)'}, {date}",
        "",
        f"One node, same machine ({os.cpu_count()} cores), one broker at a time (Kafka first, then Runnel, per row),",
        f"{args.rounds} round(s){', medians' if args.rounds > 1 else ''}. Ratio = Runnel / Kafka. Runnel: {binary}.",
        f"Producer runs last about {args.seconds:g} s; fills by {fill_tool}. RSS is VmRSS at that moment.",
        "How each figure is taken: the docstring of bench/scale.py.",
        "",
        *ratio_table(runs, kafkas, table_rows(args)),
        "",
        *([f"Row 4's consumer read with the page cache dropped first: "
           f"{', '.join(n for n, rs in runs.items() if any(r.get('cold') for r in rs)) or 'no broker'}.", ""]
          if 4 in args.rows else []),
        *(["Failures:", "", *[f"- {f}" for f in failures], ""] if failures else []),
    ])
    print(text)
    out = ROOT / "target" / "bench-scale-short.md" if args.short else ROOT / "bench" / "results" / f"{date}-scale.md"
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
