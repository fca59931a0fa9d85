"""SASL authentication (issue 14) on SASL_PLAINTEXT listeners, with real clients: PLAIN users from
the listener's JAAS config (PlainLoginModule user_<name>="<password>") and SCRAM-SHA-256/512 users
made with kafka-configs (AlterUserScramCredentials, kept in the metadata log across a restart,
described and deleted), used by librdkafka (confluent_kafka), kafka-python and Apache Kafka's Java
tools (--command-config); the principal the connection gets (the broker's debug log); a wrong
password answered SASL_AUTHENTICATION_FAILED with Kafka's message after
connection.failed.authentication.delay.ms, then closed; raw bad input on the auth path (requests
before authentication, truncated and oversized tokens, an unknown mechanism) closing only that
connection while another client goes on; KIP-368 re-authentication with connections.max.reauth.ms
(librdkafka re-authenticates and goes on; a raw client that does not is disconnected);
configuration errors refused at start-up. About 55 s."""

import socket
import struct
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer

from helpers import (RUNNEL, Broker, closed_by_peer, free_port, java_config, kafka_tool, raw_frame,
                     read_frame)

LOG = {"RUNNEL_LOG": "info,runnel_broker::security::sasl=debug"}
PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'username="admin" password="admin-pw" user_admin="admin-pw" user_alice="alice-pw";')


@pytest.fixture
def sasl_broker(tmp_path, monkeypatch):
    """Starts a broker with a SASL_PLAINTEXT listener (and the given settings); killed at the end."""
    started = []
    for k, v in LOG.items():
        monkeypatch.setenv(k, v)

    def make(**settings):
        port = free_port()
        overrides = {
            "listeners": f"SASL_PLAINTEXT://127.0.0.1:{port}",
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
            "offsets.topic.num.partitions": "3",
        }
        overrides.update(settings)
        d = tmp_path / f"b{len(started)}"
        d.mkdir()
        b = Broker(d, overrides)
        started.append(b)
        return b.start()

    yield make
    for b in started:
        b.kill9()


def rdk(broker, user, password, mechanism="PLAIN", **extra):
    return {"bootstrap.servers": broker.bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password, **extra}


