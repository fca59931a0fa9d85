"""A network partition that isolates a partition's leader (tests/netns.py: every node in its own
network namespace; the leader's links to the bridge go down while it keeps running).

Three nodes, a topic with one partition, replication factor 3, min.insync.replicas=2. Two idempotent
acks=all producers write numbered records to it: one in the client namespace (the majority's side)
for the whole test, and one per cycle beside the leader, in its namespace (the isolated side). The
leader stays cut off for longer than broker.session.timeout.ms, then the partition heals. Each cycle
checks that the majority elects another leader with a newer epoch and keeps acknowledging, that the
isolated side gets no acknowledgement while it is cut off, and that the old leader follows the new
one and rejoins the ISR once healed. At the end every acknowledged record is read back exactly once,
at the offset it was acknowledged with, each producer's records in the order they were produced, and
the three replicas hold the same bytes (the old leader dropped what it appended alone).

RUNNEL_PARTITION_CYCLES sets the number of isolations (default 2)."""

import os
import time

import pytest

from conftest import FAST_CLUSTER
from netns import NetnsCluster
from test_cluster import SteadyProducer, create_topic, partitions_of, read_partition, wait_full_isr

CYCLES = int(os.environ.get("RUNNEL_PARTITION_CYCLES", "2"))
SESSION_TIMEOUT_S = int(FAST_CLUSTER["broker.session.timeout.ms"]) / 1000
# Acknowledgements that arrive this soon after the cut were decided before it (the response was on
# its way, or waited for the producer's next poll).
CUT_GRACE_S = 1.0
RANGE = 10_000_000  # producer k writes the numbers k * RANGE, k * RANGE + 1, ...


