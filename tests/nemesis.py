"""A nemesis run against a three-node cluster, and the checker of its history.

The workload (`python tests/nemesis.py workload ...`, a process of its own so that it can run in a
client network namespace) writes every event to a history file, one JSON object a line:

- idempotent acks=all producers P0, P1, P2 write numbered records (value `i <writer> <seq>`, the
  writer being `P<k>.<generation>`: a producer that hit a fatal error is replaced by a new
  generation) to partition seq % partitions; each acknowledgement is recorded with the offset the
  broker gave (`ack`), each failed delivery too (`fail`);
- transactional producers T0, T1 (transactional.id `nemesis-T<k>`) write transactions of 1-6
  records (value `t <writer> <txn> <intended outcome> <index>`) to random partitions and commit
  about 70% of them, abort the rest: every record's acknowledgement (`tack`) and every
  transaction's outcome (`txn`: committed, aborted, `abandoned` when commit was never asked and the
  abort was not confirmed, `unknown` when commit was asked and neither confirmed nor refused);
- a read_committed consumer group reading the topic throughout, committing every second and
  starting a new consumer after any error (`gstart`, `read`, `commit`, `grestart`);
- once told to stop: the producers finish, then a full read of every partition from the beginning,
  read_committed and read_uncommitted (`final`, `final_end`), then the group reads on until it has
  read every committed record (`gdone`).

The runner (`run_nemesis`, or `python tests/nemesis.py run`) starts the cluster and the workload,
then injects one fault a cycle, chosen with a seeded random generator (the seed is printed):
SIGKILL of a node then a restart; SIGSTOP of a node for shorter or longer than
broker.session.timeout.ms then SIGCONT; and, on a cluster in network namespaces (tests/netns.py),
a node cut off from the others and the clients for shorter or longer than the session timeout,
then healed. The victim is the leader of a partition, the active controller, the group's
coordinator or a transactional id's coordinator. After each fault it waits until every node is
back, every partition has its full ISR and every partition, the transactions and the group make
progress again.

The checker (`check(events)`) counts, with examples: records lost (acknowledged, or seen by the
group, and not in the final read_committed read), duplicated (one record at two positions),
reordered (a writer's records of one partition out of sequence order, in a read or in its
acknowledgements), moved (read at another position than acknowledged), offsets reused (two
records seen at one partition offset by any reader or acknowledgement), aborted reads (a record
of an aborted transaction seen by a read_committed reader), committed transactions' records
missing, partial transactions (one of unknown outcome half visible), group commits lost (a
restarted group member reading before an offset the coordinator acknowledged), records the group
never read, and records no writer wrote. A run passes only when every count is zero and the
workload did something (records acknowledged, transactions committed and aborted, reads).

`python tests/nemesis.py run --cycles 100 [--seed N]` is the long form (scripts/nemesis.sh),
`python tests/nemesis.py check <history.jsonl>` checks a kept history again."""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer,  # noqa: E402
                             TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from helpers import Cluster, metadata_v7  # noqa: E402

TOPIC = "nemesis"
PARTITIONS = 4
GROUP = "nemesis-group"
IDEMPOTENT_WRITERS = 3
TXN_WRITERS = 2
SESSION_TIMEOUT_MS = 3000

# Short liveness timings (cycles of seconds), min.insync.replicas=2 for every topic, few
# internal partitions (quick coordinator loading), the leader balancer every 20 s.
SETTINGS = {
    "broker.session.timeout.ms": str(SESSION_TIMEOUT_MS),
    "broker.heartbeat.interval.ms": "500",
    "replica.lag.time.max.ms": "3000",
    "min.insync.replicas": "2",
    "offsets.topic.num.partitions": "3",
    "transaction.state.log.num.partitions": "3",
    "leader.imbalance.check.interval.seconds": "20",
}


# ---------------------------------------------------------------- record values


def txn_id(writer):
    return f"nemesis-{writer}"


def parse_value(v):
    """A record's identity and intent from its value: (("i", writer, seq), None) for an idempotent
    writer's record, (("t", writer, txn, index), intent) for a transactional one; None if foreign."""
    f = v.split(" ")
    try:
        if f[0] == "i" and len(f) == 3:
            return ("i", f[1], int(f[2])), None
        if f[0] == "t" and len(f) == 5 and f[3] in ("commit", "abort"):
            return ("t", f[1], int(f[2]), int(f[4])), f[3]
    except ValueError:
        pass
    return None


def show(ident):
    return " ".join(str(x) for x in ident)


# ---------------------------------------------------------------- the checker


class Report:
    """What the checker found: `counts` of each anomaly (all must be zero), up to `keep` examples
    of each, and `figures` describing the workload."""

    ANOMALIES = ("lost", "duplicated", "reordered", "moved", "offsets reused", "aborted reads",
                 "committed txn records missing", "partial transactions", "group commits lost",
                 "group never read", "foreign records")

    def __init__(self, keep=5):
        self.keep = keep
        self.counts = {a: 0 for a in self.ANOMALIES}
        self.examples = {a: [] for a in self.ANOMALIES}
        self.figures = {}
        self.problems = []  # why the run proves nothing (an empty workload, no final read)

    def add(self, anomaly, example):
        self.counts[anomaly] += 1
        if len(self.examples[anomaly]) < self.keep:
            self.examples[anomaly].append(example)

    @property
    def ok(self):
        return not self.problems and all(v == 0 for v in self.counts.values())

    def text(self):
        lines = ["nemesis checker: " + ("OK" if self.ok else "FAILED")]
        for k, v in self.figures.items():
            lines.append(f"  {k}: {v}")
        for a in self.ANOMALIES:
            lines.append(f"  {a}: {self.counts[a]}")
            for e in self.examples[a]:
                lines.append(f"      {e}")
        for p in self.problems:
            lines.append(f"  PROBLEM: {p}")
        return "\n".join(lines)


