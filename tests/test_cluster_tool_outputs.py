"""Apache Kafka's `kafka-consumer-groups` and `kafka-transactions` (4.1.1 and 4.4.0) against a
three-node Runnel cluster (RF 3 everywhere), with the groups and transactional ids picked so that
their coordinators are three different brokers. Every printed table is parsed and compared with
what the test did (offsets committed, records written, transactions committed, aborted or left
open) and with the cluster's own Metadata (a coordinator is the leader of the key's
`__consumer_offsets` / `__transaction_state` partition):

- kafka-consumer-groups: --list (also --type --state), --describe (offsets, log end, lag, member
  columns while a classic and a KIP-848 member are active, "has no active members" after),
  --describe --members --verbose, --describe --state [--verbose] (COORDINATOR (ID), STATE,
  ASSIGNMENT-STRATEGY, epochs of the KIP-848 group), --reset-offsets --to-earliest / --to-offset /
  --shift-by --execute, --delete-offsets, --delete; then the coordinator's broker is killed with
  SIGKILL and the tool finds the new coordinator and prints the same committed offsets.
- kafka-transactions: list, describe --transactional-id (Ongoing with its partitions, then
  CompleteCommit / CompleteAbort), describe-producers (on the leader and on a follower),
  find-hanging, and abort of the open transaction of a producer killed with SIGKILL: the last
  stable offset moves past it and read_committed never sees its records.
- test_transaction_fields_kafka_fills_in: describe-producers' LatestCoordinatorEpoch after a marker
  (the coordinator's leader epoch) and the start time a completed transaction keeps in describe."""

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KTP

from helpers import KAFKA_TOOLS_VERSIONS, Cluster, kafka_tool
from test_cluster import create_topic, partitions_of, wait_full_isr
from test_cluster_coordinators import coordinator_partition

SETTINGS = {
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "500",
    "replica.lag.time.max.ms": "3000",
    "offsets.topic.num.partitions": "3",
    "transaction.state.log.num.partitions": "3",
    "group.consumer.heartbeat.interval.ms": "500",
    "group.consumer.session.timeout.ms": "6000",
}
OFFSETS, TXNS = "__consumer_offsets", "__transaction_state"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One formed three-node cluster shared by the tests of this module; a test that kills a node
    starts it again and moves the leaderships back to the preferred replicas."""
    c = Cluster(tmp_path_factory.mktemp("tool-outputs"), n=3, settings=SETTINGS)
    c.start_all()
    c.wait_formed()
    yield c
    c.kill_all()
    print(f"node logs: {[str(n.log_path) for n in c.nodes]}")


@pytest.fixture(params=KAFKA_TOOLS_VERSIONS)
def version(request):
    return request.param


def run(version, name, *args, ok=True):
    """(stdout, stderr) of one of Kafka's tools; asserts it exited 0 unless ok=False."""
    rc, out, err = kafka_tool(name, *args, version=version, timeout=120)
    err = "\n".join(x for x in err.splitlines() if not x.startswith("SLF4J"))
    print(f"$ {name} {' '.join(args)}  # Kafka {version}, exit {rc}\n{out}{err}")
    if ok:
        # kafka-consumer-groups prints some failures as "Error: ..." and still exits 0.
        assert rc == 0 and "Error:" not in out, \
            f"{name} {' '.join(args)} (Kafka {version}) exited {rc}:\n{out}\n{err}"
    return out, err


