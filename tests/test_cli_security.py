"""The `runnel` CLI (and so the Rust client) over TLS and SASL (issue 14, item 5): one broker with
PLAINTEXT, SASL_PLAINTEXT (PLAIN, SCRAM-SHA-256/512), SSL (a certificate whose name does not
match, so the host name check is exercised both ways), SSL with ssl.client.auth=required (mTLS)
and SASL_SSL listeners; produce, consume and topic list through each; refused logins and
certificates failing at once with exit code 6 and the broker's message; `runnel user
set-password` / `delete` (salted in the client) with the user then logging in with Kafka's
console producer and with the CLI; and a second broker with the StandardAuthorizer where
`runnel acl create|list|delete` is cross-checked with Kafka's kafka-acls and the ACLs' effect on
a user is seen (denied, allowed, denied again). About 60 s."""

import json
import subprocess

import pytest

from helpers import Broker, free_port, java_config, kafka_tool, make_tls_certs, runnel_cli

PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'username="admin" password="admin-pw" user_admin="admin-pw" user_alice="alice-pw";')
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_tls_certs(tmp_path_factory.mktemp("certs"), clients=("Alice",))


@pytest.fixture(scope="module")
def badname(tmp_path_factory):
    """Another CA, and a server certificate for a name that is not the broker's."""
    return make_tls_certs(tmp_path_factory.mktemp("badname"), clients=(), hosts=("elsewhere.invalid",),
                          ips=())


@pytest.fixture(scope="module")
def broker(tmp_path_factory, certs, badname):
    ports = {name: free_port() for name in ("PLAINTEXT", "SASL_PLAINTEXT", "SSL", "MTLS", "SASL_SSL")}
    b = Broker(tmp_path_factory.mktemp("security"), {
        "listeners": ",".join(f"{n}://127.0.0.1:{p}" for n, p in ports.items()),
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,"
                                          "MTLS:SSL,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "ssl.keystore.type": "PEM",
        "ssl.truststore.type": "PEM",
        "ssl.keystore.location": str(certs / "server.pem"),
        "ssl.truststore.location": str(certs / "ca.crt"),
        # The SSL listener presents a certificate for another name, from another CA.
        "listener.name.ssl.ssl.keystore.location": str(badname / "server.pem"),
        "listener.name.mtls.ssl.client.auth": "required",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        "listener.name.sasl_ssl.plain.sasl.jaas.config": PLAIN_JAAS,
        "offsets.topic.num.partitions": "2",
        "group.initial.rebalance.delay.ms": "0",
    })
    b.ports = ports
    b.start()
    yield b
    b.kill9()


def addr(b, listener):
    return f"127.0.0.1:{b.ports[listener]}"


def cli(b, listener, props, *args, input=None, timeout=60):
    """`runnel -b <listener's address> -X k=v... ARGS`."""
    xs = []
    for k, v in props.items():
        xs += ["-X", f"{k}={v}"]
    return runnel_cli(addr(b, listener), *xs, *args, input=input, timeout=timeout)


def ok(b, listener, props, *args, **kw):
    rc, out, err = cli(b, listener, props, *args, **kw)
    assert rc == 0, f"runnel {' '.join(args)} on {listener} exited {rc}:\n{out}\n{err}"
    return out


def round_trip(b, listener, props, topic, n=5):
    """Creates `topic`, produces n lines, consumes them back, finds the topic in the list."""
    ok(b, listener, props, "topic", "create", topic, "-p", "1")
    lines = [f"{topic}-{i}" for i in range(n)]
    ok(b, listener, props, "produce", topic, input="\n".join(lines) + "\n")
    out = ok(b, listener, props, "consume", topic, "--from", "beginning", "-e", "-F", "%s\\n")
    assert out.splitlines() == lines
    assert topic in ok(b, listener, props, "topic", "list").split()


