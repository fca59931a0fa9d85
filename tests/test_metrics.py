"""The metrics and health endpoint (`metrics.listeners`), scraped while real clients produce and
consume, its text parsed by the Prometheus client library's own parser: the counters match what
was sent and read, every request stage is timed, the health checks answer, and in a 3-node
cluster a killed follower shows as under-replicated partitions on the leaders that remain."""

import time
import urllib.error
import urllib.request

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from helpers import free_port

STAGES = [
    "runnel_network_requestmetrics_requestreadtimems",
    "kafka_network_requestmetrics_requestqueuetimems",
    "kafka_network_requestmetrics_localtimems",
    "kafka_network_requestmetrics_remotetimems",
    "kafka_network_requestmetrics_responsequeuetimems",
    "kafka_network_requestmetrics_responsesendtimems",
    "kafka_network_requestmetrics_totaltimems",
]


def get(port, path):
    """(status, body) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode(), r.headers.get("Content-Type")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers.get("Content-Type")


def scrape(port):
    """Every sample of /metrics, parsed by prometheus_client: {(name, sorted labels): value}."""
    status, text, ctype = get(port, "/metrics")
    assert status == 200, text
    assert ctype.startswith("text/plain; version=0.0.4"), ctype
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def total(samples, name, **labels):
    """Sum over the series of `name` whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def test_counters_match_what_clients_produced_and_consumed(broker_factory):
    mport = free_port()
    b = broker_factory(**{"metrics.listeners": f"http://127.0.0.1:{mport}"})
    assert get(mport, "/health/live")[:2] == (200, "live\n")
    assert get(mport, "/health/ready")[:2] == (200, "ready\n")
    topic, n, size = "metered", 3000, 200
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in admin.create_topics([NewTopic(topic, 3, 1)]).values():
        f.result(20)
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5, "compression.type": "none"})
    for i in range(n):
        p.produce(topic, key=str(i).encode(), value=b"x" * size)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "metered-readers", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got, deadline = 0, time.time() + 60
    while got < n and time.time() < deadline:
        m = c.poll(1)
        if m is not None and not m.error():
            got += 1
    c.close()
    assert got == n

    s = scrape(mport)
    assert value(s, "kafka_server_brokertopicmetrics_messagesin_total", topic=topic) == n
    bytes_in = value(s, "kafka_server_brokertopicmetrics_bytesin_total", topic=topic)
    # Record batches: the values plus keys, record and batch headers.
    assert n * size < bytes_in < n * (size + 80), bytes_in
    # The consumer read everything once (the same batches: as many bytes as went in).
    assert value(s, "kafka_server_brokertopicmetrics_bytesout_total", topic=topic) == bytes_in
    assert total(s, "kafka_log_log_logendoffset", topic=topic) == n
    assert total(s, "kafka_log_log_size", topic=topic) == bytes_in
    assert value(s, "kafka_server_replicamanager_underreplicatedpartitions") == 0
    assert value(s, "kafka_controller_kafkacontroller_activecontrollercount") == 1
    produced = value(s, "kafka_network_requestmetrics_requests_total", request="Produce")
    # Every Produce request wrote one or more of the topic's partitions (each counts, as in Kafka).
    per_partition = value(s, "kafka_server_brokertopicmetrics_totalproducerequests_total", topic=topic)
    assert 1 <= produced <= per_partition, (produced, per_partition)
    for stage in STAGES:
        for api in ("Produce", "Fetch", "Metadata"):
            count = value(s, f"{stage}_count", request=api)
            assert count and count >= 1, (stage, api)
            assert value(s, f"{stage}_bucket", request=api, le="+Inf") == count
    # Every Produce request answered was timed once per stage.
    assert value(s, "kafka_network_requestmetrics_totaltimems_count", request="Produce") == produced
    assert value(s, "process_resident_memory_bytes") > 0
    assert get(mport, "/nope")[0] == 404


def test_a_killed_follower_shows_as_under_replicated_partitions(cluster_factory):
    ports = [free_port() for _ in range(3)]
    cluster = cluster_factory(node_settings={i: {"metrics.listeners": f"http://127.0.0.1:{ports[i]}"} for i in range(3)})
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    for f in admin.create_topics([NewTopic("watched", 6, 3)]).values():
        f.result(20)

    def under_replicated(i):
        return value(scrape(ports[i]), "kafka_server_replicamanager_underreplicatedpartitions")

    cluster.wait_for("full ISR everywhere", lambda: all(under_replicated(i) == 0 for i in range(3)))
    assert sum(value(scrape(ports[i]), "kafka_controller_kafkacontroller_activecontrollercount") for i in range(3)) == 1
    for i in range(3):
        assert get(ports[i], "/health/ready")[0] == 200
    cluster.kill9(2)
    # Node 3 is fenced, its leaderships move to nodes 1 and 2, whose ISRs drop it: every
    # partition (each has a replica on node 3) is under-replicated on the leader that has it.
    def leaders():
        return sum(value(scrape(ports[i]), "kafka_server_replicamanager_leadercount") for i in range(2))

    cluster.wait_for("nodes 1 and 2 lead all 6 partitions", lambda: leaders() == 6, timeout=40)
    cluster.wait_for("all 6 partitions under-replicated",
                     lambda: under_replicated(0) + under_replicated(1) == 6, timeout=40)
    cluster.start(2)
    cluster.wait_for("ISR full again", lambda: all(under_replicated(i) == 0 for i in range(3)), timeout=60)
