"""The internal topics and the metadata log stay bounded (issue 13): a start-up reads the live
state, not the history. `__consumer_offsets` gets thousands of offset commits of the same few
partitions and `__transaction_state` hundreds of transactions of one transactional id, with small
segments (`offsets.topic.segment.bytes`, `transaction.state.log.segment.bytes`): the log cleaner
shrinks both, and after a restart the coordinators load a few hundred records instead of the
thousands written, with every committed offset and the transactional id's state right. The
metadata log gets thousands of entries (topics created and deleted): after a restart the broker
replays at most one snapshot interval of entries after its newest snapshot."""

import re
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

SEGMENT = 16384
SETTINGS = {
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.num.partitions": "1",
    "offsets.topic.segment.bytes": str(SEGMENT),
    "transaction.state.log.segment.bytes": str(SEGMENT),
    "log.cleaner.backoff.ms": "200",
}
COMMITS = 2500
PARTITIONS = 4
TRANSACTIONS = 600
# Kafka's metadata snapshot interval here: a snapshot every 1000 entries, 100 kept behind it.
SNAPSHOT_EVERY, KEPT_BEHIND = 1000, 100


def log_bytes(data_dir, topic):
    return sum(f.stat().st_size for f in (data_dir / f"{topic}-0").glob("*.log"))


def loaded(b, what, timeout=30):
    """The `records` field of the "loaded <what>" line of the broker's last start (the
    coordinators load their partitions once the broker leads them, after it listens)."""
    deadline = time.time() + timeout
    while True:
        text = b.log_text().split("SIGTERM received")[-1]
        found = re.findall(rf"loaded {what} partition=0 records=(\d+)", text)
        if found:
            return int(found[-1])
        assert time.time() < deadline, f"no 'loaded {what}' line"
        time.sleep(0.2)


def end_offset(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        c.close()


def wait_smaller(data_dir, topic, limit, timeout=60):
    deadline = time.time() + timeout
    while (size := log_bytes(data_dir, topic)) > limit:
        assert time.time() < deadline, f"{topic} still {size} bytes on disk (limit {limit})"
        time.sleep(0.5)
    return size


def commit_many(bootstrap):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "g", "enable.auto.commit": False})
    try:
        for i in range(COMMITS):
            c.commit(offsets=[TopicPartition("t", p, i + p) for p in range(PARTITIONS)],
                     asynchronous=False)
    finally:
        c.close()


def transact_many(bootstrap):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "tx", "linger.ms": 0})
    p.init_transactions(20)
    for i in range(TRANSACTIONS):
        p.begin_transaction()
        p.produce("t", key=b"k", value=b"%d" % i, partition=0)
        p.commit_transaction(20)


def committed(bootstrap):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "g", "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition("t", p) for p in range(PARTITIONS)], timeout=20)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def test_coordinators_load_the_live_state_not_the_history(broker_factory):
    b = broker_factory(**SETTINGS)
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in a.create_topics([NewTopic("t", PARTITIONS, 1)]).values():
        f.result(20)
    commit_many(b.bootstrap)
    transact_many(b.bootstrap)
    # The history: every record ever written (the log end offset; cleaning keeps offsets).
    offsets_written = end_offset(b.bootstrap, "__consumer_offsets")
    txn_written = end_offset(b.bootstrap, "__transaction_state")
    assert offsets_written >= COMMITS * PARTITIONS and txn_written >= 2 * TRANSACTIONS, \
        (offsets_written, txn_written)

    # On disk: the active segment and, per closed segment group, one record per key (the
    # cleaner runs while the commits go on).
    wait_smaller(b.data_dir, "__consumer_offsets", 3 * SEGMENT)
    wait_smaller(b.data_dir, "__transaction_state", 3 * SEGMENT)

    b.restart()
    offsets_records = loaded(b, "consumer groups")
    txn_records = loaded(b, "transactions")
    print(f"__consumer_offsets: {offsets_written} records written, {offsets_records} loaded; "
          f"__transaction_state: {txn_written} written, {txn_records} loaded")
    # Written: one record per partition and commit, several per transaction.
    assert offsets_records < offsets_written / 10, (offsets_records, offsets_written)
    assert txn_records < txn_written / 4, (txn_records, txn_written)

    # What the coordinators loaded is the latest state.
    assert committed(b.bootstrap) == {p: COMMITS - 1 + p for p in range(PARTITIONS)}
    p = Producer({"bootstrap.servers": b.bootstrap, "transactional.id": "tx", "linger.ms": 0})
    p.init_transactions(20)
    p.begin_transaction()
    p.produce("t", key=b"k", value=b"last", partition=0)
    p.commit_transaction(20)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "r", "isolation.level": "read_committed",
                  "auto.offset.reset": "earliest", "enable.partition.eof": True})
    c.assign([TopicPartition("t", 0, 0)])
    values = []
    deadline = time.time() + 30
    while time.time() < deadline:
        m = c.poll(1)
        if m is None:
            continue
        if m.error():
            break
        values.append(m.value())
    c.close()
    assert values == [b"%d" % i for i in range(TRANSACTIONS)] + [b"last"]


def test_the_metadata_log_replays_from_its_newest_snapshot(broker_factory):
    b = broker_factory()
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    for round_ in range(25):
        names = [f"r{round_}-{i}" for i in range(50)]
        for f in a.create_topics([NewTopic(n, 1, 1) for n in names]).values():
            f.result(30)
        for f in a.delete_topics(names).values():
            f.result(30)
    for f in a.create_topics([NewTopic("kept", 1, 1)]).values():
        f.result(30)
    b.restart()
    text = b.log_text().split("SIGTERM received")[-1]
    m = re.search(r"metadata log opened snapshot_index=(-?\d+) log_start=(\d+) log_end=(\d+)", text)
    assert m, "no 'metadata log opened' line"
    snapshot, start, end = (int(x) for x in m.groups())
    print(f"metadata log: {end} entries, snapshot at {snapshot}, replayed {start}..{end}")
    assert end > 2 * SNAPSHOT_EVERY, f"history too short to check: {end} entries"
    assert snapshot >= start - 1 > 0, (snapshot, start)
    assert end - start <= SNAPSHOT_EVERY + KEPT_BEHIND, (start, end)
    # And the state is whole: the kept topic exists, the deleted ones do not.
    names = set(a.list_topics(timeout=20).topics)
    assert "kept" in names and not any(n.startswith("r") for n in names), sorted(names)[:10]