def sasl(mechanism, user, password, protocol="SASL_PLAINTEXT", **extra):
    module = ("org.apache.kafka.common.security.plain.PlainLoginModule" if mechanism == "PLAIN"
              else "org.apache.kafka.common.security.scram.ScramLoginModule")
    return {"security.protocol": protocol, "sasl.mechanism": mechanism,
            "sasl.jaas.config": f'{module} required username="{user}" password="{password}";', **extra}


def test_ssl_server_verified_and_mutual(broker, certs, badname, tmp_path):
    b = broker
    # The SSL listener's certificate is for elsewhere.invalid: trusted chain, wrong name.
    ssl = {"security.protocol": "SSL", "ssl.truststore.location": str(badname / "ca.crt")}
    rc, out, err = cli(b, "SSL", ssl, "topic", "list")
    assert rc == 6 and "TLS handshake" in err and "not valid for name" in err, (rc, err)
    assert "hint: check the credentials" in err
    # Without the host name check (Kafka's empty ssl.endpoint.identification.algorithm) it works;
    # the chain is still checked: another CA's certificates are refused.
    ssl["ssl.endpoint.identification.algorithm"] = ""
    round_trip(b, "SSL", ssl, "tls-plain")
    rc, out, err = cli(b, "SSL", {**ssl, "ssl.truststore.location": str(certs / "ca.crt")},
                       "topic", "list")
    assert rc == 6 and "invalid peer certificate" in err, (rc, err)
    # No trust store, a JKS one: refused before connecting, as settings errors (exit 2).
    rc, out, err = cli(b, "SSL", {"security.protocol": "SSL"}, "topic", "list")
    assert rc == 2 and "ssl.truststore.location" in err, (rc, err)
    rc, out, err = cli(b, "SSL", {**ssl, "ssl.truststore.type": "JKS"}, "topic", "list")
    assert rc == 2 and "ssl.truststore.type=PEM" in err, (rc, err)
    rc, out, err = cli(b, "SSL", {"security.protocol": "TLS"}, "topic", "list")
    assert rc == 2 and "security.protocol must be" in err, (rc, err)

    # mTLS (ssl.client.auth=required), host name checked (the certificate names 127.0.0.1).
    mtls = {"security.protocol": "SSL", "ssl.truststore.location": str(certs / "ca.crt"),
            "ssl.keystore.location": str(certs / "Alice.pem")}
    round_trip(b, "MTLS", mtls, "tls-mutual")
    # The inline form with an encrypted PKCS#8 key and ssl.key.password.
    subprocess.run(["openssl", "pkcs8", "-topk8", "-in", str(certs / "Alice.key"), "-out",
                    str(tmp_path / "enc.key"), "-passout", "pass:key-secret"], check=True,
                   capture_output=True)
    inline = {"security.protocol": "SSL", "ssl.truststore.certificates": (certs / "ca.crt").read_text(),
              "ssl.keystore.certificate.chain": (certs / "Alice.crt").read_text(),
              "ssl.keystore.key": (tmp_path / "enc.key").read_text(),
              "ssl.key.password": "key-secret"}
    assert "tls-mutual" in ok(b, "MTLS", inline, "topic", "list").split()
    rc, out, err = cli(b, "MTLS", {**inline, "ssl.key.password": "wrong"}, "topic", "list")
    assert rc == 2 and "cannot decrypt the private key" in err, (rc, err)
    # Without a client certificate the broker refuses the handshake.
    rc, out, err = cli(b, "MTLS", {k: v for k, v in mtls.items() if k != "ssl.keystore.location"},
                       "topic", "list")
    assert rc == 6 and "refused the TLS connection" in err, (rc, err)
    assert b.alive()