def check(events, keep=5):
    """Checks a history (an iterable of event dicts, as the workload writes them); returns a Report."""
    r = Report(keep)
    acks = {}  # ident -> (p, o or None), idempotent and transactional
    acked_idem = []
    failed = 0
    txns = {}  # (writer, txn) -> event
    at = defaultdict(dict)  # (p, o) -> {ident: first source}
    where = defaultdict(set)  # ident -> {(p, o)} seen by readers
    final = {"read_committed": [], "read_uncommitted": []}
    final_ends = set()
    group_reads = []  # (reader, p, o, ident)
    commits = []  # (reader, p, o)
    gstarts = []
    gdone = None
    foreign = set()
    unknown_types = Counter()
    fatal = []  # client errors the workload could not ride out (a new producer followed)

    def seen_at(p, o, ident, source):
        at[(p, o)].setdefault(ident, source)

    for ev in events:
        t = ev["t"]
        if t in ("ack", "tack"):
            ident = ("i", ev["w"], ev["s"]) if t == "ack" else ("t", ev["w"], ev["n"], ev["i"])
            pos = (ev["p"], ev["o"])
            if ident in acks and acks[ident] != pos:
                r.add("duplicated", f"{show(ident)} acknowledged twice: at {acks[ident]} and {pos}")
            acks[ident] = pos
            if t == "ack":
                acked_idem.append(ident)
            if ev["o"] is not None:
                seen_at(ev["p"], ev["o"], ident, "ack")
        elif t in ("fail", "tfail"):
            failed += 1
        elif t == "txn":
            txns[(ev["w"], ev["n"])] = ev
        elif t in ("read", "final"):
            parsed = parse_value(ev["v"])
            if parsed is None:
                if (ev["p"], ev["o"]) not in foreign:
                    foreign.add((ev["p"], ev["o"]))
                    r.add("foreign records", f"p{ev['p']}@{ev['o']}: {ev['v'][:60]!r}")
                continue
            ident = parsed[0]
            source = ev["r"] if t == "read" else ev["iso"]
            seen_at(ev["p"], ev["o"], ident, source)
            where[ident].add((ev["p"], ev["o"]))
            if t == "read":
                group_reads.append((ev["r"], ev["p"], ev["o"], ident))
            else:
                final[ev["iso"]].append((ev["p"], ev["o"], ident))
        elif t == "final_end":
            final_ends.add(ev["iso"])
        elif t == "commit":
            commits.append((ev["r"], ev["p"], ev["o"], len(group_reads)))
        elif t == "gstart":
            gstarts.append((ev["r"], len(group_reads), len(commits)))
        elif t == "gdone":
            gdone = ev
        elif t == "unstable":
            r.problems.append(f"a transaction stayed open: last stable offsets below the high watermarks {ev['what']}")
        elif t == "crash":
            r.problems.append(f"workload thread {ev['w']} crashed: {ev['err'].strip().splitlines()[-1]}")
        elif t == "error" and ev.get("fatal"):
            fatal.append(f"{ev['w']}: {ev['err']}")
        elif t in ("error", "grestart", "status", "note", "fatal"):
            pass
        else:
            unknown_types[t] += 1

    def outcome(w, n):
        ev = txns.get((w, n))
        return ev["result"] if ev else "unknown"

    def invisible(ident):
        """A record read_committed readers must never see: of an aborted transaction, or of one
        whose commit was never asked."""
        return ident[0] == "t" and outcome(ident[1], ident[2]) in ("aborted", "abandoned")

    # Offsets reused: two records at one partition offset.
    for (p, o), idents in sorted(at.items()):
        if len(idents) > 1:
            r.add("offsets reused", f"p{p}@{o}: " + ", ".join(f"{show(i)} ({s})" for i, s in idents.items()))

    # Duplicated: one record read at two positions.
    for ident, positions in where.items():
        if len(positions) > 1:
            r.add("duplicated", f"{show(ident)} at {sorted(positions)}")

    # Moved: read somewhere, but not where it was acknowledged.
    for ident, (p, o) in acks.items():
        if o is not None and where.get(ident) and (p, o) not in where[ident]:
            r.add("moved", f"{show(ident)} acknowledged at p{p}@{o}, read at {sorted(where[ident])}")

    # Reordered: in every read, a writer's records of one partition in sequence order; the
    # acknowledgements too.
    def order_key(ident):
        return ident[2:]

    def check_order(what, rows):
        last = {}  # (p, writer) -> (key, o, ident)
        seen = set()
        for p, o, ident in rows:
            if ident in seen:
                continue  # a second copy: counted as duplicated
            seen.add(ident)
            k = (p, ident[1])
            if k in last and order_key(ident) <= last[k][0]:
                r.add("reordered", f"{what}: p{p}: {show(last[k][2])}@{last[k][1]} then {show(ident)}@{o}")
            last[k] = (order_key(ident), o, ident)

    for iso, rows in final.items():
        check_order(f"final {iso} read", sorted(rows))
    by_reader = defaultdict(list)
    for reader, p, o, ident in group_reads:
        by_reader[reader].append((p, o, ident))
    for reader, rows in by_reader.items():
        check_order(f"group reader {reader}", rows)
    acked_rows = sorted((p, o, ident) for ident, (p, o) in acks.items() if o is not None)
    check_order("acknowledgements", acked_rows)

    # Aborted reads: by the group throughout, and in the final read_committed read.
    for reader, p, o, ident in group_reads:
        if invisible(ident):
            r.add("aborted reads", f"group reader {reader} read {show(ident)} at p{p}@{o} "
                                   f"(transaction {outcome(ident[1], ident[2])})")
    committed_idents = {ident for _, _, ident in final["read_committed"]}
    for p, o, ident in final["read_committed"]:
        if invisible(ident):
            r.add("aborted reads", f"final read_committed read has {show(ident)} at p{p}@{o} "
                                   f"(transaction {outcome(ident[1], ident[2])})")

    # Lost: acknowledged (or read by the group, so below a high watermark once) and not in the
    # final read_committed read.
    if "read_committed" in final_ends:
        for ident in acked_idem:
            if ident not in committed_idents:
                r.add("lost", f"{show(ident)} acknowledged at p{acks[ident][0]}@{acks[ident][1]}, "
                              f"not in the final read" + (f" (read by others at {sorted(where[ident])})"
                                                          if where.get(ident) else ""))
        gone = {}
        for reader, p, o, ident in group_reads:
            if ident not in committed_idents and not invisible(ident) and ident not in acks and ident not in gone:
                gone[ident] = (reader, p, o)
        for ident, (reader, p, o) in gone.items():
            r.add("lost", f"{show(ident)} read by {reader} at p{p}@{o}, not in the final read")

        # Committed transactions: every record present. Unknown outcome: all or nothing.
        uncommitted = {ident for _, _, ident in final["read_uncommitted"]}
        for (w, n), ev in sorted(txns.items()):
            want = [("t", w, n, i) for i in range(ev["size"])]
            have = [i for i in want if i in committed_idents]
            if ev["result"] == "committed" and len(have) < len(want):
                missing = [show(i) + (f" (acknowledged at p{acks[i][0]}@{acks[i][1]}" if i in acks else " (not acknowledged")
                           + (", in the read_uncommitted read)" if i in uncommitted else ", not in the log)")
                           for i in want if i not in committed_idents]
                r.add("committed txn records missing", f"{w} txn {n}: {len(missing)} of {len(want)} missing: "
                                                       f"{missing[:3]}")
            elif ev["result"] == "unknown" and 0 < len(have) < len(want):
                r.add("partial transactions", f"{w} txn {n} (outcome unknown): {len(have)} of {len(want)} visible")
    else:
        r.problems.append("no complete final read_committed read")
    if "read_uncommitted" not in final_ends:
        r.problems.append("no complete final read_uncommitted read")

    # Group commits: a new member starts at or after every offset acknowledged as committed
    # before it started (it may skip aborted records and markers, never go back).
    for reader, reads_before, commits_before in gstarts:
        highest = {}
        for _, p, o, _ in commits[:commits_before]:
            highest[p] = max(highest.get(p, 0), o)
        first = {}
        for rd, p, o, _ in group_reads[reads_before:]:
            if rd == reader and p not in first:
                first[p] = o
        for p, o in sorted(first.items()):
            if o < highest.get(p, 0):
                r.add("group commits lost", f"{reader} started p{p} at {o}, below the committed offset {highest[p]}")

    # The group read every committed record (once told the end, it reads up to it).
    group_seen = {ident for _, _, _, ident in group_reads}
    if gdone is None or not gdone.get("caught_up"):
        r.problems.append(f"the group did not read up to the end of the final read ({gdone})")
    for p, o, ident in final["read_committed"]:
        if ident not in group_seen:
            r.add("group never read", f"{show(ident)} at p{p}@{o}")

    results = Counter(ev["result"] for ev in txns.values())
    aborted_in_log = sum(1 for _, _, ident in final["read_uncommitted"] if invisible(ident))
    r.figures = {
        "records acknowledged (idempotent)": len(acked_idem),
        "transactional records acknowledged": len(acks) - len(acked_idem),
        "deliveries failed": failed,
        "transactions": ", ".join(f"{k} {v}" for k, v in sorted(results.items())) or "none",
        "group reads": len(group_reads),
        "group members started": len(gstarts),
        "group commits acknowledged": len(commits),
        "final read_committed records": len(final["read_committed"]),
        "final read_uncommitted records": len(final["read_uncommitted"]),
        "aborted transactions' records in the log": aborted_in_log,
    }
    r.figures["fatal client errors"] = f"{len(fatal)}" + (f" (first: {fatal[0]})" if fatal else "")
    if unknown_types:
        r.figures["unknown events"] = dict(unknown_types)
    if not acked_idem:
        r.problems.append("no idempotent record acknowledged")
    if not results.get("committed"):
        r.problems.append("no transaction committed")
    if not results.get("aborted"):
        r.problems.append("no transaction aborted")
    if not aborted_in_log:
        r.problems.append("no aborted transaction's record in the log: the aborted-read check proves nothing")
    if not group_reads:
        r.problems.append("the group read nothing")
    return r