def run_all(version, *calls):
    """Several independent tool runs at once (each a JVM start): their (stdout, stderr) in order."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, version, *call) for call in calls]
        return [f.result() for f in futures]


def suffix(version):
    return version.replace(".", "")


# ---------------------------------------------------------------- internal topics and keys


def leaders_of(cluster, topic):
    """{partition: leader} that every live node reports for an internal topic (all with a leader)."""

    def agreed():
        views = []
        for i in cluster.live_indexes():
            views.append({p: v.leader for p, v in partitions_of(cluster, i, topic).items()})
        if all(v == views[0] for v in views) and views[0] and min(views[0].values()) > 0:
            return views[0]
        return None

    return cluster.wait_for(f"{topic}: one leader per partition agreed by every node", agreed, 30)


def keys_on_distinct_coordinators(cluster, topic, names):
    """One key per name (name-<n>), each hashed to a partition of `topic` led by a different broker:
    {name: (key, coordinator id)}."""
    leaders = leaders_of(cluster, topic)
    assert len(set(leaders.values())) == len(names), f"{topic} leaders are not spread: {leaders}"
    picked, used = {}, set()
    for name in names:
        for n in range(1000):
            key = f"{name}-{n}"
            leader = leaders[coordinator_partition(key, len(leaders))]
            if leader not in used:
                used.add(leader)
                picked[name] = (key, leader)
                break
    return picked


def coordinator_of(cluster, topic, key):
    """The broker coordinating `key`: the leader of its partition of `topic`, as Metadata reports it."""
    leaders = leaders_of(cluster, topic)
    return leaders[coordinator_partition(key, len(leaders))]


def rebalance_leaders(cluster, version):
    """Waits for full ISRs of the internal topics, then a preferred election puts every leader back
    on its first replica (as before a kill): the next test finds its coordinators spread again."""
    for topic in (OFFSETS, TXNS):
        if topic in cluster.metadata(0).topics:
            wait_full_isr(cluster, topic, 3, timeout=60)
    run(version, "kafka-leader-election", "--bootstrap-server", cluster.bootstrap, "--election-type", "preferred",
        "--all-topic-partitions", ok=False)

    def preferred():
        for i in cluster.live_indexes():
            for topic in (OFFSETS, TXNS):
                if topic in cluster.metadata(i).topics:
                    if any(p.leader != p.replicas[0] for p in partitions_of(cluster, i, topic).values()):
                        return False
        return True

    cluster.wait_for("internal topics led by their preferred replicas", preferred, 30)


# ---------------------------------------------------------------- kafka-consumer-groups


def tables(out):
    """Every row of every table kafka-consumer-groups printed, as dicts keyed by its header's words
    (a header starts with GROUP; no value holds a space; "COORDINATOR (ID)" is two words, as is
    "host:port  (id)")."""
    rows, header = [], None
    for line in out.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "GROUP":
            header = words
        elif header is not None and len(words) == len(header):
            rows.append(dict(zip(header, words)))
        else:
            raise AssertionError(f"a line that fits no table: {line!r} in:\n{out}")
    return rows


def by_group(out):
    got = {}
    for r in tables(out):
        got.setdefault(r["GROUP"], []).append(r)
    return got


def offsets_of(rows, topic):
    """{partition: (CURRENT-OFFSET, LOG-END-OFFSET, LAG)} of --describe rows."""
    return {int(r["PARTITION"]): (r["CURRENT-OFFSET"], r["LOG-END-OFFSET"], r["LAG"]) for r in rows
            if r["TOPIC"] == topic}


def produce(bootstrap, topic, counts):
    """counts[p] records to partition p, acks=all."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for part, n in enumerate(counts):
        for i in range(n):
            p.produce(topic, value=b"%d-%d" % (part, i), partition=part)
    assert p.flush(30) == 0


def commit(consumer, topic, offsets):
    res = consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    assert all(tp.error is None for tp in res), res


def poll_until_assigned(consumer, n, what, timeout=45):
    deadline = time.time() + timeout
    while time.time() < deadline:
        consumer.poll(0.2)
        if len(consumer.assignment()) == n:
            return
    raise AssertionError(f"{what}: {len(consumer.assignment())} partitions assigned, not {n}")


