"""Start-up identity checks between the nodes of a cluster (issue 11): before it joins the metadata
quorum a node says hello to the configured voters, and refuses to start, naming the key, when

- another live process already has its `node.id` (a combined node, or a broker-only node: a
  second process with the same id, its own data dir and ports), or
- its `controller.quorum.voters` differs from the running nodes' (one voter's port, an extra voter);

the running cluster keeps working, and a running node told of another voter set logs it."""

import re
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from helpers import Cluster, ClusterNode, free_ports

FAST = {
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "500",
    "replica.lag.time.max.ms": "3000",
}


def other_process(c, tmp_path, name, node_id, **settings):
    """A node with node 1's settings but its own directory and ports, not part of `c`."""
    port, controller_port = free_ports(2)
    d = tmp_path / name
    d.mkdir()
    conf = dict(c[0].settings)
    conf.update({
        "node.id": str(node_id),
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "log.dirs": str(d / "data"),
    })
    conf.update(settings)
    return ClusterNode(node_id, d, port, controller_port, conf)


def run_until_exit(node, timeout=20):
    """Starts `node` and waits for it to exit: (exit code, what it logged this time)."""
    before = len(node.log_text())
    node.spawn()
    try:
        rc = node.proc.wait(timeout)
    except Exception:
        node.proc.kill()
        node.proc.wait(10)
        raise AssertionError(f"node {node.node_id} was not refused within {timeout} s:\n{node.log_tail()}")
    return rc, node.log_text()[before:]


def still_works(c, topic):
    """The cluster still forms, creates a topic and takes acks=all writes."""
    c.wait_formed()
    admin = AdminClient({"bootstrap.servers": c.live_bootstrap()})
    admin.create_topics([NewTopic(topic, 1, 3)])[topic].result(20)
    p = Producer({"bootstrap.servers": c.live_bootstrap(), "acks": "all"})
    failed = []
    for i in range(20):
        p.produce(topic, value=b"v%d" % i, on_delivery=lambda err, _m: err and failed.append(err))
    assert p.flush(20) == 0 and not failed, failed


def test_a_second_process_with_a_running_nodes_id_is_refused(tmp_path):
    c = Cluster(tmp_path / "cluster", n=3, settings=FAST)
    dup = None
    try:
        c.start_all().wait_formed()
        dup = other_process(c, tmp_path, "dup", 2)
        started = time.time()
        rc, log = run_until_exit(dup)
        assert rc != 0, log
        assert "ERROR" in log and "node.id=2 is used by two processes" in log, log
        assert time.time() - started < 15, log
        # It was refused before it joined anything: the cluster goes on, node 2 included, and
        # node 2 logged the other process's hello.
        assert all(n.alive() for n in c.nodes), c.log_tails()
        still_works(c, "after-dup")
        assert "node.id=2 is used by two processes" in c[1].log_text(), c[1].log_tail()
    finally:
        if dup is not None and dup.alive():
            dup.proc.kill()
        c.kill_all()


def test_a_second_broker_only_process_with_a_running_brokers_id_is_refused(tmp_path):
    c = Cluster(tmp_path / "cluster", n=3, settings=FAST)
    dup = None
    try:
        c.start_all().wait_formed()
        n4 = other_process(c, tmp_path, "node4", 4, **{"process.roles": "broker"})
        n4.settings["listeners"] = f"PLAINTEXT://127.0.0.1:{n4.port}"
        c.nodes.append(n4)
        n4.spawn()
        n4.wait_listening()
        c.wait_formed(timeout=30)  # brokers 1-4, node 4 registered and unfenced

        dup = other_process(c, tmp_path, "dup", 4, **{"process.roles": "broker"})
        dup.settings["listeners"] = f"PLAINTEXT://127.0.0.1:{dup.port}"
        rc, log = run_until_exit(dup)
        assert rc != 0, log
        assert "ERROR" in log and "node.id=4 is used by another live process" in log, log
        # Node 4 keeps its place: still a live broker, the metadata still reaches it.
        assert n4.alive(), n4.log_tail()
        still_works(c, "after-broker-dup")
        c.wait_for("node 4 sees the new topic",
                   lambda: c.metadata(3).partition("after-broker-dup", 0).leader in (1, 2, 3, 4), timeout=20)
    finally:
        if dup is not None and dup.alive():
            dup.proc.kill()
        c.kill_all()


def test_a_node_whose_voters_differ_is_refused_naming_the_key(tmp_path):
    c = Cluster(tmp_path / "cluster", n=3, settings=FAST)
    try:
        c.start_all().wait_formed()
        c.stop(2)
        node3 = c[2]
        voters = node3.settings["controller.quorum.voters"]
        unused = free_ports(2)
        # Voter 1 at another port; an extra voter.
        other_port = re.sub(r"^1@127\.0\.0\.1:\d+", f"1@127.0.0.1:{unused[0]}", voters)
        extra = f"{voters},4@127.0.0.1:{unused[1]}"
        for wrong in (other_port, extra):
            node3.settings["controller.quorum.voters"] = wrong
            started = time.time()
            rc, log = run_until_exit(node3)
            assert rc != 0, log
            assert "ERROR" in log and "controller.quorum.voters differs between nodes" in log, log
            # Both sets are shown.
            assert f"node 3 has {wrong}" in log and f"has {voters};" in log, log
            assert time.time() - started < 15, log
        # The running nodes logged it and kept running.
        told = c[0].log_text() + c[1].log_text()
        assert "controller.quorum.voters differs between nodes" in told, c.log_tails()
        assert c[0].alive() and c[1].alive()
        # With the right voters it rejoins.
        node3.settings["controller.quorum.voters"] = voters
        c.start(2)
        still_works(c, "after-voters")
    finally:
        c.kill_all()
