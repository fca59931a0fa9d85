"""Eligible leader replicas (KIP-966) in a three-node Runnel cluster, seen through Apache Kafka's tools
in 4.1.1 and the newest 4.x (4.4.0): RF 3, min.insync.replicas=2. Two followers stop one after
the other (SIGTERM: clean shutdowns): `kafka-topics --describe` shows the second one under `Elr:`.
The leader stops too; the two followers start again (the metadata quorum needs two of three): the
eligible one leads cleanly (alone in the ISR, the old leader eligible in its turn, the ELR not
cleared as an unclean election would), and once the old leader is back every record acknowledged
with acks=all is read. `kafka-features describe` shows eligible.leader.replicas.version at 1."""

import re
import time

import pytest
from confluent_kafka import Producer

from helpers import KAFKA_TOOLS_VERSIONS, Cluster, kafka_tool
from test_cluster import read_partition

FAST = {
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "500",
    "replica.lag.time.max.ms": "3000",
    "min.insync.replicas": "2",
    "default.replication.factor": "3",
}


def tool(version, name, *args):
    rc, out, err = kafka_tool(name, *args, version=version)
    assert rc == 0, f"{name} {' '.join(args)} (Kafka {version}) exited {rc}:\n{out}\n{err}"
    return out


def describe(version, bootstrap, topic):
    """Partition 0 of `topic` as kafka-topics --describe prints it: (leader, isr, elr, last known elr)."""
    out = tool(version, "kafka-topics", "--bootstrap-server", bootstrap, "--describe", "--topic", topic)
    m = re.search(rf"Topic: {re.escape(topic)}\tPartition: 0\tLeader: (-?\d+|none)\tReplicas: ([\d,]*)\t"
                  r"Isr: ([\d,]*)\tElr: ([^\t]*)\tLastKnownElr: ([^\t\n]*)", out)
    assert m, out
    leader = -1 if m.group(1) == "none" else int(m.group(1))
    return (leader, m.group(3), m.group(4), m.group(5)), out


@pytest.mark.parametrize("version", KAFKA_TOOLS_VERSIONS)
def test_an_eligible_replica_leads_cleanly_with_every_acknowledged_record(tmp_path, version):
    cluster = Cluster(tmp_path, n=3, settings=FAST)
    try:
        cluster.start_all()
        cluster.wait_formed()
        out = tool(version, "kafka-features", "--bootstrap-server", cluster[0].bootstrap, "describe")
        assert re.search(r"Feature: eligible\.leader\.replicas\.version\s+SupportedMinVersion: 0\s+"
                         r"SupportedMaxVersion: 1\s+FinalizedVersionLevel: 1\s", out), out
        topic = f"elr-{version.replace('.', '')}"
        tool(version, "kafka-topics", "--bootstrap-server", cluster[0].bootstrap, "--create", "--topic", topic,
             "--replica-assignment", "1:2:3")
        cluster.wait_for("a full ISR led by 1", lambda: all(
            cluster.metadata(i).partition(topic, 0).leader == 1
            and sorted(cluster.metadata(i).partition(topic, 0).isr) == [1, 2, 3] for i in range(3)))

        acked, failed = [], []

        def delivered(err, msg):
            (failed if err else acked).append(err or msg.value())

        p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "enable.idempotence": True,
                      "linger.ms": 5})
        for i in range(2000):
            p.produce(topic, value=f"v{i}".encode(), on_delivery=delivered)
            if i % 200 == 0:
                p.poll(0)
        assert p.flush(30) == 0
        assert not failed and len(acked) == 2000, failed[:3]

        # Follower 2 stops: the ISR is at min ISR, nobody is eligible outside it.
        cluster.stop(1)
        cluster.wait_for("2 out of the ISR", lambda: describe(version, cluster[0].bootstrap, topic)[0]
                         == (1, "1,3", "", ""), timeout=30, interval=1)
        # Follower 3 stops: below min ISR, it holds every committed record: eligible.
        cluster.stop(2)
        row, out = describe(version, cluster[0].bootstrap, topic)
        assert row == (1, "1", "3", ""), out
        # The leader stops too, then both followers come back (the quorum needs two nodes).
        cluster.stop(0)
        cluster[1].spawn()
        cluster[2].spawn()
        cluster[1].wait_listening(30)
        cluster[2].wait_listening(30)
        cluster.wait_for("3 leads from the ELR", lambda: describe(version, cluster[1].bootstrap, topic)[0][0] == 3,
                         timeout=60, interval=1)
        row, out = describe(version, cluster[1].bootstrap, topic)
        # Clean: 3 leads, alone in the ISR with 1 (the old leader, fenced) eligible — until 2
        # has caught up from it and the ISR is back at min ISR, which clears the ELR. 2, the
        # first live replica, would have led after an unclean election (and the ELR gone).
        assert row in ((3, "3", "1", ""), (3, "2,3", "", "")), out
        # The old leader returns: it catches up from 3, the ISR is at min ISR again, the ELR is
        # cleared and the high watermark moves: every acknowledged record is there, once.
        cluster.start(0)
        def whole():
            leader, isr, elr, last = describe(version, cluster[0].bootstrap, topic)[0]
            return sorted(isr.split(",")) == ["1", "2", "3"] and (elr, last) == ("", "")

        cluster.wait_for("a whole ISR, no ELR", whole, timeout=60, interval=1)
        got = [v for _, v in read_partition(cluster.bootstrap, topic, 0)]
        assert sorted(set(acked)) == sorted(set(got)) and len(got) == len(set(got)), \
            f"acked {len(acked)} read {len(got)}: missing {sorted(set(acked) - set(got))[:5]}"
    finally:
        cluster.kill_all()
        print(f"node logs: {[str(n.log_path) for n in cluster.nodes]}")
        time.sleep(0.1)
