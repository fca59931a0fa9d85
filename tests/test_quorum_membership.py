"""Nodes that do not vote in the metadata quorum, and KIP-853 controller membership changes, with
Apache Kafka's own tools (4.4.0 and 4.1.1):

- a broker-only node (`process.roles=broker`) joins a running three-node cluster: it follows the
  metadata log as a raft learner, registers, is listed by Metadata and kafka-broker-api-versions,
  appears as an observer in `kafka-metadata-quorum describe`, is given replicas of a topic created
  with `--replica-assignment` and receives their data, and does all of it again after a restart;
- a dynamic quorum (`controller.quorum.bootstrap.servers`, no voters): node 1 starts it alone,
  nodes 2 and 3 follow as observers until `kafka-metadata-quorum add-controller` makes them voters;
  `remove-controller` takes voters out again (the active controller included), `describe --status`
  is checked after every step, and the quorum still commits (a topic is created) after each
  removal; a static quorum refuses `add-controller`."""

import json
import re
import subprocess
import time

from confluent_kafka import Producer

from helpers import KAFKA_NEWEST, KAFKA_VERSION, Cluster, ClusterNode, free_port, java_cmd, kafka_tool

FAST = {
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "500",
    "replica.lag.time.max.ms": "3000",
}


def tool(version, name, *args):
    rc, out, err = kafka_tool(name, *args, version=version)
    assert rc == 0, f"{name} {' '.join(args)} (Kafka {version}) exited {rc}:\n{out}\n{err}"
    return out


def quorum_status(version, *connect):
    """`kafka-metadata-quorum describe --status` as {key: value}, voters and observers as JSON."""
    out = tool(version, "kafka-metadata-quorum", *connect, "describe", "--status")
    fields = dict(re.findall(r"^(\w+):\s+(.*)$", out, re.M))
    fields["CurrentVoters"] = json.loads(fields["CurrentVoters"])
    fields["CurrentObservers"] = json.loads(fields["CurrentObservers"])
    fields["LeaderId"] = int(fields["LeaderId"])
    return fields, out


def directory_id(node):
    """The `directory.id` in a node's meta.properties (what add-controller reads)."""
    text = (node.data_dir / "meta.properties").read_text()
    return re.search(r"^directory\.id=(\S+)$", text, re.M).group(1)


def ids(entries):
    return [e["id"] for e in entries]


def produce(bootstrap, topic, n, tag):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    failed = []
    for i in range(n):
        p.produce(topic, value=f"{tag}-{i}".encode(), partition=i % 2,
                  on_delivery=lambda err, _m: err and failed.append(err))
    assert p.flush(30) == 0
    assert not failed, failed


def wait_replicas_same(c, topic, partition, node_ids, timeout=30):
    """Waits until the given nodes' replicas of topic-partition hold the same, non-empty bytes."""
    def same():
        logs = [c.log_bytes(c.index_of(i), topic, partition) for i in node_ids]
        return len(logs[0]) > 0 and all(x == logs[0] for x in logs)

    c.wait_for(f"{topic}-{partition} identical on {node_ids}", same, timeout, interval=0.5)


# ------------------------------------------------------------------ a broker-only node


def add_broker_only_node(c, tmp_path, node_id):
    """A `process.roles=broker` node with the cluster's static voters, appended to `c`."""
    port = free_port()
    d = tmp_path / f"node{node_id}"
    d.mkdir()
    conf = dict(c[0].settings)
    conf.update({
        "process.roles": "broker",
        "node.id": str(node_id),
        "listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "log.dirs": str(d / "data"),
    })
    node = ClusterNode(node_id, d, port, None, conf)
    c.nodes.append(node)
    node.spawn()
    node.wait_listening()
    return node


