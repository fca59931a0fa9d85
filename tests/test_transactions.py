"""Transactions with real clients: Apache Kafka's TransactionalMessageCopier (the Java client,
which uses transactions v2 against Runnel) copying exactly once across kill -9, librdkafka's
transactional producer (the classic protocol) with read_committed and read_uncommitted
consumers, fencing, a broker restart in the middle of a transaction, transaction timeouts, and
kafka-transactions."""

import subprocess
import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KTP

from helpers import kafka_tool, transactional_copier
from test_clients import create

FAST = {
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.num.partitions": "3",
    "transaction.state.log.num.partitions": "3",
}


def produce_values(bootstrap, topic, values, partition=0):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for v in values:
        p.produce(topic, value=v.encode(), partition=partition)
    assert p.flush(30) == 0


def read_all(bootstrap, topic, partitions, isolation, quiet_s=2.0, timeout_s=30):
    """Every record of the partitions from the start, until nothing arrives for quiet_s."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.time()}",
                  "isolation.level": isolation, "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in partitions])
    out, last, start = [], time.time(), time.time()
    while time.time() - last < quiet_s and time.time() - start < timeout_s:
        m = c.poll(0.2)
        if m is None:
            continue
        assert m.error() is None, m.error()
        out.append(m.value().decode())
        last = time.time()
    c.close()
    return out


def txn_producer(bootstrap, tid, **extra):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 5, **extra})
    p.init_transactions(30)
    return p


def tool(broker, *args):
    return kafka_tool("kafka-transactions", "--bootstrap-server", broker.bootstrap, *args)


def test_copier_copies_exactly_once_across_kill9(broker_factory, tmp_path):
    broker = broker_factory(**FAST)
    create(broker.bootstrap, "copy-in", partitions=1)
    create(broker.bootstrap, "copy-out", partitions=2)
    values = [f"v-{i}" for i in range(3000)]
    produce_values(broker.bootstrap, "copy-in", values)

    kills = 0
    for attempt in range(12):
        # A restarted copier reads its position before initTransactions() fences the killed one:
        # offsets in that one's open transaction keep the position unstable until the transaction
        # times out (as on Kafka), so a short one.
        proc, seen, reader = transactional_copier(broker.bootstrap, "copy-in", "copy-out", "copier-0",
                                                  "copier-group", tmp_path / "copier.stderr",
                                                  "--transaction-timeout", "10000")
        if kills < 3:
            # Let it commit a few transactions, then kill it without warning.
            deadline = time.time() + 60
            while time.time() < deadline and not any(s.get("totalProcessed", 0) >= 200 for s in seen):
                assert proc.poll() is None or proc.returncode == 0, (tmp_path / "copier.stderr").read_text()[-2000:]
                time.sleep(0.05)
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
                kills += 1
                continue
        assert proc.wait(120) == 0, (tmp_path / "copier.stderr").read_text()[-2000:]
        reader.join(10)
        if seen and seen[-1].get("remaining") == 0:
            break
    assert kills == 3, "the copier finished before it could be killed three times"
    committed = read_all(broker.bootstrap, "copy-out", [0, 1], "read_committed")
    counts = Counter(committed)
    assert set(counts) == set(values), (len(counts), len(values))
    assert max(counts.values()) == 1, [v for v, n in counts.items() if n > 1][:10]
    # The killed instances' open transactions were aborted: read_uncommitted may see them.
    uncommitted = read_all(broker.bootstrap, "copy-out", [0, 1], "read_uncommitted")
    assert len(uncommitted) >= len(committed)


def test_aborted_records_are_hidden_from_read_committed(broker_factory):
    broker = broker_factory(**FAST)
    create(broker.bootstrap, "tx", partitions=1)
    p = txn_producer(broker.bootstrap, "classic-1")
    for label, commit in (("a", True), ("b", False), ("c", True)):
        p.begin_transaction()
        for i in range(5):
            p.produce("tx", value=f"{label}{i}".encode(), partition=0)
        p.flush(10)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
    want = [f"{x}{i}" for x in "ac" for i in range(5)]
    assert read_all(broker.bootstrap, "tx", [0], "read_committed") == want
    assert read_all(broker.bootstrap, "tx", [0], "read_uncommitted") == [
        f"{x}{i}" for x in "abc" for i in range(5)]
    k = KafkaConsumer(bootstrap_servers=broker.bootstrap, isolation_level="read_committed",
                      auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=3000)
    k.assign([KTP("tx", 0)])
    assert [m.value.decode() for m in k] == want
    # An open transaction holds the last stable offset below the high watermark.
    p.begin_transaction()
    p.produce("tx", value=b"open", partition=0)
    p.flush(10)
    end_committed = k.end_offsets([KTP("tx", 0)])[KTP("tx", 0)]
    k2 = KafkaConsumer(bootstrap_servers=broker.bootstrap, isolation_level="read_uncommitted")
    end_uncommitted = k2.end_offsets([KTP("tx", 0)])[KTP("tx", 0)]
    # 15 records + 3 markers, then the open record.
    assert (end_committed, end_uncommitted) == (18, 19)
    p.commit_transaction(30)
    assert k.end_offsets([KTP("tx", 0)])[KTP("tx", 0)] == 20
    k.close()
    k2.close()


def test_a_second_producer_fences_the_first(broker_factory):
    broker = broker_factory(**FAST)
    create(broker.bootstrap, "fence", partitions=1)
    old = txn_producer(broker.bootstrap, "same-id")
    old.begin_transaction()
    old.produce("fence", value=b"zombie", partition=0)
    old.flush(10)
    new = txn_producer(broker.bootstrap, "same-id")
    old.produce("fence", value=b"zombie-2", partition=0)
    with pytest.raises(KafkaException) as e:
        old.commit_transaction(30)
    assert e.value.args[0].fatal() or "fenced" in str(e.value).lower(), e.value
    new.begin_transaction()
    new.produce("fence", value=b"fresh", partition=0)
    new.commit_transaction(30)
    assert read_all(broker.bootstrap, "fence", [0], "read_committed") == ["fresh"]


def test_offsets_sent_in_a_transaction_are_visible_only_after_commit(broker_factory):
    broker = broker_factory(**FAST)
    create(broker.bootstrap, "src", partitions=1)
    create(broker.bootstrap, "dst", partitions=1)
    produce_values(broker.bootstrap, "src", [f"s{i}" for i in range(20)])
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "eos",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed"})
    consumer.assign([TopicPartition("src", 0, 0)])
    p = txn_producer(broker.bootstrap, "eos-1")

    def one_txn(n, commit):
        p.begin_transaction()
        got = 0
        last = None
        while got < n:
            m = consumer.poll(1)
            if m is None:
                continue
            p.produce("dst", value=m.value(), partition=0)
            last = m.offset()
            got += 1
        p.send_offsets_to_transaction([TopicPartition("src", 0, last + 1)],
                                      consumer.consumer_group_metadata(), 30)
        (p.commit_transaction if commit else p.abort_transaction)(30)
        return last + 1

    committed = lambda: consumer.committed([TopicPartition("src", 0)], 10)[0].offset  # noqa: E731
    assert one_txn(10, commit=True) == 10
    assert committed() == 10
    assert one_txn(5, commit=False) == 15
    assert committed() == 10, "an aborted transaction's offsets stay invisible"
    consumer.close()
    assert read_all(broker.bootstrap, "dst", [0], "read_committed") == [f"s{i}" for i in range(10)]


@pytest.mark.parametrize("how", ["clean", "kill9"])
def test_restart_in_the_middle_of_a_transaction(broker_factory, how):
    broker = broker_factory(**FAST)
    create(broker.bootstrap, "mid", partitions=2)
    p = txn_producer(broker.bootstrap, f"mid-{how}")
    p.begin_transaction()
    for i in range(10):
        p.produce("mid", value=f"half-{i}".encode(), partition=i % 2)
    p.flush(10)
    if how == "clean":
        broker.stop()
    else:
        broker.kill9()
    broker.start()
    # A new instance of the producer aborts what the old one left open.
    p2 = txn_producer(broker.bootstrap, f"mid-{how}")
    p2.begin_transaction()
    for i in range(4):
        p2.produce("mid", value=f"whole-{i}".encode(), partition=i % 2)
    p2.commit_transaction(30)
    got = sorted(read_all(broker.bootstrap, "mid", [0, 1], "read_committed"))
    assert got == [f"whole-{i}" for i in range(4)]


def test_a_transaction_past_its_timeout_is_aborted(broker_factory):
    broker = broker_factory(**FAST)
    create(broker.bootstrap, "slow", partitions=1)
    p = txn_producer(broker.bootstrap, "slow-1", **{"transaction.timeout.ms": 2000})
    p.begin_transaction()
    p.produce("slow", value=b"late", partition=0)
    p.flush(10)
    time.sleep(4)
    with pytest.raises(KafkaException):
        p.commit_transaction(10)
    assert read_all(broker.bootstrap, "slow", [0], "read_committed") == []
    k = KafkaConsumer(bootstrap_servers=broker.bootstrap, isolation_level="read_committed")
    # The record and its abort marker: the last stable offset is past both.
    assert k.end_offsets([KTP("slow", 0)])[KTP("slow", 0)] == 2
    k.close()


def test_invalid_transaction_timeout(broker_factory):
    broker = broker_factory(**FAST, **{"transaction.max.timeout.ms": "10000"})
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "too-long",
                  "transaction.timeout.ms": 20000})
    with pytest.raises(KafkaException) as e:
        p.init_transactions(20)
    assert "INVALID_TRANSACTION_TIMEOUT" in str(e.value) or "larger than the maximum" in str(e.value), e.value


def test_kafka_transactions_tool(broker_factory):
    broker = broker_factory(**FAST)
    create(broker.bootstrap, "tool", partitions=1)
    p = txn_producer(broker.bootstrap, "tool-tx")
    p.begin_transaction()
    p.produce("tool", value=b"open", partition=0)
    p.flush(10)
    rc, out, err = tool(broker, "list")
    assert rc == 0, err
    rows = [line.split() for line in out.splitlines()]
    assert ["tool-tx", "1"] == rows[1][:2] and rows[1][3] == "Ongoing", out
    rc, out, err = tool(broker, "describe", "--transactional-id", "tool-tx")
    assert rc == 0, err
    header, row = [line.split("\t") for line in out.strip().splitlines()[:2]]
    d = {h.strip(): v.strip() for h, v in zip(header, row)}
    assert (d["TransactionalId"], d["TransactionState"], d["TopicPartitions"]) == ("tool-tx", "Ongoing", "tool-0"), out
    rc, out, err = tool(broker, "describe-producers", "--topic", "tool", "--partition", "0")
    assert rc == 0, err
    header, row = [line.split() for line in out.strip().splitlines()[:2]]
    d = dict(zip(header, row))
    assert d["CurrentTransactionStartOffset"] == "0", out
    # The open transaction, aborted by hand: read_committed gets past it.
    rc, out, err = tool(broker, "abort", "--topic", "tool", "--partition", "0", "--start-offset", "0")
    assert rc == 0, (out, err)
    rc, out, err = tool(broker, "describe-producers", "--topic", "tool", "--partition", "0")
    assert "None" in out.splitlines()[1].split(), out
    k = KafkaConsumer(bootstrap_servers=broker.bootstrap, isolation_level="read_committed")
    assert k.end_offsets([KTP("tool", 0)])[KTP("tool", 0)] == 2
    k.close()
