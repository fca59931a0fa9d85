"""SASL/OAUTHBEARER with signed JWTs validated against a JWKS file (issue 14), as Kafka's
OAuthBearerValidatorCallbackHandler: an RSA and an EC key made here (cryptography), their JWKS
file, tokens signed with PyJWT. kafka-python produces and consumes with a valid token (the
principal is User:<sub>); refused tokens (bad signature, expired, wrong audience, wrong issuer,
unknown kid, alg none) get the RFC 7628 error challenge and then SASL_AUTHENTICATION_FAILED, with
the reason in the broker's log; a key added to the JWKS file while the broker runs is accepted
after the re-read; the session lifetime (KIP-368) is the token's; ACLs apply to the token's
principal; Apache Kafka's console producer (4.1.1 and 4.4.0) with OAuthBearerLoginCallbackHandler
and a file token endpoint produces records that are consumed back; configuration errors stop the
broker at start-up. About 70 s."""

import json
import struct
import subprocess
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaTimeoutError
from kafka.net.sasl.oauth import AbstractTokenProvider

from helpers import (KAFKA_TOOLS_VERSIONS, RUNNEL, Broker, closed_by_peer, free_port, kafka_tool,
                     raw_frame, read_frame)
from test_sasl import bytes_field, sasl_handshake

VALIDATOR = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
ISSUER = "https://issuer.test"
AUDIENCE = "runnel-test"
PREFIX = "listener.name.sasl_plaintext.oauthbearer."


class Keys:
    """An RSA and an EC P-256 key with their JWKS file; more keys can be added to the file."""

    def __init__(self, path):
        self.path = path
        self.private = {"rsa1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
                        "ec1": ec.generate_private_key(ec.SECP256R1())}
        self.published = ["rsa1", "ec1"]
        self.write()

    def jwk(self, kid):
        key = self.private[kid]
        if isinstance(key, rsa.RSAPrivateKey):
            d = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        else:
            d = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        return {**d, "kid": kid, "use": "sig"}

    def write(self):
        doc = {"keys": [self.jwk(k) for k in self.published]}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(self.path)

    def token(self, sub="alice", kid="rsa1", alg=None, lifetime_s=3600, aud=AUDIENCE, iss=ISSUER,
              key=None, **extra):
        now = int(time.time())
        claims = {"sub": sub, "iat": now, "exp": now + lifetime_s, "aud": aud, "iss": iss, **extra}
        alg = alg or ("RS256" if kid.startswith("rsa") else "ES256")
        return jwt.encode(claims, key or self.private[kid], algorithm=alg, headers={"kid": kid})


class Token(AbstractTokenProvider):
    def __init__(self, token):
        super().__init__()
        self._token = token

    def token(self):
        return self._token


@pytest.fixture
def jwks_broker(tmp_path, monkeypatch):
    """A broker whose SASL_PLAINTEXT listener takes OAUTHBEARER tokens signed by `keys`."""
    monkeypatch.setenv("RUNNEL_LOG", "info,runnel_broker::security::sasl=debug")
    keys = Keys(tmp_path / "jwks.json")
    started = []

    def make(**settings):
        port = free_port()
        overrides = {
            "listeners": f"SASL_PLAINTEXT://127.0.0.1:{port}",
            "sasl.enabled.mechanisms": "OAUTHBEARER",
            PREFIX + "sasl.server.callback.handler.class": VALIDATOR,
            PREFIX + "sasl.oauthbearer.jwks.endpoint.url": f"file://{keys.path}",
            "sasl.oauthbearer.expected.audience": f"other,{AUDIENCE}",
            "sasl.oauthbearer.expected.issuer": ISSUER,
            "connection.failed.authentication.delay.ms": "50",
            "offsets.topic.num.partitions": "3",
        }
        overrides.update(settings)
        d = tmp_path / f"b{len(started)}"
        d.mkdir()
        b = Broker(d, overrides)
        started.append(b)
        return b.start()

    yield make, keys
    for b in started:
        b.kill9()


def kp(b, token):
    return dict(bootstrap_servers=b.bootstrap, security_protocol="SASL_PLAINTEXT",
                sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=Token(token))


