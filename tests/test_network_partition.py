"""A network partition that isolates a partition's leader (tests/netns.py: every node in its own
network namespace; the leader's links to the bridge go down while it keeps running).

Three nodes; each cycle a new topic of one partition, replication factor 3, min.insync.replicas=2,
led by the node to cut off: the active controller too in even cycles, not in odd ones. Two
idempotent acks=all producers write numbered records to it: one in the client namespace (the
majority's side) and one beside the leader, in its namespace (the isolated side). The leader stays
cut off for longer than broker.session.timeout.ms, then the partition heals. Checked: the majority
elects another leader with a newer epoch and keeps acknowledging; the isolated side gets no
acknowledgement while it is cut off (though the old leader appended what it was sent); once healed
every node agrees on the new leader and the old one rejoins the ISR; then every acknowledged record
is read back exactly once, at the offset it was acknowledged with, each producer's records in the
order they were produced, and the three replicas hold the same bytes (the old leader dropped what
it appended alone).

RUNNEL_PARTITION_CYCLES sets the number of isolations (default 2)."""

import os
import time

import pytest

from conftest import FAST_CLUSTER
from netns import NetnsCluster
from test_cluster import SteadyProducer, partitions_of, read_partition, wait_full_isr

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


def create_led_by(cluster, topic, leader):
    """An RF 3 topic of one partition whose preferred (first) replica, hence leader, is `leader`."""
    from confluent_kafka.admin import AdminClient, NewTopic

    def create():
        a = AdminClient({"bootstrap.servers": cluster.bootstrap()})
        replicas = [leader] + [n.node_id for n in cluster.nodes if n.node_id != leader]
        new = NewTopic(topic, 1, replica_assignment=[replicas], config={"min.insync.replicas": "2"})
        for f in a.create_topics([new], request_timeout=15).values():
            f.result(20)

    cluster.in_client(create)
    wait_full_isr(cluster, topic, 1)
    cluster.wait_for(f"{topic}: led by node {leader}", lambda: all(
        partitions_of(cluster, i, topic)[0].leader == leader for i in range(len(cluster))), timeout=20)


def test_isolated_leader_acknowledges_nothing_and_loses_nothing(netns_cluster, producers):
    """Even cycles cut off a leader that is also the active controller, odd ones a leader that is not."""
    cluster = netns_cluster
    for cycle in range(CYCLES):
        def one_controller():
            seen = {cluster.metadata(i).controller for i in range(len(cluster))}
            return seen.pop() if len(seen) == 1 and seen != {-1} else None

        controller = cluster.wait_for("every node names the same active controller", one_controller, timeout=30)
        leader = controller if cycle % 2 == 0 else next(n.node_id for n in cluster.nodes if n.node_id != controller)
        li = cluster.index_of(leader)
        topic = f"partitioned-{cycle}"
        create_led_by(cluster, topic, leader)
        before = partitions_of(cluster, li, topic)[0]

        def start_producer(where, first, bootstrap):
            def make():
                return NumberedProducer(first, bootstrap, topic, 1, rate=100).start()

            p = cluster.in_client(make) if where is None else cluster.in_node(where, make)
            producers.append(p)
            return p

        majority = start_producer(None, 0, cluster.bootstrap())
        # The isolated side's producer knows only the leader's address, as a client in its rack would.
        iso = start_producer(li, RANGE, cluster.address(li))
        majority.wait_acks_beyond(100, 20, f"cycle {cycle}: from the clients before the cut")
        iso.wait_acks_beyond(100, 20, f"cycle {cycle}: beside node {leader} before the cut")

        cluster.isolate(li)
        cut = time.time()
        size_at_cut = len(cluster.log_bytes(li, topic, 0))
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
        # The producer beside it did reach it: the cut-off leader appended what it was sent (and
        # waits for followers that cannot fetch), so "nothing acknowledged" below is not vacuous.
        appended = len(cluster.log_bytes(li, topic, 0)) - size_at_cut
        heal = time.time()
        cluster.heal(li)
        assert appended > 0, f"cycle {cycle}: node {leader}'s log did not grow while it was cut off"

        during = iso.acked_between(cut + CUT_GRACE_S, heal)
        assert not during, (f"cycle {cycle}: node {leader}, cut off from {cut:.3f} to {heal:.3f}, acknowledged "
                            f"{len(during)} acks=all records to the producer beside it, first (seq, time): "
                            f"{during[:5]}; offsets {[iso.acked[s] for s, _ in during[:5]]}")
        role = "leader and active controller" if leader == controller else f"leader, controller {controller}"
        print(f"cycle {cycle}: node {leader} ({role}) cut off for {heal - cut:.1f} s; the majority elected "
              f"{new_leader} (epoch {before.leader_epoch} -> {epoch}, ISR {list(isr)}) after {elected_s:.1f} s; "
              f"{majority.acked_count() - n} majority acks meanwhile, none beside node {leader}, whose own view "
              f"was {own_view} and whose log grew by {appended} bytes alone")

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
        # Both producers get through once healed (the one beside the old leader to the new leader).
        for p, who in ((iso, f"beside node {leader}"), (majority, "from the clients")):
            n = p.acked_count()
            p.wait_acks_beyond(n + 100, 40, f"cycle {cycle}: the producer {who} after healing")
            left = p.stop()
            assert left == 0, f"cycle {cycle}: {left} records of the producer {who} never delivered"
            assert not p.fatal(), p.fatal()

        log = cluster.in_client(read_partition, cluster.bootstrap(), topic, 0)
        check_read_back(log, [majority, iso])
        cluster.wait_replicas_identical(topic, 0)
