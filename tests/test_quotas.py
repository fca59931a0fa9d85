"""Client quotas (issue 14): quota entities and values kept in the metadata log (ClientQuotaRecord),
DescribeClientQuotas / AlterClientQuotas and Apache Kafka's `kafka-configs` (4.1.1 and 4.4.0) for
clients, users, user+client and ip entities, named and default. Every command runs against Runnel
and against a real Apache Kafka 4.1.1 broker, and the outputs (or the error the tool prints) must be
the same; invalid alterations and filters sent as raw requests get Kafka's error codes and
messages; quotas survive a restart.
"""

import os
import socket
import struct
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import KAFKA_TOOLS_VERSIONS, ApacheKafka, kafka_tool, raw_frame, read_frame


def configs(bootstrap, version, *args):
    """kafka-configs' result as (rc, stdout, the exception line of stderr)."""
    rc, out, err = kafka_tool("kafka-configs", "--bootstrap-server", bootstrap, *args, version=version)
    cause = [l for l in err.splitlines() if "Exception:" in l and not l.startswith("\tat")]
    return rc, out.strip(), cause[-1].split("Exception:", 1)[1].strip() if cause else ""


def commands(prefix):
    """A kafka-configs session with entity names of its own (`prefix`), as argument lists."""
    c, u = f"{prefix}-app", f"{prefix}-alice"
    return [
        ["--alter", "--entity-type", "clients", "--entity-name", c,
         "--add-config", "producer_byte_rate=1024,consumer_byte_rate=2048"],
        ["--alter", "--entity-type", "users", "--entity-name", u, "--entity-type", "clients",
         "--entity-name", c, "--add-config", "request_percentage=12.5"],
        ["--alter", "--entity-type", "users", "--entity-default", "--add-config", "producer_byte_rate=4096"],
        ["--describe", "--entity-type", "clients", "--entity-name", c],
        ["--describe", "--entity-type", "users", "--entity-name", u, "--entity-type", "clients", "--entity-name", c],
        ["--describe", "--entity-type", "users", "--entity-default"],
        # Kafka's refusals: a fractional byte rate, a key that is not a quota, a config to delete
        # that is not set.
        ["--alter", "--entity-type", "clients", "--entity-name", c, "--add-config", "producer_byte_rate=10.5"],
        ["--alter", "--entity-type", "clients", "--entity-name", c, "--add-config", "connection_creation_rate=3"],
        ["--alter", "--entity-type", "clients", "--entity-name", c, "--delete-config", "request_percentage"],
        ["--alter", "--entity-type", "clients", "--entity-name", c, "--delete-config", "consumer_byte_rate"],
        ["--describe", "--entity-type", "clients", "--entity-name", c],
        ["--alter", "--entity-type", "ips", "--entity-name", "127.0.0.1", "--add-config", "connection_creation_rate=10"],
        ["--describe", "--entity-type", "ips", "--entity-name", "127.0.0.1"],
    ]


@pytest.fixture(scope="module")
def brokers(tmp_path_factory):
    from helpers import Broker
    tmp = tmp_path_factory.mktemp("quotas")
    (tmp / "runnel").mkdir()
    (tmp / "kafka").mkdir()
    runnel = Broker(tmp / "runnel", {})
    kafka = ApacheKafka(tmp / "kafka")
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda b: b.start(), [runnel, kafka]))
    # The tools are short-lived JVMs: the C1 compiler alone costs them a third less CPU.
    saved = os.environ.get("JAVA_TOOL_OPTIONS")
    os.environ["JAVA_TOOL_OPTIONS"] = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
    yield runnel, kafka
    if saved is None:
        os.environ.pop("JAVA_TOOL_OPTIONS", None)
    else:
        os.environ["JAVA_TOOL_OPTIONS"] = saved
    runnel.kill9()
    kafka.stop()