def test_consumer_groups(cluster, version):
    v = suffix(version)
    topic = f"cg-{v}"
    create_topic(cluster.bootstrap, topic, 3)
    counts = (30, 20, 10)
    produce(cluster.bootstrap, topic, counts)
    # The first commit makes the group coordinator create __consumer_offsets (RF 3).
    warm = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": f"warm-{v}", "enable.auto.commit": False})
    cluster.wait_for("a first commit", lambda: commit(warm, topic, {0: 0}) or True, 30)
    warm.close()
    wait_full_isr(cluster, OFFSETS, 3)
    picked = keys_on_distinct_coordinators(cluster, OFFSETS, [f"classic-{v}", f"idle-{v}", f"kip848-{v}"])
    (classic, classic_coord), (idle, idle_coord), (kip848, kip848_coord) = picked.values()
    print(f"groups and coordinators: {picked}")
    node = {n.node_id: n for n in cluster.nodes}

    # idle: offsets committed by a consumer outside any membership (a group with no member).
    standalone = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": idle, "enable.auto.commit": False})
    commit(standalone, topic, {0: 7, 1: 3})
    standalone.close()
    # classic: one librdkafka member (the classic protocol), offsets of two partitions committed.
    member = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": classic, "client.id": f"cg-classic-{v}",
                       "enable.auto.commit": False, "auto.offset.reset": "earliest",
                       "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    # kip848: one librdkafka member with group.protocol=consumer (the broker assigns).
    member848 = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": kip848, "client.id": f"cg-848-{v}",
                          "group.protocol": "consumer", "enable.auto.commit": False,
                          "auto.offset.reset": "earliest"})
    members = [member, member848]
    try:
        member.subscribe([topic])
        member848.subscribe([topic])
        poll_until_assigned(member, 3, "the classic member")
        poll_until_assigned(member848, 3, "the KIP-848 member")
        commit(member, topic, {0: 10, 1: 20})
        commit(member848, topic, {2: 5})
        groups = ["--group", classic, "--group", idle, "--group", kip848]

        (listed, _), (typed, _), (described, described_err), (mem, _), (state, _) = run_all(
            version,
            ("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--list"),
            ("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--list", "--type", "--state"),
            ("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--describe", *groups),
            ("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--describe", "--members",
             "--verbose", "--group", classic, "--group", kip848),
            ("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--describe", "--state",
             "--verbose", *groups))

        # --list: every group, from every coordinator (ListGroups asked of each broker).
        assert {classic, idle, kip848, f"warm-{v}"} <= set(listed.split()), listed
        types = {r["GROUP"]: (r["TYPE"], r["STATE"]) for r in tables(typed)}
        assert types[classic] == ("Classic", "Stable"), typed
        assert types[idle] == ("Classic", "Empty"), typed
        assert types[kip848] == ("Consumer", "Stable"), typed

        # --describe: offsets, log end offsets and lag per partition, and who owns each partition.
        rows = by_group(described)
        assert set(rows) == {classic, idle, kip848}, described
        assert offsets_of(rows[classic], topic) == {0: ("10", "30", "20"), 1: ("20", "20", "0"),
                                                    2: ("-", "10", "-")}, described
        assert offsets_of(rows[idle], topic) == {0: ("7", "30", "23"), 1: ("3", "20", "17")}, described
        assert offsets_of(rows[kip848], topic) == {0: ("-", "30", "-"), 1: ("-", "20", "-"),
                                                   2: ("5", "10", "5")}, described
        for group, client in ((classic, f"cg-classic-{v}"), (kip848, f"cg-848-{v}")):
            owners = {(r["CONSUMER-ID"], r["HOST"], r["CLIENT-ID"]) for r in rows[group]}
            assert len(owners) == 1, described
            member_id, host, client_id = owners.pop()
            assert member_id != "-" and host == "/127.0.0.1" and client_id == client, described
        assert {(r["CONSUMER-ID"], r["HOST"], r["CLIENT-ID"]) for r in rows[idle]} == {("-", "-", "-")}, described
        assert f"Consumer group '{idle}' has no active members." in described_err, described_err
        classic_member = rows[classic][0]["CONSUMER-ID"]
        kip848_member = rows[kip848][0]["CONSUMER-ID"]
        assert classic_member.startswith(f"cg-classic-{v}-"), described

        # --describe --members --verbose: the member, its assignment, and the KIP-848 epochs.
        m = by_group(mem)
        (cm,) = m[classic]
        assert (cm["CONSUMER-ID"], cm["HOST"], cm["CLIENT-ID"], cm["#PARTITIONS"]) == \
            (classic_member, "/127.0.0.1", f"cg-classic-{v}", "3"), mem
        assert cm["CURRENT-ASSIGNMENT"] == f"{topic}:0,1,2", mem
        assert (cm["CURRENT-EPOCH"], cm["TARGET-EPOCH"], cm["TARGET-ASSIGNMENT"]) == ("-", "-", "-"), mem
        (km,) = m[kip848]
        assert (km["CONSUMER-ID"], km["HOST"], km["CLIENT-ID"], km["#PARTITIONS"]) == \
            (kip848_member, "/127.0.0.1", f"cg-848-{v}", "3"), mem
        assert km["CURRENT-ASSIGNMENT"] == km["TARGET-ASSIGNMENT"] == f"{topic}:0,1,2", mem
        assert int(km["CURRENT-EPOCH"]) == int(km["TARGET-EPOCH"]) >= 1, mem

        # --describe --state --verbose: each group's coordinator is the leader of its partition.
        s = {g: r for g, (r,) in by_group(state).items()}
        for group, coord, strategy, st, n in ((classic, classic_coord, "range", "Stable", "1"),
                                              (idle, idle_coord, "-", "Empty", "0"),
                                              (kip848, kip848_coord, "uniform", "Stable", "1")):
            r = s[group]
            assert (r["COORDINATOR"], r["(ID)"]) == (node[coord].bootstrap, f"({coord})"), state
            assert (r["ASSIGNMENT-STRATEGY"], r["STATE"], r["#MEMBERS"]) == (strategy, st, n), state
        assert (s[classic]["GROUP-EPOCH"], s[classic]["TARGET-ASSIGNMENT-EPOCH"]) == ("-", "-"), state
        assert s[kip848]["GROUP-EPOCH"] == s[kip848]["TARGET-ASSIGNMENT-EPOCH"] == km["TARGET-EPOCH"], state

        for c in members:
            c.close()  # LeaveGroup / a leaving heartbeat
        members = []

        (described, described_err), (state, _) = run_all(
            version,
            ("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--describe", *groups),
            ("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--describe", "--state", *groups))
        for group in (classic, idle, kip848):
            assert f"Consumer group '{group}' has no active members." in described_err, described_err
        rows = by_group(described)
        assert offsets_of(rows[classic], topic) == {0: ("10", "30", "20"), 1: ("20", "20", "0")}, described
        assert offsets_of(rows[kip848], topic) == {2: ("5", "10", "5")}, described
        assert all((r["CONSUMER-ID"], r["HOST"], r["CLIENT-ID"]) == ("-", "-", "-")
                   for g in rows.values() for r in g), described
        s = {g: r for g, (r,) in by_group(state).items()}
        assert {g: (r["STATE"], r["#MEMBERS"]) for g, r in s.items()} == \
            {classic: ("Empty", "0"), idle: ("Empty", "0"), kip848: ("Empty", "0")}, state
        assert s[kip848]["(ID)"] == f"({kip848_coord})", state

        # --reset-offsets --execute, one way per group, then --describe shows the new offsets.
        reset = ("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--reset-offsets", "--execute")
        (earliest, _), (to_offset, _), (shifted, _) = run_all(
            version,
            (*reset, "--group", classic, "--topic", topic, "--to-earliest"),
            (*reset, "--group", idle, "--topic", f"{topic}:0,1", "--to-offset", "4"),
            (*reset, "--group", kip848, "--topic", f"{topic}:2", "--shift-by", "-2"))
        new = lambda out: {int(r["PARTITION"]): r["NEW-OFFSET"] for r in tables(out)}  # noqa: E731
        assert new(earliest) == {0: "0", 1: "0", 2: "0"}, earliest
        assert new(to_offset) == {0: "4", 1: "4"}, to_offset
        assert new(shifted) == {2: "3"}, shifted
        described, _ = run(version, "kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--describe",
                           *groups)
        rows = by_group(described)
        assert offsets_of(rows[classic], topic) == {0: ("0", "30", "30"), 1: ("0", "20", "20"),
                                                    2: ("0", "10", "10")}, described
        assert offsets_of(rows[idle], topic) == {0: ("4", "30", "26"), 1: ("4", "20", "16")}, described
        assert offsets_of(rows[kip848], topic) == {2: ("3", "10", "7")}, described

        # --delete-offsets of one partition, --delete of a whole group.
        (deleted_offsets, _), (deleted, _) = run_all(
            version,
            ("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--delete-offsets", "--group", idle,
             "--topic", f"{topic}:1"),
            ("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--delete", "--group", classic))
        assert f"Request succeeded for deleting offsets from group {idle}." in deleted_offsets, deleted_offsets
        assert [x.split() for x in deleted_offsets.splitlines() if x.startswith(topic)] == \
            [[topic, "1", "Successful"]], deleted_offsets
        assert f"Deletion of requested consumer groups ('{classic}') was successful." in deleted, deleted
        (listed, _), (described, _) = run_all(
            version,
            ("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--list"),
            ("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--describe", "--group", idle,
             "--group", kip848))
        assert classic not in listed.split() and {idle, kip848} <= set(listed.split()), listed
        rows = by_group(described)
        assert offsets_of(rows[idle], topic) == {0: ("4", "30", "26")}, described
        assert offsets_of(rows[kip848], topic) == {2: ("3", "10", "7")}, described

        # SIGKILL the idle group's coordinator. Once the controller has fenced it and moved the
        # leadership of the group's partition, the tool finds the new coordinator and prints the same
        # committed offsets. (Run before that, the Java admin client would stay with the coordinator
        # it first found: gone from Metadata, it is waited for until the call times out, as on Kafka.)
        cluster.kill9(cluster.index_of(idle_coord))
        new_coord = cluster.wait_for(f"a coordinator for {idle} other than {idle_coord}",
                                     lambda: (c := coordinator_of(cluster, OFFSETS, idle)) != idle_coord and c, 30)
        (described, _), (state, _) = run_all(
            version,
            ("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--describe", "--group", idle,
             "--group", kip848),
            ("kafka-consumer-groups", "--bootstrap-server", cluster.bootstrap, "--describe", "--state", "--group",
             idle))
        rows = by_group(described)
        assert offsets_of(rows[idle], topic) == {0: ("4", "30", "26")}, described
        assert offsets_of(rows[kip848], topic) == {2: ("3", "10", "7")}, described
        (r,) = tables(state)
        assert (r["COORDINATOR"], r["(ID)"], r["STATE"]) == (node[new_coord].bootstrap, f"({new_coord})", "Empty"), \
            state
    finally:
        for c in members:
            c.close()
        for i, n in enumerate(cluster.nodes):
            if not n.alive():
                cluster.start(i)
    cluster.wait_formed()
    rebalance_leaders(cluster, version)


