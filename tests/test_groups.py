"""The classic consumer-group coordinator against real clients: librdkafka (confluent-kafka),
kafka-python and the Java consumer (Apache Kafka's VerifiableConsumer) sharing one group,
failover after kill -9, static membership, cooperative rebalancing, committed offsets across
restarts, auto.offset.reset, standalone commits, and kafka-consumer-groups end to end."""

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from confluent_kafka import OFFSET_STORED, Consumer, ConsumerGroupState, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient, KafkaConsumer, OffsetAndMetadata
from kafka import TopicPartition as KTP
from kafka.errors import NoOffsetForPartitionError

from helpers import java_main, kafka_tool
from test_clients import create

# Fast groups: no initial rebalance delay, a small __consumer_offsets.
FAST = {"group.initial.rebalance.delay.ms": "0", "offsets.topic.num.partitions": "3"}
SESSION_MS = 6000
HEARTBEAT_MS = 1000
TS0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z

# One group member in a child process: prints one JSON object a line (assigned / revoked / lost /
# consumed / committed / commit_failed / error / ready / closed); commits synchronously after each
# processed batch; SIGTERM closes the consumer (kill -9 does not).
CLIENT = r'''
import argparse, json, signal, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--lib", choices=["confluent", "kafka-python"], required=True)
ap.add_argument("--bootstrap", required=True)
ap.add_argument("--group", required=True)
ap.add_argument("--topic", required=True)
ap.add_argument("--client-id", required=True)
ap.add_argument("--instance-id")
ap.add_argument("--strategy", default="range")
ap.add_argument("--session-ms", type=int, default=6000)
ap.add_argument("--heartbeat-ms", type=int, default=1000)
ap.add_argument("--max-batch", type=int, default=100)
ap.add_argument("--delay", type=float, default=0.0)
a = ap.parse_args()

stopping = False
looping = False


def stop(*_):
    global stopping
    stopping = True
    if not looping:  # still connecting: nothing to close yet
        raise SystemExit(0)


signal.signal(signal.SIGTERM, stop)


def emit(ev, **kw):
    kw["ev"] = ev
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def run_confluent():
    from confluent_kafka import Consumer, KafkaException, TopicPartition
    conf = {"bootstrap.servers": a.bootstrap, "group.id": a.group, "client.id": a.client_id,
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": a.session_ms, "heartbeat.interval.ms": a.heartbeat_ms,
            "partition.assignment.strategy": a.strategy}
    if a.instance_id:
        conf["group.instance.id"] = a.instance_id
    c = Consumer(conf)

    def on_assign(consumer, parts):
        emit("assigned", partitions=sorted(p.partition for p in parts), member_id=consumer.memberid())

    def on_revoke(consumer, parts):
        emit("revoked", partitions=sorted(p.partition for p in parts))

    def on_lost(consumer, parts):
        emit("lost", partitions=sorted(p.partition for p in parts))

    c.subscribe([a.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    emit("ready")
    global looping
    looping = True
    while not stopping:
        done = {}
        for m in c.consume(num_messages=a.max_batch, timeout=0.5):
            if m.error():
                emit("error", code=m.error().code(), reason=m.error().str())
                continue
            done.setdefault(m.partition(), []).append(m.offset())
        if not done:
            continue
        for p, offs in sorted(done.items()):
            emit("consumed", partition=p, offsets=offs)
        try:
            res = c.commit(offsets=[TopicPartition(a.topic, p, offs[-1] + 1) for p, offs in done.items()],
                           asynchronous=False)
            emit("committed", offsets={str(t.partition): t.offset for t in res if t.error is None})
            bad = [str(t.error) for t in res if t.error is not None]
            if bad:
                emit("commit_failed", error="; ".join(bad))
        except KafkaException as e:
            emit("commit_failed", error=str(e))
        if a.delay:
            time.sleep(a.delay)
    c.close()
    emit("closed")


def run_kafka_python():
    from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata
    from kafka.errors import KafkaError

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            emit("revoked", partitions=sorted(tp.partition for tp in revoked))

        def on_partitions_assigned(self, assigned):
            emit("assigned", partitions=sorted(tp.partition for tp in assigned))

    kw = dict(bootstrap_servers=a.bootstrap, group_id=a.group, client_id=a.client_id,
              enable_auto_commit=False, auto_offset_reset="earliest",
              session_timeout_ms=a.session_ms, heartbeat_interval_ms=a.heartbeat_ms,
              max_poll_records=a.max_batch)
    if a.instance_id:
        kw["group_instance_id"] = a.instance_id
    c = KafkaConsumer(**kw)
    c.subscribe([a.topic], listener=Listener())
    emit("ready")
    global looping
    looping = True
    while not stopping:
        batch = c.poll(timeout_ms=500)
        if not batch:
            continue
        offsets = {}
        for tp, msgs in sorted(batch.items()):
            emit("consumed", partition=tp.partition, offsets=[m.offset for m in msgs])
            offsets[tp] = OffsetAndMetadata(msgs[-1].offset + 1, "", -1)
        try:
            c.commit(offsets)
            emit("committed", offsets={str(tp.partition): o.offset for tp, o in offsets.items()})
        except KafkaError as e:
            emit("commit_failed", error=repr(e))
        if a.delay:
            time.sleep(a.delay)
    c.close()
    emit("closed")


run_confluent() if a.lib == "confluent" else run_kafka_python()
'''