def read_history(path):
    with open(path) as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


# ---------------------------------------------------------------- the workload (its own process)


class History:
    """The history file: one JSON event a line, written by every thread of the workload."""

    def __init__(self, path):
        self.f = open(path, "a", buffering=1 << 16)
        self.lock = threading.Lock()
        self.counts = Counter()
        self.acks_by_partition = Counter()

    def write(self, **ev):
        ev["ts"] = round(time.time(), 3)
        line = json.dumps(ev, separators=(",", ":"))
        with self.lock:
            self.f.write(line + "\n")
            self.counts[ev["t"]] += 1
            if ev["t"] == "ack":
                self.acks_by_partition[ev["p"]] += 1
            if ev["t"] == "txn":
                self.counts[f"txn {ev['result']}"] += 1

    def close(self):
        with self.lock:
            self.f.close()


def _offset(msg):
    o = msg.offset()
    return o if o is not None and o >= 0 else None


class Worker(threading.Thread):
    """A workload thread whose unexpected exception goes to the history (`crash`: the run then
    proves less than it should, and fails)."""

    def __init__(self, wl, name):
        super().__init__(daemon=True, name=name)
        self.wl = wl

    def run(self):
        try:
            self.work()
        except BaseException:
            self.wl.hist.write(t="crash", w=self.name, err=traceback.format_exc())
            raise


