"""Listeners as in the classic docker-compose setup, each broker in its own network namespace
(tests/netns.py, layout "internal_external"): INTERNAL (`inter.broker.listener.name`) and CONTROLLER
on an internal network only the brokers share, EXTERNAL on a network they share with the clients,
advertised under a name (`node<id>.external`) that only the clients' /etc/hosts knows. The brokers
cannot reach each other over the external network, and the clients cannot reach the internal one.

Checked: Metadata asked on EXTERNAL lists every broker's EXTERNAL name and nothing else, on INTERNAL
the INTERNAL addresses; replication of an RF 3 topic works over INTERNAL (acks=all writes from
Kafka's console producer land byte-identical in the three logs dirs, and survive the leader's
SIGKILL); Kafka's console producer and consumer (Java) and librdkafka, each bootstrapping on one
EXTERNAL address, produce and consume with consumer groups and commit; a client in the clients'
namespace gets nowhere on an INTERNAL or CONTROLLER address."""

import errno
import json
import time

import pytest

from conftest import FAST_CLUSTER
from helpers import kafka_tool_cmd, metadata_v7
from netns import NetnsCluster, can_connect
from test_cluster import partitions_of, wait_full_isr

# A librdkafka (confluent-kafka) client run in a namespace: `brokers`, `produce` or `consume`; prints
# one JSON line.
RDKAFKA_CLIENT = r"""
import json, sys, time
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

what, bootstrap = sys.argv[1], sys.argv[2]
if what == "brokers":
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=float(sys.argv[3]))
    print(json.dumps({"brokers": {b.id: f"{b.host}:{b.port}" for b in md.brokers.values()},
                      "controller": md.controller_id}))
elif what == "produce":
    topic, n, prefix = sys.argv[3], int(sys.argv[4]), sys.argv[5]
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    acked, failed = [], []
    def done(err, msg):
        (failed if err else acked).append(str(err) if err else msg.value().decode())
    for i in range(n):
        p.produce(topic, value=f"{prefix}-{i}".encode(), on_delivery=done)
    left = p.flush(60)
    print(json.dumps({"acked": acked, "failed": failed, "left": left}))
elif what == "consume":
    topic, group, n = sys.argv[3], sys.argv[4], int(sys.argv[5])
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got, deadline = [], time.time() + 60
    while len(got) < n and time.time() < deadline:
        m = c.poll(1.0)
        if m is not None and not m.error():
            got.append(m.value().decode())
    c.commit(asynchronous=False)
    committed = {tp.partition: tp.offset for tp in c.committed(c.assignment(), timeout=10)}
    c.close()
    print(json.dumps({"values": got, "committed": committed}))
"""


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    c = NetnsCluster(tmp_path_factory.mktemp("listeners"), n=3, settings=FAST_CLUSTER, listeners="internal_external",
                     external_names=True)
    try:
        yield c.start_all().wait_formed()
    finally:
        print(f"node logs: {[str(n.log_path) for n in c.nodes]}")
        c.close()


def rdkafka(cluster, *args, node=None, timeout=120):
    """Runs RDKAFKA_CLIENT in the clients' namespace (or beside node `node`): (rc, parsed output, stderr)."""
    cmd = cluster.python_cmd("-c", RDKAFKA_CLIENT, *map(str, args))
    rc, out, err = cluster.run_in_client(cmd, timeout) if node is None else cluster.run_in_node(node, cmd, timeout)
    lines = [x for x in out.splitlines() if x.startswith("{")]
    return rc, (json.loads(lines[-1]) if lines else None), err


def tool(cluster, name, *args, input=None, timeout=120):
    """One of Kafka's tools run in the clients' namespace: (rc, stdout, stderr)."""
    return cluster.run_in_client(kafka_tool_cmd(name, *args), timeout=timeout, input=input)


def external(cluster, i):
    """Node i's advertised EXTERNAL address (a name only the clients' namespace resolves)."""
    return f"{cluster.external_host(i)}:9094"


