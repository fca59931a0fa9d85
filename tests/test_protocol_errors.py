"""Kafka's error codes and behaviours as clients see them."""

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTP
from kafka.errors import MessageSizeTooLargeError

from test_clients import create


def test_admin_errors(broker):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    f = a.create_topics([NewTopic("rf3", 1, 3)])["rf3"]
    with pytest.raises(KafkaException) as e:
        f.result(10)
    assert e.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR
    create(broker.bootstrap, "parts", partitions=4)
    f = a.create_partitions([NewPartitions("parts", 2)])["parts"]
    with pytest.raises(KafkaException) as e:
        f.result(10)
    assert e.value.args[0].code() == KafkaError.INVALID_PARTITIONS
    res = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "parts")])
    configs = list(res.values())[0].result(10)
    assert configs["retention.ms"].value == "604800000"
    assert configs["retention.ms"].is_default
    assert configs["cleanup.policy"].value == "delete"


def test_message_too_large(broker):
    create(broker.bootstrap, "small", config={"max.message.bytes": "1000"})
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, max_request_size=10_000_000)
    with pytest.raises(MessageSizeTooLargeError):
        p.send("small", value=b"x" * 5000).get(10)
    # kafka-python's idempotent producer treats the error as fatal; a fresh producer carries on.
    p2 = KafkaProducer(bootstrap_servers=broker.bootstrap)
    assert p2.send("small", value=b"x" * 100).get(10).offset == 0


def test_unknown_topic_without_auto_create(broker):
    p = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 3000})
    errors = []
    p.produce("nope", value=b"x", on_delivery=lambda err, msg: errors.append(err))
    p.flush(10)
    assert errors and errors[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._MSG_TIMED_OUT)
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics("nope", timeout=10)
    assert md.topics["nope"].error.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC)


def test_auto_create_when_enabled(broker_factory):
    broker = broker_factory(**{"auto.create.topics.enable": "true", "num.partitions": "3"})
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce("auto-topic", value=b"x")
    assert p.flush(15) == 0
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics("auto-topic", timeout=10)
    assert len(md.topics["auto-topic"].partitions) == 3


def test_log_append_time_and_offsets_for_times(broker):
    create(broker.bootstrap, "lat", config={"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    meta = p.send("lat", value=b"a", timestamp_ms=1000).get(10)
    assert meta.timestamp >= before
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, consumer_timeout_ms=5000)
    tp = KTP("lat", 0)
    c.assign([tp])
    c.seek_to_beginning()
    m = next(iter(c))
    assert m.timestamp >= before and m.timestamp_type == 1

    create(broker.bootstrap, "times")
    for i in range(10):
        p.send("times", value=b"%d" % i, timestamp_ms=1_000_000 + i * 1000).get(10)
    tp = KTP("times", 0)
    assert c.beginning_offsets([tp])[tp] == 0
    assert c.end_offsets([tp])[tp] == 10
    found = c.offsets_for_times({tp: 1_004_500})[tp]
    assert (found.offset, found.timestamp) == (5, 1_005_000)
    assert c.offsets_for_times({tp: 9_999_999})[tp] is None


def test_advertised_listener_is_what_clients_are_told(broker_factory, tmp_path):
    from helpers import free_port
    port = free_port()
    broker = broker_factory(**{
        "listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "advertised.listeners": f"PLAINTEXT://localhost:{port}",
    })
    md = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"}).list_topics(timeout=10)
    assert [(b.host, b.port) for b in md.brokers.values()] == [("localhost", port)]