def test_a_broker_only_node_joins_a_running_cluster(tmp_path):
    c = Cluster(tmp_path, n=3, settings=FAST)
    try:
        c.start_all().wait_formed()
        n4 = add_broker_only_node(c, tmp_path, 4)
        c.wait_formed(timeout=60)  # every node's Metadata lists brokers 1-4
        assert c.metadata(3).brokers and sorted(c.metadata(3).brokers) == [1, 2, 3, 4]

        # An observer of the quorum, with its directory id; the voters are unchanged.
        for version in (KAFKA_NEWEST, KAFKA_VERSION):
            def observed():
                s, out = quorum_status(version, "--bootstrap-server", n4.bootstrap)
                return (s, out) if ids(s["CurrentObservers"]) == [4] else None

            s, out = c.wait_for("node 4 an observer", observed, timeout=30, interval=1)
            assert ids(s["CurrentVoters"]) == [1, 2, 3], out
            assert s["CurrentObservers"] == [{"id": 4, "directoryId": directory_id(n4)}], out
            assert s["LeaderId"] in (1, 2, 3), out
        rows = tool(KAFKA_NEWEST, "kafka-metadata-quorum", "--bootstrap-server", c[0].bootstrap,
                    "describe", "--replication")
        observer = [r.split() for r in rows.splitlines() if r.split()[:1] == ["4"]]
        assert observer and observer[0][1] == directory_id(n4) and observer[0][-1] == "Observer", rows

        # kafka-broker-api-versions lists it (Metadata's broker list, then ApiVersions to each).
        p = subprocess.run(java_cmd("org.apache.kafka.tools.BrokerApiVersionsCommand",
                                    "--bootstrap-server", c[0].bootstrap, version=KAFKA_NEWEST),
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert f"127.0.0.1:{n4.port} (id: 4 rack: null" in p.stdout, p.stdout

        # A topic with replicas on it: node 4 leads partition 0 and follows partition 1.
        tool(KAFKA_NEWEST, "kafka-topics", "--bootstrap-server", c[1].bootstrap, "--create",
             "--topic", "on-four", "--replica-assignment", "4:1:2,2:4:3")
        c.wait_for("on-four led by 4 and 2", lambda: c.leader_of("on-four", 0) == 4
                   and c.leader_of("on-four", 1) == 2, timeout=30)
        produce(c.bootstrap, "on-four", 200, "a")
        wait_replicas_same(c, "on-four", 0, [4, 1, 2])
        wait_replicas_same(c, "on-four", 1, [2, 4, 3])

        # Restarted, it is still a learner: it catches up and takes its replicas back.
        c.stop(3)
        produce(c.live_bootstrap(), "on-four", 100, "b")
        c.start(3)
        c.wait_formed(timeout=60)
        produce(c.bootstrap, "on-four", 100, "c")
        wait_replicas_same(c, "on-four", 0, [4, 1, 2])
        wait_replicas_same(c, "on-four", 1, [2, 4, 3])
        c.wait_for("the ISR with node 4 again", lambda: sorted(c.metadata(3).partition("on-four", 0).isr)
                   == [1, 2, 4], timeout=30)
        s, out = quorum_status(KAFKA_NEWEST, "--bootstrap-server", c[2].bootstrap)
        assert ids(s["CurrentVoters"]) == [1, 2, 3] and ids(s["CurrentObservers"]) == [4], out
        assert "joining refused" not in n4.log_text(), n4.log_tail()
    finally:
        c.kill_all()
        print(f"node logs: {[str(n.log_path) for n in c.nodes]}")


def test_a_static_quorum_refuses_add_controller(tmp_path):
    c = Cluster(tmp_path, n=3, settings=FAST)
    try:
        c.start_all().wait_formed()
        rc, out, err = kafka_tool("kafka-metadata-quorum", "--bootstrap-controller",
                                  f"127.0.0.1:{c[0].controller_port}", "--command-config",
                                  str(c[1].config_path), "add-controller", version=KAFKA_NEWEST)
        assert rc != 0, out
        assert "UnsupportedVersionException" in err and "static" in err, err
    finally:
        c.kill_all()


# ------------------------------------------------------------------ a dynamic quorum


def dynamic_cluster(tmp_path):
    """Three combined nodes that know each other only as controller.quorum.bootstrap.servers."""
    c = Cluster(tmp_path, n=3, settings=FAST)
    servers = ",".join(f"127.0.0.1:{n.controller_port}" for n in c.nodes)
    for n in c.nodes:
        del n.settings["controller.quorum.voters"]
        n.settings["controller.quorum.bootstrap.servers"] = servers
    return c


def controller_bootstrap(c, indexes=None):
    return ",".join(f"127.0.0.1:{c[i].controller_port}" for i in (indexes or range(len(c))))


def check_status(c, version, voters, observers, via=None):
    """describe --status through --bootstrap-controller: the voters with their directory ids and
    controller endpoints, the observers with their directory ids."""
    def matches():
        s, out = quorum_status(version, "--bootstrap-controller", via or controller_bootstrap(c))
        return (s, out) if (ids(s["CurrentVoters"]), ids(s["CurrentObservers"])) == (voters, observers) else None

    s, out = c.wait_for(f"voters {voters}, observers {observers}", matches, timeout=60, interval=1)
    for v in s["CurrentVoters"]:
        n = c[c.index_of(v["id"])]
        assert v == {"id": n.node_id, "directoryId": directory_id(n),
                     "endpoints": [f"CONTROLLER://127.0.0.1:{n.controller_port}"]}, out
    for o in s["CurrentObservers"]:
        assert o == {"id": o["id"], "directoryId": directory_id(c[c.index_of(o["id"])])}, out
    assert s["LeaderId"] in voters, out
    return s


def add_controller(c, i, version):
    out = tool(version, "kafka-metadata-quorum", "--bootstrap-controller", controller_bootstrap(c),
               "--command-config", str(c[i].config_path), "add-controller")
    n = c[i]
    assert f"Added controller {n.node_id} with directory id {directory_id(n)} and endpoints: " \
           f"CONTROLLER://127.0.0.1:{n.controller_port}" in out, out


def remove_controller(c, i, version):
    n = c[i]
    out = tool(version, "kafka-metadata-quorum", "--bootstrap-controller", controller_bootstrap(c),
               "remove-controller", "--controller-id", str(n.node_id),
               "--controller-directory-id", directory_id(n))
    # The tool prints "Removed " and " KRaft" (two spaces).
    assert re.search(rf"Removed +KRaft controller {n.node_id} with directory id {re.escape(directory_id(n))}",
                     out), out


def create_topic(c, name, version=KAFKA_NEWEST):
    tool(version, "kafka-topics", "--bootstrap-server", c.live_bootstrap(), "--create", "--topic", name,
         "--partitions", "2", "--replication-factor", "3")
    c.wait_for(f"{name} has leaders", lambda: c.leader_of(name, 0) > 0 and c.leader_of(name, 1) > 0)


def test_add_and_remove_controllers_of_a_dynamic_quorum(tmp_path):
    c = dynamic_cluster(tmp_path)
    try:
        c.start_all().wait_formed(timeout=60)
        # Node 1 (the first bootstrap server) started the quorum alone; 2 and 3 observe.
        check_status(c, KAFKA_NEWEST, [1], [2, 3])
        check_status(c, KAFKA_VERSION, [1], [2, 3])
        create_topic(c, "before")

        add_controller(c, 1, KAFKA_NEWEST)
        check_status(c, KAFKA_VERSION, [1, 2], [3])
        add_controller(c, 2, KAFKA_VERSION)
        check_status(c, KAFKA_NEWEST, [1, 2, 3], [])
        # Added twice: Kafka's DUPLICATE_VOTER.
        rc, out, err = kafka_tool("kafka-metadata-quorum", "--bootstrap-controller", controller_bootstrap(c),
                                  "--command-config", str(c[2].config_path), "add-controller",
                                  version=KAFKA_NEWEST)
        assert rc != 0 and "DuplicateVoterException" in err, err
        create_topic(c, "three-voters")

        # A follower voter out, then the active controller itself.
        leader = check_status(c, KAFKA_NEWEST, [1, 2, 3], [])["LeaderId"]
        follower = next(i for i in (1, 2, 3) if i != leader)
        remove_controller(c, c.index_of(follower), KAFKA_NEWEST)
        remaining = sorted({1, 2, 3} - {follower})
        check_status(c, KAFKA_VERSION, remaining, [follower])
        create_topic(c, "after-removing-a-follower")
        remove_controller(c, c.index_of(leader), KAFKA_VERSION)
        last = [i for i in remaining if i != leader]
        s = check_status(c, KAFKA_NEWEST, last, sorted([follower, leader]))
        assert s["LeaderId"] == last[0]
        create_topic(c, "after-removing-the-leader")
        # Unknown voter: VOTER_NOT_FOUND.
        rc, out, err = kafka_tool("kafka-metadata-quorum", "--bootstrap-controller", controller_bootstrap(c),
                                  "remove-controller", "--controller-id", str(leader),
                                  "--controller-directory-id", directory_id(c[c.index_of(leader)]),
                                  version=KAFKA_NEWEST)
        assert rc != 0 and "VoterNotFoundException" in err, err

        # The voter set is in the log: it survives every node restarting.
        for i in range(3):
            c.stop(i)
        c.start_all().wait_formed(timeout=60)
        check_status(c, KAFKA_NEWEST, last, sorted([follower, leader]))
        create_topic(c, "after-restart")
        # And a removed controller can be added back.
        add_controller(c, c.index_of(leader), KAFKA_NEWEST)
        check_status(c, KAFKA_NEWEST, sorted(last + [leader]), [follower])
        create_topic(c, "added-back")
    finally:
        c.kill_all()
        print(f"node logs: {[str(n.log_path) for n in c.nodes]}")