def test_kafka_configs_quotas_as_kafka(brokers):
    runnel, kafka = brokers
    for version in KAFKA_TOOLS_VERSIONS:
        prefix = "v" + version.replace(".", "")
        session = commands(prefix)
        if version != KAFKA_TOOLS_VERSIONS[0]:
            # The newest tool (ConfigCommand rewritten in Java): its alter, describe and error
            # paths, not every case again.
            session = [session[i] for i in (0, 3, 4, 5, 6, 8, 12)]
        for args in session:
            with ThreadPoolExecutor(2) as pool:
                ours, theirs = pool.map(lambda b: configs(b.bootstrap, version, *args), [runnel, kafka])
            assert ours == theirs, (version, args, ours, theirs)
    # Everything set above, as one listing: the same entities and values on both.
    with ThreadPoolExecutor(2) as pool:
        ours, theirs = pool.map(lambda b: configs(b.bootstrap, None, "--describe", "--entity-type", "clients"),
                                [runnel, kafka])
    assert ours == theirs and ours[0] == 0, (ours, theirs)
    assert "Quota configs for client-id 'v411-app' are producer_byte_rate=1024.0" in ours[1], ours
    # The quotas are records of the metadata log: a restart keeps them.
    runnel.restart()
    again = configs(runnel.bootstrap, None, "--describe", "--entity-type", "clients")
    assert again == ours


def s16(s):
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


class R:
    def __init__(self, b):
        self.b, self.i = b, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.b, self.i)
        self.i += struct.calcsize(fmt)
        return v[0]

    def str(self):
        n = self.take(">h")
        if n < 0:
            return None
        s = self.b[self.i:self.i + n].decode()
        self.i += n
        return s


def call(bootstrap, key, body):
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(raw_frame(key, 0, 7, body))
        resp = read_frame(s, timeout=30)
    assert resp is not None, "connection closed"
    r = R(resp)
    assert r.take(">i") == 7
    return r


def alter(bootstrap, entries, validate_only=False):
    """AlterClientQuotas v0: entries of (entity [(type, name)], ops [(key, value, remove)]);
    returns {entity: (error code, message)}."""
    body = struct.pack(">i", len(entries))
    for entity, ops in entries:
        body += struct.pack(">i", len(entity)) + b"".join(s16(t) + s16(n) for t, n in entity)
        body += struct.pack(">i", len(ops)) + b"".join(s16(k) + struct.pack(">d?", v, rm) for k, v, rm in ops)
    body += struct.pack(">?", validate_only)
    r = call(bootstrap, 49, body)
    r.take(">i")  # throttle
    out = {}
    for _ in range(r.take(">i")):
        code, msg = r.take(">h"), r.str()
        entity = tuple(sorted((r.str(), r.str()) for _ in range(r.take(">i"))))
        out[entity] = (code, msg)
    return out


def describe(bootstrap, components, strict=False):
    """DescribeClientQuotas v0: (error code, message, {entity: {key: value}} or None)."""
    body = struct.pack(">i", len(components))
    body += b"".join(s16(t) + struct.pack(">b", m) + s16(n) for t, m, n in components)
    body += struct.pack(">?", strict)
    r = call(bootstrap, 48, body)
    r.take(">i")
    code, msg = r.take(">h"), r.str()
    n = r.take(">i")
    if n < 0:
        return code, msg, None
    entries = {}
    for _ in range(n):
        entity = tuple(sorted((r.str(), r.str()) for _ in range(r.take(">i"))))
        entries[entity] = {r.str(): r.take(">d") for _ in range(r.take(">i"))}
    return code, msg, entries


BAD_ALTERATIONS = [
    ([], [("producer_byte_rate", 1.0, False)]),
    ([("group", "g")], [("producer_byte_rate", 1.0, False)]),
    ([("user", "")], [("producer_byte_rate", 1.0, False)]),
    ([("ip", "127.0.0.1"), ("user", "x")], [("connection_creation_rate", 1.0, False)]),
    ([("ip", "no-such-host.invalid")], [("connection_creation_rate", 1.0, False)]),
    ([("client-id", "bad1")], [("producer_byte_rate", 0.0, False)]),
    ([("client-id", "bad2")], [("producer_byte_rate", -5.0, False)]),
    ([("client-id", "bad3")], [("consumer_byte_rate", 1.5, False)]),
    ([("client-id", "bad4")], [("producer_byte_rate", 1e19, False)]),
    ([("client-id", "bad5")], [("no_such_quota", 1.0, False)]),
    ([("ip", None)], [("connection_creation_rate", 3e9, False)]),
    ([("ip", None)], [("producer_byte_rate", 1.0, False)]),
    ([("user", "bad6")], [("producer_byte_rate", 1.0, False), ("producer_byte_rate", 2.0, False)]),
]


