"""A Runnel cluster whose controllers are apart from its brokers (Kafka's isolated mode): three
`process.roles=controller` nodes vote in the metadata quorum and three `process.roles=broker` nodes
host the partitions. min.insync.replicas=2 on an RF 3 topic with both followers of the partition
SIGKILLed: acks=all is refused with NOT_ENOUGH_REPLICAS (kafka-python, librdkafka and the Java
client of Kafka 4.1.1 and 4.4.0), acks=1 is accepted; once the followers are back the ISR is whole
again (`kafka-topics --describe`, both versions), acks=all is accepted, and every acknowledged
record is read back exactly once while no refused record is in the log."""

import json
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from confluent_kafka import Producer
from kafka import KafkaProducer
from kafka.errors import NotEnoughReplicasAfterAppendError, NotEnoughReplicasError

from helpers import KAFKA_TOOLS_VERSIONS, Cluster, ClusterNode, free_ports, java_cmd, kafka_tool
from test_cluster import read_partition

FAST = {
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "500",
    "replica.lag.time.max.ms": "3000",
    "group.initial.rebalance.delay.ms": "0",
}


class SplitCluster(Cluster):
    """`controllers` controller-only nodes (ids 1..controllers) and `brokers` broker-only nodes (the
    ids after them), each `runnel serve --config <its file>`; node ids are index + 1 as in Cluster.
    Client-facing helpers (bootstrap, live_indexes, metadata, leader_of) see the brokers only."""

    def __init__(self, tmp, controllers=3, brokers=3, settings=None):
        n = controllers + brokers
        ports = free_ports(n)
        voters = ",".join(f"{i + 1}@127.0.0.1:{ports[i]}" for i in range(controllers))
        self.controller_count = controllers
        self.nodes = []
        for i in range(n):
            d = tmp / f"node{i + 1}"
            d.mkdir(parents=True, exist_ok=True)
            is_controller = i < controllers
            conf = {
                "process.roles": "controller" if is_controller else "broker",
                "node.id": str(i + 1),
                "controller.quorum.voters": voters,
                "listeners": f"{'CONTROLLER' if is_controller else 'PLAINTEXT'}://127.0.0.1:{ports[i]}",
                "controller.listener.names": "CONTROLLER",
                "log.dirs": str(d / "data"),
            }
            if not is_controller:
                conf.update({
                    "inter.broker.listener.name": "PLAINTEXT",
                    "default.replication.factor": str(min(3, brokers)),
                    "offsets.topic.replication.factor": str(min(3, brokers)),
                })
            conf.update({k: str(v) for k, v in (settings or {}).items()})
            # A controller node's only port is its controller listener; a broker's, its client listener.
            self.nodes.append(ClusterNode(i + 1, d, ports[i], ports[i] if is_controller else None, conf))

    @property
    def controllers(self):
        return self.nodes[:self.controller_count]

    @property
    def brokers(self):
        return self.nodes[self.controller_count:]

    @property
    def bootstrap(self):
        return ",".join(n.bootstrap for n in self.brokers)

    def live_bootstrap(self):
        return ",".join(n.bootstrap for n in self.brokers if n.alive() and not n.paused)

    def live_indexes(self):
        return [i for i in super().live_indexes() if i >= self.controller_count]

    def wait_replicas_identical(self, topic, partition, timeout=20):
        """Every broker's replica holds the same, non-empty bytes (controllers hold none)."""
        def same():
            logs = [self.log_bytes(i, topic, partition) for i in range(self.controller_count, len(self.nodes))]
            return len(logs[0]) > 0 and all(x == logs[0] for x in logs)

        self.wait_for(f"{topic}-{partition}: identical replicas on the brokers", same, timeout, interval=0.5)

    def wait_formed(self, timeout=60):
        """Every live broker's Metadata lists every live broker and names one of them as the
        controller (as Kafka's brokers do when the controllers are apart: clients cannot reach the
        quorum, a broker forwards their admin requests to it)."""
        want = sorted(self.nodes[i].node_id for i in self.live_indexes())

        def formed():
            views = [self.metadata(i) for i in self.live_indexes()]
            return all(sorted(v.brokers) == want and v.controller in want for v in views)

        self.wait_for(f"brokers {want} formed a cluster", formed, timeout)
        return self


