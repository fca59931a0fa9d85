"""Log compaction end to end: a topic with cleanup.policy=compact and small segments gets many
updates of a few keys and some tombstones; the broker's log cleaner shrinks its log, a consumer
reading from the beginning sees every key's latest value at the offset it was written at, the
tombstones go once delete.retention.ms has passed, and offsets only go up. Then the same on a
three-node cluster with replication factor 3, where every replica cleans its own log, and nothing
cleaned with log.cleaner.enable=false."""

import struct
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

KEYS = [b"k%d" % i for i in range(8)]
DELETED = [b"k6", b"k7"]
ROUNDS = 60
DELETE_RETENTION_MS = 4000
TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.bytes": "4096",
    "segment.ms": "200",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": str(DELETE_RETENTION_MS),
}
BROKER_SETTINGS = {"log.cleaner.backoff.ms": "200"}


def create(bootstrap, topic, rf=1):
    a = AdminClient({"bootstrap.servers": bootstrap})
    for f in a.create_topics([NewTopic(topic, 1, rf, config=TOPIC_CONFIG)]).values():
        f.result(20)


def produce(bootstrap, topic, records):
    """Writes (key, value) pairs one batch each; returns the offset of each."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all",
                  "compression.type": "none"})
    offsets = [None] * len(records)

    def done(i):
        def cb(err, msg):
            assert err is None, err
            offsets[i] = msg.offset()
        return cb

    for i, (k, v) in enumerate(records):
        p.produce(topic, key=k, value=v, on_delivery=done(i))
        p.flush(10)
    assert None not in offsets
    return offsets


def read_all(bootstrap, topic):
    """Every record from the beginning to the end: [(offset, key, value)]."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    try:
        _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        c.assign([TopicPartition(topic, 0, 0)])
        out = []
        deadline = time.time() + 30
        while time.time() < deadline:
            m = c.poll(1)
            if m is None:
                continue
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    if not out or out[-1][0] >= high - 1 or m.offset() >= high:
                        return out
                    continue
                raise AssertionError(m.error())
            out.append((m.offset(), m.key(), m.value()))
        raise AssertionError(f"did not reach the end ({high}) of {topic}: {out[-3:]}")
    finally:
        c.close()


def write_updates(bootstrap, topic):
    """ROUNDS updates of every key, then tombstones of DELETED; the latest (offset, value) of
    every key."""
    records = [(k, b"%s-%d" % (k, r) + b"x" * 40) for r in range(ROUNDS) for k in KEYS]
    records += [(k, None) for k in DELETED]
    offsets = produce(bootstrap, topic, records)
    latest = {}
    for (k, v), o in zip(records, offsets):
        latest[k] = (o, v)
    return latest, len(records)


def roll(bootstrap, topic, n=3):
    """A few more writes, spaced past segment.ms, so that what was written before is in closed
    segments (the cleaner never cleans the active one) and the log is dirty again."""
    latest = {}
    for i in range(n):
        time.sleep(0.3)
        [o] = produce(bootstrap, topic, [(b"filler", b"f%d" % i)])
        latest[b"filler"] = (o, b"f%d" % i)
    return latest


def check(records, latest, tombstones_gone):
    offsets = [o for o, _, _ in records]
    assert offsets == sorted(set(offsets)), "offsets strictly increasing"
    seen = {}
    for o, k, v in records:
        seen.setdefault(k, []).append((o, v))
    for k, (o, v) in latest.items():
        if k == b"filler":
            # Written last: older ones stay until a later segment holds a newer one in the
            # cleanable part (the active segment is never cleaned, nor mapped).
            assert seen[k][-1] == (o, v), f"{k}: {seen.get(k)}"
        elif v is None:
            if tombstones_gone:
                assert k not in seen, f"{k}: tombstone still there: {seen.get(k)}"
            else:
                assert seen.get(k, [(o, None)]) == [(o, None)], f"{k}: {seen.get(k)}"
        else:
            assert seen.get(k) == [(o, v)], f"{k}: expected only {(o, v)}, got {seen.get(k)}"
    assert set(seen) <= set(latest), f"unknown keys {set(seen) - set(latest)}"


