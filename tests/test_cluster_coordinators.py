"""Coordinator failover on a three-node Runnel cluster, with real clients: the broker that
coordinates a consumer group (the leader of the group's `__consumer_offsets` partition) is killed
with SIGKILL while the group consumes, and the broker that coordinates a transactional id (the
leader of its `__transaction_state` partition) is killed while a transactional copier copies a
topic — Apache Kafka's TransactionalMessageCopier (the Java client) and a copier written on
librdkafka (confluent-kafka). The checkers: the group resumes at its committed offsets (nothing
skipped, no acknowledged commit lost); the copied topic holds every input record exactly once
for read_committed.

RUNNEL_COORDINATOR_CYCLES sets the number of coordinator kills per test (default 3)."""

import os
import threading
import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from helpers import kafka_tool, transactional_copier
from test_cluster import create_topic, partitions_of

CYCLES = int(os.environ.get("RUNNEL_COORDINATOR_CYCLES", "3"))

# Few internal partitions keep start-up and loading short; replication factors stay Kafka's
# defaults (3, capped at the brokers) and transaction.state.log.min.isr its default 2.
SETTINGS = {
    "offsets.topic.num.partitions": "3",
    "transaction.state.log.num.partitions": "3",
}


def java_hash(s):
    """Java's String.hashCode, as Kafka uses it to place a group or transactional id."""
    h = 0
    for unit in s.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def coordinator_partition(key, partitions):
    h = java_hash(key)
    return 0 if h == -(1 << 31) else abs(h) % partitions


def coordinator_index(cluster, topic, key):
    """The node index leading `key`'s partition of an internal topic, as every live node reports it."""

    def agreed():
        leaders = set()
        for i in cluster.live_indexes():
            parts = partitions_of(cluster, i, topic)
            leaders.add(parts[coordinator_partition(key, len(parts))].leader)
        if len(leaders) == 1:
            leader = leaders.pop()
            if leader > 0:
                return leader
        return None

    return cluster.index_of(cluster.wait_for(f"the coordinator of {key}", agreed, 30))


def produce_numbered(bootstrap, topic, n, partitions):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, value=b"%d" % i, partition=i % partitions)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(60) == 0


def end_offsets(bootstrap, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "end-offsets"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=15)[1] for p in range(partitions)}
    finally:
        c.close()


def read_committed(bootstrap, topic, partitions, quiet_s=3.0, timeout_s=90):
    """Every record of the topic visible to read_committed, from the start."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.time()}",
                  "isolation.level": "read_committed", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out, last, start = [], time.time(), time.time()
    while time.time() - last < quiet_s and time.time() - start < timeout_s:
        m = c.poll(0.2)
        if m is None or m.error() is not None:
            continue
        out.append(m.value().decode())
        last = time.time()
    c.close()
    return out


def bounce(cluster, i, down_s=2.0):
    """SIGKILL node i, leave it down a moment (the others take over), start it again."""
    cluster.kill9(i)
    time.sleep(down_s)
    cluster.start(i)


# ---------------------------------------------------------------- consumer groups


class GroupConsumer:
    """One member of a consumer group in its own thread: reads at a bounded rate, commits
    synchronously every `every` records and remembers the commits the coordinator acknowledged."""

    def __init__(self, bootstrap, group, topic, protocol="classic", rate=400, every=50):
        conf = {
            "bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
            # A commit lost by the failover would resume at the end: records skipped, detected.
            "auto.offset.reset": "latest",
            "topic.metadata.refresh.interval.ms": 1000,
            "group.protocol": protocol,
        }
        if protocol == "classic":
            conf.update({"session.timeout.ms": 10000, "heartbeat.interval.ms": 1000})
        self.c = Consumer(conf)
        self.topic, self.interval, self.every = topic, 1.0 / rate, every
        self.seen = Counter()
        self.acked = {}  # partition -> highest offset a commit acknowledged
        self.commit_errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.c.subscribe([self.topic])
        self._thread.start()
        return self

    def _commit(self):
        try:
            done = self.c.commit(asynchronous=False)
        except KafkaException as e:
            self.commit_errors.append(str(e))
            return
        for tp in done or []:
            if tp.error is None and tp.offset >= 0:
                self.acked[tp.partition] = max(self.acked.get(tp.partition, 0), tp.offset)

    def _run(self):
        since = 0
        while not self._stop.is_set():
            m = self.c.poll(0.2)
            if m is None or m.error() is not None:
                continue
            self.seen[int(m.value())] += 1
            since += 1
            if since >= self.every:
                self._commit()
                since = 0
            time.sleep(self.interval)
        self._commit()

    def stop(self):
        self._stop.set()
        self._thread.join(30)
        self.c.close()


def commit_start(bootstrap, group, topic, partitions):
    """Commits offset 0 for every partition, so the group starts at the beginning while its
    auto.offset.reset stays `latest`."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    deadline = time.time() + 30
    while True:
        try:
            c.commit(offsets=[TopicPartition(topic, p, 0) for p in range(partitions)], asynchronous=False)
            break
        except KafkaException:
            if time.time() > deadline:
                raise
            time.sleep(0.5)
    c.close()