def java_events(raw):
    """VerifiableConsumer's JSON events in the child script's vocabulary."""
    name = raw.get("name")
    parts = lambda: sorted(p["partition"] for p in raw.get("partitions", []))  # noqa: E731
    if name == "startup_complete":
        return [{"ev": "ready"}]
    if name == "partitions_assigned":
        return [{"ev": "assigned", "partitions": parts()}]
    if name == "partitions_revoked":
        return [{"ev": "revoked", "partitions": parts()}]
    if name == "records_consumed":
        out = []
        for s in raw["partitions"]:
            offsets = list(range(s["minOffset"], s["maxOffset"] + 1))
            assert len(offsets) == s["count"], f"gap in a batch: {s}"
            out.append({"ev": "consumed", "partition": s["partition"], "offsets": offsets})
        return out
    if name == "offsets_committed":
        if raw.get("success"):
            return [{"ev": "committed", "offsets": {str(o["partition"]): o["offset"] for o in raw["offsets"]}}]
        return [{"ev": "commit_failed", "error": raw.get("error")}]
    if name == "shutdown_complete":
        return [{"ev": "closed"}]
    return []


class Member:
    """A group member in a child process; a thread reads its JSON lines into `events`, each stamped
    with the time it was read."""

    def __init__(self, name, proc, stderr_path, translate=lambda raw: [raw]):
        self.name, self.proc, self.stderr_path, self.translate = name, proc, stderr_path, translate
        self.started = time.time()
        self.events = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                raw = json.loads(line)
            except ValueError:
                continue
            for ev in self.translate(raw):
                ev["t"] = time.time()
                with self.lock:
                    self.events.append(ev)

    def snapshot(self, kinds=None):
        with self.lock:
            return [e for e in self.events if kinds is None or e["ev"] in kinds]

    def rebalance_events(self):
        return self.snapshot(("assigned", "revoked", "lost"))

    def assignment(self):
        owned = set()
        for e in self.rebalance_events():
            if e["ev"] == "assigned":
                owned |= set(e["partitions"])
            else:
                owned -= set(e["partitions"])
        return owned

    def last_change(self):
        evs = self.rebalance_events()
        return evs[-1]["t"] if evs else self.started

    def member_id(self):
        ids = [e["member_id"] for e in self.snapshot(("assigned",)) if e.get("member_id")]
        return ids[-1] if ids else None

    def consumed(self):
        return [(e["partition"], o) for e in self.snapshot(("consumed",)) for o in e["offsets"]]

    def commits(self):
        last = {}
        for e in self.snapshot(("committed",)):
            last.update({int(p): o for p, o in e["offsets"].items()})
        return last

    def stop(self, timeout=10):
        """SIGTERM: the consumer closes (a dynamic member leaves the group)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.reader.join(10)

    def kill9(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.reader.join(10)

    def report(self):
        try:
            err = self.stderr_path.read_text(errors="replace")[-1500:]
        except FileNotFoundError:
            err = ""
        tail = [{k: v for k, v in e.items() if k != "t"} for e in self.snapshot()[-8:]]
        return (f"--- {self.name} (rc={self.proc.poll()}): owns {sorted(self.assignment())}, "
                f"consumed {len(self.consumed())}, commits {self.commits()}\n"
                f"    rebalances: {[(e['ev'], e['partitions']) for e in self.rebalance_events()]}\n"
                f"    last events: {tail}\n    stderr tail: {err}")


def start_py_member(tmp_path, name, lib, bootstrap, group, topic, *extra):
    script = tmp_path / "group_client.py"
    if not script.exists():
        script.write_text(CLIENT)
    stderr_path = tmp_path / f"{name}.stderr"
    proc = subprocess.Popen(
        [sys.executable, str(script), "--lib", lib, "--bootstrap", bootstrap, "--group", group, "--topic", topic,
         "--client-id", name, "--session-ms", str(SESSION_MS), "--heartbeat-ms", str(HEARTBEAT_MS), *extra],
        stdout=subprocess.PIPE, stderr=open(stderr_path, "w"), text=True)
    return Member(name, proc, stderr_path)


def start_java_member(tmp_path, name, bootstrap, group, topic, protocol="classic"):
    """VerifiableConsumer; with protocol="consumer" (KIP-848) the session and heartbeat are the
    broker's (the Java client refuses to set them)."""
    cfg = tmp_path / f"{name}.properties"
    timing = []
    if protocol == "classic":
        cfg.write_text(f"client.id={name}\nheartbeat.interval.ms={HEARTBEAT_MS}\nmax.poll.records=100\n")
        timing = ["--session-timeout", str(SESSION_MS)]
    else:
        cfg.write_text(f"client.id={name}\nmax.poll.records=100\n")
    stderr_path = tmp_path / f"{name}.stderr"
    proc = java_main("org.apache.kafka.tools.VerifiableConsumer",
                     "--bootstrap-server", bootstrap, "--group-id", group, "--topic", topic,
                     "--group-protocol", protocol, *timing,
                     "--reset-policy", "earliest", "--consumer.config", str(cfg),
                     stderr=open(stderr_path, "w"))
    return Member(name, proc, stderr_path, translate=java_events)


def report(members):
    return "\n".join(m.report() for m in members)


def wait_for(cond, timeout, what, members=()):
    deadline = time.time() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{report(members)}")
        time.sleep(0.1)


def settled(members, partitions, quiet):
    """Each member owns a non-empty share, the shares are disjoint and cover `partitions`, and no
    member has seen a rebalance callback for `quiet` seconds. Returns the shares, else None."""
    owned = [m.assignment() for m in members]
    if not all(owned) or sorted(p for s in owned for p in s) != sorted(partitions):
        return None
    if time.time() - max(m.last_change() for m in members) < quiet:
        return None
    return owned


