"""TLS listeners (issue 14): a Runnel SSL listener with a PEM keystore (file and inline, and an
encrypted key with ssl.key.password) and a PEM trust store, used by librdkafka (confluent_kafka),
kafka-python and Apache Kafka's Java tools (--command-config); ssl.client.auth required /
requested / none, and the principal taken from the client certificate's subject through
ssl.principal.mapping.rules (seen in the broker's debug log); bad input on the TLS port (a
handshake of garbage, a plaintext Kafka request, a silent connection, an untrusted client
certificate) closes only that connection; keystore files reloaded when they change;
max.connections.per.ip; configuration errors refused at start-up. Certificates are made with
the openssl CLI (helpers.make_tls_certs). About 40 s."""

import socket
import ssl
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTP

from helpers import (Broker, closed_by_peer, free_port, kafka_tool, make_tls_certs, raw_frame,
                     read_frame)

LOG = {"RUNNEL_LOG": "info,runnel_broker::server=debug"}
RULES = "RULE:^CN=([^,]*),OU=test,O=runnel$/$1/L,DEFAULT"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_tls_certs(tmp_path_factory.mktemp("certs"), clients=("Alice", "bob"))


@pytest.fixture
def tls_broker(tmp_path, monkeypatch):
    """Starts a broker with an SSL listener (and the given settings); killed at the end."""
    started = []
    for k, v in LOG.items():
        monkeypatch.setenv(k, v)

    def make(certs, **settings):
        port = free_port()
        overrides = {
            "listeners": f"SSL://127.0.0.1:{port}",
            "ssl.keystore.type": "PEM",
            "ssl.truststore.type": "PEM",
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


def rd_conf(b, certs, client="Alice", **extra):
    conf = {"bootstrap.servers": b.bootstrap, "security.protocol": "SSL",
            "ssl.ca.location": str(certs / "ca.crt")}
    if client:
        conf["ssl.certificate.location"] = str(certs / f"{client}.crt")
        conf["ssl.key.location"] = str(certs / f"{client}.key")
    conf.update(extra)
    return conf


def create_topic(conf, topic, partitions=1):
    a = AdminClient(conf)
    for f in a.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(15)


def librdkafka_round_trip(conf, topic, n=100):
    p = Producer({**conf, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, key=b"k%d" % i, value=b"v%d" % i)
    assert p.flush(20) == 0
    c = Consumer({**conf, "group.id": "g-" + topic, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.time() + 20
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None:
            assert m.error() is None, m.error()
            got.append(m.value())
    c.close()
    assert got == [b"v%d" % i for i in range(n)]


def principals_seen(b):
    return {line.split("principal=")[1].split()[0] for line in b.log_text().splitlines()
            if "TLS connection" in line and "principal=" in line}


def wait_for(cond, timeout=10, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def tls_client(b, certs, client=None, verify=True):
    ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if client:
        ctx.load_cert_chain(str(certs / f"{client}.crt"), str(certs / f"{client}.key"))
    s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    return ctx.wrap_socket(s, server_hostname="localhost")


def closed_after_alert(sock, timeout=5):
    """Whether the peer closes the connection within `timeout`, after at most a TLS alert (a
    few bytes): never a Kafka response."""
    sock.settimeout(timeout)
    got = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
    except ConnectionResetError:
        pass
    except socket.timeout:
        return False
    assert len(got) <= 7 and (not got or got[0] == 0x15), got  # nothing, or one alert record
    return True


def api_versions_ok(sock):
    sock.sendall(raw_frame(18, 0, 7))
    resp = read_frame(sock)
    assert resp is not None and resp[:4] == (7).to_bytes(4, "big")
    assert resp[4:6] == b"\x00\x00", resp[:8]


def test_required_client_auth_with_three_clients(tls_broker, certs):
    b = tls_broker(certs, **{
        "ssl.keystore.location": str(certs / "server.pem"),
        "ssl.truststore.location": str(certs / "ca.crt"),
        "ssl.client.auth": "required",
        "ssl.principal.mapping.rules": RULES,
    })
    # librdkafka: admin, idempotent producer, consumer with a group.
    conf = rd_conf(b, certs, "Alice")
    create_topic(conf, "tls-rd")
    librdkafka_round_trip(conf, "tls-rd")
    # kafka-python reads what librdkafka wrote and writes more.
    kp = dict(bootstrap_servers=b.bootstrap, security_protocol="SSL", ssl_cafile=str(certs / "ca.crt"),
              ssl_certfile=str(certs / "bob.crt"), ssl_keyfile=str(certs / "bob.key"))
    prod = KafkaProducer(acks="all", **kp)
    for i in range(100, 150):
        prod.send("tls-rd", key=b"k%d" % i, value=b"v%d" % i)
    prod.flush(20)
    prod.close()
    cons = KafkaConsumer(group_id=None, enable_auto_commit=False, consumer_timeout_ms=8000, **kp)
    cons.assign([KTP("tls-rd", 0)])
    cons.seek_to_beginning()
    got = [m.value for m in cons]
    cons.close()
    assert got == [b"v%d" % i for i in range(150)]
    # Apache Kafka's tools with --command-config (PEM trust store and keystore files).
    props = certs / "alice-client.properties"
    props.write_text("security.protocol=SSL\nssl.truststore.type=PEM\n"
                     f"ssl.truststore.location={certs / 'ca.crt'}\nssl.keystore.type=PEM\n"
                     f"ssl.keystore.location={certs / 'Alice.pem'}\n")
    rc, out, err = kafka_tool("kafka-topics", "--bootstrap-server", b.bootstrap, "--command-config", str(props),
                              "--create", "--topic", "tls-java", "--partitions", "2")
    assert rc == 0, err
    rc, out, err = kafka_tool("kafka-console-producer", "--bootstrap-server", b.bootstrap,
                              "--producer.config", str(props), "--topic", "tls-java",
                              input="".join(f"line-{i}\n" for i in range(20)))
    assert rc == 0, err
    rc, out, err = kafka_tool("kafka-console-consumer", "--bootstrap-server", b.bootstrap,
                              "--consumer.config", str(props), "--topic", "tls-java", "--from-beginning",
                              "--max-messages", "20", "--timeout-ms", "20000")
    assert rc == 0, err
    assert sorted(out.split()) == sorted(f"line-{i}" for i in range(20))
    # The principals came from the certificates through the mapping rule (lower-cased).
    wait_for(lambda: {"User:alice", "User:bob"} <= principals_seen(b), what="principals in the log")
    assert "User:ANONYMOUS" not in principals_seen(b)
    # Without a client certificate the handshake fails; an untrusted one too.
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, OSError)):
        s = tls_client(b, certs)
        api_versions_ok(s)
    other = make_tls_certs(certs / "other-ca", clients=("mallory",))
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, OSError)):
        ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        ctx.load_cert_chain(str(other / "mallory.crt"), str(other / "mallory.key"))
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", b.port), timeout=5),
                            server_hostname="localhost")
        api_versions_ok(s)
    assert "User:mallory" not in principals_seen(b)
    assert "TLS handshake failed" in b.log_text()
    # librdkafka without a certificate gets no metadata.
    a = AdminClient(rd_conf(b, certs, None))
    with pytest.raises(Exception):
        a.list_topics(timeout=3)
    assert b.alive()