def partition0(cluster, i, topic):
    err, parts = cluster.metadata(i).topics[topic]
    assert err == 0, f"node {i + 1}: topic {topic} error {err}"
    return parts[0]


def describe_isr(version, bootstrap, topic):
    """kafka-topics --describe of partition 0: (leader, replicas, isr), and the printed text."""
    rc, out, err = kafka_tool("kafka-topics", "--bootstrap-server", bootstrap, "--describe", "--topic", topic,
                              version=version)
    assert rc == 0, f"kafka-topics --describe (Kafka {version}) exited {rc}:\n{out}\n{err}"
    m = re.search(rf"Topic: {re.escape(topic)}\tPartition: 0\tLeader: (-?\d+|none)\tReplicas: ([\d,]*)\t"
                  r"Isr: ([\d,]*)", out)
    assert m, out
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    return (-1 if m.group(1) == "none" else int(m.group(1)), ints(m.group(2)), ints(m.group(3))), out


# VerifiableProducer's --value-prefix is a number: the values it writes are `<phase><n>.0`, n = 1
# for Kafka 4.1.1's producer, 2 for 4.4.0's.
PHASES = {"full": 1, "refused": 2, "acks1": 3, "whole": 4}


def java_value(phase, version):
    return f"{PHASES[phase]}{KAFKA_TOOLS_VERSIONS.index(version) + 1}.0"


def java_produce(version, tmp_path, bootstrap, topic, acks, phase):
    """Apache Kafka `version`'s VerifiableProducer: one record java_value(phase, version) with `acks`,
    no retries. Returns the event of its send (producer_send_success or producer_send_error)."""
    prefix = java_value(phase, version)[:-2]
    conf = tmp_path / f"producer-{prefix}.properties"
    conf.write_text("enable.idempotence=false\nretries=0\nrequest.timeout.ms=10000\n"
                    "delivery.timeout.ms=15000\nlinger.ms=0\nmax.block.ms=15000\n")
    cmd = java_cmd("org.apache.kafka.tools.VerifiableProducer", "--bootstrap-server", bootstrap,
                   "--topic", topic, "--max-messages", "1", "--acks", str(acks), "--value-prefix", prefix,
                   "--producer.config", str(conf), version=version)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    events = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    assert any(e["name"] == "shutdown_complete" for e in events), \
        f"VerifiableProducer (Kafka {version}) exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
    sent = [e for e in events if e["name"] in ("producer_send_success", "producer_send_error")]
    assert len(sent) == 1, (version, p.stdout)
    return sent[0]


def both_versions(fn):
    """fn(version) for 4.1.1 and 4.4.0 at once (two JVMs in parallel): {version: result}."""
    with ThreadPoolExecutor(len(KAFKA_TOOLS_VERSIONS)) as pool:
        futures = {v: pool.submit(fn, v) for v in KAFKA_TOOLS_VERSIONS}
        return {v: f.result() for v, f in futures.items()}