def raw_auth(b, token):
    """One OAUTHBEARER exchange over a raw socket: (error code, auth bytes, session lifetime ms,
    the socket) of the first SaslAuthenticate v1 response."""
    s = sasl_handshake(b, b"OAUTHBEARER")
    first = f"n,,\x01auth=Bearer {token}\x01\x01".encode()
    s.sendall(raw_frame(36, 1, 2, bytes_field(first)))
    resp = read_frame(s)
    assert resp is not None
    (corr, code) = struct.unpack(">ih", resp[:6])
    assert corr == 2
    off = 6
    (mlen,) = struct.unpack(">h", resp[off:off + 2])
    off += 2 + max(mlen, 0)
    (alen,) = struct.unpack(">i", resp[off:off + 4])
    auth = resp[off + 4:off + 4 + alen]
    (lifetime,) = struct.unpack(">q", resp[-8:])
    return code, auth, lifetime, s


def assert_refused(b, token, reason):
    """The error challenge, then SASL_AUTHENTICATION_FAILED once the client answers \\x01; the
    broker logs why."""
    code, auth, _, s = raw_auth(b, token)
    assert (code, auth) == (0, b'{"status":"invalid_token"}'), (code, auth)
    s.sendall(raw_frame(36, 1, 3, bytes_field(b"\x01")))
    resp = read_frame(s)
    assert resp is not None and struct.unpack(">ih", resp[:6]) == (3, 58)
    assert b"invalid_token" in resp
    assert closed_by_peer(s)
    deadline = time.time() + 5
    while reason not in b.log_text() and time.time() < deadline:
        time.sleep(0.1)
    assert reason in b.log_text(), f"no log line with {reason!r}"


def produce_consume(b, token, topic, n=10):
    prod = KafkaProducer(**kp(b, token))
    for i in range(n):
        prod.send(topic, key=b"k", value=f"v{i}".encode()).get(timeout=30)
    prod.close()
    cons = KafkaConsumer(topic, group_id=f"g-{topic}", auto_offset_reset="earliest",
                         consumer_timeout_ms=8000, **kp(b, token))
    values = {m.value for m in cons}
    cons.close()
    assert {f"v{i}".encode() for i in range(n)} <= values


def test_valid_tokens_produce_and_consume_and_bad_ones_are_refused(jwks_broker):
    make, keys = jwks_broker
    b = make(**{"auto.create.topics.enable": "true"})
    # RSA and EC signed tokens: kafka-python produces and consumes as User:<sub>.
    produce_consume(b, keys.token("alice", "rsa1"), "jwks-rsa")
    produce_consume(b, keys.token("bob", "ec1"), "jwks-ec")
    log = b.log_text()
    assert "principal=User:alice" in log and "principal=User:bob" in log
    # The session lifetime (KIP-368) is the token's: at most its 60 s.
    code, auth, lifetime, s = raw_auth(b, keys.token(lifetime_s=60))
    assert (code, auth) == (0, b"")
    assert 0 < lifetime <= 60_000, lifetime
    s.close()

    # Refusals.
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert_refused(b, keys.token(key=other), "bad signature")
    assert_refused(b, keys.token(lifetime_s=-120), "expired")
    assert_refused(b, keys.token(aud="someone-else"), "expected audience")
    assert_refused(b, keys.token(iss="https://evil.test"), "not the expected")
    assert_refused(b, keys.token(kid="rsa9", key=keys.private["rsa1"], alg="RS256"),
                   'no key in the JWKS for kid "rsa9"')
    now = int(time.time())
    unsigned = jwt.encode({"sub": "alice", "iat": now, "exp": now + 60, "aud": AUDIENCE,
                           "iss": ISSUER}, None, algorithm="none")
    assert_refused(b, unsigned, "alg none is refused")
    # The token never reaches the log.
    assert unsigned not in b.log_text()

    # kafka-python with an expired token: refused at each try, it never bootstraps.
    refusals = b.log_text().count("reason=the token expired")
    with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
        KafkaProducer(**kp(b, keys.token(lifetime_s=-120)), bootstrap_timeout_ms=5000)
    assert b.log_text().count("reason=the token expired") > refusals
    assert b.alive()