def test_inline_keystore_requested_auth_default_rule(tls_broker, certs):
    # Inline PEM as a properties file often holds it: on one line, the line breaks gone.
    one_line = lambda p: " ".join(p.read_text().split("\n"))  # noqa: E731
    b = tls_broker(certs, **{
        "ssl.keystore.certificate.chain": one_line(certs / "server.crt"),
        "ssl.keystore.key": one_line(certs / "server.key"),
        "ssl.truststore.certificates": (certs / "ca.crt").read_text(),
        "ssl.client.auth": "requested",
    })
    # The secrets are not written to the log.
    assert "BEGIN PRIVATE KEY" not in b.log_text()
    conf = rd_conf(b, certs, "Alice")
    create_topic(conf, "tls-inline")
    librdkafka_round_trip(conf, "tls-inline", n=20)
    # No certificate: accepted as User:ANONYMOUS (requested, not required).
    s = tls_client(b, certs)
    api_versions_ok(s)
    s.close()
    wait_for(lambda: {"User:CN=Alice,OU=test,O=runnel", "User:ANONYMOUS"} <= principals_seen(b),
             what="principals in the log")


def test_encrypted_key_and_client_auth_none(tls_broker, certs, tmp_path):
    enc = tmp_path / "server-enc.pem"
    subprocess.run(["openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", str(certs / "server.key"),
                    "-out", str(enc), "-passout", "pass:s3cret"], check=True, capture_output=True)
    enc.write_text(enc.read_text() + (certs / "server.crt").read_text())
    b = tls_broker(certs, **{"ssl.keystore.location": str(enc), "ssl.key.password": "s3cret"})
    assert "s3cret" not in b.log_text()
    # client.auth none: a certificate is not asked for; the principal is ANONYMOUS.
    conf = rd_conf(b, certs, None)
    create_topic(conf, "tls-enc")
    librdkafka_round_trip(conf, "tls-enc", n=20)
    wait_for(lambda: principals_seen(b) == {"User:ANONYMOUS"}, what="anonymous principal")
    # The wrong password is refused at start-up with the key named.
    d = tmp_path / "bad"
    d.mkdir()
    bad = Broker(d, {"listeners": f"SSL://127.0.0.1:{free_port()}", "ssl.keystore.type": "PEM",
                     "ssl.keystore.location": str(enc), "ssl.key.password": "wrong"})
    with pytest.raises(AssertionError, match="ssl.key.password"):
        bad.start()