def produce_keyed(bootstrap, topic, n):
    """n keyed records with librdkafka; returns the acknowledged (partition, offset) pairs."""
    acked, errors = [], []

    def on_ack(err, msg):
        (errors if err else acked).append(err or (msg.partition(), msg.offset()))

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, key=b"key-%d" % i, value=b"value-%d" % i, on_delivery=on_ack)
        p.poll(0)
    assert p.flush(30) == 0
    assert not errors, errors[:5]
    return acked


def produce_to(bootstrap, topic, partition, n, ts0=None):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2})
    for i in range(n):
        kw = {"timestamp": ts0 + i * 1000} if ts0 is not None else {}
        p.produce(topic, value=b"p%d-%d" % (partition, i), partition=partition, **kw)
    assert p.flush(20) == 0


def wait_assigned(consumer, n, timeout=30):
    """Polls a subscribed confluent consumer until it owns n partitions."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = consumer.poll(0.2)
        assert m is None or m.error() is None, m.error()
        if len(consumer.assignment()) == n:
            return consumer.assignment()
    raise AssertionError(f"no assignment of {n} partitions within {timeout} s: {consumer.assignment()}")


def consume_n(consumer, n, timeout=30):
    got = []
    deadline = time.time() + timeout
    while len(got) < n and time.time() < deadline:
        m = consumer.poll(0.2)
        if m is None:
            continue
        assert m.error() is None, m.error()
        got.append(m)
    return got


# 1 -------------------------------------------------------------------------------------------------


def test_three_consumers_share_partitions_and_failover(broker_factory, tmp_path):
    broker = broker_factory(**FAST)
    topic, group, n = "share6", "trio", 3000
    create(broker.bootstrap, topic, partitions=6)
    members = [
        start_py_member(tmp_path, "rd-member", "confluent", broker.bootstrap, group, topic),
        # Slow on purpose (20 records a batch, 0.25 s between batches) so it dies mid-stream.
        start_py_member(tmp_path, "py-member", "kafka-python", broker.bootstrap, group, topic,
                        "--max-batch", "20", "--delay", "0.25"),
        start_java_member(tmp_path, "java-member", broker.bootstrap, group, topic),
    ]
    rd, py, java = members
    try:
        owned = wait_for(lambda: settled(members, range(6), quiet=2.0), 50, "three members to share 6 partitions",
                         members)
        # Range assignment of 6 partitions over 3 members: two each, every partition exactly once.
        assert [len(s) for s in owned] == [2, 2, 2], report(members)
        assert set().union(*owned) == set(range(6))
        for m in members:
            assert not m.snapshot(("commit_failed", "error")), m.report()

        acked = produce_keyed(broker.bootstrap, topic, n)
        assert len(acked) == n and len(set(acked)) == n
        for p in range(6):
            offs = sorted(o for pp, o in acked if pp == p)
            assert offs == list(range(len(offs))), f"partition {p} offsets not contiguous from 0"

        wait_for(lambda: len(py.consumed()) >= 100 and py.commits(), 30, "kafka-python to consume and commit",
                 members)
        py_parts = py.assignment()
        py.kill9()
        t_kill = time.time()
        py_commits = py.commits()  # everything it printed before dying
        py_consumed = set(py.consumed())
        assert py_parts and set(py_commits) <= py_parts, py.report()

        # Its partitions move to the survivors once its session expires.
        survivors = [rd, java]
        wait_for(lambda: settled(survivors, range(6), quiet=0.0), SESSION_MS / 1000 + 20,
                 "the survivors to take over the killed member's partitions", members)
        failover = time.time() - t_kill
        assert failover <= SESSION_MS / 1000 + 12, f"failover took {failover:.1f} s\n{report(members)}"
        owned = wait_for(lambda: settled(survivors, range(6), quiet=1.0), 20, "a stable survivor assignment", members)
        assert sorted(len(s) for s in owned) == [3, 3], report(members)
        assert py_parts <= owned[0] | owned[1]

        # No record is skipped.
        produced = set(acked)
        wait_for(lambda: produced <= set(rd.consumed()) | set(java.consumed()) | py_consumed, 60,
                 "every produced record to be consumed", members)
        counts = Counter(rd.consumed() + java.consumed() + list(py.consumed()))
        assert set(counts) == produced, "consumed a record that was never produced"
        # Commits with the current generation are accepted while the group prepares a rebalance.
        for m in survivors:
            assert not m.snapshot(("commit_failed", "error")), m.report()
        # Redelivered records are only those of the killed member after its last commit.
        dups = sorted(po for po, c in counts.items() if c > 1)
        for p, o in dups:
            assert p in py_parts and o >= py_commits.get(p, 0), (
                f"record {p}/{o} consumed twice but it is not after the killed member's last commit "
                f"{py_commits}\n{report(members)}")
        # The survivors resumed each orphaned partition from the killed member's committed offset.
        for p in py_parts:
            after = [o for pp, o in rd.consumed() + java.consumed() if pp == p]
            assert after, f"nobody consumed partition {p} after the failover"
            mine = [o for pp, o in py_consumed if pp == p]
            assert py_commits.get(p, 0) <= min(after) <= (max(mine) + 1 if mine else 0), (p, min(after), py_commits)
        print(f"failover in {failover:.1f} s; {len(dups)} records redelivered after the kill -9")
    finally:
        for m in members:
            m.stop()


# 2 -------------------------------------------------------------------------------------------------

STATIC_SESSION_MS = 10000


def test_static_member_restart_keeps_assignment(broker_factory, tmp_path):
    broker = broker_factory(**FAST)
    topic, group = "static4", "statics"
    create(broker.bootstrap, topic, partitions=4)
    extra = ["--session-ms", str(STATIC_SESSION_MS)]
    b = start_py_member(tmp_path, "static-b", "confluent", broker.bootstrap, group, topic,
                        "--instance-id", "static-b", *extra)
    members = [b]
    try:
        wait_for(lambda: settled([b], range(4), quiet=1.0), 30, "the first static member to own everything", members)
        a = start_py_member(tmp_path, "static-a", "confluent", broker.bootstrap, group, topic,
                            "--instance-id", "static-a", *extra)
        members.append(a)
        owned = wait_for(lambda: settled([a, b], range(4), quiet=2.0), 40, "two static members to share 4 partitions",
                         members)
        assert [len(s) for s in owned] == [2, 2]
        a_parts, a_member = a.assignment(), a.member_id()
        b_rebalances = len(b.rebalance_events())
        assert a_member and a_member.startswith("static-a-"), a_member

        # librdkafka does not send LeaveGroup when a static member closes (KIP-345): the broker keeps
        # the membership until the session times out.
        a.stop()
        t_close = time.time()
        assert a.proc.returncode == 0 and a.snapshot(("closed",)), a.report()

        a2 = start_py_member(tmp_path, "static-a2", "confluent", broker.bootstrap, group, topic,
                             "--instance-id", "static-a", *extra)
        members.append(a2)
        wait_for(lambda: a2.assignment(), 15, "the restarted static member's assignment", members)
        back = time.time() - t_close
        assert back < STATIC_SESSION_MS / 1000, f"restart took {back:.1f} s, longer than the session timeout"
        assert a2.assignment() == a_parts, report(members)
        # A rejoining static member gets a new member id, "<group.instance.id>-<uuid>" as Kafka makes it.
        assert a2.member_id() and a2.member_id() != a_member
        assert a2.member_id().startswith("static-a-"), a2.member_id()

        # Nothing happens to the other member: not at the rejoin, not when the old session would expire.
        time.sleep(max(0.0, t_close + STATIC_SESSION_MS / 1000 + 4 - time.time()))
        assert b.rebalance_events()[b_rebalances:] == [], report(members)
        assert [e["ev"] for e in a2.rebalance_events()] == ["assigned"], report(members)
        assert b.assignment() | a2.assignment() == set(range(4))

        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        desc = admin.describe_consumer_groups([group])[group].result(20)
        assert desc.state == ConsumerGroupState.STABLE
        by_instance = {m.group_instance_id: m for m in desc.members}
        assert set(by_instance) == {"static-a", "static-b"}
        assert by_instance["static-a"].member_id == a2.member_id()
        assert {tp.partition for tp in by_instance["static-a"].assignment.topic_partitions} == a_parts
    finally:
        for m in members:
            m.stop()


# 3 -------------------------------------------------------------------------------------------------


def test_committed_offsets_and_group_survive_restart(broker_factory):
    broker = broker_factory(**FAST)
    topic, group = "resume", "resume-group"
    create(broker.bootstrap, topic, partitions=3)
    for p in range(3):
        produce_to(broker.bootstrap, topic, p, 30)
    meta1 = "résumé ✓ " + "m" * 300

    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False,
                      auto_offset_reset="earliest", session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS)
    c.subscribe([topic])
    deadline = time.time() + 30
    while len(c.assignment()) < 3 and time.time() < deadline:
        c.poll(timeout_ms=200)
    assert len(c.assignment()) == 3, c.assignment()
    c.commit({KTP(topic, 0): OffsetAndMetadata(10, "meta-0", -1), KTP(topic, 1): OffsetAndMetadata(20, meta1, -1)})
    got = c.committed(KTP(topic, 1), metadata=True)
    assert (got.offset, got.metadata) == (20, meta1)
    c.close()

    broker.restart()

    k = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
    got = [k.committed(KTP(topic, p), metadata=True) for p in range(3)]
    k.close()
    assert (got[0].offset, got[0].metadata) == (10, "meta-0")
    assert (got[1].offset, got[1].metadata) == (20, meta1)
    assert got[2] is None
    rc = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    tps = rc.committed([TopicPartition(topic, p) for p in range(3)], timeout=20)
    rc.close()
    # Offsets only: confluent-kafka reads the metadata as a NUL-terminated C string, and
    # kafka-python committed it without a NUL, so reading it here would run past its end
    # (whatever follows in memory decides the outcome). kafka-python checked it above.
    assert [t.offset for t in tps[:2]] == [10, 20]
    assert tps[2].offset < 0, tps[2]

    # The group itself is still known, empty, after the restart.
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    listed = {g.group_id: g for g in admin.list_consumer_groups().result(20).valid}
    assert group in listed and listed[group].state == ConsumerGroupState.EMPTY, listed
    desc = admin.describe_consumer_groups([group])[group].result(20)
    assert desc.state == ConsumerGroupState.EMPTY and desc.members == []

    # A new member of the group resumes at the committed offsets (partition 2 by auto.offset.reset).
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "session.timeout.ms": SESSION_MS})
    c.subscribe([topic])
    msgs = consume_n(c, 60)
    by_part = {p: [m.offset() for m in msgs if m.partition() == p] for p in range(3)}
    assert by_part == {0: list(range(10, 30)), 1: list(range(20, 30)), 2: list(range(30))}
    res = c.commit(offsets=[TopicPartition(topic, p, 30) for p in range(3)], asynchronous=False)
    assert all(t.error is None for t in res)
    c.close()

    # Acknowledged commits also survive kill -9.
    broker.kill9()
    broker.start()
    k = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
    assert [k.committed(KTP(topic, p)) for p in range(3)] == [30, 30, 30]
    k.close()


# 4 -------------------------------------------------------------------------------------------------


def test_auto_offset_reset(broker_factory):
    broker = broker_factory(**FAST)
    topic = "reset"
    create(broker.bootstrap, topic, partitions=1)
    produce_to(broker.bootstrap, topic, 0, 10)
    tp = KTP(topic, 0)

    def rd(group, reset):
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False,
                      "auto.offset.reset": reset, "session.timeout.ms": SESSION_MS})
        c.subscribe([topic])
        return c

    # earliest: from the log start.
    c = rd("reset-earliest", "earliest")
    got = consume_n(c, 10)
    c.close()
    assert [m.offset() for m in got] == list(range(10))

    # latest: from the log end, only what is produced after the position is set.
    k = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="reset-latest", enable_auto_commit=False,
                      auto_offset_reset="latest", session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS)
    k.subscribe([topic])
    deadline = time.time() + 30
    while not k.assignment() and time.time() < deadline:
        assert not k.poll(timeout_ms=200), "latest must not deliver old records"
    assert k.assignment() == {tp}
    assert k.position(tp) == 10
    produce_to(broker.bootstrap, topic, 0, 5)
    offsets = []
    deadline = time.time() + 20
    while len(offsets) < 5 and time.time() < deadline:
        for msgs in k.poll(timeout_ms=200).values():
            offsets += [m.offset for m in msgs]
    k.close()
    assert offsets == list(range(10, 15))

    # none: an error instead of a guess.
    c = rd("reset-none", "error")
    deadline = time.time() + 30
    err = None
    while err is None and time.time() < deadline:
        m = c.poll(0.2)
        if m is not None:
            assert m.error() is not None, f"record delivered without an offset: {m.offset()}"
            err = m.error()
    c.close()
    assert err is not None and err.code() == KafkaError._AUTO_OFFSET_RESET, err
    k = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="reset-none-py", enable_auto_commit=False,
                      auto_offset_reset="none", session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS)
    k.subscribe([topic])
    with pytest.raises(NoOffsetForPartitionError):
        deadline = time.time() + 30
        while time.time() < deadline:
            assert not k.poll(timeout_ms=200)
    k.close()

    # A committed offset wins over every policy.
    s = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="reset-committed", enable_auto_commit=False)
    s.assign([tp])
    s.commit({tp: OffsetAndMetadata(4, "", -1)})
    s.close()
    c = rd("reset-committed", "error")
    got = consume_n(c, 11)
    c.close()
    assert [m.offset() for m in got] == list(range(4, 15))
    k = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="reset-committed", enable_auto_commit=False,
                      auto_offset_reset="latest", session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS)
    k.subscribe([topic])
    offsets = []
    deadline = time.time() + 30
    while len(offsets) < 11 and time.time() < deadline:
        for msgs in k.poll(timeout_ms=200).values():
            offsets += [m.offset for m in msgs]
    k.close()
    assert offsets == list(range(4, 15))


# 5 -------------------------------------------------------------------------------------------------


def test_standalone_assign_commit(broker_factory):
    broker = broker_factory(**FAST)
    topic = "solo"
    create(broker.bootstrap, topic, partitions=1)
    produce_to(broker.bootstrap, topic, 0, 20)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        # librdkafka, assign() without subscribe: OffsetCommit with generation -1 and no member id.
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "solo-rd", "enable.auto.commit": False})
        c.assign([TopicPartition(topic, 0, 0)])
        got = consume_n(c, 10)
        assert [m.offset() for m in got] == list(range(10))
        res = c.commit(offsets=[TopicPartition(topic, 0, 10, "solo-meta")], asynchronous=False)
        assert res[0].error is None and res[0].offset == 10
        (tp,) = c.committed([TopicPartition(topic, 0)], timeout=20)
        c.close()
        assert (tp.offset, tp.metadata) == (10, "solo-meta")
        # confluent-kafka sends the metadata C string with its NUL (strlen + 1 bytes); the broker keeps
        # the bytes as given, so another client reads the NUL back.
        listed = admin.list_group_offsets({"solo-rd": None})["solo-rd"]
        assert (listed[KTP(topic, 0)].offset, listed[KTP(topic, 0)].metadata) == (10, "solo-meta\x00")

        # kafka-python, the same way; a later assign() at the stored offset resumes there.
        k = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="solo-py", enable_auto_commit=False)
        k.assign([KTP(topic, 0)])
        k.commit({KTP(topic, 0): OffsetAndMetadata(15, "py-meta", -1)})
        got = k.committed(KTP(topic, 0), metadata=True)
        k.close()
        assert (got.offset, got.metadata) == (15, "py-meta")
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "solo-py", "enable.auto.commit": False})
        c.assign([TopicPartition(topic, 0, OFFSET_STORED)])
        got = consume_n(c, 5)
        c.close()
        assert [m.offset() for m in got] == list(range(15, 20))

        # Auto-commit, librdkafka and kafka-python: the consumed position reaches the group by itself.
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "solo-auto", "enable.auto.commit": True,
                      "auto.commit.interval.ms": 500, "auto.offset.reset": "earliest",
                      "session.timeout.ms": SESSION_MS})
        c.subscribe([topic])
        assert len(consume_n(c, 20)) == 20
        deadline = time.time() + 15
        committed = None
        while time.time() < deadline:
            c.poll(0.2)
            (committed,) = c.committed([TopicPartition(topic, 0)], timeout=10)
            if committed.offset == 20:
                break
        assert committed.offset == 20, committed
        assert admin.list_group_offsets({"solo-auto": None})["solo-auto"][KTP(topic, 0)].offset == 20
        c.close()

        k = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="solo-auto-py", enable_auto_commit=True,
                          auto_commit_interval_ms=500, auto_offset_reset="earliest",
                          session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS)
        k.subscribe([topic])
        n, deadline = 0, time.time() + 30
        while time.time() < deadline:
            n += sum(len(v) for v in k.poll(timeout_ms=200).values())
            if n >= 20 and k.committed(KTP(topic, 0)) == 20:
                break
        assert n == 20 and k.committed(KTP(topic, 0)) == 20
        k.close(autocommit=False)
    finally:
        admin.close()


# 6 -------------------------------------------------------------------------------------------------


def cg(broker, *args):
    rc, out, err = kafka_tool("kafka-consumer-groups", "--bootstrap-server", broker.bootstrap, *args, timeout=90)
    return rc, out, err


def table(out, group, *columns):
    """The rows for `group` of the table whose header line starts with GROUP and names `columns`,
    as dicts keyed by the header's words (values never contain spaces in these tables)."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        words = line.split()
        if words[:1] == ["GROUP"] and all(c in words for c in columns):
            return [dict(zip(words, w.split())) for w in lines[i + 1:]
                    if w.split()[:1] == [group] and len(w.split()) == len(words)]
    raise AssertionError(f"no table with columns {columns} in:\n{out}")