def produce_consume_rdk(conf, topic, n=20):
    admin = AdminClient(conf)
    for f in admin.create_topics([NewTopic(topic, 2, 1)]).values():
        f.result(30)
    p = Producer(conf)
    for i in range(n):
        p.produce(topic, key=str(i).encode(), value=f"v{i}".encode())
    assert p.flush(30) == 0
    c = Consumer({**conf, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = set()
    deadline = time.time() + 30
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.add(m.value())
    c.close()
    assert got == {f"v{i}".encode() for i in range(n)}


def test_plain_with_librdkafka_kafka_python_and_java_tools(sasl_broker, tmp_path):
    b = sasl_broker()
    produce_consume_rdk(rdk(b, "alice", "alice-pw"), "plain-rdk")
    # The connections are authenticated as User:alice.
    assert "principal=User:alice" in b.log_text()

    # kafka-python.
    kp = dict(bootstrap_servers=b.bootstrap, security_protocol="SASL_PLAINTEXT",
              sasl_mechanism="PLAIN", sasl_plain_username="admin", sasl_plain_password="admin-pw")
    prod = KafkaProducer(**kp)
    for i in range(5):
        prod.send("plain-rdk", key=b"k", value=f"py{i}".encode()).get(timeout=30)
    prod.close()
    cons = KafkaConsumer("plain-rdk", group_id="py", auto_offset_reset="earliest",
                         consumer_timeout_ms=8000, **kp)
    values = {m.value for m in cons}
    cons.close()
    assert {f"py{i}".encode() for i in range(5)} <= values
    assert "principal=User:admin" in b.log_text()

    # Apache Kafka's tools with --command-config.
    cfg = java_config(tmp_path / "alice.properties", "alice", "alice-pw")
    rc, out, err = kafka_tool("kafka-topics", "--bootstrap-server", b.bootstrap, "--command-config",
                              cfg, "--create", "--topic", "plain-java", "--partitions", "1")
    assert rc == 0, err
    rc, out, err = kafka_tool("kafka-topics", "--bootstrap-server", b.bootstrap, "--command-config",
                              cfg, "--list")
    assert rc == 0 and "plain-java" in out.split(), err
    bad = java_config(tmp_path / "bad.properties", "alice", "wrong")
    rc, out, err = kafka_tool("kafka-topics", "--bootstrap-server", b.bootstrap, "--command-config",
                              bad, "--list", timeout=60)
    assert rc != 0
    assert "Authentication failed: Invalid username or password" in out + err


def test_wrong_password_fails_after_the_delay(sasl_broker):
    b = sasl_broker(**{"connection.failed.authentication.delay.ms": "700"})
    # A good client keeps working while bad ones fail.
    good = Producer(rdk(b, "alice", "alice-pw"))
    errors = []
    bad = Producer(rdk(b, "alice", "nope", error_cb=errors.append))
    deadline = time.time() + 10
    while not errors and time.time() < deadline:
        bad.poll(0.2)
    # librdkafka reports the broker's message (its own log says "after 70xms in state AUTH_REQ").
    assert any("Authentication failed: Invalid username or password" in str(e) for e in errors), errors
    md = good.list_topics(timeout=10)
    assert md.brokers
    # Raw: the failure response arrives only after the delay, then the connection closes.
    s = sasl_handshake(b, b"PLAIN")
    t0 = time.time()
    s.sendall(raw_frame(36, 1, 2, bytes_field(b"\0alice\0nope")))
    resp = read_frame(s, timeout=5)
    elapsed = time.time() - t0
    assert resp is not None and elapsed >= 0.65, elapsed
    (corr, code) = struct.unpack(">ih", resp[:6])
    assert (corr, code) == (2, 58)  # SASL_AUTHENTICATION_FAILED
    assert b"Authentication failed: Invalid username or password" in resp
    assert closed_by_peer(s)


def bytes_field(b):
    return struct.pack(">i", len(b)) + b


def sasl_handshake(b, mechanism, version=1):
    s = socket.create_connection(("127.0.0.1", b.port))
    s.sendall(raw_frame(17, version, 1, struct.pack(">h", len(mechanism)) + mechanism))
    resp = read_frame(s)
    assert resp is not None and struct.unpack(">ih", resp[:6]) == (1, 0), resp
    return s


def test_bad_input_on_the_auth_path_closes_only_that_connection(sasl_broker):
    b = sasl_broker(**{"connection.failed.authentication.delay.ms": "100"})
    conf = rdk(b, "alice", "alice-pw")
    good = Producer(conf)
    admin = AdminClient(conf)
    for f in admin.create_topics([NewTopic("keep", 1, 1)]).values():
        f.result(30)

    def still_serves():
        good.produce("keep", b"x")
        assert good.flush(10) == 0

    # A Metadata request before authentication: closed without an answer.
    s = socket.create_connection(("127.0.0.1", b.port))
    s.sendall(raw_frame(3, 1, 1, struct.pack(">i", -1)))
    assert read_frame(s) is None
    still_serves()
    # After the handshake, a request other than SaslAuthenticate: closed.
    s = sasl_handshake(b, b"PLAIN")
    s.sendall(raw_frame(3, 1, 2, struct.pack(">i", -1)))
    assert read_frame(s) is None
    # An unknown mechanism: UNSUPPORTED_SASL_MECHANISM (33) with the enabled ones, then closed.
    s = socket.create_connection(("127.0.0.1", b.port))
    s.sendall(raw_frame(17, 1, 1, struct.pack(">h", 6) + b"GSSAPI"))
    resp = read_frame(s)
    assert struct.unpack(">ih", resp[:6]) == (1, 33) and b"PLAIN" in resp
    assert closed_by_peer(s)
    # A truncated token: the frame ends early and the client goes away.
    s = sasl_handshake(b, b"PLAIN")
    frame = raw_frame(36, 1, 2, bytes_field(b"\0alice\0alice-pw"))
    s.sendall(frame[:-5])
    s.close()
    # A SaslAuthenticate whose token length runs past the frame: closed.
    s = sasl_handshake(b, b"PLAIN")
    s.sendall(raw_frame(36, 1, 2, struct.pack(">i", 1000) + b"\0alice"))
    assert read_frame(s) is None
    # An oversized token (above sasl.server.max.receive.size): closed without reading it.
    s = sasl_handshake(b, b"PLAIN")
    s.sendall(struct.pack(">i", 10 << 20) + b"\0" * 1000)
    assert read_frame(s) is None
    # A garbage PLAIN token: SASL_AUTHENTICATION_FAILED.
    s = sasl_handshake(b, b"PLAIN")
    s.sendall(raw_frame(36, 1, 2, bytes_field(b"\xff\x00")))
    resp = read_frame(s)
    assert struct.unpack(">ih", resp[:6]) == (2, 58)
    assert closed_by_peer(s)
    still_serves()
    assert b.alive()


def test_configuration_errors_are_refused_at_start_up(tmp_path):
    port = free_port()
    base = ["--override", f"listeners=SASL_PLAINTEXT://127.0.0.1:{port}",
            "--override", f"log.dirs={tmp_path / 'd'}"]
    cases = [
        ([], "GSSAPI is not supported"),
        (["--override", "sasl.enabled.mechanisms=PLAIN"], "PLAIN needs a JAAS entry"),
        (["--override", "sasl.enabled.mechanisms=PLAIN", "--override",
          "listener.name.sasl_plaintext.plain.sasl.jaas.config=x.Y required user_a=\"b\""],
         "must end with ';'"),
    ]
    for extra, message in cases:
        p = subprocess.run([str(RUNNEL), "serve", *base, *extra], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode != 0
        assert message in p.stdout + p.stderr, p.stdout + p.stderr


def test_scram_credentials_with_kafka_configs_and_clients(sasl_broker, tmp_path):
    """SCRAM-SHA-256/512 users made with kafka-configs (AlterUserScramCredentials), described,
    used by librdkafka, kafka-python and the Java tools, kept across a restart (metadata log),
    deleted per mechanism."""
    b = sasl_broker(**{"sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"})
    admin = java_config(tmp_path / "admin.properties", "admin", "admin-pw")

    def configs(*args):
        rc, out, err = kafka_tool("kafka-configs", "--bootstrap-server", b.bootstrap,
                                  "--command-config", admin, "--entity-type", "users", *args)
        return rc, out + err

    # Both mechanisms in one request: refused, as Kafka's controller (ScramControlManager) does.
    rc, out = configs("--entity-name", "carol", "--alter", "--add-config",
                      "SCRAM-SHA-256=[iterations=8192,password=carol-pw],SCRAM-SHA-512=[password=carol-512]")
    assert rc != 0 and "A user credential cannot be altered twice in the same request" in out, out
    for mech in ("SCRAM-SHA-256=[iterations=8192,password=carol-pw]", "SCRAM-SHA-512=[password=carol-512]"):
        rc, out = configs("--entity-name", "carol", "--alter", "--add-config", mech)
        assert rc == 0, out
    rc, out = configs("--entity-name", "carol", "--describe")
    assert rc == 0, out
    assert "SCRAM-SHA-256=iterations=8192" in out and "SCRAM-SHA-512=iterations=4096" in out, out
    rc, out = configs("--describe")
    assert rc == 0 and "carol" in out, out
    # Too few iterations: the tool refuses them itself (the broker would answer "Too few iterations").
    rc, out = configs("--entity-name", "dave", "--alter", "--add-config",
                      "SCRAM-SHA-256=[iterations=100,password=x]")
    assert rc != 0 and "less than the minimum 4096" in out, out

    produce_consume_rdk(rdk(b, "carol", "carol-pw", "SCRAM-SHA-256"), "scram-256")
    produce_consume_rdk(rdk(b, "carol", "carol-512", "SCRAM-SHA-512"), "scram-512")
    assert "principal=User:carol mechanism=SCRAM-SHA-512" in b.log_text()
    kp = dict(bootstrap_servers=b.bootstrap, security_protocol="SASL_PLAINTEXT",
              sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="carol",
              sasl_plain_password="carol-512")
    prod = KafkaProducer(**kp)
    prod.send("scram-512", value=b"from-python").get(timeout=30)
    prod.close()
    cfg = java_config(tmp_path / "carol.properties", "carol", "carol-pw", "SCRAM-SHA-256")
    rc, out, err = kafka_tool("kafka-topics", "--bootstrap-server", b.bootstrap, "--command-config",
                              cfg, "--list")
    assert rc == 0 and "scram-256" in out.split(), err
    wrong = java_config(tmp_path / "wrong.properties", "carol", "nope", "SCRAM-SHA-256")
    rc, out, err = kafka_tool("kafka-topics", "--bootstrap-server", b.bootstrap, "--command-config",
                              wrong, "--list", timeout=60)
    assert rc != 0
    assert ("Authentication failed during authentication due to invalid credentials with SASL "
            "mechanism SCRAM-SHA-256") in out + err

    # The credentials are in the metadata log: they survive a restart.
    b.restart()
    rc, out, err = kafka_tool("kafka-topics", "--bootstrap-server", b.bootstrap, "--command-config",
                              cfg, "--list")
    assert rc == 0 and "scram-512" in out.split(), err
    # Deleting the SHA-512 credential leaves the SHA-256 one.
    rc, out = configs("--entity-name", "carol", "--alter", "--delete-config", "SCRAM-SHA-512")
    assert rc == 0, out
    rc, out = configs("--entity-name", "carol", "--describe")
    assert "SCRAM-SHA-256=iterations=8192" in out and "SCRAM-SHA-512" not in out, out
    errors = []
    p = Producer(rdk(b, "carol", "carol-512", "SCRAM-SHA-512", error_cb=errors.append))
    deadline = time.time() + 10
    while not errors and time.time() < deadline:
        p.poll(0.2)
    assert any("SCRAM-SHA-512" in str(e) for e in errors), errors
    rc, out, err = kafka_tool("kafka-topics", "--bootstrap-server", b.bootstrap, "--command-config",
                              cfg, "--list")
    assert rc == 0, err


def test_reauthentication_keeps_clients_connected(sasl_broker):
    """connections.max.reauth.ms (KIP-368): the session lifetime is sent to the client, which
    re-authenticates on the same connection before it ends and goes on without errors; a raw
    client that does not is disconnected at its next request."""
    b = sasl_broker(**{"connections.max.reauth.ms": "1500"})
    errors = []
    conf = rdk(b, "alice", "alice-pw", error_cb=errors.append)
    p = Producer(conf)
    admin = AdminClient(conf)
    for f in admin.create_topics([NewTopic("reauth", 1, 1)]).values():
        f.result(30)
    deadline = time.time() + 6
    n = 0
    while time.time() < deadline:
        p.produce("reauth", str(n).encode())
        p.poll(0.1)
        n += 1
    assert p.flush(10) == 0
    assert not errors, errors
    assert b.log_text().count("reauth=true") >= 2, "no re-authentication seen"
    # Raw: the lifetime is in the SaslAuthenticate v1 response; after it, a request closes.
    s = sasl_handshake(b, b"PLAIN")
    s.sendall(raw_frame(36, 1, 2, bytes_field(b"\0alice\0alice-pw")))
    resp = read_frame(s)
    (corr, code) = struct.unpack(">ih", resp[:6])
    assert (corr, code) == (2, 0)
    assert struct.unpack(">q", resp[-8:])[0] == 1500
    s.sendall(raw_frame(3, 1, 3, struct.pack(">i", -1)))
    assert read_frame(s) is not None
    time.sleep(1.7)
    s.sendall(raw_frame(3, 1, 4, struct.pack(">i", -1)))
    assert read_frame(s) is None