def test_bad_input_on_the_tls_port(tls_broker, certs):
    b = tls_broker(certs, **{
        "ssl.keystore.location": str(certs / "server.pem"),
        "ssl.truststore.location": str(certs / "ca.crt"),
        "ssl.client.auth": "requested",
    })
    # A client in the middle of its work, kept open throughout.
    good = tls_client(b, certs, "Alice")
    api_versions_ok(good)
    # A silent TCP connection (no handshake) does not hold anyone up.
    silent = socket.create_connection(("127.0.0.1", b.port))
    # Garbage instead of a ClientHello: closed.
    g = socket.create_connection(("127.0.0.1", b.port))
    g.sendall(bytes(range(256)) * 8)
    assert closed_after_alert(g), "garbage handshake not closed"
    # A TLS record header claiming a huge handshake, then nothing more: closed, not buffered.
    h = socket.create_connection(("127.0.0.1", b.port))
    h.sendall(b"\x16\x03\x01\xff\xff" + b"\x01" * 100)
    h.sendall(b"\x00" * 70000)
    assert closed_after_alert(h), "oversized record not closed"
    # A plaintext Kafka request to the TLS port: no response, closed.
    p = socket.create_connection(("127.0.0.1", b.port))
    p.sendall(raw_frame(18, 0, 1))
    assert closed_after_alert(p), "plaintext request on the TLS port not closed"
    # A client that trusts another CA gives up on the server's certificate; the server copes.
    other = make_tls_certs(certs / "other-ca2", clients=())
    ctx = ssl.create_default_context(cafile=str(other / "ca.crt"))
    with pytest.raises(ssl.SSLError):
        ctx.wrap_socket(socket.create_connection(("127.0.0.1", b.port), timeout=5), server_hostname="localhost")
    # The established connection and new ones are unaffected.
    api_versions_ok(good)
    conf = rd_conf(b, certs, "bob")
    create_topic(conf, "tls-after-bad")
    librdkafka_round_trip(conf, "tls-after-bad", n=10)
    good.close()
    silent.close()
    assert b.alive()
    assert "TLS handshake failed" in b.log_text()


def test_keystore_file_reloaded_when_it_changes(tls_broker, certs, tmp_path):
    ks = tmp_path / "server.pem"
    ks.write_text((certs / "server.pem").read_text())
    b = tls_broker(certs, **{"ssl.keystore.location": str(ks), "runnel.ssl.reload.interval.ms": "200"})

    def server_cert():
        s = tls_client(b, certs, verify=False)
        der = s.getpeercert(binary_form=True)
        s.close()
        return der

    first = server_cert()
    assert first == ssl.PEM_cert_to_DER_cert((certs / "server.crt").read_text())
    # A new certificate (same CA, new key) replaces the file.
    new = make_tls_certs(tmp_path / "renewed", clients=())
    # A half-written file does not load and the old certificate stays in use.
    ks.write_text("-----BEGIN PRIVATE KEY-----\nMIIE")
    wait_for(lambda: "does not load" in b.log_text(), what="a failed reload logged")
    assert server_cert() == first
    ks.write_text((new / "server.pem").read_text())
    renewed = ssl.PEM_cert_to_DER_cert((new / "server.crt").read_text())
    wait_for(lambda: server_cert() == renewed, what="the renewed certificate")
    assert "reloaded" in b.log_text()