def create(cluster, topic, partitions, via=0):
    rc, out, err = tool(cluster, "kafka-topics", "--bootstrap-server", external(cluster, via), "--create", "--topic",
                        topic, "--partitions", str(partitions), "--replication-factor", "3",
                        "--config", "min.insync.replicas=2")
    assert rc == 0, err
    wait_full_isr(cluster, topic, partitions)


def test_each_listener_advertises_its_own_addresses(split):
    names = {i + 1: (f"node{i + 1}.external", 9094) for i in range(3)}
    internal = {i + 1: (split.internal_ip(i), 9092) for i in range(3)}
    for i in range(3):
        # Asked on EXTERNAL from the clients' namespace: every broker by its EXTERNAL name.
        view = split.in_client(metadata_v7, split.address(i, "EXTERNAL"))
        assert {b: (h, p) for b, (h, p, _) in view.brokers.items()} == names, view
        # Asked on INTERNAL beside the node: the INTERNAL addresses, as a follower sees them.
        view = split.metadata(i, listener="INTERNAL")
        assert {b: (h, p) for b, (h, p, _) in view.brokers.items()} == internal, view
    # librdkafka bootstrapping on one EXTERNAL name learns the others' names and reaches them all.
    rc, out, err = rdkafka(split, "brokers", external(split, 1), 20)
    assert rc == 0, err
    assert out["brokers"] == {str(b): f"{h}:{p}" for b, (h, p) in names.items()}, out
    assert out["controller"] in (1, 2, 3), out


def test_clients_cannot_reach_the_internal_listeners(split, tmp_path):
    for i in range(3):
        for port in (9092, 9093):
            # No route at all to the internal network from the clients' namespace...
            ok, e = split.in_client(can_connect, split.internal_ip(i), port, 2.0)
            assert not ok and e.errno == errno.ENETUNREACH, (split.internal_ip(i), port, e)
            # ...and nothing listens for INTERNAL or CONTROLLER on the external address.
            ok, e = split.in_client(can_connect, split.external_ip(i), port, 2.0)
            assert not ok and e.errno == errno.ECONNREFUSED, (split.external_ip(i), port, e)
        # While beside the node, INTERNAL and CONTROLLER answer (the probes above are not vacuous).
        assert split.in_node(i, can_connect, split.internal_ip(i), 9092)[0]
        assert split.in_node(i, can_connect, split.internal_ip(i), 9093)[0]
    # Real clients bootstrapping on an INTERNAL address get nowhere.
    rc, out, err = rdkafka(split, "brokers", split.address(0, "INTERNAL"), 5)
    assert rc != 0 and out is None and "KafkaException" in err, (rc, out, err)
    config = tmp_path / "short-timeouts.properties"
    config.write_text("request.timeout.ms=3000\ndefault.api.timeout.ms=6000\n")
    rc, out, err = tool(split, "kafka-topics", "--bootstrap-server", split.address(1, "INTERNAL"),
                        "--command-config", str(config), "--list")
    assert rc != 0 and "Timed out waiting for a node assignment" in out + err, (rc, out, err)
    # The same librdkafka call beside node 1 on INTERNAL works, and sees INTERNAL addresses.
    rc, out, err = rdkafka(split, "brokers", split.address(0, "INTERNAL"), 20, node=0)
    assert rc == 0, err
    assert out["brokers"] == {str(i + 1): split.address(i, "INTERNAL") for i in range(3)}, out


