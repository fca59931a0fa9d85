"""Moving partitions between the brokers of a three-node Runnel cluster with Apache Kafka's own
`kafka-reassign-partitions` (4.4.0 and 4.1.1), as an operator does: `--generate` proposes a plan,
`--execute --throttle` starts it under an acks=all producer with the replication throttle set on
brokers and topics (kafka-configs shows it), the moves are still running while the throttle holds
them back, `--execute --additional` raises the throttle, `--verify` reports every move completed
and clears the throttles; the replicas left behind are deleted from their brokers' disks, and every
acknowledged record is read back exactly once. Also: a replication-factor change, `--cancel` of a
move in progress, and Kafka's errors for bad targets."""

import json
import re
import time

import pytest
from confluent_kafka import Producer

from helpers import KAFKA_TOOLS_VERSIONS, kafka_tool
from test_cluster import check_acked_read_back, create_topic, partitions_of, steady  # noqa: F401 (fixture)


def reassign(version, bootstrap, *args):
    rc, out, err = kafka_tool("kafka-reassign-partitions", "--bootstrap-server", bootstrap, *args,
                              version=version)
    return rc, out, err


def plan_file(tmp_path, name, moves):
    """A reassignment JSON file as the tool reads it: moves = {(topic, partition): [replicas]}."""
    path = tmp_path / name
    path.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": t, "partition": p, "replicas": r, "log_dirs": ["any"] * len(r)}
        for (t, p), r in sorted(moves.items())]}))
    return path


def assignment(cluster, topic):
    """{partition: (leader, replicas, isr)} as node 1 reports it."""
    return {p: (v.leader, list(v.replicas), list(v.isr)) for p, v in partitions_of(cluster, 0, topic).items()}


def fill(bootstrap, topic, partitions, per_partition, size=1024):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20})
    for part in range(partitions):
        for i in range(per_partition):
            p.produce(topic, value=b"f" * size, partition=part)
            if i % 500 == 0:
                p.poll(0)
    assert p.flush(60) == 0


def dirs_on(cluster, i, topic):
    data = cluster[i].dir / "data"
    return sorted(d.name for d in data.iterdir() if d.is_dir() and d.name.startswith(topic + "-"))


@pytest.mark.parametrize("version", KAFKA_TOOLS_VERSIONS)
def test_reassignment_with_throttle_under_load(cluster, steady, tmp_path, version):
    topic = "moving"
    boot = cluster.bootstrap
    rc, out, err = kafka_tool("kafka-topics", "--bootstrap-server", boot, "--create", "--topic", topic,
                              "--replica-assignment", "1:2,2:3,3:1", version=version)
    assert rc == 0, err
    cluster.wait_for("replicas in sync",
                     lambda: all(len(isr) == 2 for _, _, isr in assignment(cluster, topic).values()))
    # 1.5 MiB per partition to move, so that a 100 kB/s throttle holds the moves back for 15 s.
    fill(boot, topic, 3, 1500)
    prod = steady(boot, topic, 3, rate=100)
    prod.wait_acks_beyond(100, 30, "producer running")

    # --generate: Kafka's tool proposes a plan from the current assignment.
    topics_json = tmp_path / "topics.json"
    topics_json.write_text(json.dumps({"version": 1, "topics": [{"topic": topic}]}))
    rc, out, err = reassign(version, boot, "--generate", "--topics-to-move-json-file", str(topics_json),
                            "--broker-list", "1,2,3")
    assert rc == 0, err + out
    current = json.loads(out.split("Current partition replica assignment")[1].split("Proposed")[0])
    assert sorted((p["partition"], p["replicas"]) for p in current["partitions"]) == \
        [(0, [1, 2]), (1, [2, 3]), (2, [3, 1])], out
    proposed = json.loads(out.split("Proposed partition reassignment configuration")[1])
    assert sorted(p["partition"] for p in proposed["partitions"]) == [0, 1, 2]
    assert all(len(p["replicas"]) == 2 for p in proposed["partitions"]), out

    # --execute with a throttle: every partition gains the broker it lacked and loses its first.
    target = {(topic, 0): [2, 3], (topic, 1): [3, 1], (topic, 2): [1, 2]}
    plan = plan_file(tmp_path, "plan.json", target)
    rc, out, err = reassign(version, boot, "--execute", "--reassignment-json-file", str(plan),
                            "--throttle", "100000")
    assert rc == 0, err + out
    assert "The inter-broker throttle limit was set to 100000 B/s" in out, out
    assert re.search(r"Successfully started partition reassignments for moving-0,moving-1,moving-2", out), out

    rc, out, err = kafka_tool("kafka-configs", "--bootstrap-server", boot, "--describe", "--entity-type",
                              "brokers", "--entity-name", "1", version=version)
    assert rc == 0, err
    assert "follower.replication.throttled.rate=100000" in out and \
        "leader.replication.throttled.rate=100000" in out, out
    rc, out, err = kafka_tool("kafka-configs", "--bootstrap-server", boot, "--describe", "--entity-type",
                              "topics", "--entity-name", topic, version=version)
    assert rc == 0, err
    assert "follower.replication.throttled.replicas=" in out and "leader.replication.throttled.replicas=" in out, out

    # Held back by the throttle: the moves are in progress, the new replicas outside the ISR.
    rc, out, err = reassign(version, boot, "--verify", "--preserve-throttles", "--reassignment-json-file", str(plan))
    assert rc == 0, err + out
    assert "is still in progress" in out, out
    rc, out, err = reassign(version, boot, "--list")
    assert rc == 0, err + out
    assert "moving-0" in out, out
    during = assignment(cluster, topic)
    assert sorted(during[0][1]) == [1, 2, 3], during  # target first, then the leaving replica

    # Raise the throttle (--additional, as the tool asks while moves run), then wait for the end.
    rc, out, err = reassign(version, boot, "--execute", "--additional", "--reassignment-json-file", str(plan),
                            "--throttle", "500000000")
    assert rc == 0, err + out

    def verified():
        rc, out, err = reassign(version, boot, "--verify", "--reassignment-json-file", str(plan))
        assert rc == 0, err + out
        return out if "still in progress" not in out else None

    out = cluster.wait_for("reassignment completed", verified, timeout=90, interval=1)
    for p in range(3):
        assert f"Reassignment of partition {topic}-{p} is completed" in out, out
    assert "Clearing broker-level throttles on brokers 1,2,3" in out, out
    assert f"Clearing topic-level throttles on topic {topic}" in out, out
    rc, out, err = kafka_tool("kafka-configs", "--bootstrap-server", boot, "--describe", "--entity-type",
                              "brokers", "--entity-name", "1", version=version)
    assert "throttled.rate" not in out, out

    after = assignment(cluster, topic)
    for p, want in [(0, [2, 3]), (1, [3, 1]), (2, [1, 2])]:
        leader, replicas, isr = after[p]
        assert replicas == want and sorted(isr) == sorted(want) and leader in want, after
    # The replicas that left are deleted from their brokers.
    cluster.wait_for("left replicas deleted", lambda: (
        dirs_on(cluster, 0, topic) == [f"{topic}-1", f"{topic}-2"]
        and dirs_on(cluster, 1, topic) == [f"{topic}-0", f"{topic}-2"]
        and dirs_on(cluster, 2, topic) == [f"{topic}-0", f"{topic}-1"]), timeout=20)

    n = prod.acked_count()
    prod.wait_acks_beyond(n + 100, 30, "producer still acknowledged after the moves")
    prod.stop()
    assert not prod.failed, prod.failure_summary()
    check_acked_read_back(boot, topic, 3, prod.acked, skip_prefix=b"f")