# ---------------------------------------------------------------- kafka-transactions


def tx_table(out):
    """A kafka-transactions table (tab-separated, padded) as a list of dicts keyed by its header."""
    lines = [x for x in out.splitlines() if x.strip()]
    header = [h.strip() for h in lines[0].split("\t") if h.strip()]
    rows = []
    for line in lines[1:]:
        cells = [c.strip() for c in line.split("\t")][:len(header)]
        assert len(cells) == len(header), (line, out)
        rows.append(dict(zip(header, cells)))
    return header, rows


def txn_producer(bootstrap, tid):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 5,
                  "transaction.timeout.ms": 60000})
    p.init_transactions(30)
    return p


def write_txn(p, topic, counts, label):
    p.begin_transaction()
    for part, n in enumerate(counts):
        for i in range(n):
            p.produce(topic, value=f"{label}-{part}-{i}".encode(), partition=part)
    assert p.flush(30) == 0


def read_committed(bootstrap, topic, partition, quiet_s=1.5, timeout_s=30):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"rc-{time.time()}", "isolation.level": "read_committed",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, partition, 0)])
    out, last, start = [], time.time(), time.time()
    while time.time() - last < quiet_s and time.time() - start < timeout_s:
        m = c.poll(0.2)
        if m is None:
            continue
        assert m.error() is None, m.error()
        out.append((m.offset(), m.value().decode()))
        last = time.time()
    c.close()
    return out