class NumberedProducer(SteadyProducer):
    """A SteadyProducer whose numbers start at `first` (each producer has its own range, so the
    partition's log tells them apart) and that notes when each acknowledgement arrived."""

    def __init__(self, first, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.first = self.sent = first
        self.acked_at = {}  # seq -> time.time() of its delivery report

    def _on_delivery(self, err, msg):
        super()._on_delivery(err, msg)
        if err is None:
            with self.lock:
                self.acked_at[int(msg.value())] = time.time()

    def acked_between(self, start, end):
        with self.lock:
            return sorted((s, t) for s, t in self.acked_at.items() if start <= t <= end)


@pytest.fixture
def netns_cluster(tmp_path):
    c = NetnsCluster(tmp_path, n=3, settings=FAST_CLUSTER)
    try:
        yield c.start_all().wait_formed()
    finally:
        print(f"node logs: {[str(n.log_path) for n in c.nodes]}")
        c.close()


@pytest.fixture
def producers():
    made = []
    yield made
    for p in made:
        p.abort()


def majority_view(cluster, isolated, topic):
    """(leader, epoch, isr) that every node but `isolated` reports, or None while they differ."""
    seen = set()
    for i in range(len(cluster)):
        if i != isolated:
            p = partitions_of(cluster, i, topic)[0]
            seen.add((p.leader, p.leader_epoch, tuple(sorted(p.isr))))
    return seen.pop() if len(seen) == 1 else None


def check_read_back(log, producers):
    """Every acknowledged record of every producer is in `log` ([(offset, value)]) exactly once, at
    the offset it was acknowledged with; each producer's records appear in the order it sent them."""
    seqs = [int(v) for _, v in log]
    at = {o: int(v) for o, v in log}
    dups = sorted({s for s in seqs if seqs.count(s) > 1}) if len(set(seqs)) != len(seqs) else []
    assert not dups, f"records written twice: {dups[:20]}"
    present = set(seqs)
    for p in producers:
        mine = [s for s in seqs if s // RANGE == p.first // RANGE]
        assert mine == sorted(mine), f"producer {p.first // RANGE}: out of order: " + \
            str([(a, b) for a, b in zip(mine, mine[1:]) if b < a][:10])
        with p.lock:
            acked = dict(p.acked)
        missing = [(o, s) for s, (_, o) in sorted(acked.items()) if o is not None and at.get(o) != s]
        # librdkafka reports some acknowledgements without an offset (a retried idempotent batch
        # whose first answer it never saw): those are looked up by value.
        missing += [(None, s) for s, (_, o) in sorted(acked.items()) if o is None and s not in present]
        assert not missing, (f"producer {p.first // RANGE}: {len(missing)} of {len(acked)} acknowledged records "
                             f"missing or moved, first (acknowledged offset, seq): {missing[:10]}; at those offsets "
                             f"the log has {[at.get(o) for o, _ in missing[:10]]}; log offsets "
                             f"{log[0][0] if log else None}..{log[-1][0] if log else None}")
        print(f"producer {p.first // RANGE}: {len(acked)} acknowledged, {len(mine)} in the log, "
              f"failed {p.failure_summary()}")


def test_isolated_leader_acknowledges_nothing_and_loses_nothing(netns_cluster, producers):
    cluster = netns_cluster
    topic = "partitioned"
    cluster.in_client(create_topic, cluster.bootstrap(), topic, 1, 3, {"min.insync.replicas": "2"})
    wait_full_isr(cluster, topic, 1)

    def start_producer(where, first, bootstrap):
        def make():
            return NumberedProducer(first, bootstrap, topic, 1, rate=100).start()

        p = cluster.in_client(make) if where is None else cluster.in_node(where, make)
        producers.append(p)
        return p

    majority = start_producer(None, 0, cluster.bootstrap())
    majority.wait_acks_beyond(100, 20, "before the first isolation")

    for cycle in range(CYCLES):
        wait_full_isr(cluster, topic, 1, timeout=40)
        leader = cluster.leader_of(topic, 0)
        li = cluster.index_of(leader)
        before = partitions_of(cluster, li, topic)[0]
        controller = cluster.metadata(li).controller
        # The isolated side's producer knows only the leader's address, as a client in its rack would.
        iso = start_producer(li, (cycle + 1) * RANGE, cluster.address(li))
        iso.wait_acks_beyond(100, 20, f"cycle {cycle}: beside node {leader} before the cut")

        cluster.isolate(li)
        cut = time.time()
        new_leader, epoch, isr = cluster.wait_for(
            f"cycle {cycle}: the majority elects a leader other than {leader}",
            lambda: (v := majority_view(cluster, li, topic)) and v[0] not in (leader, -1) and v, timeout=30)
        elected_s = time.time() - cut
        assert epoch > before.leader_epoch, f"leader epoch {before.leader_epoch} -> {epoch}"
        assert leader not in isr, f"the isolated node {leader} is still in the majority's ISR {isr}"
        n = majority.acked_count()
        majority.wait_acks_beyond(n + 200, 30, f"cycle {cycle}: the majority's writes while node {leader} is cut off")
        # Stay cut off well past the session timeout, the isolated producer still trying.
        while time.time() - cut < 3 * SESSION_TIMEOUT_S:
            time.sleep(0.1)
        own_view = partitions_of(cluster, li, topic)[0]
        heal = time.time()
        cluster.heal(li)

        during = iso.acked_between(cut + CUT_GRACE_S, heal)
        assert not during, (f"cycle {cycle}: node {leader}, cut off from {cut:.3f} to {heal:.3f}, acknowledged "
                            f"{len(during)} acks=all records to the producer beside it, first (seq, time): "
                            f"{during[:5]}; offsets {[iso.acked[s] for s, _ in during[:5]]}")
        print(f"cycle {cycle}: node {leader} (controller {controller}) cut off for {heal - cut:.1f} s; "
              f"the majority elected {new_leader} (epoch {before.leader_epoch} -> {epoch}, ISR {list(isr)}) "
              f"after {elected_s:.1f} s; {majority.acked_count() - n} majority acks meanwhile, none beside node "
              f"{leader}, whose own view was {own_view}")

        def agreed():
            # Every node, the healed one too, reports one leader of an epoch at least the majority's
            # (leadership may move again once the node is back: that is allowed).
            views = {(v.leader, v.leader_epoch) for v in (partitions_of(cluster, i, topic)[0] for i in range(3))}
            if len(views) != 1:
                return None
            led_by, led_in = views.pop()
            return (led_by, led_in) if led_by != -1 and led_in >= epoch else None

        now_leader, now_epoch = cluster.wait_for(f"cycle {cycle}: every node, node {leader} too, agrees on a leader "
                                                 f"of epoch {epoch} or later once healed", agreed, timeout=30)
        wait_full_isr(cluster, topic, 1, timeout=40)
        print(f"cycle {cycle}: node {leader} back in the ISR {time.time() - heal:.1f} s after healing "
              f"(leader {now_leader}, epoch {now_epoch})")
        # The isolated side's producer gets through once healed (to the new leader).
        n = iso.acked_count()
        iso.wait_acks_beyond(n + 100, 40, f"cycle {cycle}: the producer beside node {leader} after healing")
        left = iso.stop()
        assert left == 0, f"cycle {cycle}: {left} records of the producer beside node {leader} never delivered"
        assert not iso.fatal(), iso.fatal()

    n = majority.acked_count()
    majority.wait_acks_beyond(n + 100, 30, "the majority after the last healing")
    left = majority.stop()
    assert left == 0 and not majority.fatal(), (left, majority.fatal())

    log = cluster.in_client(read_partition, cluster.bootstrap(), topic, 0)
    check_read_back(log, producers)
    cluster.wait_replicas_identical(topic, 0)