def test_replication_factor_change_cancel_and_bad_targets(cluster, tmp_path):
    version = KAFKA_TOOLS_VERSIONS[0]
    boot = cluster.bootstrap
    create_topic(boot, "grow", partitions=1, rf=1)
    start = assignment(cluster, "grow")[0][1]
    fill(boot, "grow", 1, 300)

    # RF 1 -> 3.
    plan = plan_file(tmp_path, "grow.json", {("grow", 0): [start[0]] + [b for b in (1, 2, 3) if b != start[0]]})
    rc, out, err = reassign(version, boot, "--execute", "--reassignment-json-file", str(plan))
    assert rc == 0, err + out
    cluster.wait_for("RF 3 in sync", lambda: len(assignment(cluster, "grow")[0][2]) == 3, timeout=30)
    rc, out, err = reassign(version, boot, "--verify", "--reassignment-json-file", str(plan))
    assert "Reassignment of partition grow-0 is completed" in out, out

    # RF 3 -> 1, onto a broker that was not the leader: the leader moves.
    leader = assignment(cluster, "grow")[0][0]
    other = next(b for b in (1, 2, 3) if b != leader)
    plan = plan_file(tmp_path, "shrink.json", {("grow", 0): [other]})
    rc, out, err = reassign(version, boot, "--execute", "--reassignment-json-file", str(plan))
    assert rc == 0, err + out
    cluster.wait_for("RF 1 on the other broker", lambda: assignment(cluster, "grow")[0] == (other, [other], [other]))

    # A move held back by a tiny throttle, then cancelled: the replicas go back.
    fill(boot, "grow", 1, 2000)
    target = [b for b in (1, 2, 3) if b != other][:1]
    plan = plan_file(tmp_path, "slow.json", {("grow", 0): target})
    rc, out, err = reassign(version, boot, "--execute", "--reassignment-json-file", str(plan), "--throttle", "10000")
    assert rc == 0, err + out
    rc, out, err = reassign(version, boot, "--cancel", "--reassignment-json-file", str(plan))
    assert rc == 0, err + out
    assert "Successfully cancelled partition reassignment for: grow-0" in out, out
    cluster.wait_for("back on the original replica", lambda: assignment(cluster, "grow")[0][1] == [other])
    rc, out, err = reassign(version, boot, "--list")
    assert "No partition reassignments found" in out or "grow-0" not in out, out

    # Bad plans are refused (the tool checks these itself before asking; the controller's own
    # checks, with Kafka's messages, are unit-tested in controller/reassign.rs) and change nothing.
    for moves, message in [({("grow", 0): [1, 9]}, "Unknown broker id 9"),
                           ({("grow", 0): [1, 1]}, "contains multiple entries for 1"),
                           ({("grow", 5): [1]}, "Unable to find partition: grow-5")]:
        plan = plan_file(tmp_path, "bad.json", moves)
        rc, out, err = reassign(version, boot, "--execute", "--reassignment-json-file", str(plan))
        assert rc != 0 and message in out, out + err
    assert assignment(cluster, "grow")[0][1] == [other]