def test_sasl_logins_and_scram_users(broker, certs, tmp_path):
    b = broker
    admin = sasl("PLAIN", "admin", "admin-pw")
    round_trip(b, "SASL_PLAINTEXT", admin, "sasl-plain")
    # A wrong password fails at once with the broker's message, exit 6; so does a mechanism the
    # client does not speak (exit 2) and a PLAIN client on the SSL port's neighbour, PLAINTEXT.
    rc, out, err = cli(b, "SASL_PLAINTEXT", sasl("PLAIN", "alice", "nope"), "topic", "list",
                       timeout=30)
    assert rc == 6, (rc, err)
    assert "SASL PLAIN authentication with" in err and "Invalid username or password" in err, err
    rc, out, err = cli(b, "SASL_PLAINTEXT", {**admin, "sasl.mechanism": "GSSAPI"}, "topic", "list")
    assert rc == 2 and "GSSAPI" in err, (rc, err)
    rc, out, err = cli(b, "PLAINTEXT", admin, "topic", "list", timeout=30)
    assert rc == 6 and "ILLEGAL_SASL_STATE" in err, (rc, err)

    # SCRAM users made by the CLI (the password salted here), both mechanisms.
    out = ok(b, "SASL_PLAINTEXT", admin, "user", "set-password", "--user", "carol", "--password",
             "carol-256", "--mechanism", "SCRAM-SHA-256", "--iterations", "8192")
    assert "SCRAM-SHA-256 password of user-principal 'carol'" in out
    ok(b, "SASL_PLAINTEXT", admin, "user", "set-password", "--user", "carol", "--password-stdin",
       "--mechanism", "SCRAM-SHA-512", input="carol-512\n")
    out = ok(b, "SASL_PLAINTEXT", admin, "user", "list")
    assert ("SCRAM credential configs for user-principal 'carol' are SCRAM-SHA-256=iterations=8192, "
            "SCRAM-SHA-512=iterations=4096") in out, out
    users = json.loads(ok(b, "SASL_PLAINTEXT", admin, "--format", "json", "user", "list", "--user", "carol"))
    assert users == [{"user": "carol", "credentials": [
        {"mechanism": "SCRAM-SHA-256", "iterations": 8192},
        {"mechanism": "SCRAM-SHA-512", "iterations": 4096}]}]
    # Kafka's kafka-configs sees the same credentials.
    admin_props = java_config(tmp_path / "admin.properties", "admin", "admin-pw")
    rc, out, err = kafka_tool("kafka-configs", "--bootstrap-server", addr(b, "SASL_PLAINTEXT"),
                              "--command-config", admin_props, "--entity-type", "users",
                              "--entity-name", "carol", "--describe")
    assert rc == 0 and "SCRAM-SHA-256=iterations=8192" in out, out + err

    # carol logs in with SCRAM-SHA-256 through the CLI, and with Kafka's console producer.
    carol = sasl("SCRAM-SHA-256", "carol", "carol-256")
    round_trip(b, "SASL_PLAINTEXT", carol, "sasl-scram")
    carol_props = java_config(tmp_path / "carol.properties", "carol", "carol-256", "SCRAM-SHA-256")
    rc, out, err = kafka_tool("kafka-console-producer", "--bootstrap-server",
                              addr(b, "SASL_PLAINTEXT"), "--topic", "sasl-scram",
                              "--producer.config", carol_props, input="from-java\n")
    assert rc == 0, out + err
    out = ok(b, "SASL_PLAINTEXT", carol, "consume", "sasl-scram", "--from", "beginning", "-e",
             "-F", "%s\\n")
    assert out.splitlines()[-1] == "from-java"

    # SASL_SSL with SCRAM-SHA-512, from a profile (as the README shows).
    profiles = tmp_path / "profiles"
    profiles.write_text(
        "[secure]\n"
        f"bootstrap.servers = {addr(b, 'SASL_SSL')}\n"
        "security.protocol = SASL_SSL\n"
        f"ssl.truststore.location = {certs / 'ca.crt'}\n"
        "sasl.mechanism = SCRAM-SHA-512\n"
        "sasl.jaas.config = org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="carol" password="carol-512";\n')
    env = {"RUNNEL_PROFILES": str(profiles)}

    def prof(*args, **kw):
        return runnel_cli(None, "--profile", "secure", *args, env=env, **kw)

    rc, out, err = prof("produce", "sasl-scram", input="over-sasl-ssl\n")
    assert rc == 0, err
    rc, out, err = prof("consume", "sasl-scram", "--from", "beginning", "-e", "-F", "%s\\n")
    assert rc == 0 and out.splitlines()[-1] == "over-sasl-ssl", err
    rc, out, err = prof("topic", "list")
    assert rc == 0 and "sasl-scram" in out.split(), err
    # A wrong password over SASL_SSL fails the same way.
    rc, out, err = prof("-X", "sasl.password=nope", "-X", "sasl.username=carol", "topic", "list",
                        timeout=30)
    assert rc == 6 and "SCRAM-SHA-512" in err, (rc, err)

    # Deleting the SHA-512 credential: that login fails, SHA-256 still works; deleting the rest
    # leaves carol without credentials.
    out = ok(b, "SASL_PLAINTEXT", admin, "user", "delete", "--user", "carol", "--mechanism",
             "SCRAM-SHA-512")
    assert "Deleted the SCRAM-SHA-512 credential(s) of user-principal 'carol'." in out
    rc, out, err = prof("topic", "list", timeout=30)
    assert rc == 6 and "Authentication failed" in err, (rc, err)
    assert "sasl-scram" in ok(b, "SASL_PLAINTEXT", carol, "topic", "list").split()
    ok(b, "SASL_PLAINTEXT", admin, "user", "delete", "--user", "carol")
    rc, out, err = cli(b, "SASL_PLAINTEXT", carol, "topic", "list", timeout=30)
    assert rc == 6, (rc, err)
    rc, out, err = cli(b, "SASL_PLAINTEXT", admin, "user", "list", "--user", "carol")
    assert rc == 3 and "no SCRAM credentials for carol" in err, (rc, out, err)
    # Kafka's tools are refused too.
    rc, out, err = kafka_tool("kafka-topics", "--bootstrap-server", addr(b, "SASL_PLAINTEXT"),
                              "--command-config", carol_props, "--list", timeout=60)
    assert rc != 0 and "Authentication failed" in out + err, out + err


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory):
    port = free_port()
    b = Broker(tmp_path_factory.mktemp("acl"), {
        "listeners": f"SASL_PLAINTEXT://127.0.0.1:{port}",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        "authorizer.class.name": AUTHORIZER,
        "super.users": "User:admin",
        "offsets.topic.num.partitions": "2",
    })
    b.start()
    yield b
    b.kill9()