class IdempotentWriter(Worker):
    """An idempotent acks=all producer writing `i <writer> <seq>` to partition seq % partitions."""

    def __init__(self, wl, k, rate):
        super().__init__(wl, f"P{k}")
        self.k, self.interval = k, 1.0 / rate
        self.gen = 0
        self.fatal = None

    def _producer(self):
        self.gen += 1
        self.wid = f"P{self.k}.{self.gen}"
        self.seq = 0
        self.fatal = None
        # One request in flight: with several, librdkafka bumps the producer epoch when a request
        # behind a failed one gets OUT_OF_ORDER_SEQUENCE_NUMBER and re-sends, under the new epoch,
        # records the broker already holds (librdkafka issue #4953, the same against Kafka: a
        # nemesis run saw it after NOT_ENOUGH_REPLICAS for the first request, as Kafka answers it
        # before looking for a duplicate). That is a client's duplicate, not the broker's.
        return Producer({
            "bootstrap.servers": self.wl.bootstrap, "enable.idempotence": True, "acks": "all",
            "linger.ms": 5, "message.timeout.ms": 120000, "request.timeout.ms": 5000,
            "socket.timeout.ms": 5000, "topic.metadata.refresh.interval.ms": 1000,
            "max.in.flight.requests.per.connection": 1,
            "error_cb": self._on_error,
        })

    def _on_error(self, err):
        self.wl.hist.write(t="error", w=self.wid, err=str(err), fatal=err.fatal())
        if err.fatal():
            self.fatal = err

    def _on_delivery(self, err, msg):
        (_, w, s), _ = parse_value(msg.value().decode())
        if err is None:
            self.wl.hist.write(t="ack", w=w, s=s, p=msg.partition(), o=_offset(msg))
        else:
            self.wl.hist.write(t="fail", w=w, s=s, p=msg.partition(), err=str(err))

    def work(self):
        p = self._producer()
        nxt = time.monotonic()
        while not self.wl.stop_writers.is_set():
            if self.fatal is not None:
                self.wl.hist.write(t="fatal", w=self.wid, err=str(self.fatal))
                p.purge()
                p.flush(10)
                p = self._producer()
            try:
                p.produce(TOPIC, key=self.wid.encode(), value=f"i {self.wid} {self.seq}".encode(),
                          partition=self.seq % self.wl.partitions, on_delivery=self._on_delivery)
                self.seq += 1
            except BufferError:
                pass
            p.poll(0)
            nxt += self.interval
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                nxt = time.monotonic()
        left = p.flush(120)
        self.wl.hist.write(t="note", w=self.wid, what=f"stopped, {left} undelivered")


class TxnWriter(Worker):
    """A transactional producer: transactions of 1-6 records to random partitions, ~70% meant to
    commit, the rest aborted; a fatal error starts a new producer with the same transactional.id."""

    def __init__(self, wl, k, seed):
        super().__init__(wl, f"T{k}")
        self.wid = f"T{k}"
        self.rng = random.Random(seed)

    def _producer(self):
        while True:
            p = Producer({
                "bootstrap.servers": self.wl.bootstrap, "transactional.id": txn_id(self.wid), "acks": "all",
                "linger.ms": 5, "transaction.timeout.ms": 15000, "message.timeout.ms": 15000,
                "request.timeout.ms": 5000, "socket.timeout.ms": 5000,
                "topic.metadata.refresh.interval.ms": 1000,
                "error_cb": lambda err: self.wl.hist.write(t="error", w=self.wid, err=str(err), fatal=err.fatal()),
            })
            try:
                p.init_transactions(30)
                return p
            except KafkaException as e:
                self.wl.hist.write(t="error", w=self.wid, err=f"init_transactions: {e}", fatal=True)
                time.sleep(1)

    def _on_delivery(self, err, msg):
        (_, w, n, i), _ = parse_value(msg.value().decode())
        if err is None:
            self.wl.hist.write(t="tack", w=w, n=n, i=i, p=msg.partition(), o=_offset(msg))
        else:
            self.wl.hist.write(t="tfail", w=w, n=n, i=i, p=msg.partition(), err=str(err))

    @staticmethod
    def _retrying(call, what, deadline_s=60):
        """Calls call() again while it raises a retriable error, for at most deadline_s."""
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                return call()
            except KafkaException as e:
                if not e.args[0].retriable() or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _one(self, p, n, intent, size):
        """One transaction; returns its outcome and whether the producer is still usable."""
        commit_asked = False
        try:
            p.begin_transaction()
            for i in range(size):
                p.produce(TOPIC, key=self.wid.encode(), value=f"t {self.wid} {n} {intent} {i}".encode(),
                          partition=self.rng.randrange(self.wl.partitions), on_delivery=self._on_delivery)
                p.poll(0)
            if intent == "commit":
                commit_asked = True
                self._retrying(lambda: p.commit_transaction(30), "commit")
                return "committed", True
            # Written and acknowledged before the abort, so that the log holds aborted records
            # (an abort right away would only purge them from the producer's queue).
            p.flush(30)
            self._retrying(lambda: p.abort_transaction(30), "abort")
            return "aborted", True
        except KafkaException as e:
            err = e.args[0]
            self.wl.hist.write(t="error", w=self.wid, err=f"txn {n}: {err}", fatal=err.fatal())
            if err.txn_requires_abort():
                try:
                    self._retrying(lambda: p.abort_transaction(30), "abort")
                    return "aborted", True
                except KafkaException as e2:
                    self.wl.hist.write(t="error", w=self.wid, err=f"txn {n} abort: {e2}", fatal=True)
            return ("unknown" if commit_asked else "abandoned"), False

    def work(self):
        p = self._producer()
        n = 0
        while not self.wl.stop_writers.is_set():
            n += 1
            intent = "commit" if self.rng.random() < 0.7 else "abort"
            size = self.rng.randint(1, 6)
            result, usable = self._one(p, n, intent, size)
            self.wl.hist.write(t="txn", w=self.wid, n=n, intent=intent, result=result, size=size)
            if not usable:
                # Dropped: the next producer's init_transactions fences it and completes (aborts)
                # whatever it left open. A fatal producer refuses even flush().
                p = self._producer()
            time.sleep(self.rng.uniform(0.05, 0.2))
        try:
            p.flush(30)
        except KafkaException as e:
            self.wl.hist.write(t="error", w=self.wid, err=f"final flush: {e}", fatal=True)


