"""kcat (librdkafka's command-line client): produce keys and headers, read them back byte for
byte, list metadata."""

import json

from helpers import kcat
from test_clients import create


def test_kcat_round_trip_with_repeated_headers(broker):
    create(broker.bootstrap, "kc", partitions=2)
    lines = b"".join(b"key%d:value %d\n" % (i, i) for i in range(20))
    rc, _, err = kcat("-b", broker.bootstrap, "-P", "-t", "kc", "-p", "1", "-K:", "-H", "h1=v1", "-H", "h1=v2", "-H", "h2=", input=lines)
    assert rc == 0, err
    rc, out, err = kcat("-b", broker.bootstrap, "-C", "-t", "kc", "-p", "1", "-o", "beginning", "-e", "-J")
    assert rc == 0, err
    msgs = [json.loads(l) for l in out.decode().splitlines() if l.strip()]
    assert len(msgs) == 20
    for i, m in enumerate(msgs):
        assert m["offset"] == i
        assert m["key"] == f"key{i}"
        assert m["payload"] == f"value {i}"
        assert m["headers"] == ["h1", "v1", "h1", "v2", "h2", ""]


def test_kcat_metadata_lists_topic_and_broker(broker):
    create(broker.bootstrap, "meta-a", partitions=3)
    rc, out, err = kcat("-b", broker.bootstrap, "-L")
    assert rc == 0, err
    text = out.decode()
    assert f"broker 1 at 127.0.0.1:{broker.port}" in text
    assert 'topic "meta-a" with 3 partitions' in text
    for p in range(3):
        assert f"partition {p}, leader 1, replicas: 1, isrs: 1" in text