def test_acl_commands_and_their_effect(acl_broker, tmp_path):
    b = acl_broker
    admin = sasl("PLAIN", "admin", "admin-pw")
    alice = sasl("PLAIN", "alice", "alice-pw")

    def run(props, *args, **kw):
        xs = [a for k, v in props.items() for a in ("-X", f"{k}={v}")]
        return runnel_cli(b.bootstrap, *xs, *args, **kw)

    def okr(props, *args, **kw):
        rc, out, err = run(props, *args, **kw)
        assert rc == 0, f"runnel {' '.join(args)} exited {rc}:\n{out}\n{err}"
        return out

    cfg = java_config(tmp_path / "admin.properties", "admin", "admin-pw")

    def kafka_acls(*args):
        rc, out, err = kafka_tool("kafka-acls", "--bootstrap-server", b.bootstrap,
                                  "--command-config", cfg, *args)
        assert rc == 0, out + err
        return out

    okr(admin, "topic", "create", "acl-orders", "-p", "1")
    # No ACL: alice may not write (TOPIC_AUTHORIZATION_FAILED, exit 7 with a hint).
    rc, out, err = run(alice, "produce", "acl-orders", input="denied\n", timeout=60)
    assert rc == 7 and "TOPIC_AUTHORIZATION_FAILED (29)" in err and "runnel acl create" in err, (rc, err)

    # runnel grants Write and Describe; kafka-acls lists them.
    out = okr(admin, "acl", "create", "--allow-principal", "User:alice", "--operation", "Write",
              "--operation", "Describe", "--topic", "acl-orders")
    assert "Added 2 ACL(s):" in out
    listed = kafka_acls("--list", "--topic", "acl-orders")
    assert "ResourcePattern(resourceType=TOPIC, name=acl-orders, patternType=LITERAL)" in listed
    assert "(principal=User:alice, host=*, operation=WRITE, permissionType=ALLOW)" in listed
    assert "(principal=User:alice, host=*, operation=DESCRIBE, permissionType=ALLOW)" in listed
    okr(alice, "produce", "acl-orders", input="allowed\n")

    # kafka-acls adds a prefixed deny and a group ACL; runnel lists them (text and JSON).
    kafka_acls("--add", "--deny-principal", "User:alice", "--operation", "Read", "--topic", "acl-",
               "--resource-pattern-type", "prefixed")
    kafka_acls("--add", "--allow-principal", "User:alice", "--operation", "Read", "--group", "billing")
    out = okr(admin, "acl", "list", "--topic", "acl-", "--resource-pattern-type", "prefixed")
    assert "ACLs for resource `ResourcePattern(resourceType=TOPIC, name=acl-, patternType=PREFIXED)`:" in out
    assert "(principal=User:alice, host=*, operation=READ, permissionType=DENY)" in out
    acls = json.loads(okr(admin, "--format", "json", "acl", "list", "--principal", "User:alice"))["acls"]
    assert {(a["resource_type"], a["resource_name"], a["pattern_type"], a["operation"], a["permission"])
            for a in acls} == {("TOPIC", "acl-orders", "LITERAL", "WRITE", "ALLOW"),
                               ("TOPIC", "acl-orders", "LITERAL", "DESCRIBE", "ALLOW"),
                               ("TOPIC", "acl-", "PREFIXED", "READ", "DENY"),
                               ("GROUP", "billing", "LITERAL", "READ", "ALLOW")}
    # match: every ACL that applies to the topic, literal and prefixed.
    out = okr(admin, "acl", "list", "--topic", "acl-orders", "--resource-pattern-type", "match")
    assert "patternType=PREFIXED" in out and "patternType=LITERAL" in out
    # alice may not read: the prefixed deny wins.
    rc, out, err = run(alice, "consume", "acl-orders", "--from", "beginning", "-e", timeout=60)
    assert rc == 7 and "TOPIC_AUTHORIZATION_FAILED" in err, (rc, err)

    # runnel removes the Write grant: alice is denied again; kafka-acls no longer lists it.
    out = okr(admin, "acl", "delete", "--allow-principal", "User:alice", "--operation", "Write",
              "--topic", "acl-orders")
    assert "Removed 1 ACL(s):" in out and "operation=WRITE" in out
    assert "operation=WRITE" not in kafka_acls("--list", "--topic", "acl-orders")
    # (Describe is left: the topic is seen, but the idempotent producer may not get an id.)
    rc, out, err = run(alice, "produce", "acl-orders", input="denied-again\n", timeout=60)
    assert rc == 7 and "CLUSTER_AUTHORIZATION_FAILED" in err and "hint:" in err, (rc, err)
    # Every ACL of a resource at once; bad arguments are usage errors; alice may not manage ACLs.
    out = okr(admin, "acl", "delete", "--topic", "acl-", "--resource-pattern-type", "prefixed")
    assert "Removed 1 ACL(s):" in out
    rc, out, err = run(admin, "acl", "create", "--allow-principal", "alice", "--topic", "x")
    assert rc == 2 and "Type:name" in err
    rc, out, err = run(admin, "acl", "create", "--allow-principal", "User:a", "--operation", "Fly",
                       "--topic", "x")
    assert rc == 2 and "unknown operation" in err
    rc, out, err = run(alice, "acl", "create", "--allow-principal", "User:alice", "--cluster",
                       "--operation", "Alter")
    assert rc == 7 and "CLUSTER_AUTHORIZATION_FAILED" in err, (rc, err)
    remaining = kafka_acls("--list")
    assert "acl-orders" in remaining and "name=acl-," not in remaining and "billing" in remaining