class GroupReader(Worker):
    """A read_committed consumer group of one member: reads throughout, commits every second, and
    starts a new consumer (a new member) after any error. Once told the end of every partition,
    reads until it has read every committed record."""

    def __init__(self, wl):
        super().__init__(wl, "G")
        self.gen = 0
        self.read_up_to = {}  # partition -> next offset after the last record read
        self.target = None  # partition -> offset after the last committed record (set at the end)
        self.done = threading.Event()

    def caught_up(self):
        t = self.target
        return t is not None and all(self.read_up_to.get(p, 0) >= o for p, o in t.items())

    def work(self):
        deadline = None
        while True:
            if self.target is not None and deadline is None:
                deadline = time.monotonic() + 120
            if self.caught_up() or (deadline is not None and time.monotonic() > deadline):
                break
            self.gen += 1
            rid = f"G.{self.gen}"
            self.wl.hist.write(t="gstart", r=rid)
            c = Consumer({
                "bootstrap.servers": self.wl.bootstrap, "group.id": GROUP, "isolation.level": "read_committed",
                "enable.auto.commit": False, "auto.offset.reset": "earliest", "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 1000, "topic.metadata.refresh.interval.ms": 1000,
                "socket.timeout.ms": 5000,
            })
            try:
                c.subscribe([TOPIC])
                last_commit = time.monotonic()
                while not self.caught_up() and not (deadline is not None and time.monotonic() > deadline):
                    if self.target is not None and deadline is None:
                        deadline = time.monotonic() + 120
                    for m in c.consume(200, 0.5):
                        if m.error() is not None:
                            if m.error().fatal():
                                raise KafkaException(m.error())
                            self.wl.hist.write(t="error", w=rid, err=str(m.error()), fatal=False)
                            continue
                        self.wl.hist.write(t="read", r=rid, p=m.partition(), o=m.offset(), v=m.value().decode())
                        self.read_up_to[m.partition()] = m.offset() + 1
                    if time.monotonic() - last_commit >= 1.0:
                        last_commit = time.monotonic()
                        self._commit(c, rid)
                self._commit(c, rid)
            except KafkaException as e:
                self.wl.hist.write(t="grestart", r=rid, err=str(e))
                time.sleep(0.5)
            finally:
                try:
                    c.close()
                except Exception as e:  # noqa: BLE001 - a broken consumer may fail to leave the group
                    self.wl.hist.write(t="error", w=rid, err=f"close: {e}", fatal=False)
        self.wl.hist.write(t="gdone", caught_up=self.caught_up(), read_up_to=self.read_up_to, target=self.target)
        self.done.set()

    def _commit(self, c, rid):
        try:
            parts = c.commit(asynchronous=False)
        except KafkaException as e:
            if e.args[0].code() == KafkaError._NO_OFFSET:
                return
            raise
        for tp in parts or []:
            if tp.error is None and tp.offset >= 0:
                self.wl.hist.write(t="commit", r=rid, p=tp.partition, o=tp.offset)