def committed_offsets(bootstrap, group, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return {tp.partition: tp.offset for tp in
                c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=20)}
    finally:
        c.close()


def consumer_group_epochs(bootstrap, group):
    """(group epoch, {member id: member epoch}) of a KIP-848 group, from ConsumerGroupDescribe
    through kafka-consumer-groups."""
    rc, out, err = kafka_tool("kafka-consumer-groups", "--bootstrap-server", bootstrap, "--describe",
                              "--group", group, "--state", "--verbose")
    assert rc == 0, err
    rows = [line.split() for line in out.splitlines() if line.strip()]
    header = rows[0]
    group_epoch = int(rows[1][header.index("GROUP-EPOCH")])
    rc, out, err = kafka_tool("kafka-consumer-groups", "--bootstrap-server", bootstrap, "--describe",
                              "--group", group, "--members", "--verbose")
    assert rc == 0, err
    rows = [line.split() for line in out.splitlines() if line.strip()]
    header = rows[0]
    members = {r[header.index("CONSUMER-ID")]: int(r[header.index("CURRENT-EPOCH")]) for r in rows[1:]}
    return group_epoch, members


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_group_coordinator_killed_while_the_group_consumes(cluster_factory, protocol):
    cluster = cluster_factory(**SETTINGS)
    # Enough records for every cycle to kill the coordinator mid-consumption.
    topic, group, parts, n = "fo-group-in", f"fo-group-{protocol}", 3, 3000 + 2000 * CYCLES
    create_topic(cluster.bootstrap, topic, parts)
    produce_numbered(cluster.bootstrap, topic, n, parts)
    commit_start(cluster.bootstrap, group, topic, parts)
    member = GroupConsumer(cluster.bootstrap, group, topic, protocol).start()
    try:
        for cycle in range(CYCLES):
            before = sum(member.seen.values())
            cluster.wait_for(f"cycle {cycle}: the group consumes",
                             lambda: sum(member.seen.values()) >= before + 300 or len(member.seen) == n, 60)
            assert len(member.seen) < n, f"the group consumed everything before kill {cycle + 1} of {CYCLES}"
            i = coordinator_index(cluster, "__consumer_offsets", group)
            acked_before = dict(member.acked)
            if protocol == "consumer":
                epochs_before = cluster.wait_for("the group described",
                                                 lambda: consumer_group_epochs(cluster.bootstrap, group), 30)
            bounce(cluster, i)
            print(f"cycle {cycle}: killed node {i + 1}, the coordinator of {group}; acknowledged commits {acked_before}")
            if protocol == "consumer":
                # The new coordinator loaded the membership: same member, epochs kept (a lost
                # state would restart the group at epoch 1 with a rejoined member).
                after = cluster.wait_for("the group described by the new coordinator",
                                         lambda: consumer_group_epochs(cluster.bootstrap, group), 30)
                print(f"cycle {cycle}: epochs before {epochs_before}, after {after}")
                assert after[0] >= epochs_before[0], (epochs_before, after)
                assert set(after[1]) == set(epochs_before[1]), (epochs_before, after)
                for m, e in after[1].items():
                    assert e >= epochs_before[1][m], (epochs_before, after)
                # And the member never had to join again.
                joins = sum(text.count(f"member joined the consumer group group={group}")
                            for text in cluster.logs().values())
                assert joins == 1, f"the member joined {joins} times: its membership was lost"
        cluster.wait_for("every record consumed", lambda: len(member.seen) == n, 120)
    finally:
        member.stop()
    skipped = sorted(set(range(n)) - set(member.seen))
    assert not skipped, f"{len(skipped)} records skipped, first {skipped[:20]}"
    ends = end_offsets(cluster.bootstrap, topic, parts)
    committed = committed_offsets(cluster.bootstrap, group, topic, parts)
    assert committed == ends, (committed, ends)
    # No acknowledged commit was lost: the stored offsets never fell below one (checked at the
    # end, where the final commit must equal the end of each partition, and during the run by
    # nothing being skipped with auto.offset.reset=latest).
    for p, off in member.acked.items():
        assert committed[p] >= off, (p, committed[p], off)
    dups = sum(c - 1 for c in member.seen.values())
    print(f"{n} records, {dups} read twice after failovers, {len(member.commit_errors)} commit errors")