def stable_end(bootstrap, topic, partition):
    """(last stable offset, high watermark) through ListOffsets."""
    ends = []
    for isolation in ("read_committed", "read_uncommitted"):
        k = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation)
        try:
            ends.append(k.end_offsets([KTP(topic, partition)])[KTP(topic, partition)])
        finally:
            k.close()
    return tuple(ends)


KILLED_PRODUCER = r"""
import sys, time
from confluent_kafka import Producer
bootstrap, tid, topic = sys.argv[1:4]
p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 5,
              "transaction.timeout.ms": 300000})
p.init_transactions(30)
p.begin_transaction()
for i in range(5):
    p.produce(topic, value=b"doomed-%d" % i, partition=0)
assert p.flush(30) == 0
print("open", flush=True)
time.sleep(600)
"""


def test_transactions(cluster, version):
    v = suffix(version)
    topic, lone = f"tx-{v}", f"tx-abort-{v}"
    create_topic(cluster.bootstrap, topic, 2)
    create_topic(cluster.bootstrap, lone, 1)
    # The first transactional producer makes the coordinator create __transaction_state (RF 3).
    warm = txn_producer(cluster.bootstrap, f"warm-{v}")
    write_txn(warm, topic, (0, 0), "warm")
    warm.abort_transaction(30)
    wait_full_isr(cluster, TXNS, 3)
    picked = keys_on_distinct_coordinators(cluster, TXNS, [f"committed-{v}", f"aborted-{v}", f"open-{v}"])
    (committed, committed_coord), (aborted, aborted_coord), (opened, open_coord) = picked.values()
    print(f"transactional ids and coordinators: {picked}")
    leaders = {p: x.leader for p, x in partitions_of(cluster, 0, topic).items()}

    # On tx-0: committed 3 records + marker (0-3), aborted 2 + marker (4-6), open 4 from offset 7.
    # On tx-1: committed 2 + marker (0-2), open 1 at offset 3.
    pc = txn_producer(cluster.bootstrap, committed)
    write_txn(pc, topic, (3, 2), "committed")
    pc.commit_transaction(30)
    pa = txn_producer(cluster.bootstrap, aborted)
    write_txn(pa, topic, (2, 0), "aborted")
    pa.abort_transaction(30)
    po = txn_producer(cluster.bootstrap, opened)
    write_txn(po, topic, (4, 1), "open")
    started = time.time() * 1000
    boot = ("--bootstrap-server", cluster.bootstrap)
    follower = next(n for n in (1, 2, 3) if n != leaders[0])
    (listed, _), (dc, _), (da, _), (do, _), (p0, _), (p1, _), (p0_follower, _) = run_all(
        version,
        ("kafka-transactions", *boot, "list"),
        ("kafka-transactions", *boot, "describe", "--transactional-id", committed),
        ("kafka-transactions", *boot, "describe", "--transactional-id", aborted),
        ("kafka-transactions", *boot, "describe", "--transactional-id", opened),
        ("kafka-transactions", *boot, "describe-producers", "--topic", topic, "--partition", "0"),
        ("kafka-transactions", *boot, "describe-producers", "--topic", topic, "--partition", "1"),
        ("kafka-transactions", *boot, "describe-producers", "--topic", topic, "--partition", "0",
         "--broker-id", str(follower)))

    # list: every transactional id with its coordinator (ListTransactions asked of each broker).
    header, rows = tx_table(listed)
    assert header == ["TransactionalId", "Coordinator", "ProducerId", "TransactionState"], listed
    listing = {r["TransactionalId"]: r for r in rows}
    for tid, coord, st in ((committed, committed_coord, "CompleteCommit"), (aborted, aborted_coord, "CompleteAbort"),
                           (opened, open_coord, "Ongoing")):
        assert (listing[tid]["Coordinator"], listing[tid]["TransactionState"]) == (str(coord), st), listed

    # describe: the coordinator, the producer, the state and the open transaction's partitions.
    described = {}
    for tid, out, coord, st, parts in ((committed, dc, committed_coord, "CompleteCommit", ""),
                                       (aborted, da, aborted_coord, "CompleteAbort", ""),
                                       (opened, do, open_coord, "Ongoing", f"{topic}-0,{topic}-1")):
        header, (d,) = tx_table(out)
        assert header == ["CoordinatorId", "TransactionalId", "ProducerId", "ProducerEpoch", "TransactionState",
                          "TransactionTimeoutMs", "CurrentTransactionStartTimeMs", "TransactionDurationMs",
                          "TopicPartitions"], out
        assert (d["CoordinatorId"], d["TransactionalId"], d["TransactionState"]) == (str(coord), tid, st), out
        assert sorted(d["TopicPartitions"].split(",")) == sorted(parts.split(",")), out
        assert d["ProducerId"] == listing[tid]["ProducerId"] and int(d["ProducerId"]) >= 0, out
        assert d["TransactionTimeoutMs"] == "60000", out
        described[tid] = d
    d = described[opened]
    assert started - 30_000 < int(d["CurrentTransactionStartTimeMs"]) <= started + 1000, do
    assert 0 <= int(d["TransactionDurationMs"]) < 60_000, do
    assert len({d["ProducerId"] for d in described.values()}) == 3, described

    # describe-producers: each producer's epoch and last sequence; the open transaction's start.
    pid = {tid: d["ProducerId"] for tid, d in described.items()}
    epoch = {tid: d["ProducerEpoch"] for tid, d in described.items()}
    for out, want in ((p0, {committed: ("2", "None"), aborted: ("1", "None"), opened: ("3", "7")}),
                      (p1, {committed: ("1", "None"), opened: ("0", "3")}),
                      (p0_follower, {committed: ("2", "None"), aborted: ("1", "None"), opened: ("3", "7")})):
        header, rows = tx_table(out)
        assert header == ["ProducerId", "ProducerEpoch", "LatestCoordinatorEpoch", "LastSequence", "LastTimestamp",
                          "CurrentTransactionStartOffset"], out
        got = {r["ProducerId"]: r for r in rows}
        for tid, (last_seq, start) in want.items():
            r = got[pid[tid]]
            assert (r["ProducerEpoch"], r["LastSequence"], r["CurrentTransactionStartOffset"]) == \
                (epoch[tid], last_seq, start), (tid, out)
            assert time.time() * 1000 - 60_000 < int(r["LastTimestamp"]) <= time.time() * 1000 + 1000, out
        assert set(got) == {pid[t] for t in want}, out

    # find-hanging: every open transaction is a candidate (--max-transaction-timeout 0) and its
    # coordinator still lists the partition: none is hanging, on any broker.
    outs = run_all(version, *[("kafka-transactions", *boot, "find-hanging", "--broker-id", str(b),
                               "--max-transaction-timeout", "0") for b in (1, 2, 3)])
    for out, _ in outs:
        header, rows = tx_table(out)
        assert header == ["Topic", "Partition", "ProducerId", "ProducerEpoch", "CoordinatorEpoch", "StartOffset",
                          "LastTimestamp", "Duration(min)"] and rows == [], out

    po.commit_transaction(30)
    (do, _), (p0, _) = run_all(
        version,
        ("kafka-transactions", *boot, "describe", "--transactional-id", opened),
        ("kafka-transactions", *boot, "describe-producers", "--topic", topic, "--partition", "0"))
    _, (d,) = tx_table(do)
    assert (d["TransactionState"], d["TopicPartitions"], d["CoordinatorId"]) == \
        ("CompleteCommit", "", str(open_coord)), do
    assert {r["ProducerId"]: r["CurrentTransactionStartOffset"] for r in tx_table(p0)[1]} == \
        {pid[committed]: "None", pid[aborted]: "None", pid[opened]: "None"}, p0
    assert [val for _, val in read_committed(cluster.bootstrap, topic, 0)] == \
        [f"committed-0-{i}" for i in range(3)] + [f"open-0-{i}" for i in range(4)]

    # abort: a producer killed in the middle of a transaction (300 s timeout) holds the last stable
    # offset back; `abort --start-offset` writes the marker and read_committed moves past it.
    before = txn_producer(cluster.bootstrap, f"before-{v}")
    write_txn(before, lone, (3,), "before")
    before.commit_transaction(30)  # 0-2, marker 3
    killed_tid = f"killed-{v}"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_PRODUCER, cluster.bootstrap, killed_tid, lone],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "open", "the producer did not open its transaction"
    finally:
        proc.kill()
        proc.wait(10)
    produce(cluster.bootstrap, lone, (2,))  # plain records after the open transaction: 9, 10
    assert stable_end(cluster.bootstrap, lone, 0) == (4, 11)
    assert [val for _, val in read_committed(cluster.bootstrap, lone, 0, quiet_s=1.0)] == \
        [f"before-0-{i}" for i in range(3)]
    (dp, _), (dk, _) = run_all(
        version,
        ("kafka-transactions", *boot, "describe-producers", "--topic", lone, "--partition", "0"),
        ("kafka-transactions", *boot, "describe", "--transactional-id", killed_tid))
    _, (k,) = tx_table(dk)
    assert (k["TransactionState"], k["TopicPartitions"]) == ("Ongoing", f"{lone}-0"), dk
    assert k["CoordinatorId"] == str(coordinator_of(cluster, TXNS, killed_tid)), dk
    opens = [r for r in tx_table(dp)[1] if r["CurrentTransactionStartOffset"] != "None"]
    assert [(r["ProducerId"], r["ProducerEpoch"], r["LastSequence"], r["CurrentTransactionStartOffset"])
            for r in opens] == [(k["ProducerId"], k["ProducerEpoch"], "4", "4")], dp
    out, err = run(version, "kafka-transactions", *boot, "abort", "--topic", lone, "--partition", "0",
                   "--start-offset", "4")
    assert err.strip() == "", err
    # The abort marker (offset 11) closes the transaction: nothing open holds the LSO back.
    assert stable_end(cluster.bootstrap, lone, 0) == (12, 12)
    got = read_committed(cluster.bootstrap, lone, 0)
    assert got == [(0, "before-0-0"), (1, "before-0-1"), (2, "before-0-2"), (9, "0-0"), (10, "0-1")], got
    dp, _ = run(version, "kafka-transactions", *boot, "describe-producers", "--topic", lone, "--partition", "0")
    assert all(r["CurrentTransactionStartOffset"] == "None" for r in tx_table(dp)[1]), dp
    # Aborting it again finds nothing open at that offset.
    _, err = run(version, "kafka-transactions", *boot, "abort", "--topic", lone, "--partition", "0",
                 "--start-offset", "4", ok=False)
    assert f"Could not find any open transactions starting at offset 4 on partition {lone}-0" in err, err