class Workload:
    def __init__(self, bootstrap, partitions, history, status, stop_file, seed, rate):
        self.bootstrap, self.partitions = bootstrap, partitions
        self.hist = History(history)
        self.status_path, self.stop_file = Path(status), Path(stop_file)
        self.seed, self.rate = seed, rate
        self.stop_writers = threading.Event()
        self.phase = "starting"

    def create_topic(self):
        a = AdminClient({"bootstrap.servers": self.bootstrap})
        deadline = time.monotonic() + 60
        while True:
            try:
                for f in a.create_topics([NewTopic(TOPIC, self.partitions, 3)], request_timeout=15).values():
                    f.result(20)
                return
            except KafkaException as e:
                if "TOPIC_ALREADY_EXISTS" in str(e) or time.monotonic() > deadline:
                    if "TOPIC_ALREADY_EXISTS" in str(e):
                        return
                    raise
                time.sleep(1)

    def write_status(self):
        with self.hist.lock:
            s = {"phase": self.phase, "counts": dict(self.hist.counts),
                 "acks_by_partition": {str(k): v for k, v in self.hist.acks_by_partition.items()}}
        tmp = self.status_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(s))
        tmp.replace(self.status_path)

    def final_read(self, iso):
        """Every record of every partition from the beginning up to its end for `iso`."""
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"nemesis-final-{iso}",
                      "isolation.level": iso, "enable.partition.eof": True, "enable.auto.commit": False,
                      "auto.offset.reset": "earliest"})
        try:
            c.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(self.partitions)])
            eof, last = set(), {}
            deadline = time.monotonic() + 180
            while len(eof) < self.partitions and time.monotonic() < deadline:
                for m in c.consume(500, 1.0):
                    if m.error() is not None:
                        if m.error().code() == KafkaError._PARTITION_EOF:
                            eof.add(m.partition())
                        else:
                            self.hist.write(t="error", w=f"final-{iso}", err=str(m.error()), fatal=False)
                        continue
                    eof.discard(m.partition())
                    last[m.partition()] = m.offset()
                    self.hist.write(t="final", iso=iso, p=m.partition(), o=m.offset(), v=m.value().decode())
            if len(eof) == self.partitions:
                self.hist.write(t="final_end", iso=iso, last=last)
            return last
        finally:
            c.close()

    def wait_stable(self, timeout=90):
        """Waits until no partition holds an open transaction: the last stable offset (what a
        read_committed consumer lists) equals the high watermark everywhere."""
        cs = {iso: Consumer({"bootstrap.servers": self.bootstrap, "group.id": "nemesis-ends", "isolation.level": iso})
              for iso in ("read_committed", "read_uncommitted")}
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    ends = {iso: [c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1]
                                  for p in range(self.partitions)] for iso, c in cs.items()}
                    if ends["read_committed"] == ends["read_uncommitted"]:
                        self.hist.write(t="note", what=f"stable ends {ends['read_committed']}")
                        return
                except Exception as e:  # noqa: BLE001 - retried until the deadline
                    ends = e
                if time.monotonic() > deadline:
                    self.hist.write(t="unstable", what=f"after {timeout} s without a producer: {ends}")
                    return
                time.sleep(1)
        finally:
            for c in cs.values():
                c.close()

    def run(self):
        self.create_topic()
        writers = [IdempotentWriter(self, k, self.rate) for k in range(IDEMPOTENT_WRITERS)]
        writers += [TxnWriter(self, k, self.seed * 100 + k) for k in range(TXN_WRITERS)]
        group = GroupReader(self)
        for t in writers + [group]:
            t.start()
        self.phase = "running"
        while not self.stop_file.exists():
            self.write_status()
            time.sleep(0.5)
        self.phase = "stopping writers"
        self.write_status()
        self.stop_writers.set()
        for t in writers:
            t.join(180)
        self.phase = "final read"
        self.write_status()
        self.wait_stable()
        last = self.final_read("read_committed")
        self.final_read("read_uncommitted")
        group.target = {p: last.get(p, -1) + 1 for p in range(self.partitions)}
        self.phase = "group catching up"
        self.write_status()
        group.done.wait(180)
        self.phase = "done"
        self.write_status()
        self.hist.close()


# ---------------------------------------------------------------- faults


class Faults:
    """The faults the runner can inject, over helpers.Cluster (kill and pause) or
    netns.NetnsCluster (kill, pause and network partitions)."""

    def __init__(self, cluster):
        self.c = cluster
        self.n = len(cluster.nodes) if hasattr(cluster, "nodes") else 3
        self.can_partition = hasattr(cluster, "isolate") and hasattr(cluster, "heal")
        self.down = {}  # node index -> "killed" | "paused" | "isolated"

    def kinds(self):
        return ["kill", "pause"] + (["partition"] if self.can_partition else [])

    def kill(self, i):
        self.c.kill9(i)
        self.down[i] = "killed"

    def unkill(self, i):
        self.c.restart(i)
        self.down.pop(i, None)

    def pause(self, i):
        self.c.pause(i)
        self.down[i] = "paused"

    def resume(self, i):
        self.c.resume(i)
        self.down.pop(i, None)

    def isolate(self, i):
        self.c.isolate(i)
        self.down[i] = "isolated"

    def heal(self, i):
        self.c.heal(i)
        self.down.pop(i, None)

    def undo_all(self):
        for i, what in list(self.down.items()):
            try:
                {"killed": self.unkill, "paused": self.resume, "isolated": self.heal}[what](i)
            except Exception as e:  # noqa: BLE001 - teardown goes on
                print(f"undoing {what} of node {i + 1}: {e}", flush=True)

    def metadata(self, i, topics):
        if hasattr(self.c, "in_node"):  # a NetnsCluster: asked from inside node i's namespace
            return self.c.in_node(i, metadata_v7, self.c.address(i), topics=topics, timeout=3)
        return metadata_v7(self.c.nodes[i].bootstrap, topics=topics, timeout=3)

    def reachable(self):
        return [i for i in range(self.n) if i not in self.down]