# ---------------------------------------------------------------- transactions


class RdkafkaCopier:
    """A transactional copier on librdkafka: consume (read_committed), produce, send the offsets
    to the transaction, commit; an abortable error aborts and rewinds to the committed offsets; a
    fatal one starts a new producer (fencing the old)."""

    def __init__(self, bootstrap, src, dst, dst_partitions, tid, group):
        self.bootstrap, self.src, self.dst, self.dst_partitions = bootstrap, src, dst, dst_partitions
        self.tid = tid
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "isolation.level": "read_committed",
            "topic.metadata.refresh.interval.ms": 1000,
        })
        self.producer = None
        self.copied = 0
        self.errors = []
        self.phase = "starting"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _new_producer(self):
        self.producer = Producer({
            "bootstrap.servers": self.bootstrap, "transactional.id": self.tid, "linger.ms": 5,
            "transaction.timeout.ms": 20000, "topic.metadata.refresh.interval.ms": 1000,
        })
        deadline = time.time() + 60
        while True:
            try:
                self.producer.init_transactions(15)
                return
            except KafkaException as e:
                self.errors.append(f"init: {e}")
                if time.time() > deadline:
                    raise

    def start(self):
        self._new_producer()
        self.consumer.subscribe([self.src])
        self._thread.start()
        return self

    def _rewind(self):
        assigned = self.consumer.assignment()
        if not assigned:
            return
        for tp in self.consumer.committed(assigned, timeout=20):
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else 0))

    def _run(self):
        while not self._stop.is_set():
            self.phase = f"consume at {time.time():.1f}"
            msgs = self.consumer.consume(50, 0.5)
            for m in msgs:
                if m.error() is not None:
                    self.errors.append(f"consume: {m.error()}")
            msgs = [m for m in msgs if m.error() is None]
            if not msgs:
                continue
            try:
                self.phase = f"produce at {time.time():.1f}"
                self.producer.begin_transaction()
                for m in msgs:
                    v = int(m.value())
                    self.producer.produce(self.dst, value=m.value(), partition=v % self.dst_partitions)
                positions = self.consumer.position(self.consumer.assignment())
                self.phase = f"send offsets at {time.time():.1f}"
                self.producer.send_offsets_to_transaction(positions, self.consumer.consumer_group_metadata(), 30)
                self.phase = f"commit at {time.time():.1f}"
                self._commit()
                self.copied += len(msgs)
                # A bounded rate, so that the coordinator dies mid-copy in every cycle.
                time.sleep(0.05)
            except KafkaException as e:
                err = e.args[0]
                self.errors.append(str(err))
                try:
                    if err.txn_requires_abort():
                        self.producer.abort_transaction(30)
                    else:
                        self._new_producer()
                except KafkaException as e2:
                    self.errors.append(f"recovering: {e2}")
                    self._new_producer()
                self._rewind()

    def _commit(self):
        while True:
            try:
                self.producer.commit_transaction(30)
                return
            except KafkaException as e:
                if not e.args[0].retriable():
                    raise
                self.errors.append(f"commit retried: {e}")

    def stop(self):
        self._stop.set()
        self._thread.join(60)
        self.consumer.close()


