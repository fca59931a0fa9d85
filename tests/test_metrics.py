"""The metrics and health endpoint (`metrics.listeners`), scraped while real clients produce and
consume, its text parsed by the Prometheus client library's own parser: the counters match what
was sent and read, every request stage is timed, the health checks answer, and in a 3-node
cluster a killed follower shows as under-replicated partitions on the leaders that remain."""

import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from helpers import free_port, kafka_tool

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
    assert got == n
    c.commit(asynchronous=False)
    c.close()
    # A long-polling fetch of the closed consumer may still be waiting on the broker (up to
    # fetch.wait.max.ms): let it end before the next records, which nobody is to read.
    time.sleep(1.5)
    # 500 more that nobody reads: the group lags by them.
    extra = 500
    for i in range(extra):
        p.produce(topic, key=f"late-{i}".encode(), value=b"y" * size)
    assert p.flush(30) == 0

    s = scrape(mport)
    assert value(s, "kafka_server_brokertopicmetrics_messagesin_total", topic=topic) == n + extra
    bytes_in = value(s, "kafka_server_brokertopicmetrics_bytesin_total", topic=topic)
    # Record batches: the values plus keys, record and batch headers.
    assert (n + extra) * size < bytes_in < (n + extra) * (size + 80), bytes_in
    assert n * size < value(s, "kafka_server_brokertopicmetrics_bytesout_total", topic=topic) < bytes_in
    assert total(s, "kafka_log_log_logendoffset", topic=topic) == n + extra
    assert total(s, "kafka_log_log_size", topic=topic) == bytes_in
    # The group's lag per partition is what kafka-consumer-groups reports.
    rc, out, err = kafka_tool("kafka-consumer-groups", "--bootstrap-server", b.bootstrap, "--describe",
                              "--group", "metered-readers")
    assert rc == 0, err
    rows = [line.split() for line in out.splitlines() if line.strip()]
    header = next(r for r in rows if "LAG" in r)
    tool_lag = {int(r[header.index("PARTITION")]): int(r[header.index("LAG")])
                for r in rows if r is not header and len(r) >= len(header) - 3 and r[1] == topic}
    assert sum(tool_lag.values()) == extra, out
    for partition, lag in tool_lag.items():
        labels = {"consumergroup": "metered-readers", "topic": topic, "partition": str(partition)}
        assert value(s, "kafka_consumergroup_lag", **labels) == lag, (partition, lag)
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

    # The Grafana dashboard in the repository uses only series this broker exposes.
    dashboard = json.loads((Path(__file__).parent.parent / "deploy/grafana/runnel-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    names = {n for e in exprs for n in re.findall(r"\b(?:kafka|runnel|process)_[a-z_]+", e)}
    exposed = {n for (n, _) in s}
    assert len(names) >= 15 and not names - exposed, sorted(names - exposed)


def test_idle_ratios_fall_while_the_broker_works(broker_factory):
    """Kafka's network-processor and request-handler idle ratios: near 1 at rest, lower while
    producers keep the broker busy (Runnel serves both on the same runtime workers)."""
    names = ["kafka_network_socketserver_networkprocessoravgidlepercent",
             "kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent"]
    mport = free_port()
    b = broker_factory(**{"metrics.listeners": f"http://127.0.0.1:{mport}"})

    def ratios():
        s = scrape(mport)
        got = [value(s, n) for n in names]
        assert all(r is not None and 0.0 <= r <= 1.0 for r in got), got
        return got

    ratios()  # starts the window
    time.sleep(2)
    rest = ratios()
    assert rest[0] == rest[1] and rest[0] > 0.8, rest
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in admin.create_topics([NewTopic("busy", 3, 1)]).values():
        f.result(20)
    # One record per request, acks=all: as many requests as the client can send for 3 s.
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0, "acks": "all",
                  "max.in.flight.requests.per.connection": 5})
    deadline, sent = time.time() + 3, 0
    while time.time() < deadline:
        p.produce("busy", value=b"v" * 100)
        p.poll(0)
        sent += 1
    assert p.flush(30) == 0
    busy = ratios()
    print(f"idle ratio at rest {rest[0]:.3f}, while producing {busy[0]:.3f} ({sent} records)")
    assert sent > 1000 and busy[0] < rest[0], (sent, rest, busy)


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

    def isr_changes(kind):
        return sum(value(scrape(ports[i]), f"kafka_server_replicamanager_isr{kind}_total") or 0
                   for i in range(3) if cluster[i].alive())

    assert isr_changes("shrinks") >= 1
    cluster.start(2)
    cluster.wait_for("ISR full again", lambda: all(under_replicated(i) == 0 for i in range(3)), timeout=60)
    assert isr_changes("expands") >= 1