def java_hash(s):
    """Java's String.hashCode, as Kafka uses it to place a group or transactional id."""
    h = 0
    for unit in s.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def coordinator_partition(key, partitions):
    h = java_hash(key)
    return 0 if h == -(1 << 31) else abs(h) % partitions


class Nemesis:
    """Picks and injects one fault a cycle, then waits for the cluster and the workload to recover."""

    ROLES = ("leader", "controller", "group coordinator", "txn coordinator")

    def __init__(self, faults, rng, status_path, log):
        self.f, self.rng, self.status_path, self.log = faults, rng, Path(status_path), log
        self.kinds = Counter()
        self.recoveries = []

    def status(self):
        try:
            return json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return {}

    def view(self):
        """(metadata of the first reachable node that answers, its index)."""
        last = None
        for i in self.f.reachable():
            try:
                return self.f.metadata(i, [TOPIC, "__consumer_offsets", "__transaction_state"]), i
            except (OSError, AssertionError) as e:
                last = e
        raise AssertionError(f"no reachable node answered Metadata: {last}")

    def victim(self, role):
        """(node index, description) of the node holding `role` (a random node if none answers)."""
        try:
            return self._victim(role)
        except (OSError, AssertionError, KeyError) as e:
            return self.rng.randrange(self.f.n), f"{role} unknown ({e}): a random node"

    def _victim(self, role):
        v, _ = self.view()
        if role == "controller":
            node = v.controller
            what = "the active controller"
        else:
            if role == "leader":
                topic, part = TOPIC, self.rng.randrange(PARTITIONS)
                what = f"leader of {TOPIC}-{part}"
            elif role == "group coordinator":
                topic = "__consumer_offsets"
                part = coordinator_partition(GROUP, len(v.topics[topic][1]))
                what = f"coordinator of {GROUP}"
            else:
                tid = txn_id(f"T{self.rng.randrange(TXN_WRITERS)}")
                topic = "__transaction_state"
                part = coordinator_partition(tid, len(v.topics[topic][1]))
                what = f"coordinator of {tid}"
            node = v.partition(topic, part).leader
        if node is None or node < 1:
            node = self.rng.randrange(self.f.n) + 1
            what += " (none: a random node)"
        return node - 1, what

    def healthy(self):
        """Every node answers, lists every broker, names one controller, and every partition of the
        topic has a leader and its full ISR."""
        views = [self.f.metadata(i, [TOPIC]) for i in range(self.f.n)]
        if any(sorted(v.brokers) != list(range(1, self.f.n + 1)) for v in views):
            return False
        if len({v.controller for v in views}) != 1 or views[0].controller < 1:
            return False
        for v in views:
            for p in range(PARTITIONS):
                pv = v.partition(TOPIC, p)
                if pv.leader < 1 or sorted(pv.isr) != sorted(pv.replicas):
                    return False
        return True

    def progress_marks(self):
        s = self.status()
        c = s.get("counts", {})
        return ({int(k): v for k, v in s.get("acks_by_partition", {}).items()},
                c.get("txn committed", 0), c.get("read", 0))

    def wait_recovered(self, timeout):
        """Seconds until the cluster is whole again and the workload moves on every partition, in
        committed transactions and in the group; raises if not within timeout."""
        start = time.monotonic()
        deadline = start + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                if self.healthy():
                    break
            except (OSError, AssertionError, KeyError) as e:
                last = e
            time.sleep(0.25)
        else:
            raise AssertionError(f"cluster not whole within {timeout} s (last: {last!r})")
        acks0, txn0, reads0 = self.progress_marks()
        while time.monotonic() < deadline:
            acks, txn, reads = self.progress_marks()
            if all(acks.get(p, 0) >= acks0.get(p, 0) + 10 for p in range(PARTITIONS)) and txn > txn0 \
                    and reads > reads0:
                return time.monotonic() - start
            time.sleep(0.25)
        raise AssertionError(f"workload stalled: acks per partition {acks0} -> {acks}, committed "
                             f"transactions {txn0} -> {txn}, group reads {reads0} -> {reads} in {timeout} s")

    def cycle(self, k, cycles, recovery_timeout=120):
        kind = self.rng.choice(self.f.kinds())
        role = self.rng.choice(self.ROLES)
        i, what = self.victim(role)
        session = SESSION_TIMEOUT_MS / 1000
        at = time.time()
        if kind == "kill":
            down = self.rng.uniform(0.2, 2 * session)
            label = "kill"
            self.f.kill(i)
            time.sleep(down)
            self.f.unkill(i)
        else:
            long = self.rng.random() < 0.5
            down = self.rng.uniform(session + 1, 2 * session + 1) if long else self.rng.uniform(0.3, session - 1)
            label = f"{kind} {'long' if long else 'short'}"
            (self.f.pause if kind == "pause" else self.f.isolate)(i)
            time.sleep(down)
            (self.f.resume if kind == "pause" else self.f.heal)(i)
        self.kinds[label] += 1
        self.kinds[f"victim: {role}"] += 1
        took = self.wait_recovered(recovery_timeout)
        self.recoveries.append(took)
        stamp = time.strftime("%H:%M:%S", time.localtime(at)) + f"{at % 1:.3f}"[1:]
        self.log(f"cycle {k}/{cycles} at {stamp}: {label} of node {i + 1} ({what}) for {down:.1f} s; "
                 f"recovered in {took:.1f} s")
        time.sleep(self.rng.uniform(0.5, 2.0))


