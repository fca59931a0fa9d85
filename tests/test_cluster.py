"""A three-node Runnel cluster (every node broker+controller, `runnel serve --config <file>`) under
faults, driven by real clients: formation, a leader killed with SIGKILL mid-traffic, min.insync.replicas,
the active controller killed, a leader paused past its session timeout, the whole cluster killed, and
Apache Kafka's tools through a node that is not the leader, and a leader elected and killed before
writing anything in its epoch. The checkers: every record a producer saw acknowledged is read back
exactly once, in order per partition; once caught up, every replica's segment files hold the same bytes.
Apache Kafka's tools and Java client run in both 4.1.1 and the newest 4.x (4.4.0): the tools test
through a non-leader is parametrized, formation describes through the nodes with one version and
the other in turn, the controller-kill cycles create their topics with kafka-topics of each version
in turn, the paused-leader test describes the failover with 4.4.0 (the fault cycles run once).

RUNNEL_BOUNCE_CYCLES sets the number of leader kill/restart cycles (default 5) and
RUNNEL_CONTROLLER_CYCLES the number of active-controller kills (default 3), for a longer run
(scripts/cluster-soak.sh)."""

import os
import re
import threading
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTP
from kafka.errors import NotEnoughReplicasError

from helpers import KAFKA_NEWEST, KAFKA_TOOLS_VERSIONS, kafka_tool

BOUNCE_CYCLES = int(os.environ.get("RUNNEL_BOUNCE_CYCLES", "5"))
CONTROLLER_CYCLES = int(os.environ.get("RUNNEL_CONTROLLER_CYCLES", "3"))


# ---------------------------------------------------------------- helpers


def create_topic(bootstrap, topic, partitions=1, rf=3, config=None):
    a = AdminClient({"bootstrap.servers": bootstrap})
    for f in a.create_topics([NewTopic(topic, partitions, rf, config=config or {})], request_timeout=15).values():
        f.result(20)


def partitions_of(cluster, i, topic):
    err, parts = cluster.metadata(i).topics[topic]
    assert err == 0, f"node {i + 1}: topic {topic} error {err}"
    return parts


def wait_full_isr(cluster, topic, partitions, timeout=30):
    """Every live node reports every partition with a leader and all replicas in the ISR."""

    def ok():
        for i in cluster.live_indexes():
            parts = partitions_of(cluster, i, topic)
            if len(parts) != partitions:
                return False
            for p in parts.values():
                if p.leader < 0 or sorted(p.isr) != sorted(p.replicas) or len(p.replicas) != len(cluster):
                    return False
        return True

    cluster.wait_for(f"{topic}: a leader and a full ISR on every node", ok, timeout)


def wait_new_leader(cluster, topic, partition, old, timeout=20):
    """A leader other than `old` that every live node reports; returns (leader, leader epoch)."""

    def elected():
        seen = set()
        for i in cluster.live_indexes():
            p = partitions_of(cluster, i, topic)[partition]
            seen.add((p.leader, p.leader_epoch))
        if len(seen) == 1:
            leader, epoch = seen.pop()
            if leader not in (old, -1):
                return leader, epoch
        return None

    return cluster.wait_for(f"{topic}-{partition}: a leader other than {old}", elected, timeout)