def test_alter_and_describe_errors_as_kafka(brokers):
    runnel, kafka = brokers
    for entity, ops in BAD_ALTERATIONS:
        ours, theirs = alter(runnel.bootstrap, [(entity, ops)]), alter(kafka.bootstrap, [(entity, ops)])
        assert ours == theirs, (entity, ops, ours, theirs)
        assert all(code == 42 for code, _ in ours.values()), ours  # INVALID_REQUEST
    # One request: a good entity commits even though another fails; validate_only writes nothing.
    entries = [([("client-id", "mixed-ok")], [("producer_byte_rate", 100.0, False)]),
               ([("client-id", "mixed-bad")], [("producer_byte_rate", 0.5, False)]),
               ([("client-id", "dry-run")], [("consumer_byte_rate", 100.0, False)])]
    for b in (runnel, kafka):
        assert alter(b.bootstrap, entries[2:], validate_only=True) == {(("client-id", "dry-run"),): (0, None)}
        got = alter(b.bootstrap, entries[:2])
        assert got[(("client-id", "mixed-ok"),)] == (0, None)
        assert got[(("client-id", "mixed-bad"),)][0] == 42
    for components, strict in [
        ([("client-id", 0, "mixed-ok")], True),
        ([("client-id", 0, "dry-run")], True),
        ([("client-id", 2, None)], False),
        ([("user", 1, None)], False),
        # Kafka's refusals of bad filters.
        ([("client-id", 0, None)], False),
        ([("client-id", 1, "x")], False),
        ([("client-id", 2, "x")], False),
        ([("user", 2, None), ("user", 1, None)], False),
        ([("ip", 2, None), ("user", 2, None)], False),
        ([("group", 2, None)], False),
        ([("", 2, None)], False),
        ([("user", 9, None)], False),
    ]:
        ours, theirs = describe(runnel.bootstrap, components, strict), describe(kafka.bootstrap, components, strict)
        assert ours == theirs, (components, ours, theirs)
    assert describe(runnel.bootstrap, [("client-id", 0, "mixed-ok")], True)[2] == {
        (("client-id", "mixed-ok"),): {"producer_byte_rate": 100.0}}


def test_runnel_cli_manages_quotas(brokers):
    """`runnel quota alter|describe` (AlterClientQuotas / DescribeClientQuotas), read back by
    kafka-configs."""
    import json
    import subprocess
    from helpers import RUNNEL
    runnel, _ = brokers

    def cli(*args):
        p = subprocess.run([str(RUNNEL), "--bootstrap-server", runnel.bootstrap, *args],
                           capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout.strip(), p.stderr.strip()

    assert cli("quota", "alter", "--client-id", "cli-app", "--set", "producer_byte_rate=4096",
               "--set", "consumer_byte_rate=8192")[0] == 0
    assert cli("quota", "alter", "--user", "cli-user", "--client-default",
               "--set", "request_percentage=12.5")[0] == 0
    rc, out, err = cli("quota", "describe", "--client-id", "cli-app")
    assert (rc, out) == (0, "Quota configs for client-id 'cli-app' are consumer_byte_rate=8192.0, "
                            "producer_byte_rate=4096.0"), (out, err)
    rc, out, _ = cli("--format", "json", "quota", "describe", "--user", "cli-user")
    assert json.loads(out) == [{"entity": {"user": "cli-user", "client-id": None},
                                "quotas": {"request_percentage": 12.5}}]
    assert cli("quota", "alter", "--client-id", "cli-app", "--delete", "consumer_byte_rate")[0] == 0
    rc, out, err = cli("quota", "alter", "--client-id", "cli-app", "--set", "producer_byte_rate=1.5")
    assert rc != 0 and "producer_byte_rate cannot be a fractional value." in err, (rc, err)
    assert configs(runnel.bootstrap, None, "--describe", "--entity-type", "clients", "--entity-name",
                   "cli-app") == (0, "Quota configs for client-id 'cli-app' are producer_byte_rate=4096.0", "")