def make_cluster(tmp, netns, log=print):
    """A NetnsCluster (tests/netns.py: partitions possible) when asked (netns=True) or, with
    netns=None, when it can be built here (root, iproute2); else a Cluster on 127.0.0.1."""
    if netns is not False:
        try:
            from netns import NetnsCluster
            return NetnsCluster(tmp, n=3, settings=SETTINGS, listeners="plain"), True
        except (ImportError, AssertionError, RuntimeError, OSError) as e:
            if netns:
                raise
            log(f"nemesis: no network namespaces ({e!r}): kill and pause only")
    return Cluster(tmp, n=3, settings=SETTINGS), False


def run_nemesis(tmp, cycles, seed, netns=None, log=print, rate=60, recovery_timeout=120):
    """Runs the workload against a fresh cluster under `cycles` faults; returns (Report, figures of
    the run). Never raises for a broker misbehaving: a stall or a failed start is in the report."""
    tmp = Path(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    started = time.monotonic()
    cluster, in_netns = make_cluster(tmp / "cluster", netns, log)
    log(f"nemesis: seed {seed}, {cycles} cycles, {'network namespaces' if in_netns else '127.0.0.1'}, "
        f"directory {tmp}")
    faults = Faults(cluster)
    history, status, stop = tmp / "history.jsonl", tmp / "status.json", tmp / "stop"
    nemesis = Nemesis(faults, rng, status, log)
    run = {"seed": seed, "cycles planned": cycles, "cycles done": 0, "faults": {}}
    workload = None
    try:
        cluster.start_all()
        cluster.wait_formed()
        bootstrap = cluster.bootstrap() if callable(cluster.bootstrap) else cluster.bootstrap
        cmd = [sys.executable, str(Path(__file__).resolve()), "workload", "--bootstrap", bootstrap,
               "--history", str(history), "--status", str(status), "--stop", str(stop), "--seed", str(seed),
               "--rate", str(rate)]
        wl_log = open(tmp / "workload.log", "ab")
        if in_netns:
            workload = cluster.client_popen(cmd, stdout=wl_log, stderr=subprocess.STDOUT)
        else:
            workload = subprocess.Popen(cmd, stdout=wl_log, stderr=subprocess.STDOUT)
        took = nemesis.wait_recovered(120)
        log(f"nemesis: workload running ({took:.1f} s)")
        for k in range(1, cycles + 1):
            if workload.poll() is not None:
                raise AssertionError(f"the workload exited with {workload.returncode} (see {tmp}/workload.log)")
            nemesis.cycle(k, cycles, recovery_timeout)
            run["cycles done"] = k
    except AssertionError as e:
        run["error"] = str(e)
        log(f"nemesis: STOPPED: {e}")
    finally:
        faults.undo_all()
        stop.touch()
        if workload is not None:
            try:
                workload.wait(600)
            except subprocess.TimeoutExpired:
                workload.kill()
                run["error"] = run.get("error", "") + " the workload did not finish its final reads in 600 s"
        if hasattr(cluster, "wait_replicas_identical") and "error" not in run:
            for p in range(PARTITIONS):
                try:
                    cluster.wait_replicas_identical(TOPIC, p, timeout=30)
                except AssertionError as e:
                    run.setdefault("replicas", []).append(str(e).splitlines()[0])
        for i in range(3):
            try:
                if cluster.nodes[i].paused:
                    cluster.resume(i)
            except (AttributeError, IndexError):
                pass
        if hasattr(cluster, "close"):
            cluster.close()
        else:
            cluster.kill_all()
    report = check(read_history(history)) if history.exists() else Report()
    if not history.exists():
        report.problems.append("no history written")
    if "error" in run:
        report.problems.append(f"run stopped: {run['error']}")
    for r in run.get("replicas", []):
        report.problems.append(r)
    run["faults"] = dict(nemesis.kinds)
    if nemesis.recoveries:
        run["recovery s (median, max)"] = (round(sorted(nemesis.recoveries)[len(nemesis.recoveries) // 2], 1),
                                           round(max(nemesis.recoveries), 1))
    run["duration s"] = round(time.monotonic() - started, 1)
    return report, run


def summary(report, run):
    lines = ["nemesis run:"] + [f"  {k}: {v}" for k, v in run.items()]
    return "\n".join(lines) + "\n" + report.text()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("workload")
    w.add_argument("--bootstrap", required=True)
    w.add_argument("--history", required=True)
    w.add_argument("--status", required=True)
    w.add_argument("--stop", required=True)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--rate", type=int, default=60)
    r = sub.add_parser("run")
    r.add_argument("--cycles", type=int, default=100)
    r.add_argument("--seed", type=int, default=None)
    r.add_argument("--dir", default=None)
    r.add_argument("--netns", choices=("auto", "yes", "no"), default="auto")
    c = sub.add_parser("check")
    c.add_argument("history")
    a = ap.parse_args()
    if a.cmd == "workload":
        signal.signal(signal.SIGTERM, lambda *_: Path(a.stop).touch())
        Workload(a.bootstrap, PARTITIONS, a.history, a.status, a.stop, a.seed, a.rate).run()
        return 0
    if a.cmd == "check":
        report = check(read_history(a.history))
        print(report.text())
        return 0 if report.ok else 1
    seed = a.seed if a.seed is not None else random.randrange(1 << 31)
    d = Path(a.dir) if a.dir else Path(f"/tmp/runnel-nemesis-{seed}-{os.getpid()}")
    report, run = run_nemesis(d, a.cycles, seed, netns={"auto": None, "yes": True, "no": False}[a.netns],
                              log=lambda line: print(line, flush=True))
    print(summary(report, run), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
