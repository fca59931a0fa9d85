"""Operating a three-node Runnel cluster as a Kafka operator does: a rolling restart with SIGTERM
under an idempotent acks=all producer (each node's controlled shutdown gives its leaderships away
before it exits: no acknowledged record lost, no error the producer gives up on, no long pause),
`kafka-leader-election --election-type preferred --all-topic-partitions` in Kafka 4.1.1 and 4.4.0
after a node came back, the controller's own leader balancing (`auto.leader.rebalance.enable`,
`leader.imbalance.check.interval.seconds`), and `--election-type unclean` on a partition whose only
in-sync replica is down. Each check compares what the tools print and what Metadata reports with
what Kafka would print and report."""

import re
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from helpers import KAFKA_TOOLS_VERSIONS, kafka_tool
from test_cluster import (SteadyProducer, check_acked_read_back, create_topic, partitions_of, read_partition,
                          wait_full_isr)


class TimedProducer(SteadyProducer):
    """A SteadyProducer that also notes when each acknowledgement arrived."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ack_times = []

    def _on_delivery(self, err, msg):
        super()._on_delivery(err, msg)
        if err is None:
            with self.lock:
                self.ack_times.append(time.monotonic())

    def longest_gap(self):
        """(seconds, when) of the longest wait between two acknowledgements."""
        with self.lock:
            t = sorted(self.ack_times)
        return max(((b - a, a) for a, b in zip(t, t[1:])), default=(0.0, None))


@pytest.fixture
def timed():
    made = []

    def make(*args, **kwargs):
        made.append(TimedProducer(*args, **kwargs))
        return made[-1].start()

    yield make
    for p in made:
        p.abort()


def last_run_log(node):
    """The node's log since the harness last started it."""
    return node.log_text().rsplit("===== test harness: starting node", 1)[-1]


def leaders(cluster, i, topic):
    return {p: (v.leader, v.replicas, v.isr) for p, v in partitions_of(cluster, i, topic).items()}


def wait_preferred_leaders(cluster, topic, timeout=15):
    """Every live node reports every partition led by its first replica."""
    def ok():
        return all(v.leader == v.replicas[0] for i in cluster.live_indexes()
                   for v in partitions_of(cluster, i, topic).values())

    cluster.wait_for(f"{topic}: every partition led by its preferred replica", ok, timeout)


def election(version, bootstrap, kind, *target):
    """kafka-leader-election (Kafka `version`): (rc, stdout, stderr)."""
    where = list(target) if target else ["--all-topic-partitions"]
    return kafka_tool("kafka-leader-election", "--bootstrap-server", bootstrap, "--election-type", kind, *where,
                      version=version)


def elected(out, kind):
    """The partitions a 'Successfully completed leader election' line names."""
    m = re.search(rf"Successfully completed leader election \({kind}\) for partitions (.*)", out)
    return set(m.group(1).strip().split(", ")) if m else set()


# ---------------------------------------------------------------- controlled shutdown


def test_rolling_restart_with_sigterm_loses_nothing_and_never_stalls(cluster_factory, timed):
    cluster = cluster_factory()
    topic, parts = "rolling", 6
    create_topic(cluster[0].bootstrap, topic, parts, 3, {"min.insync.replicas": "2"})
    wait_full_isr(cluster, topic, parts)
    prod = timed(cluster.bootstrap, topic, parts, rate=200)
    prod.wait_acks_beyond(300, 20, "before the first restart")
    for i in range(len(cluster)):
        wait_full_isr(cluster, topic, parts, timeout=40)
        node = cluster[i]
        led = sorted(p for p, v in partitions_of(cluster, i, topic).items() if v.leader == node.node_id)
        t = time.time()
        cluster.stop(i)  # SIGTERM; asserts exit code 0
        took = time.time() - t
        # At once (the session timeout is 3 s, and nothing waited for it): the survivors name other
        # leaders, from the ISR, and the node is in no ISR.
        deadline = time.time() + 1.0
        while True:
            views = [leaders(cluster, j, topic) for j in cluster.live_indexes()]
            if all(lead != node.node_id and node.node_id not in isr
                   for v in views for lead, _, isr in v.values()):
                break
            assert time.time() < deadline, f"node {node.node_id} still leads or is in an ISR after exiting: {views}"
            time.sleep(0.05)
        log = last_run_log(node)
        asked = log.find("controlled shutdown: asking the active controller")
        done = log.find("controlled shutdown complete: gave up the leadership of every partition")
        closed = log.find("logs flushed; clean shutdown marker written")
        assert 0 <= log.find("SIGTERM received") < asked < done < closed, log[-3000:]
        assert f"partitions={len(led)}" in log[done:closed], log[done:closed]
        n = prod.acked_count()
        prod.wait_acks_beyond(n + 100, 20, f"writes with node {node.node_id} stopped")
        gap, _ = prod.longest_gap()
        print(f"node {node.node_id}: led {led}, SIGTERM to exit {took:.2f} s, longest gap so far {gap:.2f} s")
        cluster.start(i)
    wait_full_isr(cluster, topic, parts, timeout=40)
    prod.wait_every_partition_progresses(30, "after the rolling restart")
    left = prod.stop()
    assert left == 0
    assert not prod.fatal(), f"fatal producer errors: {prod.fatal()}"
    assert not prod.failed, f"records the producer gave up on: {prod.failure_summary()}"
    gap, _ = prod.longest_gap()
    print(f"sent {prod.sent}, acked {len(prod.acked)}, longest gap between acknowledgements {gap:.2f} s; "
          f"client errors: {[str(e) for _, e in prod.errors]}")
    assert gap < 4.0, f"acknowledgements stalled for {gap:.2f} s"
    check_acked_read_back(cluster.bootstrap, topic, parts, prod.acked)
    for part in range(parts):
        cluster.wait_replicas_identical(topic, part)


