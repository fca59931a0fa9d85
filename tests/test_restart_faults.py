"""Durability and bad input: acknowledged records survive a clean restart and a kill -9,
damaged segment tails are recovered, hostile frames are refused without harm."""

import os
import socket
import struct
import threading
import time
from pathlib import Path

from confluent_kafka import Producer
from kafka import KafkaAdminClient

from helpers import closed_by_peer, raw_frame, read_frame
from test_clients import create, kafka_python_read, librdkafka_read


def test_acked_records_survive_a_clean_restart(broker):
    create(broker.bootstrap, "durable", partitions=1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 2})
    for i in range(1000):
        p.produce("durable", value=b"r%d" % i)
    assert p.flush(20) == 0
    broker.restart()
    assert "no clean-shutdown marker" not in broker.log_text().split("SIGTERM")[-1]
    got = librdkafka_read(broker.bootstrap, "durable", 1000)
    assert [(m.offset(), m.value()) for m in got] == [(i, b"r%d" % i) for i in range(1000)]


def test_kill9_while_producing_loses_no_acked_record(broker):
    create(broker.bootstrap, "k9", partitions=2)
    acked = {}
    lock = threading.Lock()

    def on_ack(err, msg):
        if err is None:
            with lock:
                acked[(msg.partition(), msg.offset())] = msg.value()

    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "1", "linger.ms": 1, "enable.idempotence": False,
                  "message.timeout.ms": 3000, "retries": 0})
    stop = threading.Event()

    def produce():
        i = 0
        while not stop.is_set():
            try:
                p.produce("k9", value=b"m%08d" % i, partition=i % 2, on_delivery=on_ack)
                i += 1
            except BufferError:
                pass
            p.poll(0)

    t = threading.Thread(target=produce)
    t.start()
    time.sleep(1.5)
    broker.kill9()
    time.sleep(0.3)
    stop.set()
    t.join()
    p.flush(5)
    assert len(acked) > 100, f"only {len(acked)} acks before the kill"
    broker.start()
    for part in (0, 1):
        mine = sorted((o, v) for (pp, o), v in acked.items() if pp == part)
        got = kafka_python_read(broker.bootstrap, "k9", 10**9, partition=part)
        offsets = [m.offset for m in got]
        assert offsets == list(range(len(offsets))), "contiguous offsets from 0"
        by_offset = {m.offset: m.value for m in got}
        for o, v in mine:
            assert by_offset.get(o) == v, f"acked record at {part}/{o} missing or different"
        print(f"partition {part}: {len(mine)} acked before kill -9, {len(offsets)} readable after restart")
    # The broker still takes writes after recovery.
    p2 = Producer({"bootstrap.servers": broker.bootstrap})
    p2.produce("k9", value=b"after", partition=0)
    assert p2.flush(10) == 0


def damage_and_restart(broker, how):
    create(broker.bootstrap, "dmg", partitions=1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for i in range(50):
        p.produce("dmg", value=b"x%03d" % i)
        p.flush(5)
    broker.kill9()
    seg = broker.data_dir / "dmg-0" / ("0" * 20 + ".log")
    data = seg.read_bytes()
    if how == "truncate":
        seg.write_bytes(data[: len(data) - 7])
    else:
        seg.write_bytes(data[:-100] + os.urandom(100))
    broker.start()
    got = kafka_python_read(broker.bootstrap, "dmg", 10**9)
    values = [m.value for m in got]
    assert 40 <= len(values) < 50
    assert values == [b"x%03d" % i for i in range(len(values))]
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce("dmg", value=b"new")
    assert p.flush(10) == 0
    got = kafka_python_read(broker.bootstrap, "dmg", 10**9)
    assert got[-1].value == b"new" and got[-1].offset == len(values)


def test_truncated_segment_tail_is_recovered(broker):
    damage_and_restart(broker, "truncate")


def test_garbage_segment_tail_is_recovered(broker):
    damage_and_restart(broker, "garbage")


def still_serving(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    names = a.list_topics()
    a.close()
    return names is not None


def test_hostile_frames_are_refused(broker_factory):
    broker = broker_factory(**{"socket.request.max.bytes": "1048576"})
    rss0 = broker.rss_kib()
    # A size above socket.request.max.bytes.
    with socket.create_connection(("127.0.0.1", broker.port)) as s:
        s.sendall(struct.pack(">i", 2_000_000_000))
        assert closed_by_peer(s)
    # Garbage.
    with socket.create_connection(("127.0.0.1", broker.port)) as s:
        s.sendall(struct.pack(">i", 1000) + os.urandom(1000))
        assert closed_by_peer(s)
    # An unknown API key.
    with socket.create_connection(("127.0.0.1", broker.port)) as s:
        s.sendall(raw_frame(9999, 0, 1))
        assert closed_by_peer(s)
    # ApiVersions v999: error 35 and a v0 body.
    with socket.create_connection(("127.0.0.1", broker.port)) as s:
        s.sendall(raw_frame(18, 999, 77))
        body = read_frame(s)
        corr, err, n = struct.unpack(">ihi", body[:10])
        assert (corr, err) == (77, 35)
        keys = [struct.unpack(">hhh", body[10 + 6 * i: 16 + 6 * i]) for i in range(n)]
        assert (0, 0, 12) in keys and (18, 0, 4) in keys
    # Metadata v1 whose topic array claims 2^31-1 entries.
    with socket.create_connection(("127.0.0.1", broker.port)) as s:
        s.sendall(raw_frame(3, 1, 5, struct.pack(">i", 0x7FFFFFFF)))
        assert closed_by_peer(s)
    # Produce with a negative records length and an enormous topic array.
    with socket.create_connection(("127.0.0.1", broker.port)) as s:
        s.sendall(raw_frame(0, 3, 6, struct.pack(">hhii", -1, 1, 1000, 0x7FFFFFF0)))
        assert closed_by_peer(s)
    assert broker.alive()
    assert broker.rss_kib() - rss0 < 50 * 1024
    assert still_serving(broker)
