"""librdkafka (confluent-kafka) and kafka-python against Runnel: every codec one way and back,
every key, value, header and timestamp compared."""

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTP

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
N = 200
TS0 = 1_700_000_000_000


def create(bootstrap, topic, partitions=1, config=None):
    a = AdminClient({"bootstrap.servers": bootstrap})
    for f in a.create_topics([NewTopic(topic, partitions, 1, config=config or {})]).values():
        f.result(10)


def expected(i):
    value = b"" if i % 50 == 0 else None if i % 50 == 1 else b"value-%d" % i * (1 + i % 7)
    return b"key-%d" % i, value, [("h", b"1"), ("h", b"2"), ("other", None if i % 3 == 0 else b"x")], TS0 + i


def kafka_python_read(bootstrap, topic, n, partition=0):
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, consumer_timeout_ms=5000)
    c.assign([KTP(topic, partition)])
    c.seek_to_beginning()
    got = []
    for m in c:
        got.append(m)
        if len(got) == n:
            break
    c.close()
    return got


def librdkafka_read(bootstrap, topic, n, partition=0):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, partition, 0)])
    got = []
    deadline = time.time() + 20
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        assert m.error() is None, m.error()
        got.append(m)
    c.close()
    return got


@pytest.mark.parametrize("codec", CODECS)
def test_librdkafka_produces_kafka_python_consumes(broker, codec):
    topic = f"rd-to-py-{codec}"
    create(broker.bootstrap, topic)
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": codec, "enable.idempotence": True, "acks": "all", "linger.ms": 5})
    for i in range(N):
        k, v, h, ts = expected(i)
        p.produce(topic, key=k, value=v, headers=h, timestamp=ts)
    assert p.flush(20) == 0
    got = kafka_python_read(broker.bootstrap, topic, N)
    assert len(got) == N
    for i, m in enumerate(got):
        k, v, h, ts = expected(i)
        assert (m.offset, m.key, m.value, m.timestamp) == (i, k, v, ts)
        assert m.headers == h


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_produces_librdkafka_consumes(broker, codec):
    topic = f"py-to-rd-{codec}"
    create(broker.bootstrap, topic)
    kwargs = {} if codec == "none" else {"compression_type": codec}
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5, **kwargs)
    futures = []
    for i in range(N):
        k, v, h, ts = expected(i)
        futures.append(p.send(topic, key=k, value=v, headers=[(x, y if y is not None else b"") for x, y in h], timestamp_ms=ts, partition=0))
    p.flush()
    offsets = [f.get(10).offset for f in futures]
    assert offsets == list(range(N))
    got = librdkafka_read(broker.bootstrap, topic, N)
    assert len(got) == N
    for i, m in enumerate(got):
        k, v, h, ts = expected(i)
        assert (m.offset(), m.key(), m.value(), m.timestamp()[1]) == (i, k, v, ts)
        assert m.headers() == [(x, y if y is not None else b"") for x, y in h]


def test_idempotent_producers_by_default(broker):
    create(broker.bootstrap, "idem", partitions=2)
    # kafka-python 3 turns idempotence on by default with acks=all.
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True, acks="all")
    metas = [p.send("idem", value=b"%d" % i, partition=i % 2).get(10) for i in range(100)]
    assert sorted(m.offset for m in metas if m.partition == 0) == list(range(50))
    p.close()
    got = librdkafka_read(broker.bootstrap, "idem", 50, partition=1)
    assert [m.value() for m in got] == [b"%d" % i for i in range(1, 100, 2)]