def test_kafka_consumer_groups_tool(broker_factory):
    broker = broker_factory(**FAST)
    topic, group, client = "cg-topic", "cg-group", "cg-client"
    create(broker.bootstrap, topic, partitions=2)
    produce_to(broker.bootstrap, topic, 0, 100, ts0=TS0)
    produce_to(broker.bootstrap, topic, 1, 40, ts0=TS0)

    def describe():
        rc, out, err = cg(broker, "--describe", "--group", group)
        assert rc == 0, (out, err)
        return {int(r["PARTITION"]): r for r in table(out, group, "CURRENT-OFFSET", "LAG")}, out, err

    def reset(*args):
        rc, out, err = cg(broker, "--reset-offsets", "--group", group, *args)
        assert rc == 0, (out, err)
        return {int(r["PARTITION"]): int(r["NEW-OFFSET"]) for r in table(out, group, "NEW-OFFSET")
                if r["TOPIC"] == topic}, out, err

    member = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "client.id": client,
                       "enable.auto.commit": False, "auto.offset.reset": "latest",
                       "session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": HEARTBEAT_MS})
    member.subscribe([topic])
    closed = False
    try:
        wait_assigned(member, 2)
        res = member.commit(offsets=[TopicPartition(topic, 0, 30)], asynchronous=False)
        assert res[0].error is None

        rc, out, err = cg(broker, "--list")
        assert rc == 0 and group in out.split(), (out, err)
        rc, out, err = cg(broker, "--list", "--state")
        assert rc == 0, err
        assert [r["STATE"] for r in table(out, group, "STATE")] == ["Stable"], out

        rows, out, err = describe()
        header = next(line.split() for line in out.splitlines() if line.startswith("GROUP"))
        assert header == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                          "CONSUMER-ID", "HOST", "CLIENT-ID"]
        assert set(rows) == {0, 1}, out
        assert [rows[0][k] for k in ("TOPIC", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG")] == [topic, "30", "100", "70"]
        assert [rows[1][k] for k in ("CURRENT-OFFSET", "LOG-END-OFFSET", "LAG")] == ["-", "40", "-"]
        member_id = rows[0]["CONSUMER-ID"]
        assert member_id.startswith(client + "-") and rows[1]["CONSUMER-ID"] == member_id
        for r in rows.values():
            assert (r["HOST"], r["CLIENT-ID"]) == ("/127.0.0.1", client), r

        rc, out, err = cg(broker, "--describe", "--group", group, "--members", "--verbose")
        assert rc == 0, err
        (m,) = table(out, group, "CONSUMER-ID", "#PARTITIONS")
        assert (m["CONSUMER-ID"], m["HOST"], m["CLIENT-ID"], m["#PARTITIONS"]) == (member_id, "/127.0.0.1", client, "2")
        assert m["CURRENT-ASSIGNMENT"] == f"{topic}:0,1", out

        rc, out, err = cg(broker, "--describe", "--group", group, "--state")
        assert rc == 0, err
        (s,) = table(out, group, "ASSIGNMENT-STRATEGY", "#MEMBERS")
        assert (s["COORDINATOR"], s["(ID)"]) == (broker.bootstrap, "(1)"), out
        assert (s["ASSIGNMENT-STRATEGY"], s["STATE"], s["#MEMBERS"]) == ("range", "Stable", "1"), out

        # Refused while the member is there.
        _, out, _ = reset("--topic", topic, "--to-earliest", "--execute")
        assert (f"Error: Assignments can only be reset if the group '{group}' is inactive, "
                "but the current state is Stable.") in out
        rc, out, err = cg(broker, "--delete-offsets", "--group", group, "--topic", topic)
        assert "Error: Encountered some partition-level error, see the follow-up details." in out, (out, err)
        assert ("Deleting offsets of a topic is forbidden while the consumer group is actively subscribed "
                "to it.") in out, out
        rc, out, err = cg(broker, "--delete", "--group", group)
        assert "Error: Deletion of some consumer groups failed:" in out, (out, err)
        assert (f"* Group '{group}' could not be deleted due to: "
                "org.apache.kafka.common.errors.GroupNotEmptyException: The group is not empty.") in out, out

        member.close()  # LeaveGroup
        closed = True

        rc, out, err = cg(broker, "--describe", "--group", group, "--state")
        (s,) = table(out, group, "ASSIGNMENT-STRATEGY", "#MEMBERS")
        assert (s["ASSIGNMENT-STRATEGY"], s["STATE"], s["#MEMBERS"]) == ("-", "Empty", "0"), out
        rows, out, err = describe()
        assert f"Consumer group '{group}' has no active members." in err
        assert list(rows) == [0], out  # nothing was refused-and-done above
        assert [rows[0][k] for k in ("CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID")] \
            == ["30", "100", "70", "-", "-", "-"]

        # Dry runs (the default): the plan is printed, nothing changes.
        assert reset("--topic", topic, "--to-earliest")[0] == {0: 0, 1: 0}
        assert reset("--topic", topic, "--to-latest")[0] == {0: 100, 1: 40}
        assert reset("--topic", topic, "--to-offset", "5")[0] == {0: 5, 1: 5}
        assert reset("--topic", f"{topic}:0", "--shift-by", "-2")[0] == {0: 28}
        assert reset("--topic", topic, "--to-datetime", "2020-01-01T00:00:00.000")[0] == {0: 0, 1: 0}
        assert reset("--topic", topic, "--to-datetime", "2024-01-01T00:00:10.000", "--dry-run")[0] == {0: 10, 1: 10}
        rows, out, _ = describe()
        assert list(rows) == [0] and rows[0]["CURRENT-OFFSET"] == "30", out

        # --execute.
        assert reset("--topic", topic, "--to-offset", "5", "--execute")[0] == {0: 5, 1: 5}
        rows, out, _ = describe()
        assert {p: (r["CURRENT-OFFSET"], r["LAG"]) for p, r in rows.items()} == {0: ("5", "95"), 1: ("5", "35")}, out
        assert reset("--topic", topic, "--shift-by", "-2", "--execute")[0] == {0: 3, 1: 3}
        rows, out, _ = describe()
        assert {p: (r["CURRENT-OFFSET"], r["LAG"]) for p, r in rows.items()} == {0: ("3", "97"), 1: ("3", "37")}, out
        assert reset("--topic", topic, "--to-datetime", "2024-01-01T00:00:10.000", "--execute")[0] == {0: 10, 1: 10}
        rows, out, _ = describe()
        assert {p: (r["CURRENT-OFFSET"], r["LAG"]) for p, r in rows.items()} == {0: ("10", "90"), 1: ("10", "30")}

        rc, out, err = cg(broker, "--delete-offsets", "--group", group, "--topic", f"{topic}:0")
        assert rc == 0 and f"Request succeeded for deleting offsets from group {group}." in out, (out, err)
        assert [line.split() for line in out.splitlines() if line.startswith(topic)] == [[topic, "0", "Successful"]]
        rows, out, _ = describe()
        assert list(rows) == [1] and rows[1]["CURRENT-OFFSET"] == "10", out

        rc, out, err = cg(broker, "--delete", "--group", group)
        assert rc == 0 and f"Deletion of requested consumer groups ('{group}') was successful." in out, (out, err)
        rc, out, err = cg(broker, "--list")
        assert rc == 0 and group not in out.split(), out
        rc, out, err = cg(broker, "--describe", "--group", group)
        # DescribeGroups v0-v5 answer Dead for an unknown group; v6+ answer GROUP_ID_NOT_FOUND.
        assert (f"Error: Consumer group '{group}' does not exist." in out
                or "GroupIdNotFoundException" in out + err), (out, err)
        assert not any(line.split()[:2] == [group, topic] for line in out.splitlines()), out
    finally:
        if not closed:
            member.close()


# 7 -------------------------------------------------------------------------------------------------


def test_cooperative_sticky(broker_factory, tmp_path):
    broker = broker_factory(**FAST)
    topic, group = "coop", "coop-group"
    create(broker.bootstrap, topic, partitions=6)
    args = ("--strategy", "cooperative-sticky")
    a = start_py_member(tmp_path, "coop-a", "confluent", broker.bootstrap, group, topic, *args)
    members = [a]
    try:
        wait_for(lambda: settled([a], range(6), quiet=1.0), 30, "the first member to own all 6 partitions", members)
        before = len(a.rebalance_events())
        b = start_py_member(tmp_path, "coop-b", "confluent", broker.bootstrap, group, topic, *args)
        members.append(b)
        owned = wait_for(lambda: settled([a, b], range(6), quiet=2.0), 40, "two members to share 6 partitions",
                         members)
        assert [len(s) for s in owned] == [3, 3], report(members)

        # Incremental: the first member gives up only what moves; it never holds nothing.
        held, revoked = set(range(6)), set()
        for e in a.rebalance_events()[before:]:
            if e["ev"] == "assigned":
                held |= set(e["partitions"])
            else:
                assert e["ev"] == "revoked", e
                held -= set(e["partitions"])
                revoked |= set(e["partitions"])
            assert held, f"the first member lost all its partitions\n{report(members)}"
        assert revoked == owned[1], report(members)
        assert owned[0] < set(range(6))
        assert [set(e["partitions"]) for e in b.rebalance_events() if e["partitions"]] == [owned[1]], report(members)

        acked = set(produce_keyed(broker.bootstrap, topic, 600))
        wait_for(lambda: acked <= set(a.consumed()) | set(b.consumed()), 30, "both members to consume", members)
        assert {p for p, _ in a.consumed()} == owned[0] and {p for p, _ in b.consumed()} == owned[1]
        for m in members:
            assert not m.snapshot(("commit_failed", "error")), m.report()
    finally:
        for m in members:
            m.stop()


# 8 -------------------------------------------------------------------------------------------------


def test_internal_topic_not_writable(broker_factory):
    broker = broker_factory(**FAST)
    create(broker.bootstrap, "plain", partitions=1)
    # A commit makes the coordinator create __consumer_offsets.
    k = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="makes-offsets-topic", enable_auto_commit=False)
    k.assign([KTP("plain", 0)])
    k.commit({KTP("plain", 0): OffsetAndMetadata(0, "", -1)})
    k.close()

    rc, out, err = kafka_tool("kafka-topics", "--bootstrap-server", broker.bootstrap, "--list")
    assert rc == 0 and "__consumer_offsets" in out.split() and "plain" in out.split(), (out, err)
    rc, out, err = kafka_tool("kafka-topics", "--bootstrap-server", broker.bootstrap, "--list", "--exclude-internal")
    assert rc == 0 and out.split() == ["plain"], (out, err)
    rc, out, err = kafka_tool("kafka-topics", "--bootstrap-server", broker.bootstrap, "--describe",
                              "--topic", "__consumer_offsets")
    assert rc == 0 and "PartitionCount: 3" in out and "cleanup.policy=compact" in out, (out, err)

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    internal = {t["name"]: t["is_internal"] for t in admin.describe_topics(["__consumer_offsets", "plain"])}
    admin.close()
    assert internal == {"__consumer_offsets": True, "plain": False}

    # Producing to it is refused with INVALID_TOPIC_EXCEPTION (17), librdkafka's TOPIC_EXCEPTION.
    errors = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 15000})
    p.produce("__consumer_offsets", key=b"k", value=b"v", partition=0,
              on_delivery=lambda err, msg: errors.append(err))
    p.flush(20)
    assert len(errors) == 1 and errors[0] is not None, errors
    assert errors[0].code() == KafkaError.TOPIC_EXCEPTION == 17, errors[0]
    # kafka-python hides internal topics from its producer's metadata (exclude_internal_topics),
    # so it refuses such a send itself before the broker sees it: nothing to check there.


