"""Client quota enforcement (issue 14), as Kafka enforces it: a real producer (librdkafka) under a
`producer_byte_rate` and a real consumer under a `consumer_byte_rate` are slowed down to their
quota (the measured steady throughput must fall in a band around it, far below what the same
client does unthrottled), see `throttle_time_ms` in the responses (librdkafka's throttle
callback), and a quota changed at run time takes effect; entity precedence picks the most
specific quota (client-id over the client-id default). The broker runs with short quota windows
(`quota.window.num=3`, `quota.window.size.seconds=1`) so that the rate settles within seconds.
With SASL PLAIN users, user quotas follow Kafka's precedence (user+client-id over user over the
default user). About 65 s.
"""

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from test_quotas import alter

WINDOWS = {"quota.window.num": "3", "quota.window.size.seconds": "1"}
VALUE = b"x" * 1000


def create_topic(broker, name, partitions=1):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])["%s" % name].result(30)


def set_quota(broker, entity, key, value):
    got = alter(broker.bootstrap, [(entity, [(key, float(value), False)])])
    assert all(code == 0 for code, _ in got.values()), got


def produce_for(bootstrap, topic, client_id, seconds, throttles, **config):
    """Produces 1000-byte records as fast as the broker lets for `seconds`; returns the
    (time, acknowledged bytes so far) samples taken as deliveries arrive."""
    acked = [0]
    p = Producer({
        "bootstrap.servers": bootstrap, "client.id": client_id, "acks": 1, "linger.ms": 5,
        "queue.buffering.max.kbytes": 200, "batch.size": 16384,
        "throttle_cb": lambda ev: throttles.append(ev.throttle_time), **config,
    })

    def delivered(err, msg):
        if err is None:
            acked[0] += len(msg.value())

    samples = []
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            p.produce(topic, VALUE, callback=delivered)
        except BufferError:
            p.poll(0.05)
        p.poll(0)
        samples.append((time.monotonic() - start, acked[0]))
    p.flush(30)
    return samples


def rate_between(samples, t0, t1):
    """Bytes per second acknowledged between t0 and t1 (seconds from the start)."""
    a = max((s for s in samples if s[0] <= t0), default=samples[0])
    b = max((s for s in samples if s[0] <= t1), default=samples[-1])
    return (b[1] - a[1]) / (b[0] - a[0])


def test_producer_is_held_to_its_byte_rate(broker_factory):
    broker = broker_factory(**WINDOWS)
    create_topic(broker, "pq")
    quota = 100_000
    set_quota(broker, [("client-id", "slow-producer")], "producer_byte_rate", quota)
    # Unthrottled, the same producer goes far faster than the quota.
    free = produce_for(broker.bootstrap, "pq", "free-producer", 2, [])
    assert rate_between(free, 0.5, 2) > 5 * quota, rate_between(free, 0.5, 2)
    throttles = []
    samples = produce_for(broker.bootstrap, "pq", "slow-producer", 9, throttles)
    # The first windows' worth goes through at once (the rate is measured over at least
    # quota.window.num - 1 windows), then the rate settles on the quota.
    steady = rate_between(samples, 3, 9)
    print(f"producer: unthrottled {rate_between(free, 0.5, 2):.0f} B/s, quota {quota} B/s, "
          f"steady {steady:.0f} B/s, {len(throttles)} throttled responses (max {max(throttles or [0])} s)")
    assert 0.6 * quota <= steady <= 1.4 * quota, steady
    assert throttles and max(throttles) > 0, throttles
    # Raised at run time, the quota lets the same client go faster at once.
    set_quota(broker, [("client-id", "slow-producer")], "producer_byte_rate", 4 * quota)
    throttles.clear()
    faster = produce_for(broker.bootstrap, "pq", "slow-producer", 6, throttles)
    steady = rate_between(faster, 2, 6)
    print(f"producer: quota raised to {4 * quota} B/s, steady {steady:.0f} B/s")
    assert 2.4 * quota <= steady <= 5.6 * quota, steady


def consume_for(bootstrap, topic, client_id, seconds, throttles):
    """Consumes `topic` partition 0 from the start for `seconds`; (time, bytes) samples."""
    c = Consumer({
        "bootstrap.servers": bootstrap, "client.id": client_id, "group.id": client_id,
        "enable.auto.commit": False, "auto.offset.reset": "earliest",
        # Fetches of 64 KiB: the rate tracks the quota closely. (At the cap of one quota window
        # per fetch, Kafka's algorithm alternates a full fetch and a throttled empty one and
        # delivers well under the quota; so does Runnel's.)
        "fetch.max.bytes": 65536, "max.partition.fetch.bytes": 65536, "message.max.bytes": 65536,
        "throttle_cb": lambda ev: throttles.append(ev.throttle_time),
    })
    c.assign([TopicPartition(topic, 0, 0)])
    got, samples = 0, []
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        m = c.poll(0.1)
        if m is not None and m.error() is None:
            got += len(m.value())
        samples.append((time.monotonic() - start, got))
    c.close()
    return samples