# ---------------------------------------------------------------- preferred leader election


@pytest.mark.parametrize("version", KAFKA_TOOLS_VERSIONS)
def test_preferred_election_with_the_tool_after_a_node_returns(cluster_factory, version):
    # The balancer is off (and would look every second): only the tool moves leaderships back.
    cluster = cluster_factory(**{"auto.leader.rebalance.enable": "false",
                                 "leader.imbalance.check.interval.seconds": "1"})
    topic, parts = "pref", 3
    create_topic(cluster[0].bootstrap, topic, parts, 3)
    wait_full_isr(cluster, topic, parts)
    wait_preferred_leaders(cluster, topic)
    victim = partitions_of(cluster, 0, topic)[0].leader
    vi = cluster.index_of(victim)
    cluster.kill9(vi)
    cluster.wait_for(f"leaderships of node {victim} moved",
                     lambda: all(v.leader not in (victim, -1) for v in partitions_of(cluster, (vi + 1) % 3, topic).values()),
                     timeout=20)
    cluster.start(vi)
    cluster.wait_formed()
    wait_full_isr(cluster, topic, parts)
    time.sleep(2.5)
    view = partitions_of(cluster, 0, topic)
    moved = {f"{topic}-{p}" for p, v in view.items() if v.leader != v.replicas[0]}
    assert moved, f"nothing to move back: {view}"

    rc, out, err = election(version, cluster.bootstrap, "preferred")
    assert rc == 0, f"{out}\n{err}"
    assert elected(out, "PREFERRED") == moved, out
    assert out.strip().count("\n") == 0, out  # that one line, nothing else
    wait_preferred_leaders(cluster, topic, timeout=10)
    after = partitions_of(cluster, 0, topic)
    for p, v in after.items():
        if f"{topic}-{p}" in moved:
            assert v.leader_epoch > view[p].leader_epoch, (p, view[p], v)

    # Nothing left to do: nothing printed for all partitions; "already elected" for one.
    rc, out, err = election(version, cluster.bootstrap, "preferred")
    assert rc == 0 and out.strip() == "", f"{out}\n{err}"
    rc, out, err = election(version, cluster[vi].bootstrap, "preferred", "--topic", topic, "--partition", "0")
    assert rc == 0, err
    assert out.strip() == f"Valid replica already elected for partitions {topic}-0", out


# ---------------------------------------------------------------- automatic leader balancing


def test_the_controller_moves_leaderships_back_on_its_own(cluster_factory):
    cluster = cluster_factory(**{"leader.imbalance.check.interval.seconds": "2"})
    topic, parts = "balanced", 3
    create_topic(cluster[0].bootstrap, topic, parts, 3)
    wait_full_isr(cluster, topic, parts)
    wait_preferred_leaders(cluster, topic)
    victim = partitions_of(cluster, 0, topic)[0].leader
    vi = cluster.index_of(victim)
    cluster.stop(vi)
    survivor = (vi + 1) % 3
    view = partitions_of(cluster, survivor, topic)
    assert all(v.leader != victim for v in view.values()), view
    cluster.start(vi)
    t = time.time()
    wait_full_isr(cluster, topic, parts)
    wait_preferred_leaders(cluster, topic, timeout=20)
    print(f"leaderships back on node {victim} {time.time() - t:.1f} s after it restarted")
    logs = "".join(last_run_log(n) for n in cluster.nodes)
    assert "leader balance: moved leaderships back to the preferred replicas" in logs