def test_transaction_fields_kafka_fills_in(cluster):
    """Two fields Kafka fills in once a transaction is committed:
    - describe-producers' LatestCoordinatorEpoch after a commit marker: the epoch of the coordinator
      that wrote it, i.e. the leader epoch of the transactional id's __transaction_state partition
      (Kafka's coordinator epoch, which also fences markers of a deposed coordinator);
    - describe's CurrentTransactionStartTimeMs in CompleteCommit: Kafka keeps the finished
      transaction's start time (TransactionMetadata.prepareComplete keeps txnStartTimestamp)."""
    version, topic, tid = KAFKA_TOOLS_VERSIONS[-1], "tx-fields", "fields-0"
    create_topic(cluster.bootstrap, topic, 1)
    p = txn_producer(cluster.bootstrap, tid)
    began = time.time() * 1000
    write_txn(p, topic, (2,), "fields")
    p.commit_transaction(30)
    ended = time.time() * 1000
    partition = coordinator_partition(tid, len(leaders_of(cluster, TXNS)))
    coordinator_epoch = partitions_of(cluster, 0, TXNS)[partition].leader_epoch
    boot = ("--bootstrap-server", cluster.bootstrap)
    (producers, _), (described, _) = run_all(
        version,
        ("kafka-transactions", *boot, "describe-producers", "--topic", topic, "--partition", "0"),
        ("kafka-transactions", *boot, "describe", "--transactional-id", tid))
    (r,) = tx_table(producers)[1]
    (d,) = tx_table(described)[1]
    assert d["TransactionState"] == "CompleteCommit" and r["CurrentTransactionStartOffset"] == "None"
    wrong = []
    if r["LatestCoordinatorEpoch"] != str(coordinator_epoch):
        wrong.append(f"LatestCoordinatorEpoch {r['LatestCoordinatorEpoch']}, Kafka: {coordinator_epoch}")
    start = d["CurrentTransactionStartTimeMs"]
    if start == "None" or not began - 1000 <= int(start) <= ended:
        wrong.append(f"CurrentTransactionStartTimeMs {start}, Kafka: in [{began:.0f}, {ended:.0f}]")
    assert not wrong, "; ".join(wrong)