def test_replication_over_internal_with_acks_all(split):
    topic = "replicated"
    create(split, topic, 1)
    lines = "".join(f"r-{i}\n" for i in range(200))
    rc, out, err = tool(split, "kafka-console-producer", "--bootstrap-server", external(split, 1), "--topic", topic,
                        "--producer-property", "acks=all", input=lines)
    assert rc == 0, err
    # Every record is in all three logs dirs, byte for byte the same: the followers fetched over
    # INTERNAL (the only way between the brokers).
    split.wait_replicas_identical(topic, 0)
    for i in range(3):
        data = split.log_bytes(i, topic, 0)
        assert all(f"r-{k}".encode() in data for k in range(200)), f"node {i + 1} misses records"
    # The leader killed, another one leads and serves everything to a consumer on EXTERNAL.
    leader = split.leader_of(topic, 0)
    li = split.index_of(leader)
    epoch = partitions_of(split, li, topic)[0].leader_epoch
    split.kill9(li)
    try:
        def moved():
            views = {(partitions_of(split, i, topic)[0].leader, partitions_of(split, i, topic)[0].leader_epoch)
                     for i in range(3) if i != li}
            return views.pop() if len(views) == 1 and next(iter(views))[0] not in (-1, leader) else None

        new, new_epoch = split.wait_for(f"a leader other than {leader}", moved, timeout=30)
        assert new_epoch > epoch
        survivor = split.index_of(new)
        rc, out, err = tool(split, "kafka-console-consumer", "--bootstrap-server", external(split, survivor),
                            "--topic", topic, "--from-beginning", "--max-messages", "200", "--timeout-ms", "30000")
        assert rc == 0, err
        assert out.splitlines() == [f"r-{k}" for k in range(200)]
        print(f"leader {leader} killed: {new} leads (epoch {epoch} -> {new_epoch}) and served all 200 records")
    finally:
        split.start(li)
    wait_full_isr(split, topic, 1, timeout=40)


def test_java_and_librdkafka_clients_with_groups_on_one_external_address(split):
    topic, parts = "orders", 3
    create(split, topic, parts, via=2)
    java_lines = [f"java-{i}" for i in range(60)]
    rc, out, err = tool(split, "kafka-console-producer", "--bootstrap-server", external(split, 0), "--topic", topic,
                        "--producer-property", "acks=all", input="".join(v + "\n" for v in java_lines))
    assert rc == 0, err
    rc, out, err = rdkafka(split, "produce", external(split, 2), topic, 60, "rdkafka")
    assert rc == 0, err
    assert len(out["acked"]) == 60 and not out["failed"] and out["left"] == 0, out
    everything = sorted(java_lines + [f"rdkafka-{i}" for i in range(60)])

    # Kafka's console consumer in a group, through node 2's EXTERNAL name only.
    t = time.time()
    rc, out, err = tool(split, "kafka-console-consumer", "--bootstrap-server", external(split, 1), "--topic", topic,
                        "--group", "java-group", "--from-beginning", "--max-messages", "120", "--timeout-ms", "30000")
    assert rc == 0, err
    assert sorted(out.splitlines()) == everything
    print(f"Java console consumer read 120 records in a group in {time.time() - t:.1f} s")
    rc, out, err = tool(split, "kafka-consumer-groups", "--bootstrap-server", external(split, 2), "--describe",
                        "--group", "java-group")
    assert rc == 0, err
    rows = [line.split() for line in out.splitlines() if line.strip() and not line.startswith("Consumer group")]
    header = rows[0]
    offsets = {int(r[header.index("PARTITION")]): (int(r[header.index("CURRENT-OFFSET")]),
                                                   int(r[header.index("LOG-END-OFFSET")])) for r in rows[1:]}
    # Every record is committed; a partition that got no record may have no committed offset (the
    # console consumer stops at --max-messages, possibly before it has a position there).
    assert set(offsets) <= set(range(parts)), out
    assert all(cur == end for cur, end in offsets.values()) and sum(e for _, e in offsets.values()) == 120, out

    # librdkafka in another group, through node 1's EXTERNAL name only.
    rc, out, err = rdkafka(split, "consume", external(split, 0), topic, "rdkafka-group", 120)
    assert rc == 0, err
    assert sorted(out["values"]) == everything, out
    # It committed the end of every partition that has records (nothing where there is none: -1001).
    committed = {int(p): o for p, o in out["committed"].items()}
    assert committed == {p: end if end > 0 else -1001 for p, (_, end) in offsets.items()}, (committed, offsets)