def wait_compacted(bootstrap, topic, latest, tombstones_gone, timeout=60):
    deadline = time.time() + timeout
    while True:
        records = read_all(bootstrap, topic)
        try:
            check(records, latest, tombstones_gone)
            return records
        except AssertionError:
            if time.time() > deadline:
                raise
        time.sleep(0.5)


def varint(b, pos):
    """A zigzag varint of the record format: (value, next position)."""
    shift = n = 0
    while True:
        byte = b[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return (n >> 1) ^ -(n & 1), pos


def segment_records(data):
    """The (offset, key, value) of every data record in uncompressed v2 batches."""
    out, pos = [], 0
    while pos + 61 <= len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        attributes = struct.unpack_from(">h", data, pos + 21)[0]
        count = struct.unpack_from(">i", data, pos + 57)[0]
        assert attributes & 0x07 == 0, "uncompressed batches only"
        r = pos + 61
        for _ in range(count if not attributes & 0x20 else 0):
            _, r = varint(data, r)
            r += 1
            _, r = varint(data, r)
            delta, r = varint(data, r)
            klen, r = varint(data, r)
            key = data[r:r + klen] if klen >= 0 else None
            r += max(klen, 0)
            vlen, r = varint(data, r)
            value = data[r:r + vlen] if vlen >= 0 else None
            r += max(vlen, 0)
            headers, r = varint(data, r)
            for _ in range(headers):
                hk, r = varint(data, r)
                r += hk
                hv, r = varint(data, r)
                r += max(hv, 0)
            out.append((base + delta, key, value))
        pos += 12 + length
    return out


def log_bytes(data_dir, topic):
    return sum(f.stat().st_size for f in (data_dir / f"{topic}-0").glob("*.log"))


def test_compacted_topic_keeps_the_latest_value_of_every_key(broker_factory):
    b = broker_factory(**BROKER_SETTINGS)
    create(b.bootstrap, "table")
    latest, written = write_updates(b.bootstrap, "table")
    before = log_bytes(b.data_dir, "table")
    latest.update(roll(b.bootstrap, "table"))
    records = wait_compacted(b.bootstrap, "table", latest, tombstones_gone=False)
    assert len(records) < written / 10
    assert log_bytes(b.data_dir, "table") < before / 3
    assert "cleaned a log" in b.log_text()
    # Once delete.retention.ms has passed, the next cleaning removes the tombstones.
    time.sleep(DELETE_RETENTION_MS / 1000 + 0.5)
    latest.update(roll(b.bootstrap, "table"))
    wait_compacted(b.bootstrap, "table", latest, tombstones_gone=True)
    assert (b.data_dir / "cleaner-offset-checkpoint").exists()
    # After a restart the log reads the same and its cleaning goes on from the checkpoint.
    b.restart()
    wait_compacted(b.bootstrap, "table", latest, tombstones_gone=True)


def test_replicas_of_a_compacted_topic_clean_their_own_logs(cluster_factory):
    c = cluster_factory(3, **BROKER_SETTINGS)
    create(c.bootstrap, "table", rf=3)
    latest, written = write_updates(c.bootstrap, "table")
    latest.update(roll(c.bootstrap, "table"))
    wait_compacted(c.bootstrap, "table", latest, tombstones_gone=False)
    # Every replica cleaned its own log: each holds every key's latest value at its offset.
    def cleaned(i):
        try:
            check(segment_records(c.log_bytes(i, "table", 0)), latest, tombstones_gone=False)
            return True
        except AssertionError:
            return False

    c.wait_for("every replica cleaned", lambda: all(cleaned(i) for i in range(3)), timeout=60)
    assert all("cleaned a log" in n.log_text() for n in c.nodes)
    # Each replica, made leader in turn, serves the same compacted contents.
    leader = c.leader_of("table", 0)
    for i in range(3):
        c.stop(i)
        c.wait_for("a new leader", lambda: c.leader_of("table", 0) not in (-1, i + 1), timeout=30)
        wait_compacted(c.live_bootstrap(), "table", latest, tombstones_gone=False)
        c.start(i)
        c.wait_for("back in sync", lambda: len(c.describe("table")["topics"]["table"][0][2]) == 3,
                   timeout=60)
    assert leader > 0


def test_no_cleaning_with_the_cleaner_disabled(broker_factory):
    b = broker_factory(**BROKER_SETTINGS, **{"log.cleaner.enable": "false"})
    create(b.bootstrap, "table")
    _, written = write_updates(b.bootstrap, "table")
    roll(b.bootstrap, "table")
    time.sleep(2)
    assert len(read_all(b.bootstrap, "table")) == written + 3
    assert "cleaned a log" not in b.log_text()


def test_more_keys_than_the_dedupe_buffer_holds_are_cleaned_in_passes(broker_factory):
    """log.cleaner.dedupe.buffer.size at its minimum (1 MiB: about 39000 keys): 60000 keys
    written twice are cleaned over several passes, each up to where its key map filled."""
    b = broker_factory(**BROKER_SETTINGS, **{"log.cleaner.dedupe.buffer.size": str(1 << 20)})
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    config = dict(TOPIC_CONFIG, **{"segment.bytes": str(256 * 1024)})
    for f in a.create_topics([NewTopic("many", 1, 1, config=config)]).values():
        f.result(20)
    keys = 60_000
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5, "compression.type": "none"})
    for r in range(2):
        for i in range(keys):
            p.produce("many", key=b"key-%06d" % i, value=b"v%d-%d" % (r, i), partition=0)
            if i % 10_000 == 0:
                p.poll(0)
    assert p.flush(60) == 0
    written = 2 * keys
    latest = {}
    for o, k, v in read_all(b.bootstrap, "many"):
        latest[k] = (o, v)
    latest.update(roll(b.bootstrap, "many"))
    records = wait_compacted(b.bootstrap, "many", latest, tombstones_gone=False, timeout=120)
    assert len(records) < written * 0.6
    assert b.log_text().count("cleaned a log") >= 2, "more than one pass"