class SteadyProducer:
    """An idempotent acks=all confluent-kafka producer writing numbered records (value = sequence
    number, partition = number % partitions) at a steady rate from its own thread."""

    def __init__(self, bootstrap, topic, partitions, rate=200, **conf):
        self.topic, self.partitions, self.interval = topic, partitions, 1.0 / rate
        config = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 60000,
            "request.timeout.ms": 5000,
            "socket.timeout.ms": 5000,
            "topic.metadata.refresh.interval.ms": 1000,
            "error_cb": self._on_error,
        }
        config.update(conf)
        self.p = Producer(config)
        self.acked = {}  # seq -> (partition, offset)
        self.failed = {}  # seq -> error
        self.errors = []  # (time, client-level errors)
        self.sent = 0
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _on_error(self, err):
        self.errors.append((time.time(), err))

    def _on_delivery(self, err, msg):
        seq = int(msg.value())
        with self.lock:
            if err is None:
                self.acked[seq] = (msg.partition(), msg.offset())
            else:
                self.failed[seq] = err

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        nxt = time.monotonic()
        while not self._stop.is_set():
            try:
                seq = self.sent
                self.p.produce(self.topic, value=b"%d" % seq, partition=seq % self.partitions,
                               on_delivery=self._on_delivery)
                self.sent += 1
            except BufferError:
                pass
            self.p.poll(0)
            nxt += self.interval
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                nxt = time.monotonic()

    def acked_count(self):
        with self.lock:
            return len(self.acked)

    def wait_acks_beyond(self, n, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.acked_count() >= n:
                return
            time.sleep(0.1)
        raise AssertionError(f"{what}: producer stuck at {self.acked_count()} acks (wanted {n}) after {timeout} s; "
                             f"failures so far: {self.failure_summary()}; client errors: {self.errors[-5:]}")

    def wait_every_partition_progresses(self, timeout, what, n=50):
        """Each partition gets n more acknowledgements within timeout."""
        def per_partition():
            with self.lock:
                counts = [0] * self.partitions
                for p, _ in self.acked.values():
                    counts[p] += 1
                return counts

        base = per_partition()
        deadline = time.time() + timeout
        while time.time() < deadline:
            now = per_partition()
            if all(b + n <= c for b, c in zip(base, now)):
                return
            time.sleep(0.1)
        raise AssertionError(f"{what}: acknowledgements per partition went {base} -> {per_partition()} in "
                             f"{timeout} s (wanted +{n} each); failures: {self.failure_summary()}")

    def stop(self, flush_timeout=60):
        self._stop.set()
        self._thread.join()
        left = self.p.flush(flush_timeout)
        return left

    def abort(self):
        """Stops producing and drops whatever is still queued (test teardown)."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self.p.purge()
            self.p.flush(1)

    def fatal(self):
        return [e for _, e in self.errors if e.fatal()]

    def failure_summary(self):
        with self.lock:
            kinds = {}
            for e in self.failed.values():
                kinds[e.name()] = kinds.get(e.name(), 0) + 1
            return kinds


def read_partition(bootstrap, topic, partition, timeout=60):
    """Every record of the partition from offset 0 up to its high watermark: [(offset, value)].
    kafka-python without a group: the checker needs no group coordinator."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      request_timeout_ms=15000, max_poll_records=2000)
    try:
        tp = KTP(topic, partition)
        c.assign([tp])
        high = c.end_offsets([tp])[tp]
        c.seek(tp, 0)
        got = []
        deadline = time.time() + timeout
        while (not got or got[-1][0] < high - 1) and high > 0 and time.time() < deadline:
            for records in c.poll(timeout_ms=500).values():
                got += [(m.offset, m.value) for m in records]
        assert high == 0 or (got and got[-1][0] == high - 1), \
            f"{topic}-{partition}: read {len(got)} records, last {got[-1:]} but high watermark {high}"
        return got
    finally:
        c.close()


def check_acked_read_back(bootstrap, topic, partitions, acked, skip_prefix=None):
    """Every acknowledged record is in the log exactly once, at the offset it was acknowledged with;
    in each partition the numbered records appear in the order they were produced. Records whose
    value starts with `skip_prefix` (other writers' filler) are left out."""
    total = 0
    for part in range(partitions):
        got = read_partition(bootstrap, topic, part)
        if skip_prefix is not None:
            got = [(o, v) for o, v in got if not v.startswith(skip_prefix)]
        total += len(got)
        seqs = [int(v) for _, v in got]
        dups = sorted({s for s in seqs if seqs.count(s) > 1}) if len(set(seqs)) != len(seqs) else []
        assert not dups, f"{topic}-{part}: duplicated records {dups[:20]} (idempotent producer)"
        assert all(s % partitions == part for s in seqs), f"{topic}-{part}: a record of another partition"
        assert seqs == sorted(seqs), f"{topic}-{part}: out of order: " + \
            str([(a, b) for a, b in zip(seqs, seqs[1:]) if b < a][:10])
        at = dict(got)
        present = set(seqs)
        mine = sorted((o, s) for s, (p, o) in acked.items() if p == part and o is not None)
        # librdkafka acknowledges some records without an offset (a retried idempotent batch whose
        # first attempt's outcome it never saw): those are looked up by value.
        no_offset = sorted(s for s, (p, o) in acked.items() if p == part and o is None)
        missing = [(o, s) for o, s in mine if at.get(o) != b"%d" % s]
        missing += [(None, s) for s in no_offset if s not in present]
        assert not missing, (f"{topic}-{part}: {len(missing)} of {len(mine) + len(no_offset)} acknowledged records "
                             f"missing or moved, first (offset, seq): {missing[:10]}; log has offsets "
                             f"{got[0][0] if got else None}..{got[-1][0] if got else None}")
        print(f"{topic}-{part}: {len(mine) + len(no_offset)} acknowledged ({len(no_offset)} without an offset), "
              f"{len(got)} in the log")
    return total


def describe_tool(bootstrap, topic, version=None):
    """kafka-topics --describe (Kafka `version`) through one node: {partition: (leader, replicas, isr)}."""
    rc, out, err = kafka_tool("kafka-topics", "--bootstrap-server", bootstrap, "--describe", "--topic", topic,
                              version=version)
    assert rc == 0, f"Kafka {version}: {err}"
    rows = {}
    for m in re.finditer(r"Partition: (\d+)\s+Leader: (-?\d+|none)\s+Replicas: ([\d,]*)\s+Isr: ([\d,]*)", out):
        ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
        leader = -1 if m.group(2) == "none" else int(m.group(2))
        rows[int(m.group(1))] = (leader, ints(m.group(3)), ints(m.group(4)))
    assert rows, out
    return rows, out


@pytest.fixture
def steady():
    """steady(bootstrap, topic, partitions, rate=...) starts a SteadyProducer, stopped at teardown
    even when the test fails half-way."""
    made = []

    def make(*args, **kwargs):
        made.append(SteadyProducer(*args, **kwargs))
        return made[-1].start()

    yield make
    for p in made:
        p.abort()


# ---------------------------------------------------------------- tests


def test_formation_three_brokers_one_controller_and_full_isr(cluster_factory):
    cluster = cluster_factory(wait_formed=False)
    t0 = time.time()

    def formed():
        views = [cluster.metadata(i) for i in range(3)]
        if all(sorted(v.brokers) == [1, 2, 3] for v in views) and len({v.controller for v in views}) == 1 \
                and views[0].controller in (1, 2, 3):
            return views
        return None

    views = cluster.wait_for("every node lists 3 brokers and one controller", formed, timeout=30)
    print(f"formed in {time.time() - t0:.2f} s, controller {views[0].controller}")
    ids = {v.cluster_id for v in views}
    assert len(ids) == 1 and None not in ids and "" not in ids, ids
    on_disk = {re.search(r"cluster\.id=(\S+)", (n.data_dir / "meta.properties").read_text()).group(1)
               for n in cluster.nodes}
    assert on_disk == ids, (on_disk, ids)
    for v in views:
        assert {b: (h, p) for b, (h, p, _) in v.brokers.items()} == \
            {n.node_id: ("127.0.0.1", n.port) for n in cluster.nodes}

    rc, out, err = kafka_tool("kafka-topics", "--bootstrap-server", cluster[0].bootstrap, "--create",
                              "--topic", "formed", "--partitions", "3", "--replication-factor", "3",
                              version=KAFKA_NEWEST)
    assert rc == 0, err
    for i, n in enumerate(cluster.nodes):
        version = KAFKA_TOOLS_VERSIONS[i % len(KAFKA_TOOLS_VERSIONS)]  # 4.1.1, 4.4.0, 4.1.1
        deadline = time.time() + 30
        while True:
            rows, out = describe_tool(n.bootstrap, "formed", version)
            if len(rows) == 3 and all(len(isr) == 3 and sorted(r) == [1, 2, 3] for _, r, isr in rows.values()):
                break
            assert time.time() < deadline, f"through node {n.node_id} (Kafka {version}):\n{out}"
            time.sleep(1)
        # Leaders are spread over the brokers.
        assert sorted(leader for leader, _, _ in rows.values()) == [1, 2, 3], out


def test_hard_bounce_of_the_leader_loses_no_acknowledged_record(cluster, steady):
    topic, parts = "bounce", 3
    create_topic(cluster[0].bootstrap, topic, parts, 3, {"min.insync.replicas": "2"})
    wait_full_isr(cluster, topic, parts)
    prod = steady(cluster.bootstrap, topic, parts, rate=200)
    prod.wait_acks_beyond(200, 20, "before the first kill")
    epochs = []
    for cycle in range(BOUNCE_CYCLES):
        wait_full_isr(cluster, topic, parts, timeout=40)
        leader = cluster.leader_of(topic, 0)
        before = partitions_of(cluster, cluster.index_of(leader), topic)[0].leader_epoch
        cluster.kill9(cluster.index_of(leader))
        t = time.time()
        new, epoch = wait_new_leader(cluster, topic, 0, leader)
        took = time.time() - t
        assert epoch > before, f"leader epoch {before} -> {epoch}"
        epochs.append(epoch)
        n = prod.acked_count()
        prod.wait_acks_beyond(n + 100, 30, f"cycle {cycle}: writes with node {leader} down")
        cluster.start(cluster.index_of(leader))
        print(f"cycle {cycle}: killed leader {leader}, new leader {new} (epoch {epoch}) after {took:.1f} s, "
              f"{prod.acked_count()} acks")
    wait_full_isr(cluster, topic, parts, timeout=40)
    prod.wait_every_partition_progresses(30, "after the last restart")
    left = prod.stop()
    assert not prod.fatal(), f"fatal producer errors: {prod.fatal()}"
    print(f"sent {prod.sent}, acked {len(prod.acked)}, failed {prod.failure_summary()}, unflushed {left}")
    assert left == 0
    assert epochs == sorted(epochs)
    check_acked_read_back(cluster.bootstrap, topic, parts, prod.acked)
    for part in range(parts):
        cluster.wait_replicas_identical(topic, part)


def test_min_insync_replicas_refuses_acks_all_while_a_follower_is_down(cluster):
    topic = "minisr"
    create_topic(cluster[0].bootstrap, topic, 1, 3, {"min.insync.replicas": "3"})
    wait_full_isr(cluster, topic, 1)
    leader = cluster.leader_of(topic, 0)
    follower = next(i for i in range(3) if i != cluster.index_of(leader))

    def send(acks, value):
        p = KafkaProducer(bootstrap_servers=cluster.live_bootstrap(), acks=acks, retries=0,
                          request_timeout_ms=10000, max_block_ms=10000)
        try:
            return p.send(topic, value=value, partition=0).get(timeout=20)
        finally:
            p.close(timeout=5)

    assert send("all", b"full-isr").offset == 0
    cluster.kill9(follower)

    def shrunk():
        p = partitions_of(cluster, cluster.index_of(leader), topic)[0]
        return p if sorted(p.isr) == sorted(set([1, 2, 3]) - {follower + 1}) else None

    p = cluster.wait_for(f"ISR without node {follower + 1}", shrunk, timeout=20)
    assert p.leader == leader
    with pytest.raises(NotEnoughReplicasError):
        send("all", b"refused")
    one = send(1, b"acks-1")
    assert one.offset == 1
    cluster.start(follower)
    wait_full_isr(cluster, topic, 1, timeout=30)
    assert send("all", b"whole-again").offset == 2
    got = read_partition(cluster.bootstrap, topic, 0)
    assert got == [(0, b"full-isr"), (1, b"acks-1"), (2, b"whole-again")]


def test_killing_the_active_controller_elects_another(cluster):
    created = []
    for cycle in range(CONTROLLER_CYCLES):
        def agreed():
            cs = {cluster.metadata(i).controller for i in range(3)}
            return cs.pop() if len(cs) == 1 and -1 not in cs and None not in cs else None

        ctrl = cluster.wait_for("all nodes agree on a controller", agreed, timeout=20)
        cluster.kill9(cluster.index_of(ctrl))
        survivors = cluster.live_indexes()
        t = time.time()

        def moved():
            cs = {cluster.metadata(i).controller for i in survivors}
            c = cs.pop() if len(cs) == 1 else None
            return c if c not in (None, -1, ctrl) else None

        new = cluster.wait_for(f"a controller other than {ctrl}", moved, timeout=20)
        took = time.time() - t
        # Created by kafka-topics through a survivor (forwarded to the new controller), 4.1.1 and 4.4.0 in turn.
        name, version = f"after-controller-{cycle}", KAFKA_TOOLS_VERSIONS[cycle % len(KAFKA_TOOLS_VERSIONS)]
        rc, out, err = kafka_tool("kafka-topics", "--bootstrap-server", cluster[survivors[cycle % 2]].bootstrap,
                                  "--create", "--topic", name, "--partitions", "2", "--replication-factor", "2",
                                  version=version)
        assert rc == 0 and f"Created topic {name}." in out, f"Kafka {version}: {out}\n{err}"
        created.append(name)
        print(f"cycle {cycle}: killed controller {ctrl}, new controller {new} after {took:.1f} s; "
              f"created {name} with Kafka {version}'s kafka-topics")
        assert took < 15
        cluster.start(cluster.index_of(ctrl))
        cluster.wait_for(f"node {ctrl} back among the brokers",
                         lambda: all(sorted(cluster.metadata(i).brokers) == [1, 2, 3] for i in range(3)), 30)

    def same_topics():
        lists = [{t for t, (e, _) in cluster.metadata(i).topics.items() if e == 0} for i in range(3)]
        return lists[0] if all(x == lists[0] for x in lists) and set(created) <= lists[0] else None

    names = cluster.wait_for("every node lists the same topics", same_topics, timeout=30)
    for i in range(3):
        for name in created:
            for p in partitions_of(cluster, i, name).values():
                assert p.leader in (1, 2, 3) and len(p.replicas) == 2, (i, name, p)
    print(f"topics: {sorted(names)}")


def test_paused_leader_is_replaced_and_catches_up(cluster, steady):
    topic = "paused"
    create_topic(cluster[0].bootstrap, topic, 1, 3, {"min.insync.replicas": "2"})
    wait_full_isr(cluster, topic, 1)
    leader = cluster.leader_of(topic, 0)
    li = cluster.index_of(leader)
    epoch0 = partitions_of(cluster, li, topic)[0].leader_epoch
    prod = steady(cluster.bootstrap, topic, 1, rate=200)
    prod.wait_acks_beyond(200, 20, "before the pause")
    cluster.pause(li)
    t = time.time()
    new, epoch = wait_new_leader(cluster, topic, 0, leader, timeout=20)
    print(f"node {leader} paused: leader {new} (epoch {epoch0} -> {epoch}) after {time.time() - t:.1f} s")
    assert epoch > epoch0
    # Kafka 4.4.0's kafka-topics through a live node sees the failover: the new leader, the paused node
    # out of the ISR (fenced) but still a replica.
    rows, out = describe_tool(cluster.live_bootstrap(), topic, KAFKA_NEWEST)
    assert rows[0][0] == new and leader not in rows[0][2] and len(rows[0][2]) == 2, out
    assert sorted(rows[0][1]) == [1, 2, 3], out
    n = prod.acked_count()
    prod.wait_acks_beyond(n + 300, 30, f"writes while node {leader} is paused")
    acked_during_pause = prod.acked_count() - n
    cluster.resume(li)
    t = time.time()

    def stepped_down():
        p = partitions_of(cluster, li, topic)[0]  # the old leader's own view
        return p if p.leader == new and p.leader_epoch == epoch else None

    cluster.wait_for(f"node {leader} follows {new} after resume", stepped_down, timeout=30)
    wait_full_isr(cluster, topic, 1, timeout=30)
    print(f"node {leader} back in the ISR {time.time() - t:.1f} s after resume")
    n = prod.acked_count()
    prod.wait_acks_beyond(n + 100, 30, "after resume")
    left = prod.stop()
    assert not prod.fatal(), prod.fatal()
    assert left == 0
    print(f"sent {prod.sent}, acked {len(prod.acked)} ({acked_during_pause} during the pause), "
          f"failed {prod.failure_summary()}")
    check_acked_read_back(cluster.bootstrap, topic, 1, prod.acked)
    # The old leader dropped whatever it had appended alone while paused: its log is the new leader's.
    cluster.wait_replicas_identical(topic, 0)


def test_whole_cluster_killed_mid_traffic_and_restarted(cluster, steady):
    topic, parts = "blackout", 3
    create_topic(cluster[0].bootstrap, topic, parts, 3, {"min.insync.replicas": "2"})
    wait_full_isr(cluster, topic, parts)
    prod = steady(cluster.bootstrap, topic, parts, rate=300)
    prod.wait_acks_beyond(600, 20, "before the blackout")
    for n in cluster.nodes:
        n.proc.send_signal(9)
    for i in range(3):
        cluster.kill9(i)
    at_kill = prod.acked_count()
    time.sleep(1)
    t = time.time()
    cluster.start_all()

    def led():
        for i in range(3):
            ps = partitions_of(cluster, i, topic)
            if len(ps) != parts or any(p.leader not in (1, 2, 3) for p in ps.values()):
                return False
        return True

    cluster.wait_for("every partition has a leader on every node", led, timeout=60)
    print(f"all partitions led {time.time() - t:.1f} s after restart; {at_kill} acks before the kill")
    prod.wait_every_partition_progresses(45, "acks=all writes after the restart")
    left = prod.stop()
    assert not prod.fatal(), prod.fatal()
    assert left == 0
    print(f"sent {prod.sent}, acked {len(prod.acked)}, failed {prod.failure_summary()}")
    check_acked_read_back(cluster.bootstrap, topic, parts, prod.acked)
    for part in range(parts):
        cluster.wait_replicas_identical(topic, part)


def test_a_leader_that_wrote_nothing_in_its_epoch_rejoins_as_a_follower(cluster):
    """A leader elected and killed before any record of its epoch: its leader-epoch cache ends with
    an entry at its log end that no other replica has. Restarted, it must drop that entry when the
    leader reports the divergence (Kafka's truncateTo does, even when no record goes) and rejoin."""
    topic = "empty-epoch"
    create_topic(cluster[0].bootstrap, topic, 1, 3, {"min.insync.replicas": "2"})
    wait_full_isr(cluster, topic, 1)
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
    for i in range(10):
        p.produce(topic, value=b"%d" % i, partition=0)
    assert p.flush(20) == 0
    first = cluster.leader_of(topic, 0)
    cluster.kill9(cluster.index_of(first))
    second, _ = wait_new_leader(cluster, topic, 0, first)
    cluster.start(cluster.index_of(first))
    wait_full_isr(cluster, topic, 1)
    # `second` led an epoch without a record; now it goes too and comes back as a follower.
    cluster.kill9(cluster.index_of(second))
    third, _ = wait_new_leader(cluster, topic, 0, second)
    cluster.start(cluster.index_of(second))
    print(f"leaders {first} -> {second} (no records) -> {third}")
    wait_full_isr(cluster, topic, 1, timeout=30)
    for i in range(10, 20):
        p.produce(topic, value=b"%d" % i, partition=0)
    assert p.flush(20) == 0
    assert [v for _, v in read_partition(cluster.bootstrap, topic, 0)] == [b"%d" % i for i in range(20)]
    cluster.wait_replicas_identical(topic, 0)


@pytest.mark.parametrize("version", KAFKA_TOOLS_VERSIONS)
def test_java_tools_describe_and_produce_consume_through_a_non_leader(cluster, version):
    """kafka-topics, and the Java client in kafka-console-producer/consumer, of Kafka `version`."""
    topic = "tools"
    rc, out, err = kafka_tool("kafka-topics", "--bootstrap-server", cluster[1].bootstrap, "--create",
                              "--topic", topic, "--partitions", "1", "--replication-factor", "3",
                              "--config", "min.insync.replicas=2", version=version)
    assert rc == 0, err
    wait_full_isr(cluster, topic, 1)
    view = partitions_of(cluster, 0, topic)[0]
    others = [i for i in range(3) if i != cluster.index_of(view.leader)]
    rows, out = describe_tool(cluster[others[0]].bootstrap, topic, version)
    assert rows == {0: (view.leader, view.replicas, view.isr)}, out
    assert f"Leader: {view.leader}" in out and "Replicas: " + ",".join(map(str, view.replicas)) in out, out

    lines = [f"line-{i}" for i in range(50)]
    rc, out, err = kafka_tool("kafka-console-producer", "--bootstrap-server", cluster[others[0]].bootstrap,
                              "--topic", topic, "--producer-property", "acks=all",
                              input="\n".join(lines) + "\n", version=version)
    assert rc == 0, err
    assert "ERROR" not in err, err
    rc, out, err = kafka_tool("kafka-console-consumer", "--bootstrap-server", cluster[others[1]].bootstrap,
                              "--topic", topic, "--from-beginning", "--max-messages", "50",
                              "--timeout-ms", "30000", version=version)
    assert rc == 0, err
    assert out.split() == lines, (out, err)
