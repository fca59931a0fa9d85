"""Apache Kafka's cluster admin tools against a three-node Runnel cluster, each in Kafka 4.1.1 and in
the newest 4.x (4.4.0): `kafka-metadata-quorum describe --status / --replication` (DescribeQuorum,
forwarded to the active controller by any node), `kafka-topics --describe` (which prefers
DescribeTopicPartitions), `kafka-log-dirs --describe` (DescribeLogDirs) and `kafka-features`
(ApiVersions' features, UpdateFeatures). Every check compares the tools' printed output with what
the cluster reports through Metadata, with the files on disk, or with the change just made."""

import json
import re
import time

import pytest
from confluent_kafka import Producer

from helpers import KAFKA_TOOLS_VERSIONS, Cluster, kafka_tool

FAST = {
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "500",
    "replica.lag.time.max.ms": "3000",
}
ZERO_UUID = "AAAAAAAAAAAAAAAAAAAAAA"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One formed three-node cluster shared by the tests of this module (each leaves it as it found it)."""
    c = Cluster(tmp_path_factory.mktemp("tools"), n=3, settings=FAST)
    c.start_all()
    c.wait_formed()
    yield c
    c.kill_all()
    print(f"node logs: {[str(n.log_path) for n in c.nodes]}")


@pytest.fixture(params=KAFKA_TOOLS_VERSIONS)
def version(request):
    return request.param


def tool(version, name, *args, ok=True):
    rc, out, err = kafka_tool(name, *args, version=version)
    if ok:
        assert rc == 0, f"{name} {' '.join(args)} (Kafka {version}) exited {rc}:\n{out}\n{err}"
    return rc, out, err


def topic_name(base, version):
    return f"{base}-{version.replace('.', '')}"


def controller_of(cluster):
    """The active controller every node names in Metadata (they must agree)."""
    ids = {cluster.metadata(i).controller for i in cluster.live_indexes()}
    assert len(ids) == 1, f"nodes disagree on the controller: {ids}"
    return ids.pop()


# ---------------------------------------------------------------- kafka-metadata-quorum


def quorum_status(version, bootstrap):
    """`describe --status` as {key: value} (CurrentVoters/CurrentObservers parsed as JSON)."""
    _, out, _ = tool(version, "kafka-metadata-quorum", "--bootstrap-server", bootstrap, "describe", "--status")
    fields = dict(re.findall(r"^(\w+):\s+(.*)$", out, re.M))
    for key in ("ClusterId", "LeaderId", "LeaderEpoch", "HighWatermark", "MaxFollowerLag",
                "MaxFollowerLagTimeMs", "CurrentVoters", "CurrentObservers"):
        assert key in fields, f"{key} missing from:\n{out}"
    for key in ("LeaderId", "LeaderEpoch", "HighWatermark", "MaxFollowerLag", "MaxFollowerLagTimeMs"):
        fields[key] = int(fields[key])
    fields["CurrentVoters"] = json.loads(fields["CurrentVoters"])
    fields["CurrentObservers"] = json.loads(fields["CurrentObservers"])
    return fields, out


def quorum_replication(version, bootstrap, human=False):
    """`describe --replication` rows as dicts keyed by the printed header."""
    args = ["describe", "--replication"] + (["--human-readable"] if human else [])
    _, out, _ = tool(version, "kafka-metadata-quorum", "--bootstrap-server", bootstrap, *args)
    lines = [x for x in out.splitlines() if x.strip()]
    header = [h.strip() for h in lines[0].split("\t") if h.strip()]
    assert header == ["NodeId", "DirectoryId", "LogEndOffset", "Lag", "LastFetchTimestamp",
                      "LastCaughtUpTimestamp", "Status"], out
    rows = []
    for line in lines[1:]:
        cells = [c.strip() for c in line.split("\t")]
        rows.append(dict(zip(header, cells)))
    return rows, out


def test_metadata_quorum_status(cluster, version):
    controller = controller_of(cluster)
    cluster_id = cluster.metadata(0).cluster_id
    seen = []
    for node in cluster.nodes:  # the controller answers itself; the others forward to it
        s, out = quorum_status(version, node.bootstrap)
        assert s["ClusterId"] == cluster_id, out
        assert s["LeaderId"] == controller, out
        assert s["LeaderEpoch"] >= 1, out
        assert s["HighWatermark"] > 0, out
        assert 0 <= s["MaxFollowerLag"] < 50, out
        assert s["MaxFollowerLagTimeMs"] >= 0, out
        assert [v["id"] for v in s["CurrentVoters"]] == [1, 2, 3], out
        for v, n in zip(s["CurrentVoters"], cluster.nodes):
            assert v["endpoints"] == [f"CONTROLLER://127.0.0.1:{n.controller_port}"], out
            assert "directoryId" not in v, out  # the zero UUID is not printed
        assert s["CurrentObservers"] == [], out
        seen.append((s["LeaderId"], s["LeaderEpoch"]))
    assert len(set(seen)) == 1, seen


def test_metadata_quorum_replication(cluster, version):
    controller = controller_of(cluster)
    status, _ = quorum_status(version, cluster[0].bootstrap)
    for node in (cluster[0], cluster[2]):
        rows, out = quorum_replication(version, node.bootstrap)
        assert len(rows) == 3, out
        assert sorted(int(r["NodeId"]) for r in rows) == [1, 2, 3], out
        assert [r["Status"] for r in rows] == ["Leader", "Follower", "Follower"], out
        leader = rows[0]
        assert int(leader["NodeId"]) == controller, out
        leader_leo = int(leader["LogEndOffset"])
        assert leader_leo >= status["HighWatermark"] > 0, out
        now_ms = time.time() * 1000
        for r in rows:
            assert r["DirectoryId"] == ZERO_UUID, out
            assert int(r["Lag"]) == leader_leo - int(r["LogEndOffset"]), out
            assert 0 <= int(r["Lag"]) < 50, out
            fetch, caught_up = int(r["LastFetchTimestamp"]), int(r["LastCaughtUpTimestamp"])
            # Followers hear from the leader every 500 ms; the leader reports the time of the answer.
            assert now_ms - 30_000 < caught_up <= fetch <= now_ms + 1000, out
    rows, out = quorum_replication(version, cluster[1].bootstrap, human=True)
    for r in rows:
        for key in ("LastFetchTimestamp", "LastCaughtUpTimestamp"):
            m = re.fullmatch(r"(\d+) ms ago", r[key])
            assert m and int(m.group(1)) < 10_000, out


def test_metadata_quorum_after_the_controller_is_killed(tmp_path, version):
    c = Cluster(tmp_path / "failover", n=3, settings=FAST)
    try:
        c.start_all()
        c.wait_formed()
        old = controller_of(c)
        before, _ = quorum_status(version, c[0].bootstrap)
        c.kill9(c.index_of(old))
        survivor = next(i for i in c.live_indexes())

        def moved():
            s, out = quorum_status(version, c[survivor].bootstrap)
            return (s, out) if s["LeaderId"] not in (old, -1) else None

        after, out = c.wait_for("a new quorum leader reported by kafka-metadata-quorum", moved, timeout=60, interval=1)
        assert after["LeaderEpoch"] > before["LeaderEpoch"], out
        assert after["HighWatermark"] >= before["HighWatermark"], out
        assert [v["id"] for v in after["CurrentVoters"]] == [1, 2, 3], out
        rows, out = quorum_replication(version, c[survivor].bootstrap)
        status = {int(r["NodeId"]): r for r in rows}
        assert status[after["LeaderId"]]["Status"] == "Leader", out
        # The killed node is still a voter; the new leader has not heard from it.
        assert status[old]["Status"] == "Follower", out
        assert int(status[old]["LastFetchTimestamp"]) == -1, out
        c.start(c.index_of(old))

        def back():
            rows, _ = quorum_replication(version, c[survivor].bootstrap)
            r = {int(x["NodeId"]): x for x in rows}[old]
            return int(r["LastFetchTimestamp"]) > 0 and int(r["Lag"]) == 0

        c.wait_for(f"node {old} replicating again", back, timeout=60, interval=1)
    finally:
        c.kill_all()


# ---------------------------------------------------------------- kafka-topics --describe


def describe_rows(out, topic):
    """{partition: (leader, replicas, isr, elr, last_known_elr)} from kafka-topics --describe."""
    rows = {}
    pattern = (rf"Topic: {re.escape(topic)}\tPartition: (\d+)\tLeader: (-?\d+|none)\tReplicas: ([\d,]*)\t"
               r"Isr: ([\d,]*)\tElr: ([^\t]*)\tLastKnownElr: ([^\t\n]*)")
    for m in re.finditer(pattern, out):
        ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
        leader = -1 if m.group(2) == "none" else int(m.group(2))
        rows[int(m.group(1))] = (leader, ints(m.group(3)), ints(m.group(4)), m.group(5), m.group(6))
    return rows


def test_topics_describe(cluster, version):
    topic, wide = topic_name("described", version), topic_name("wide", version)
    tool(version, "kafka-topics", "--bootstrap-server", cluster[0].bootstrap, "--create", "--topic", topic,
         "--partitions", "3", "--replication-factor", "3")
    tool(version, "kafka-topics", "--bootstrap-server", cluster[1].bootstrap, "--create", "--topic", wide,
         "--partitions", "5", "--replication-factor", "3")

    def full_isr():
        views = [cluster.metadata(i) for i in range(3)]
        return all(sorted(p.isr) == sorted(p.replicas) and p.leader > 0
                   for v in views for t in (topic, wide) for p in v.topics[t][1].values())

    cluster.wait_for("full ISRs", full_isr)
    for i, node in enumerate(cluster.nodes):
        _, out, _ = tool(version, "kafka-topics", "--bootstrap-server", node.bootstrap, "--describe", "--topic", topic)
        header = re.search(rf"Topic: {re.escape(topic)}\tTopicId: (\S+)\tPartitionCount: (\d+)\t"
                           r"ReplicationFactor: (\d+)\tConfigs: ", out)
        assert header and header.group(2) == "3" and header.group(3) == "3", out
        rows = describe_rows(out, topic)
        assert sorted(rows) == [0, 1, 2], out
        view = cluster.metadata(i)
        for p, (leader, replicas, isr, elr, last_known_elr) in rows.items():
            want = view.partition(topic, p)
            assert (leader, replicas, isr) == (want.leader, want.replicas, want.isr), out
            assert leader in replicas and len(replicas) == 3 and sorted(isr) == sorted(replicas), out
            # DescribeTopicPartitions answered (with Metadata, the tool prints "N/A"): no ELR.
            assert (elr, last_known_elr) == ("", ""), out
        assert "N/A" not in out, out
    # Paged answers (two partitions per response) print the same as one answer.
    _, whole, _ = tool(version, "kafka-topics", "--bootstrap-server", cluster[2].bootstrap, "--describe",
                       "--topic", wide)
    _, paged, _ = tool(version, "kafka-topics", "--bootstrap-server", cluster[2].bootstrap, "--describe",
                       "--topic", wide, "--partition-size-limit-per-response", "2")
    assert sorted(describe_rows(whole, wide)) == [0, 1, 2, 3, 4], whole
    assert describe_rows(paged, wide) == describe_rows(whole, wide), paged
    # Every topic, paged across the topic boundary.
    _, everything, _ = tool(version, "kafka-topics", "--bootstrap-server", cluster[0].bootstrap, "--describe",
                            "--partition-size-limit-per-response", "2")
    assert describe_rows(everything, topic) == describe_rows(out, topic), everything
    assert describe_rows(everything, wide) == describe_rows(whole, wide), everything


# ---------------------------------------------------------------- kafka-log-dirs


def test_log_dirs(cluster, version):
    topic = topic_name("sized", version)
    tool(version, "kafka-topics", "--bootstrap-server", cluster[0].bootstrap, "--create", "--topic", topic,
         "--partitions", "2", "--replication-factor", "3")
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(300):
        p.produce(topic, value=f"record-{i}".encode() * 8, partition=i % 2)
    assert p.flush(30) == 0
    for part in (0, 1):
        cluster.wait_replicas_identical(topic, part)
    _, out, _ = tool(version, "kafka-log-dirs", "--bootstrap-server", cluster[1].bootstrap, "--describe",
                     "--broker-list", "1,2,3", "--topic-list", topic)
    assert "Received log directory information from brokers 1,2,3" in out, out
    doc = json.loads(out.strip().splitlines()[-1])
    assert doc["version"] == 1
    brokers = {b["broker"]: b for b in doc["brokers"]}
    assert sorted(brokers) == [1, 2, 3], out
    for i, node in enumerate(cluster.nodes):
        dirs = brokers[node.node_id]["logDirs"]
        assert len(dirs) == 1, out
        d = dirs[0]
        assert d["logDir"] == str(node.data_dir) and d["error"] is None, out
        got = {x["partition"]: x for x in d["partitions"]}
        assert sorted(got) == [f"{topic}-0", f"{topic}-1"], out  # --topic-list leaves the others out
        for part in (0, 1):
            x = got[f"{topic}-{part}"]
            on_disk = len(cluster.log_bytes(i, topic, part))
            assert on_disk > 0 and x["size"] == on_disk, (node.node_id, x, on_disk)
            assert x["offsetLag"] == 0 and x["isFuture"] is False, out
    # Without --topic-list every hosted partition is listed (the other tests' topics too).
    _, out, _ = tool(version, "kafka-log-dirs", "--bootstrap-server", cluster[2].bootstrap, "--describe",
                     "--broker-list", "2")
    doc = json.loads(out.strip().splitlines()[-1])
    assert [b["broker"] for b in doc["brokers"]] == [2], out
    listed = {x["partition"] for x in doc["brokers"][0]["logDirs"][0]["partitions"]}
    assert {f"{topic}-0", f"{topic}-1"} <= listed, out


# ---------------------------------------------------------------- kafka-features


def features(version, bootstrap):
    """`kafka-features describe` as {feature: (min, max, finalized, epoch)} (tab- or space-separated)."""
    _, out, _ = tool(version, "kafka-features", "--bootstrap-server", bootstrap, "describe")
    found = re.findall(r"Feature: (\S+)\s+SupportedMinVersion: (\S+)\s+SupportedMaxVersion: (\S+)\s+"
                       r"FinalizedVersionLevel: (\S+)\s+Epoch: (\S+)", out)
    assert found, out
    epochs = {f[4] for f in found}
    assert len(epochs) == 1 and int(epochs.pop()) >= 0, out
    return {name: (lo, hi, level) for name, lo, hi, level, _ in found}, out


def wait_feature(cluster, version, name, level):
    """Waits until every node describes `name` at `level`."""
    def everywhere():
        return all(features(version, n.bootstrap)[0][name][2] == level for n in cluster.nodes)

    cluster.wait_for(f"{name} at {level} on every node", everywhere, timeout=30, interval=0.5)


def test_features(cluster, version):
    got, out = features(version, cluster[0].bootstrap)
    assert got == {
        "eligible.leader.replicas.version": ("0", "1", "1"),
        "group.version": ("0", "1", "1"),
        "kraft.version": ("0", "0", "0"),
        "metadata.version": ("3.3-IV3", "4.0-IV3", "4.0-IV3"),
        "transaction.version": ("0", "2", "2"),
    }, out
    follower = next(n for n in cluster.nodes if n.node_id != controller_of(cluster))
    try:
        # A dry run changes nothing.
        _, out, _ = tool(version, "kafka-features", "--bootstrap-server", follower.bootstrap, "downgrade",
                         "--feature", "transaction.version=1", "--dry-run")
        assert "transaction.version can be downgraded to 1." in out, out
        assert features(version, cluster[0].bootstrap)[0]["transaction.version"][2] == "2"
        # A downgrade through a node that is not the controller reaches every node, and back up.
        _, out, _ = tool(version, "kafka-features", "--bootstrap-server", follower.bootstrap, "downgrade",
                         "--feature", "transaction.version=1")
        assert "transaction.version was downgraded to 1." in out, out
        wait_feature(cluster, version, "transaction.version", "1")
        _, out, _ = tool(version, "kafka-features", "--bootstrap-server", cluster[2].bootstrap, "upgrade",
                         "--feature", "transaction.version=2")
        assert "transaction.version was upgraded to 2." in out, out
        wait_feature(cluster, version, "transaction.version", "2")
        # Refusals: beyond the supported range, and metadata.version, which Runnel serves at one level.
        rc, out, err = tool(version, "kafka-features", "--bootstrap-server", cluster[0].bootstrap, "upgrade",
                            "--feature", "transaction.version=3", ok=False)
        assert rc != 0, out
        assert "Could not upgrade transaction.version to 3." in out, out
        assert "only supports versions 0-2" in out, out
        rc, out, err = tool(version, "kafka-features", "--bootstrap-server", cluster[0].bootstrap, "downgrade",
                            "--metadata", "3.9-IV0", ok=False)
        assert rc != 0, out
        assert "Could not downgrade metadata.version to 21." in out and "cannot be changed" in out, out
        got, out = features(version, cluster[1].bootstrap)
        assert got["transaction.version"][2] == "2" and got["metadata.version"][2] == "4.0-IV3", out
    finally:
        kafka_tool("kafka-features", "--bootstrap-server", cluster[0].bootstrap, "upgrade", "--feature",
                   "transaction.version=2", version=version)