def test_consumer_is_held_to_its_byte_rate_and_the_most_specific_quota_wins(broker_factory):
    broker = broker_factory(**WINDOWS)
    create_topic(broker, "cq")
    # About 4 MB to read, written unthrottled.
    # Small batches: a consumer's fetch is capped at one quota window's bytes (Kafka's cap), and a
    # batch is never split.
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "client.id": "filler",
                  "batch.size": 16384})
    for _ in range(4000):
        while True:
            try:
                p.produce("cq", VALUE)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0
    quota = 150_000
    # The default for every client id is generous; the named client's own quota is what counts.
    set_quota(broker, [("client-id", None)], "consumer_byte_rate", 50 * quota)
    set_quota(broker, [("client-id", "slow-consumer")], "consumer_byte_rate", quota)
    throttles = []
    samples = consume_for(broker.bootstrap, "cq", "slow-consumer", 9, throttles)
    steady = rate_between(samples, 3, 9)
    print(f"consumer: quota {quota} B/s, steady {steady:.0f} B/s, {len(throttles)} throttled "
          f"responses (max {max(throttles or [0])} s)")
    assert 0.6 * quota <= steady <= 1.4 * quota, steady
    assert throttles and max(throttles) > 0, throttles
    # Another client id gets the default: it reads everything far faster.
    fast_throttles = []
    samples = consume_for(broker.bootstrap, "cq", "other-consumer", 3, fast_throttles)
    assert samples[-1][1] == 4000 * len(VALUE), samples[-1]



def test_request_percentage_throttles_a_busy_client(broker_factory):
    """request_percentage (Kafka's request quota): the time the broker spends handling a
    client's requests, in percent of one thread, over the quota windows. A producer sending one
    small record per request is throttled (each throttle at most one window, as Kafka caps it)
    and gets far less done than the same producer under another client id."""
    broker = broker_factory(**WINDOWS)
    create_topic(broker, "rq")
    set_quota(broker, [("client-id", "busy")], "request_percentage", 0.5)

    def run(client_id, throttles):
        acked = [0]
        p = Producer({
            "bootstrap.servers": broker.bootstrap, "client.id": client_id, "acks": 1,
            "linger.ms": 0, "max.in.flight": 1, "queue.buffering.max.messages": 10,
            "throttle_cb": lambda ev: throttles.append(ev.throttle_time),
        })
        start = time.monotonic()
        while time.monotonic() - start < 4:
            try:
                p.produce("rq", b"r", callback=lambda e, m: acked.__setitem__(0, acked[0] + (e is None)))
            except BufferError:
                p.poll(0.01)
            p.poll(0)
        p.flush(10)
        return acked[0]

    free_throttles, busy_throttles = [], []
    free = run("idle", free_throttles)
    busy = run("busy", busy_throttles)
    print(f"request quota 0.5%: {busy} records acknowledged in 4 s, {free} without the quota; "
          f"{len(busy_throttles)} throttled responses (max {max(busy_throttles or [0])} s)")
    assert not free_throttles, free_throttles
    assert busy_throttles and 0 < max(busy_throttles) <= 1.0, busy_throttles
    assert busy < free / 3, (busy, free)


PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'user_alice="alice-pw" user_bob="bob-pw";')


def test_user_quotas_with_sasl_users_follow_kafkas_precedence(broker_factory):
    """Real users (SASL PLAIN): user alice's own quota beats the default user's, alice's quota
    for one client id beats her user quota, and bob gets the default user's."""
    from helpers import free_port
    port, sasl_port = free_port(), free_port()
    # PLAINTEXT for the raw AlterClientQuotas requests, SASL_PLAINTEXT for the users.
    broker = broker_factory(**WINDOWS, **{
        "listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
    })
    create_topic(broker, "uq")
    quota = 100_000
    set_quota(broker, [("user", None)], "producer_byte_rate", 8 * quota)
    set_quota(broker, [("user", "alice")], "producer_byte_rate", quota)
    set_quota(broker, [("user", "alice"), ("client-id", "special")], "producer_byte_rate", 3 * quota)
    sasl = f"127.0.0.1:{sasl_port}"

    def steady_rate(user, client_id):
        throttles = []
        samples = produce_for(sasl, "uq", client_id, 7, throttles, **{
            "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
            "sasl.username": user, "sasl.password": f"{user}-pw"})
        return rate_between(samples, 3, 7), throttles

    alice, throttles = steady_rate("alice", "app")
    assert 0.6 * quota <= alice <= 1.4 * quota and throttles, alice
    special, _ = steady_rate("alice", "special")
    assert 1.8 * quota <= special <= 4.2 * quota, special
    bob, _ = steady_rate("bob", "app")
    assert 4.8 * quota <= bob <= 11.2 * quota, bob
    print(f"user quotas: alice {alice:.0f} B/s (quota {quota}), alice/special {special:.0f} B/s "
          f"(quota {3 * quota}), bob {bob:.0f} B/s (default user {8 * quota})")