# ---------------------------------------------------------------- unclean leader election


def produce(bootstrap, topic, values):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 20000})
    for v in values:
        p.produce(topic, value=v, partition=0)
    assert p.flush(30) == 0


def test_unclean_election_with_the_tool_when_the_only_isr_member_is_down(cluster_factory):
    v_old, v_new = KAFKA_TOOLS_VERSIONS
    cluster = cluster_factory()
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    # dirty-0 on nodes 1 and 2 (1 preferred), lonely-0 on node 1 alone; one in-sync replica suffices.
    futures = admin.create_topics([
        NewTopic("dirty", num_partitions=1, replica_assignment=[[1, 2]], config={"min.insync.replicas": "1"}),
        NewTopic("lonely", num_partitions=1, replica_assignment=[[1]], config={"min.insync.replicas": "1"}),
    ], request_timeout=15)
    for f in futures.values():
        f.result(20)
    cluster.wait_for("dirty-0 in sync on nodes 1 and 2",
                     lambda: sorted(partitions_of(cluster, 2, "dirty")[0].isr) == [1, 2], timeout=20)
    phase1 = [b"one-%d" % i for i in range(20)]
    phase2 = [b"two-%d" % i for i in range(20)]
    phase3 = [b"three-%d" % i for i in range(20)]
    produce(cluster.bootstrap, "dirty", phase1)
    # Node 2 stops: node 1 alone is in sync and takes phase 2 alone.
    cluster.stop(1)
    assert partitions_of(cluster, 0, "dirty")[0].isr == [1]
    produce(cluster.live_bootstrap(), "dirty", phase2)
    # Node 1 stops too: no in-sync replica is left, so its controlled shutdown leaves dirty-0
    # without a leader. With eligible leader replicas (on, as in Kafka 4.1+) the ISR is empty and
    # node 1 is its eligible (and last known) leader. Node 2 comes back, out of the ISR and ELR.
    cluster.stop(0)
    cluster.start(1)

    def offline():
        view = cluster.metadata(2)
        p = view.partition("dirty", 0)
        return 2 in view.brokers and p.leader == -1 and p.isr == []

    cluster.wait_for("node 2 back, dirty-0 offline", offline, timeout=30)

    # A preferred election cannot help: node 1 is down.
    rc, out, err = election(v_old, cluster.live_bootstrap(), "preferred", "--topic", "dirty", "--partition", "0")
    assert rc == 1, f"{out}\n{err}"
    assert out.strip() == ("Error completing leader election (PREFERRED) for partition: dirty-0: "
                           "org.apache.kafka.common.errors.PreferredLeaderNotAvailableException: "
                           "The preferred leader was not available."), out
    # Nobody is left to lead lonely-0.
    rc, out, err = election(v_new, cluster.live_bootstrap(), "unclean", "--topic", "lonely", "--partition", "0")
    assert rc == 1, f"{out}\n{err}"
    assert out.strip() == ("Error completing leader election (UNCLEAN) for partition: lonely-0: "
                           "org.apache.kafka.common.errors.EligibleLeadersNotAvailableException: "
                           "Eligible topic partition leaders are not available."), out
    # Unclean: node 2 leads dirty-0, alone in its ISR.
    rc, out, err = election(v_new, cluster.live_bootstrap(), "unclean", "--topic", "dirty", "--partition", "0")
    assert rc == 0, f"{out}\n{err}"
    assert out.strip() == "Successfully completed leader election (UNCLEAN) for partitions dirty-0", out
    for i in cluster.live_indexes():
        p = partitions_of(cluster, i, "dirty")[0]
        assert (p.leader, p.isr) == (2, [2]), (i, p)
    rc, out, err = election(v_old, cluster.live_bootstrap(), "unclean", "--topic", "dirty", "--partition", "0")
    assert rc == 0, err
    assert out.strip() == "Valid replica already elected for partitions dirty-0", out

    produce(cluster.live_bootstrap(), "dirty", phase3)
    # Node 1 returns: it follows node 2, drops what only it had (phase 2) and rejoins the ISR.
    cluster.start(0)
    cluster.wait_for("node 1 back in dirty-0's ISR",
                     lambda: sorted(partitions_of(cluster, 2, "dirty")[0].isr) == [1, 2], timeout=30)
    got = [v for _, v in read_partition(cluster.bootstrap, "dirty", 0)]
    assert got == phase1 + phase3, got
    cluster.wait_for("nodes 1 and 2 hold the same dirty-0 bytes",
                     lambda: cluster.log_bytes(0, "dirty", 0) == cluster.log_bytes(1, "dirty", 0), timeout=20)