def test_a_key_added_to_the_jwks_file_is_picked_up(jwks_broker):
    make, keys = jwks_broker
    b = make(**{"sasl.oauthbearer.jwks.endpoint.refresh.ms": "1000"})
    keys.private["ec2"] = ec.generate_private_key(ec.SECP384R1())
    token = keys.token("carol", "ec2", alg="ES384")
    assert_refused(b, token, 'no key in the JWKS for kid "ec2"')
    keys.published.append("ec2")
    keys.write()
    # The next re-read (on the refresh interval, or for the unknown kid) has it.
    deadline = time.time() + 20
    while time.time() < deadline:
        code, auth, _, s = raw_auth(b, token)
        s.close()
        if code == 0 and auth == b"":
            break
        time.sleep(0.3)
    assert (code, auth) == (0, b""), auth
    assert "JWKS re-read" in b.log_text()
    # Removed again: refused once the file is re-read.
    keys.published.remove("ec2")
    keys.write()
    deadline = time.time() + 20
    while time.time() < deadline:
        code, auth, _, s = raw_auth(b, token)
        s.close()
        if auth == b'{"status":"invalid_token"}':
            break
        time.sleep(0.3)
    assert auth == b'{"status":"invalid_token"}'


def test_acls_apply_to_the_token_principal(jwks_broker):
    make, keys = jwks_broker
    b = make(**{"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "auto.create.topics.enable": "true",
                "super.users": "User:admin"})
    admin = keys.token("admin")
    produce_consume(b, admin, "acl-topic", n=3)
    # dave has no ACL: his produce is refused (TOPIC_AUTHORIZATION_FAILED).
    prod = KafkaProducer(**kp(b, keys.token("dave")), max_block_ms=8000)
    with pytest.raises(Exception) as e:
        prod.send("acl-topic", b"x").get(timeout=15)
    prod.close()
    assert "TopicAuthorizationFailed" in repr(e.value), repr(e.value)
    assert "principal=User:dave" in b.log_text()


@pytest.mark.parametrize("version", KAFKA_TOOLS_VERSIONS)
def test_kafka_console_producer_with_a_file_token_endpoint(jwks_broker, tmp_path, monkeypatch,
                                                           version):
    make, keys = jwks_broker
    b = make(**{"auto.create.topics.enable": "true"})
    token_file = tmp_path / "token.jwt"
    token_file.write_text(keys.token("erin", "ec1", scope="produce consume"))
    url = f"file:{token_file}"
    # Kafka 4.x reads a token endpoint URL only if the JVM allows it.
    monkeypatch.setenv("KAFKA_OPTS", f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={url}")
    cfg = tmp_path / "oauth.properties"
    cfg.write_text(
        "security.protocol=SASL_PLAINTEXT\n"
        "sasl.mechanism=OAUTHBEARER\n"
        "sasl.login.callback.handler.class="
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler\n"
        f"sasl.oauthbearer.token.endpoint.url={url}\n"
        "sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule "
        "required ;\n")
    lines = "".join(f"java-{i}\n" for i in range(5))
    rc, out, err = kafka_tool("kafka-console-producer", "--bootstrap-server", b.bootstrap,
                              "--topic", "jwks-java", "--producer.config", str(cfg), input=lines,
                              version=version)
    assert rc == 0, out + err
    assert "principal=User:erin" in b.log_text()
    cons = KafkaConsumer("jwks-java", group_id="g-java", auto_offset_reset="earliest",
                         consumer_timeout_ms=8000, **kp(b, keys.token("frank")))
    values = [m.value for m in cons]
    cons.close()
    assert values == [f"java-{i}".encode() for i in range(5)]


def test_configuration_errors_are_refused_at_start_up(tmp_path):
    port = free_port()
    base = ["--override", f"listeners=SASL_PLAINTEXT://127.0.0.1:{port}",
            "--override", f"log.dirs={tmp_path / 'd'}",
            "--override", "sasl.enabled.mechanisms=OAUTHBEARER",
            "--override", f"{PREFIX}sasl.server.callback.handler.class={VALIDATOR}"]
    url_key = PREFIX + "sasl.oauthbearer.jwks.endpoint.url"
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    cases = [
        ([], "sasl.oauthbearer.jwks.endpoint.url is not set"),
        ([f"{url_key}=file:{tmp_path / 'missing.json'}"], f"{url_key}: cannot read"),
        ([f"{url_key}=file:{bad_json}"], "not JSON"),
        ([f"{url_key}=https://idp.test/jwks"], "http(s) JWKS endpoint is not"),
        ([f"{PREFIX}sasl.server.callback.handler.class=com.example.Mine"],
         "com.example.Mine: Runnel serves OAUTHBEARER with"),
    ]
    for extra, message in cases:
        args = [a for kv in extra for a in ("--override", kv)]
        p = subprocess.run([str(RUNNEL), "serve", *base, *args], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode != 0, message
        assert message in p.stdout + p.stderr, p.stdout + p.stderr
        assert "unknown configuration key" not in p.stdout + p.stderr
