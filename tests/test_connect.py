"""Kafka Connect in distributed mode, unmodified (Maven jars in .deps/connect-libs, 4.3.1: see
tests/java/connect/pom.xml), against Runnel: a FileStreamSource connector copies an input file to a
topic and a FileStreamSink connector copies the topic to an output file, both created through the
worker's REST API. On one node, on three nodes (replication factor 3, a node SIGKILLed too), and
with exactly-once source support.

Checked:
- the output file equals the input file; the worker created its config, offset and status topics
  on Runnel with cleanup.policy=compact (DescribeConfigs); the source's stored file position and the
  sink's committed offset are readable (the worker's REST API, the offsets topic read directly, the
  sink group's committed offsets) and match what was copied;
- the worker killed with SIGKILL and restarted resumes from its stored offsets. FileStream is
  at-least-once, so lines copied after the last stored offsets may be copied again, and the test
  asserts exactly which: with s = the line at the source's stored file position and c = the sink's
  committed topic offset, both read after the kill, the topic must end up as (what it held at the
  kill) + input[s:], and the output file as (what it held at the kill) + the records from offset c
  on. So every input line is there in order, and the only duplicates are one replay from each
  stored offset;
- with exactly.once.source.support the topic read read_committed holds every line exactly once,
  the records of the transaction open at the kill stay in the log aborted (read_uncommitted sees
  them), and the sink, reading read_committed, never writes them.
"""

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from helpers import ROOT, free_port

CONNECT_LIBS = ROOT / ".deps" / "connect-libs"
CONFIG_TOPIC, OFFSET_TOPIC, STATUS_TOPIC = "connect-configs", "connect-offsets", "connect-status"
TOPIC = "lines"
SINK_GROUP = "connect-sink"  # Connect names a sink connector's consumer group connect-<name>
FLUSH_MS = 5000  # offset.flush.interval.ms: how often source positions and sink offsets are stored


class Worker:
    """A ConnectDistributed process (heap capped) with its properties file and log in `tmp`."""

    def __init__(self, tmp, bootstrap, rf, extra=None):
        assert CONNECT_LIBS.exists(), f"{CONNECT_LIBS} is missing: run scripts/install-test-deps.sh"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "worker.log"
        self.props = tmp / "worker.properties"
        settings = {
            "bootstrap.servers": bootstrap,
            "group.id": "connect-cluster",
            "config.storage.topic": CONFIG_TOPIC,
            "offset.storage.topic": OFFSET_TOPIC,
            "status.storage.topic": STATUS_TOPIC,
            "config.storage.replication.factor": str(rf),
            "offset.storage.replication.factor": str(rf),
            "status.storage.replication.factor": str(rf),
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter",
            "listeners": self.url,
            "offset.flush.interval.ms": str(FLUSH_MS),
            # After a SIGKILL the dead worker's member (and its sink task's consumer) stay in their
            # groups until their sessions expire; keep that short, and hand the dead worker's
            # connectors and tasks over at once rather than after the default 5 minutes.
            "session.timeout.ms": "6000",
            "heartbeat.interval.ms": "1000",
            "scheduled.rebalance.max.delay.ms": "0",
            "consumer.session.timeout.ms": "6000",
            "consumer.heartbeat.interval.ms": "1000",
            **(extra or {}),
        }
        self.props.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
             "-Dorg.slf4j.simpleLogger.showDateTime=true",
             "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
             "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.common.config=warn",
             "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.clients.consumer.internals"
             ".SubscriptionState=warn",
             "-cp", f"{CONNECT_LIBS}/*", "org.apache.kafka.connect.cli.ConnectDistributed",
             str(self.props)],
            stdout=log, stderr=subprocess.STDOUT)
        # /health answers 200 once the worker has started and joined its group (KIP-1017).
        self.wait_for("the worker to be healthy", lambda: self.get("/health")[0] == 200, 90)
        return self

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def log_tail(self, n=80):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""

    def request(self, method, path, body=None, timeout=15):
        """(status, decoded JSON or text); status 0 when nothing answered."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        except OSError:
            return 0, None
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def get(self, path):
        return self.request("GET", path)

    def put_connector(self, name, config):
        """PUT /connectors/<name>/config, retried while the worker's group rebalances (409)."""
        last = None

        def put():
            nonlocal last
            last = self.request("PUT", f"/connectors/{name}/config", config, timeout=30)
            return last[0] in (200, 201)

        self.wait_for(f"connector {name} to be accepted (last answer {last})", put, 60)

    def wait_for(self, what, predicate, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"Connect worker exited with {self.proc.returncode}:\n"
                                     f"{self.log_tail()}")
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}:\n{self.log_tail()}")