def test_cleanup_policy_changed_at_run_time_with_kafka_configs(broker_factory):
    """A `delete` topic is not compacted; `kafka-configs --alter` to `compact` makes the cleaner
    take it; `compact,delete` with a short retention.ms then also deletes old segments whole,
    as Kafka does (the log start moves past them)."""
    from helpers import kafka_tool

    b = broker_factory(**BROKER_SETTINGS, **{"log.retention.check.interval.ms": "300"})
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    config = dict(TOPIC_CONFIG, **{"cleanup.policy": "delete"})
    for f in a.create_topics([NewTopic("t", 1, 1, config=config)]).values():
        f.result(20)
    latest, written = write_updates(b.bootstrap, "t")
    latest.update(roll(b.bootstrap, "t"))
    time.sleep(1.5)
    assert len(read_all(b.bootstrap, "t")) == written + 3, "not compacted under delete"

    def alter(value):
        rc, out, err = kafka_tool("kafka-configs", "--bootstrap-server", b.bootstrap, "--alter",
                                  "--entity-type", "topics", "--entity-name", "t",
                                  "--add-config", value)
        assert rc == 0 and "Completed updating config" in out, (out, err)

    alter("cleanup.policy=compact")
    latest.update(roll(b.bootstrap, "t"))
    wait_compacted(b.bootstrap, "t", latest, tombstones_gone=False)
    alter("cleanup.policy=[compact,delete],retention.ms=1000")
    time.sleep(1.5)
    latest = roll(b.bootstrap, "t")
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "unused"})
    deadline = time.time() + 30
    while True:
        low, high = c.get_watermark_offsets(TopicPartition("t", 0), timeout=10)
        # Everything but the active segment is past retention.ms and deleted.
        if low >= high - 3:
            break
        assert time.time() < deadline, f"log start still {low} (end {high})"
        time.sleep(0.3)
    c.close()
