"""Fetch limits as Kafka applies them: a partition reads at most min(its partition_max_bytes, what
is left of the response's max_bytes), the first partition with data at least one whole batch."""

import socket
import struct

from confluent_kafka import Producer

from helpers import raw_frame, read_frame
from test_quotas import R, s16

VALUE = b"x" * 1000


def create_topic(broker, name):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)


def test_fetch_max_bytes_bounds_the_first_partition_too(broker):
    """As Kafka's readFromLocalLog: a partition reads at most min(its partition_max_bytes, what is
    left of the response's max_bytes), the first one at least one whole batch. (The consumer
    quota caps max_bytes; Runnel let the first partition fill its partition limit, so a throttled
    consumer got the same oversized response, and was throttled, forever.)"""
    create_topic(broker, "fm")
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "batch.size": 2000})
    for _ in range(100):
        p.produce("fm", VALUE)
        p.poll(0)
    assert p.flush(30) == 0

    def fetch(max_bytes, partition_max_bytes):
        # Fetch v4: replica, max wait, min bytes, max bytes, isolation, [topic, [partition,
        # offset, partition max bytes]].
        body = struct.pack(">iiiib", -1, 100, 1, max_bytes, 0) + struct.pack(">i", 1) + s16("fm")
        body += struct.pack(">iiqi", 1, 0, 0, partition_max_bytes)
        with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
            s.sendall(raw_frame(1, 4, 3, body))
            r = R(read_frame(s, 10))
        assert r.take(">i") == 3 and r.take(">i") == 0  # correlation id, throttle
        assert r.take(">i") == 1 and r.str() == "fm" and r.take(">i") == 1
        assert r.take(">i") == 0 and r.take(">h") == 0  # partition 0, no error
        r.take(">q"), r.take(">q")
        assert r.take(">i") in (-1, 0)  # aborted transactions
        return r.take(">i")  # records size

    whole = fetch(10_000_000, 10_000_000)
    assert whole >= 100 * len(VALUE), whole
    # At most 5000 bytes of whole batches (each batch here is one or two records).
    bounded = fetch(5000, 10_000_000)
    assert 0 < bounded <= 5000, bounded
    # Below one batch: still the first whole batch.
    assert fetch(10, 10_000_000) > 10