def lines_of(path, settled=True):
    """The lines of a file. The sink writes a line and its newline in two writes, so a file read
    while it copies may end in a partial line: `settled=False` leaves it out; a settled file (the
    sink idle or dead) must not have one."""
    if not path.exists():
        return []
    text = path.read_text()
    if not settled:
        return text[:text.rfind("\n") + 1].splitlines()
    assert text == "" or text.endswith("\n"), f"{path} ends in a torn line: {text[-80:]!r}"
    return text.splitlines()


def append(path, lines):
    with open(path, "a") as f:
        f.write("".join(line + "\n" for line in lines))


def read_topic(bootstrap, topic, isolation="read_committed"):
    """Every record of every partition, from the beginning to the current end:
    {partition: [(offset, key, value)]}."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-connect-reader",
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "isolation.level": isolation})
    try:
        meta = c.list_topics(topic, timeout=10).topics[topic]
        assert meta.error is None, meta.error
        out, todo = {}, []
        for p in meta.partitions:
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            out[p] = []
            if high > low:
                todo.append(TopicPartition(topic, p, low))
        ends = {tp.partition: c.get_watermark_offsets(tp, timeout=10)[1] for tp in todo}
        c.assign(todo)
        left = set(ends)
        deadline = time.time() + 30
        while left and time.time() < deadline:
            m = c.poll(1)
            if m is None:
                continue
            if m.error():
                assert m.error().code() == -191, m.error()  # _PARTITION_EOF
                left.discard(m.partition())
                continue
            out[m.partition()].append((m.offset(), m.key(), m.value()))
            if m.offset() + 1 >= ends[m.partition()]:
                left.discard(m.partition())
        assert not left, f"partitions {left} of {topic} not read to their end"
        return out
    finally:
        c.close()


def topic_records(bootstrap, contiguous=True, isolation="read_committed"):
    """The data topic's committed records in offset order: [(offset, line)]. Without transactions
    their offsets run from 0 without a gap (`contiguous`)."""
    records = read_topic(bootstrap, TOPIC, isolation)
    assert list(records) == [0], records.keys()
    out = [(o, v.decode()) for o, _, v in records[0]]
    if contiguous:
        assert [o for o, _ in out] == list(range(len(out))), out[:20]
    return out


def values(records):
    return [v for _, v in records]


def stored_source_position(bootstrap, input_path):
    """The FileStreamSource position stored last for `input_path`, read from the offsets topic
    itself (key ["<connector>", {"filename": ...}], value {"position": bytes}, JSON)."""
    position = None
    for records in read_topic(bootstrap, OFFSET_TOPIC).values():
        for _, key, value in records:
            name, partition = json.loads(key)
            if name == "src" and partition == {"filename": str(input_path)}:
                position = None if value is None else json.loads(value)["position"]
    return position


def sink_committed_offset(bootstrap):
    from confluent_kafka import ConsumerGroupTopicPartitions
    a = AdminClient({"bootstrap.servers": bootstrap})
    f = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(SINK_GROUP)])[SINK_GROUP]
    tps = [tp for tp in f.result(20).topic_partitions if tp.topic == TOPIC]
    assert len(tps) == 1 and tps[0].partition == 0, tps
    return tps[0].offset


def rest_offsets(worker, name):
    """GET /connectors/<name>/offsets (KIP-875): [(partition, offset)] or None while unanswered."""
    status, body = worker.get(f"/connectors/{name}/offsets")
    if status != 200:
        return None
    return [(o["partition"], o["offset"]) for o in body["offsets"]]


def test_connect_file_copy_and_kill9_resume(broker_factory, tmp_path):
    """One node; every topic with replication factor 1."""
    t0 = time.time()
    broker = broker_factory(**{"group.initial.rebalance.delay.ms": "0"})
    copy_through_connect(tmp_path, broker.bootstrap, 1, t0)


def test_connect_on_three_nodes(cluster_factory, tmp_path):
    """Three nodes; the worker's topics and the copied topic with replication factor 3; while the
    worker is dead, the node leading the config topic is SIGKILLed too and stays down: the
    restarted worker reads its configs and offsets from the other two."""
    t0 = time.time()
    cluster = cluster_factory(3)

    def kill_config_leader():
        leader = cluster.leader_of(CONFIG_TOPIC, 0)
        assert leader > 0, leader
        cluster.kill9(cluster.index_of(leader))
        cluster.wait_for(f"a new leader of {CONFIG_TOPIC}-0",
                         lambda: cluster.leader_of(CONFIG_TOPIC, 0) not in (-1, leader), 30)
        return leader

    copy_through_connect(tmp_path, cluster.bootstrap, 3, t0, while_dead=kill_config_leader)


def test_connect_exactly_once_source(broker_factory, tmp_path):
    """One node; the worker with exactly.once.source.support=enabled (KIP-618): the source writes
    its records and its file position in one transaction (one per 3 s here), its tasks are fenced
    through InitProducerId, the worker's config topic is written transactionally, and the sink
    reads read_committed. After the SIGKILL the open transaction is aborted and the source
    resumes at the position committed with the last committed records: the topic holds every
    line exactly once for read_committed readers."""
    t0 = time.time()
    broker = broker_factory(**{"group.initial.rebalance.delay.ms": "0"})
    copy_through_connect(tmp_path, broker.bootstrap, 1, t0, exactly_once=True)


def copy_through_connect(tmp_path, bootstrap, rf, t0, while_dead=None, exactly_once=False):
    """The whole scenario (module docstring) against `bootstrap`, topics with replication factor
    `rf`; `while_dead()` runs while the worker is dead, after its stored offsets are read."""
    src, dst = tmp_path / "input.txt", tmp_path / "output.txt"
    # Distinct lines, so where each one came from is never ambiguous.
    a = [f"a-{i:05d} first batch {'x' * (i % 50)}" for i in range(500)]
    b = [f"b-{i:05d} second batch, written before the kill" for i in range(300)]
    c = [f"c-{i:05d} third batch, written while the worker is dead" for i in range(200)]
    everything = a + b + c
    append(src, a)
    extra, source_extra = {}, {}
    if exactly_once:
        extra = {"exactly.once.source.support": "enabled",
                 "consumer.isolation.level": "read_committed"}
        source_extra = {"exactly.once.support": "required", "transaction.boundary": "interval",
                        "transaction.boundary.interval.ms": "3000"}

    worker = Worker(tmp_path, bootstrap, rf, extra).start()
    try:
        t_started = time.time()
        worker.put_connector("src", {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "tasks.max": "1", "file": str(src), "topic": TOPIC,
            # The worker creates the topic through CreateTopics (Runnel does not auto-create).
            "topic.creation.default.replication.factor": str(rf),
            "topic.creation.default.partitions": "1",
            **source_extra,
        })
        worker.put_connector("sink", {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
            "tasks.max": "1", "file": str(dst), "topics": TOPIC,
        })
        worker.wait_for("the output file to hold the first batch",
                        lambda: lines_of(dst, False) == a, 60)
        t_copied = time.time()
        assert dst.read_bytes() == src.read_bytes()

        status, body = worker.get("/connectors?expand=status")
        assert status == 200, body
        for name in ("src", "sink"):
            st = body[name]["status"]
            assert st["connector"]["state"] == "RUNNING", st
            assert [t["state"] for t in st["tasks"]] == ["RUNNING"], st

        # The worker's internal topics: created by it on Runnel, compacted, as Connect requires.
        admin = AdminClient({"bootstrap.servers": bootstrap})
        resources = [ConfigResource(ConfigResource.Type.TOPIC, t)
                     for t in (CONFIG_TOPIC, OFFSET_TOPIC, STATUS_TOPIC)]
        for res, f in admin.describe_configs(resources).items():
            policy = f.result(20)["cleanup.policy"].value
            assert policy == "compact", (res, policy)
        topics = admin.list_topics(timeout=10).topics
        # Connect's defaults: 1 config partition, 25 offset partitions, 5 status partitions; every
        # topic, the copied one too, with the replication factor asked for.
        assert {t: len(topics[t].partitions) for t in (CONFIG_TOPIC, OFFSET_TOPIC, STATUS_TOPIC)} \
            == {CONFIG_TOPIC: 1, OFFSET_TOPIC: 25, STATUS_TOPIC: 5}
        for t in (CONFIG_TOPIC, OFFSET_TOPIC, STATUS_TOPIC, TOPIC):
            assert {len(p.replicas) for p in topics[t].partitions.values()} == {rf}, t

        # Stored offsets: the source's file position (bytes) and the sink's consumer offset reach
        # the end of the first batch by the next offset flush (or transaction); the worker reads
        # them back from Runnel for its REST API, and the offsets topic holds the same position.
        # With transactions the sink's offset may also be past the commit marker.
        records_a = topic_records(bootstrap, contiguous=not exactly_once)
        assert values(records_a) == a
        end_a = records_a[-1][0] + 1
        size_a = src.stat().st_size
        want_src = [({"filename": str(src)}, {"position": size_a})]
        sink_partition = {"kafka_topic": TOPIC, "kafka_partition": 0}

        def stored():
            sink = rest_offsets(worker, "sink")
            return rest_offsets(worker, "src") == want_src and sink is not None and len(sink) == 1 \
                and sink[0][0] == sink_partition and sink[0][1]["kafka_offset"] >= end_a

        worker.wait_for("stored offsets at the end of the first batch", stored, 3 * FLUSH_MS / 1000)
        assert stored_source_position(bootstrap, src) == size_a
        committed_a = sink_committed_offset(bootstrap)
        assert committed_a == end_a or (exactly_once and committed_a > end_a), (committed_a, end_a)
        assert topic_records(bootstrap, contiguous=not exactly_once) == records_a

        append(src, b)
        if exactly_once:
            # SIGKILL once the second batch is in the log, most likely in a transaction still open
            # (the sink, reading read_committed, may not have it yet).
            probe = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-connect-probe",
                              "isolation.level": "read_uncommitted"})
            worker.wait_for("the second batch in the log", lambda: probe.get_watermark_offsets(
                TopicPartition(TOPIC, 0), timeout=5)[1] >= end_a + len(b), 30)
            probe.close()
        else:
            # SIGKILL as soon as the second batch is in the output file (most likely before the
            # next offset flush, so that both connectors replay after the restart).
            worker.wait_for("the output file to hold the second batch",
                            lambda: len(lines_of(dst, False)) >= len(a) + len(b), 30)
        worker.kill9()
        t_killed = time.time()
    finally:
        worker.kill9()

    out_at_kill = lines_of(dst)
    topic_at_kill = topic_records(bootstrap, contiguous=not exactly_once)
    position = stored_source_position(bootstrap, src)
    committed = sink_committed_offset(bootstrap)
    text = src.read_text()
    assert position is not None and text[position - 1:position] == "\n", position
    s = text[:position].count("\n")  # the first line the source will read again
    assert len(a) <= s <= len(a) + len(b), s
    if exactly_once:
        # Records and position are committed together: the committed records are the lines
        # before the stored position, each once; the sink wrote a prefix of them.
        assert values(topic_at_kill) == everything[:s]
        # Past them, the records of the transaction left open, if any: the next lines.
        open_at_kill = values(topic_records(bootstrap, False, "read_uncommitted"))[s:]
        assert open_at_kill == everything[s:s + len(open_at_kill)]
        assert out_at_kill == everything[:len(out_at_kill)]
        assert len(a) <= len(out_at_kill) <= s
    else:
        assert out_at_kill == a + b, "before any failure the copy has no duplicates"
        assert values(topic_at_kill) == a + b
    assert committed_a <= committed, (committed_a, committed)
    assert exactly_once or committed <= len(a) + len(b), committed

    killed = while_dead() if while_dead else None
    append(src, c)
    # What must come of it: the source appends the input from its stored position on (after its
    # open transaction, if any, is aborted); the sink appends every record from its committed
    # offset on.
    want_topic_values = values(topic_at_kill) + everything[s:]

    worker.start()
    t_restarted = time.time()
    try:
        def caught_up():
            return lines_of(dst, False)[-1:] == everything[-1:]

        worker.wait_for("the output file to catch up after the restart", caught_up, 90)
        t_resumed = time.time()
        time.sleep(1)  # anything more (it must not come) would show up now
        out = lines_of(dst)
        topic = topic_records(bootstrap, contiguous=not exactly_once)
        assert values(topic) == want_topic_values, \
            f"source replay from line {s} expected, topic holds something else"
        if exactly_once:
            assert values(topic) == everything, "read_committed: every line exactly once"
            # The open transaction's records are still in the log, aborted: read_uncommitted
            # sees them once more.
            assert values(topic_records(bootstrap, False, "read_uncommitted")) == \
                everything[:s] + open_at_kill + everything[s:]
        assert out == out_at_kill + [v for o, v in topic if o >= committed], \
            f"sink replay from offset {committed} expected"
        # The same in words: every input line, in order, and nothing else than the replays.
        seen = set()
        assert [x for x in out if not (x in seen or seen.add(x))] == everything
        status, body = worker.get("/connectors?expand=status")
        assert status == 200, body
        assert all(body[n]["status"]["tasks"][0]["state"] == "RUNNING" for n in ("src", "sink")), body
    finally:
        worker.kill9()
    sink_replayed = len([o for o, _ in topic_at_kill if o >= committed]) - \
        (len(topic_at_kill) - len(out_at_kill))
    print(f"node {killed} SIGKILLed while the worker was dead; " if killed else "", end="")
    if exactly_once:
        print(f"{len(open_at_kill)} records of an open transaction aborted; ", end="")
    print(f"source replayed {len(topic_at_kill) - s} lines (committed {s}), sink replayed "
          f"{sink_replayed} records; worker healthy {t_started - t0:.1f} s after the "
          f"broker, first copy {t_copied - t_started:.1f} s, offsets stored and second copy "
          f"{t_killed - t_copied:.1f} s, restart to healthy {t_restarted - t_killed:.1f} s, caught up "
          f"{t_resumed - t_restarted:.1f} s later, total {time.time() - t0:.1f} s")