# 9 -------------------------------------------------------------------------------------------------


def test_consumer_protocol_group_java_and_librdkafka(broker_factory, tmp_path):
    """KIP-848: the Java client and librdkafka, both with group.protocol=consumer, share a group
    whose assignment the broker computes; a member killed with kill -9 is fenced after the
    session timeout and its partitions go to the survivor; nothing is skipped."""
    broker = broker_factory(**FAST, **{"group.consumer.heartbeat.interval.ms": "500",
                                       "group.consumer.session.timeout.ms": str(SESSION_MS)})
    topic, group, n = "kip848", "next-gen", 600
    create(broker.bootstrap, topic, partitions=6)
    acked = produce_keyed(broker.bootstrap, topic, n)
    java = start_java_member(tmp_path, "java-848", broker.bootstrap, group, topic, protocol="consumer")
    members = [java]
    try:
        wait_for(lambda: java.assignment() == set(range(6)), 60, "the Java member to own all 6", members)
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "group.protocol": "consumer",
                      "client.id": "rdkafka-848", "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe([topic])
        consumed = []

        def poll_until(cond, timeout, what):
            deadline = time.time() + timeout
            while time.time() < deadline:
                m = c.poll(0.1)
                if m is not None:
                    assert m.error() is None, m.error()
                    consumed.append((m.partition(), m.offset()))
                    c.commit(m, asynchronous=False)
                if cond():
                    return
            raise AssertionError(f"timed out waiting for {what}: librdkafka owns "
                                 f"{sorted(p.partition for p in c.assignment())}\n{report(members)}")

        mine = lambda: {p.partition for p in c.assignment()}  # noqa: E731
        poll_until(lambda: len(mine()) == 3 and java.assignment() == set(range(6)) - mine(), 30,
                   "a 3 + 3 split between librdkafka and Java")
        # The broker computed it: both members are described with their epochs and assignments.
        rc, out, err = kafka_tool("kafka-consumer-groups", "--bootstrap-server", broker.bootstrap,
                                  "--describe", "--group", group, "--members", "--verbose")
        assert rc == 0, err
        header = next(line.split() for line in out.splitlines() if line.startswith("GROUP"))
        assert header == ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS", "CURRENT-EPOCH",
                          "CURRENT-ASSIGNMENT", "TARGET-EPOCH", "TARGET-ASSIGNMENT"], out
        rows = {r[3]: dict(zip(header, r)) for r in (line.split() for line in out.splitlines())
                if r and r[0] == group}
        assert set(rows) == {"java-848", "rdkafka-848"}, out
        owned = set()
        for r in rows.values():
            assert r["#PARTITIONS"] == "3" and r["CURRENT-ASSIGNMENT"] == r["TARGET-ASSIGNMENT"], out
            assert r["CURRENT-EPOCH"] == r["TARGET-EPOCH"], out
            owned |= {int(p) for p in r["CURRENT-ASSIGNMENT"].split(":")[1].split(",")}
        assert owned == set(range(6)), out
        assert {int(p) for p in rows["rdkafka-848"]["CURRENT-ASSIGNMENT"].split(":")[1].split(",")} == mine()
        java.kill9()
        t0 = time.time()
        poll_until(lambda: mine() == set(range(6)), SESSION_MS / 1000 + 15, "librdkafka to take over")
        assert time.time() - t0 >= SESSION_MS / 1000 - 2, "partitions moved before the session expired"
        poll_until(lambda: set(acked) <= set(consumed) | set(java.consumed()), 30, "every record consumed")
        c.close()
    finally:
        for m in members:
            m.kill9()