def test_min_isr_with_controllers_apart_from_the_brokers(tmp_path):
    cluster = SplitCluster(tmp_path, controllers=3, brokers=3, settings=FAST)
    topic = "minisr-split"
    try:
        t0 = time.time()
        cluster.start_all(timeout=60)
        cluster.wait_formed()
        view = cluster.metadata(cluster.live_indexes()[0])
        assert sorted(view.brokers) == [4, 5, 6], view  # the controller-only nodes are no brokers
        print(f"formed in {time.time() - t0:.1f} s, Metadata's controller id {view.controller}")
        # The quorum as Kafka's tool sees it through a broker: controllers 1-3 vote, brokers 4-6 observe.
        rc, out, err = kafka_tool("kafka-metadata-quorum", "--bootstrap-server", cluster.bootstrap, "describe",
                                  "--status", version=KAFKA_TOOLS_VERSIONS[-1])
        assert rc == 0, err
        status = dict(re.findall(r"^(\w+):\s+(.*)$", out, re.M))
        assert [v["id"] for v in json.loads(status["CurrentVoters"])] == [1, 2, 3], out
        assert sorted(o["id"] for o in json.loads(status["CurrentObservers"])) == [4, 5, 6], out
        assert int(status["LeaderId"]) in (1, 2, 3), out

        rc, out, err = kafka_tool("kafka-topics", "--bootstrap-server", cluster.brokers[0].bootstrap, "--create",
                                  "--topic", topic, "--partitions", "1", "--replication-factor", "3",
                                  "--config", "min.insync.replicas=2", version=KAFKA_TOOLS_VERSIONS[-1])
        assert rc == 0, err

        def full_isr():
            ps = [partition0(cluster, i, topic) for i in cluster.live_indexes()]
            return ps[0] if all(p.leader in (4, 5, 6) and sorted(p.isr) == [4, 5, 6]
                                and (p.leader, p.leader_epoch) == (ps[0].leader, ps[0].leader_epoch)
                                for p in ps) else None

        p = cluster.wait_for(f"{topic}: a leader and ISR 4,5,6 on every broker", full_isr, timeout=30)
        leader = p.leader
        li = cluster.index_of(leader)
        followers = [i for i in cluster.live_indexes() if i != li]

        acked = {}  # value -> the offset it was acknowledged at
        refused = []  # values refused with NOT_ENOUGH_REPLICAS (so never appended)
        maybe = []  # values refused with NOT_ENOUGH_REPLICAS_AFTER_APPEND (appended, not acknowledged)

        def kp_send(acks, value):
            prod = KafkaProducer(bootstrap_servers=cluster.live_bootstrap(), acks=acks, retries=0,
                                 request_timeout_ms=10000, max_block_ms=10000)
            try:
                return prod.send(topic, value=value, partition=0).get(timeout=20)
            finally:
                prod.close(timeout=5)

        def java_acked(phase, acks):
            """Both versions' VerifiableProducer write java_value(phase, version); both acknowledged."""
            for v, ev in both_versions(lambda v: java_produce(v, tmp_path, cluster.live_bootstrap(), topic, acks,
                                                              phase)).items():
                assert ev["name"] == "producer_send_success", (v, ev)
                assert ev["value"] == java_value(phase, v) and ev["partition"] == 0, (v, ev)
                acked[ev["value"].encode()] = ev["offset"]

        def rdkafka_send(acks, value):
            """librdkafka without retries: the delivery report's error (None when acknowledged)."""
            prod = Producer({"bootstrap.servers": cluster.live_bootstrap(), "acks": acks, "retries": 0,
                             "enable.idempotence": False, "message.timeout.ms": 15000,
                             "request.timeout.ms": 10000})
            report = []
            prod.produce(topic, value=value, partition=0, on_delivery=lambda e, m: report.append((e, m)))
            assert prod.flush(20) == 0
            (e, m), = report
            return e, m

        # Whole ISR: acks=all with each client.
        for i in range(5):
            acked[b"full-%d" % i] = kp_send("all", b"full-%d" % i).offset
        e, m = rdkafka_send("all", b"full-rdkafka")
        assert e is None, e
        acked[b"full-rdkafka"] = m.offset()
        java_acked("full", -1)

        # Both followers SIGKILLed: the leader's ISR shrinks to itself.
        for i in followers:
            cluster.kill9(i)
        t = time.time()

        def shrunk():
            p = partition0(cluster, li, topic)
            return p if p.isr == [leader] and p.leader == leader else None

        cluster.wait_for(f"ISR [{leader}] after killing {[i + 1 for i in followers]}", shrunk, timeout=30)
        (d_leader, d_replicas, d_isr), out = describe_isr(KAFKA_TOOLS_VERSIONS[0], cluster.live_bootstrap(), topic)
        assert (d_leader, sorted(d_replicas), d_isr) == (leader, [4, 5, 6], [leader]), out
        print(f"ISR [{leader}] {time.time() - t:.1f} s after killing nodes {[i + 1 for i in followers]}")

        # acks=all is refused by every client; acks=1 is accepted.
        with pytest.raises((NotEnoughReplicasError, NotEnoughReplicasAfterAppendError)) as info:
            kp_send("all", b"refused-kafka-python")
        (refused if isinstance(info.value, NotEnoughReplicasError) else maybe).append(b"refused-kafka-python")
        e, _ = rdkafka_send("all", b"refused-rdkafka")
        assert e is not None and e.name() in ("NOT_ENOUGH_REPLICAS", "NOT_ENOUGH_REPLICAS_AFTER_APPEND"), e
        (refused if e.name() == "NOT_ENOUGH_REPLICAS" else maybe).append(b"refused-rdkafka")
        for v, ev in both_versions(lambda v: java_produce(v, tmp_path, cluster.live_bootstrap(), topic, -1,
                                                          "refused")).items():
            assert ev["name"] == "producer_send_error", (v, ev)
            assert ev["exception"] in ("class org.apache.kafka.common.errors.NotEnoughReplicasException",
                                       "class org.apache.kafka.common.errors.NotEnoughReplicasAfterAppendException"), \
                (v, ev)
            (refused if ev["exception"].endswith(".NotEnoughReplicasException") else maybe).append(
                java_value("refused", v).encode())
        acked[b"acks1-kafka-python"] = kp_send(1, b"acks1-kafka-python").offset
        e, m = rdkafka_send(1, b"acks1-rdkafka")
        assert e is None, e
        acked[b"acks1-rdkafka"] = m.offset()
        java_acked("acks1", 1)
        # Still the leader, still alone in the ISR.
        assert shrunk(), partition0(cluster, li, topic)

        # The followers return (after SIGKILL: an unclean restart), catch up and rejoin the ISR.
        t = time.time()
        for i in followers:
            cluster.start(i)
        cluster.wait_for(f"{topic}: ISR 4,5,6 again", full_isr, timeout=40)
        print(f"ISR whole again {time.time() - t:.1f} s after restarting the followers")
        for v, ((d_leader, d_replicas, d_isr), out) in both_versions(
                lambda v: describe_isr(v, cluster.live_bootstrap(), topic)).items():
            assert d_leader in (4, 5, 6) and sorted(d_replicas) == [4, 5, 6] and sorted(d_isr) == [4, 5, 6], (v, out)

        # acks=all is accepted again.
        acked[b"whole-kafka-python"] = kp_send("all", b"whole-kafka-python").offset
        e, m = rdkafka_send("all", b"whole-rdkafka")
        assert e is None, e
        acked[b"whole-rdkafka"] = m.offset()
        java_acked("whole", -1)

        # Every acknowledged record exactly once, at the offset it was acknowledged with; of the
        # refused ones, none refused before the append (NOT_ENOUGH_REPLICAS) is in the log.
        got = read_partition(cluster.bootstrap, topic, 0)
        values = [v for _, v in got]
        assert [o for o, _ in got] == list(range(len(got))), got
        wrong = {v: (o, values.count(v)) for v, o in acked.items()
                 if values.count(v) != 1 or o >= len(got) or got[o][1] != v}
        assert not wrong, f"acknowledged records missing, duplicated or moved (offset, copies): {wrong}\n{got}"
        assert not set(refused) & set(values), (refused, got)
        assert sorted(values) == sorted(list(acked) + [v for v in maybe if v in values]), (got, acked, maybe)
        print(f"{len(acked)} acknowledged records read back once; refused {refused}; after append {maybe}")
        cluster.wait_replicas_identical(topic, 0)
    finally:
        cluster.kill_all()
        print(f"node logs: {[str(n.log_path) for n in cluster.nodes]}")