def check_exactly_once(bootstrap, dst, dst_partitions, n):
    out = read_committed(bootstrap, dst, dst_partitions)
    counts = Counter(out)
    missing = sorted(set(range(n)) - {int(v) for v in counts})
    assert not missing, f"{len(missing)} input records missing from the output, first {missing[:20]}"
    dups = [v for v, c in counts.items() if c > 1]
    assert not dups, f"{len(dups)} records copied more than once, first {dups[:20]}"


@pytest.mark.parametrize("client", ["librdkafka", "java"])
def test_transaction_coordinator_killed_while_a_copier_copies(cluster_factory, tmp_path, client):
    cluster = cluster_factory(**SETTINGS)
    src, dst, tid, group = "txn-fo-in", "txn-fo-out", f"copier-{client}", f"copier-{client}-group"
    # The Java copier cannot be slowed down: it gets more records to copy.
    n = 6000 if client == "librdkafka" else 40000
    create_topic(cluster.bootstrap, src, 1)
    create_topic(cluster.bootstrap, dst, 2)
    produce_numbered(cluster.bootstrap, src, n, 1)

    if client == "librdkafka":
        copier = RdkafkaCopier(cluster.bootstrap, src, dst, 2, tid, group).start()
        progress = lambda: copier.copied  # noqa: E731
        finished = lambda: copier.copied >= n  # noqa: E731
    else:
        proc, seen, _ = transactional_copier(cluster.bootstrap, src, dst, tid, group, tmp_path / "copier.stderr")
        progress = lambda: seen[-1].get("totalProcessed", 0) if seen else 0  # noqa: E731
        finished = lambda: bool(seen) and seen[-1].get("remaining") == 0  # noqa: E731

    try:
        kills = 0
        for cycle in range(CYCLES):
            before = progress()
            cluster.wait_for(f"cycle {cycle}: the copier progresses",
                             lambda: progress() >= before + 300 or finished(), 90)
            if finished():
                break
            i = coordinator_index(cluster, "__transaction_state", tid)
            bounce(cluster, i)
            kills += 1
            print(f"cycle {cycle}: killed node {i + 1}, the transaction coordinator of {tid}, "
                  f"{progress()} of {n} records copied")
        assert kills == CYCLES, f"the copier finished after {kills} of {CYCLES} coordinator kills"
        cluster.wait_for("the copier copied everything", finished, 180)
    finally:
        if client == "librdkafka":
            print(f"copier phase {copier.phase} (now {time.time():.1f}), {copier.copied} copied, "
                  f"errors ({len(copier.errors)}): {copier.errors[-10:]}")
            copier.stop()
        else:
            if proc.poll() is None:
                proc.wait(60)
            print((tmp_path / "copier.stderr").read_text()[-3000:])
    if client == "java":
        assert proc.returncode == 0, (tmp_path / "copier.stderr").read_text()[-3000:]
    check_exactly_once(cluster.bootstrap, dst, 2, n)