def test_a_fourth_broker_takes_partitions_and_is_decommissioned(cluster_factory, steady, tmp_path):
    """Growth and shrink as an operator does it: a broker-only node joins the running cluster,
    `kafka-reassign-partitions --generate --broker-list 1,2,3,4` and `--execute` give it replicas
    under an acks=all producer, then a plan without it moves them all away again, the node is
    stopped and `kafka-cluster unregister` removes it: Metadata and DescribeCluster no longer list
    it and the quorum has no observer left; nothing acknowledged is lost."""
    from test_quorum_membership import add_broker_only_node, quorum_status
    version = KAFKA_TOOLS_VERSIONS[-1]
    cluster = cluster_factory()
    boot = cluster.bootstrap
    create_topic(boot, "grown", partitions=4, rf=2)
    prod = steady(boot, "grown", 4, rate=100)
    prod.wait_acks_beyond(100, 30, "producer running")

    n4 = add_broker_only_node(cluster, tmp_path, 4)
    cluster.wait_formed(timeout=60)

    topics_json = tmp_path / "topics.json"
    topics_json.write_text(json.dumps({"version": 1, "topics": [{"topic": "grown"}]}))
    rc, out, err = reassign(version, boot, "--generate", "--topics-to-move-json-file", str(topics_json),
                            "--broker-list", "1,2,3,4")
    assert rc == 0, err + out
    proposed = json.loads(out.split("Proposed partition reassignment configuration")[1])
    assert any(4 in p["replicas"] for p in proposed["partitions"]), out
    plan = tmp_path / "grow.json"
    plan.write_text(json.dumps(proposed))
    rc, out, err = reassign(version, boot, "--execute", "--reassignment-json-file", str(plan))
    assert rc == 0, err + out
    want = {p["partition"]: p["replicas"] for p in proposed["partitions"]}

    def placed():
        now = assignment(cluster, "grown")
        return all(now[p][1] == r and sorted(now[p][2]) == sorted(r) for p, r in want.items())

    cluster.wait_for("the proposed placement, in sync", placed, timeout=60)
    rc, out, err = reassign(version, boot, "--verify", "--reassignment-json-file", str(plan))
    assert rc == 0 and "still in progress" not in out, out
    on_four = sorted(d.name for d in n4.data_dir.iterdir() if d.name.startswith("grown-"))
    assert on_four == sorted(f"grown-{p}" for p, r in want.items() if 4 in r), on_four

    # Decommission: every replica moves off node 4, which is then stopped and unregistered.
    away = {("grown", p): [b for b in r if b != 4] or [1] for p, r in want.items()}
    for key, r in away.items():
        if len(r) < 2:
            r.append(next(b for b in (1, 2, 3) if b not in r))
    plan = plan_file(tmp_path, "away.json", away)
    rc, out, err = reassign(version, boot, "--execute", "--reassignment-json-file", str(plan))
    assert rc == 0, err + out
    cluster.wait_for("nothing on node 4", lambda: all(4 not in v[1] for v in assignment(cluster, "grown").values()),
                     timeout=60)
    cluster.wait_for("node 4's logs deleted", lambda: not any(
        d.name.startswith("grown-") for d in n4.data_dir.iterdir()), timeout=20)
    cluster.stop(3)
    rc, out, err = kafka_tool("kafka-cluster", "unregister", "--bootstrap-server", boot, "--id", "4",
                              version=version)
    assert rc == 0 and "Broker 4 is no longer registered." in out, err + out
    cluster.nodes.pop()
    cluster.wait_for("node 4 gone from Metadata", lambda: sorted(cluster.metadata(0).brokers) == [1, 2, 3])
    s, out = quorum_status(version, "--bootstrap-server", boot.split(",")[0])
    assert s["CurrentObservers"] == [], out
    rc, out, err = kafka_tool("kafka-cluster", "unregister", "--bootstrap-server", boot, "--id", "4",
                              version=version)
    assert rc != 0 and "BrokerIdNotRegisteredException" in out + err, out + err

    n = prod.acked_count()
    prod.wait_acks_beyond(n + 100, 30, "producer after the decommission")
    prod.stop()
    assert not prod.failed, prod.failure_summary()
    check_acked_read_back(boot, "grown", 4, prod.acked)