def test_max_connections_per_ip(tls_broker, certs):
    b = tls_broker(certs, **{"ssl.keystore.location": str(certs / "server.pem"),
                             "max.connections.per.ip": "2"})
    a1 = tls_client(b, certs)
    a2 = tls_client(b, certs)
    api_versions_ok(a1)
    api_versions_ok(a2)
    third = socket.create_connection(("127.0.0.1", b.port))
    assert closed_by_peer(third), "a third connection from the address was not closed"
    assert "max.connections.per.ip" in b.log_text()
    a1.close()
    # Once one closes, a new one is accepted.
    def accepted():
        try:
            s = tls_client(b, certs)
            api_versions_ok(s)
            s.close()
            return True
        except (OSError, ssl.SSLError, AssertionError):
            return False
    wait_for(accepted, what="a connection accepted again")
    api_versions_ok(a2)


@pytest.mark.parametrize("settings,message", [
    ({"ssl.keystore.type": "JKS", "ssl.keystore.location": "/nonexistent.jks"}, "ssl.keystore.type"),
    ({"ssl.keystore.location": "/nonexistent.pem"}, "/nonexistent.pem"),
    ({}, "needs a keystore"),
    ({"ssl.client.auth": "required", "ssl.truststore.location": None}, "trust store"),
    ({"ssl.principal.mapping.rules": "RULE:^CN=(.*"}, "ssl.principal.mapping.rules"),
    ({"ssl.client.auth": "sometimes"}, "ssl.client.auth"),
])
def test_bad_tls_settings_refused_at_start(tmp_path, certs, settings, message):
    overrides = {"listeners": f"SSL://127.0.0.1:{free_port()}", "ssl.keystore.type": "PEM",
                 "ssl.truststore.type": "PEM", "ssl.truststore.location": str(certs / "ca.crt")}
    if "ssl.keystore.location" not in settings and message != "needs a keystore":
        overrides["ssl.keystore.location"] = str(certs / "server.pem")
    for k, v in settings.items():
        if v is None:
            overrides.pop(k, None)
        else:
            overrides[k] = v
    b = Broker(tmp_path, overrides)
    with pytest.raises(AssertionError, match="exited") as e:
        b.start()
    assert message in str(e.value), str(e.value)[-2000:]


def test_max_connections_holds_accepting_back(tmp_path):
    b = Broker(tmp_path, {"max.connections": "2"}).start()
    try:
        first, second = (socket.create_connection(("127.0.0.1", b.port)) for _ in range(2))
        api_versions_ok(first)
        api_versions_ok(second)
        # The third is not served while two are open (the broker does not accept it yet).
        third = socket.create_connection(("127.0.0.1", b.port))
        third.sendall(raw_frame(18, 0, 7))
        with pytest.raises(socket.timeout):
            read_frame(third, timeout=1.5)
        # Once one closes, it is accepted and answered.
        first.close()
        resp = read_frame(third, timeout=10)
        assert resp is not None and resp[:4] == (7).to_bytes(4, "big")
        api_versions_ok(second)
    finally:
        b.kill9()


def test_sasl_plain_over_tls(tls_broker, certs, monkeypatch):
    """SASL_SSL: SASL PLAIN inside the TLS stream. The plain ssl.client.auth=required does not
    apply to a SASL_SSL listener (KIP-684), so a client without a certificate connects; the
    principal is the SASL user."""
    monkeypatch.setenv("RUNNEL_LOG", "info,runnel_broker::server=debug,runnel_broker::security::sasl=debug")
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
            'user_alice="alice-pw";')
    port = free_port()
    b = tls_broker(certs, **{
        "listeners": f"SASL_SSL://127.0.0.1:{port}",
        "ssl.keystore.location": str(certs / "server.pem"),
        "ssl.truststore.location": str(certs / "ca.crt"),
        "ssl.client.auth": "required",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_ssl.plain.sasl.jaas.config": jaas,
    })
    conf = {"bootstrap.servers": b.bootstrap, "security.protocol": "SASL_SSL",
            "ssl.ca.location": str(certs / "ca.crt"), "sasl.mechanism": "PLAIN",
            "sasl.username": "alice", "sasl.password": "alice-pw"}
    create_topic(conf, "sasl-ssl")
    librdkafka_round_trip(conf, "sasl-ssl", n=20)
    assert "User:alice" in b.log_text()
    # TLS came first: the SASL_SSL connection's TLS session has no client principal of its own.
    assert "User:CN=" not in b.log_text()
    # A wrong password fails authentication over TLS too.
    a = AdminClient({**conf, "sasl.password": "wrong"})
    with pytest.raises(Exception):
        a.list_topics(timeout=5)
    assert b.alive()
