"""The nemesis checker (tests/nemesis.py `check`) on hand-made histories, no cluster: a clean
history passes, and each anomaly (lost, duplicated, reordered, moved, offsets reused, aborted
reads, committed transactions incomplete, partial transactions, group commits lost, records the
group never read, foreign records) is counted and shown with an example; a history that proves
nothing (nothing acknowledged, no final read, no aborted record) fails too."""

from nemesis import Report, check, parse_value


class Log:
    """A simulated topic: partitions as lists of values, and the events a workload would write
    about them. Writers append (and are acknowledged with the offset), the group reads, and
    finish() adds the final reads and the group's end."""

    def __init__(self, partitions=2):
        self.parts = [[] for _ in range(partitions)]
        self.events = []
        self.outcomes = {}  # (writer, txn) -> result
        self.group_next = [0] * partitions
        self.reader = None

    def put(self, p, value):
        self.parts[p].append(value)
        return len(self.parts[p]) - 1

    def idem(self, w, s, p, ack=True, offset=None):
        o = self.put(p, f"i {w} {s}")
        if ack:
            self.events.append({"t": "ack", "w": w, "s": s, "p": p, "o": o if offset is None else offset})
        return o

    def txn(self, w, n, intent, result, partitions):
        for i, p in enumerate(partitions):
            o = self.put(p, f"t {w} {n} {intent} {i}")
            self.events.append({"t": "tack", "w": w, "n": n, "i": i, "p": p, "o": o})
        self.events.append({"t": "txn", "w": w, "n": n, "intent": intent, "result": result, "size": len(partitions)})
        self.outcomes[(w, n)] = result

    def visible(self, value):
        ident, _ = parse_value(value) or ((None,), None)
        return ident[0] != "t" or self.outcomes.get((ident[1], ident[2])) not in ("aborted", "abandoned")

    def start_member(self, r):
        self.reader = r
        self.events.append({"t": "gstart", "r": r})

    def group_reads(self, everything=False, skip=()):
        """The member reads what read_committed shows from where it is to the end."""
        for p, values in enumerate(self.parts):
            for o in range(self.group_next[p], len(values)):
                if (everything or self.visible(values[o])) and (p, o) not in skip:
                    self.events.append({"t": "read", "r": self.reader, "p": p, "o": o, "v": values[o]})
            self.group_next[p] = len(values)

    def commit(self):
        for p, o in enumerate(self.group_next):
            self.events.append({"t": "commit", "r": self.reader, "p": p, "o": o})

    def finish(self, committed_extra=(), hidden=(), catch_up=True):
        """The final reads, and (catch_up) the group reading to the end; read_committed readers
        also see `committed_extra` and miss `hidden` positions."""
        if catch_up:
            self.group_reads(skip=hidden)
        for iso in ("read_committed", "read_uncommitted"):
            for p, values in enumerate(self.parts):
                for o, v in enumerate(values):
                    if (p, o) in hidden and iso == "read_committed":
                        continue
                    if iso == "read_uncommitted" or self.visible(v) or (p, o) in committed_extra:
                        self.events.append({"t": "final", "iso": iso, "p": p, "o": o, "v": v})
            self.events.append({"t": "final_end", "iso": iso, "last": {}})
        self.events.append({"t": "gdone", "caught_up": True})
        return self.events


def clean():
    """Two idempotent writers, a committed and an aborted transaction, the group reading with a
    restart in the middle."""
    h = Log()
    h.start_member("G.1")
    for s in range(4):
        h.idem("P0.1", s, s % 2)
    h.txn("T0", 1, "commit", "committed", [0, 1])
    h.group_reads()
    h.commit()
    h.start_member("G.2")
    h.txn("T0", 2, "abort", "aborted", [1])
    for s in range(3):
        h.idem("P1.1", s, s % 2)
    h.group_reads()
    h.commit()
    return h


def assert_only(report, **want):
    """The report counts exactly `want` (anomaly names with _ for spaces) and nothing else."""
    want = {k.replace("_", " "): v for k, v in want.items()}
    got = {k: v for k, v in report.counts.items() if v}
    assert got == want, report.text()
    for k in want:
        assert report.examples[k], report.text()
    assert not report.ok


def test_a_clean_history_passes():
    r = check(clean().finish())
    assert r.ok, r.text()
    assert all(v == 0 for v in r.counts.values())
    assert r.figures["records acknowledged (idempotent)"] == 7
    assert r.figures["transactional records acknowledged"] == 3
    assert r.figures["aborted transactions' records in the log"] == 1
    assert r.figures["transactions"] == "aborted 1, committed 1"
    assert "nemesis checker: OK" in r.text()


def test_an_acknowledged_record_truncated_away_is_lost():
    h = clean()
    o = h.idem("P0.1", 4, 0)
    h.parts[0].pop()  # the leader's tail lost in a failover
    r = check(h.finish())
    assert_only(r, lost=1)
    assert f"P0.1 4 acknowledged at p0@{o}" in r.text()


def test_an_acknowledged_offset_reused_by_another_record():
    h = clean()
    o = h.idem("P0.1", 4, 0)
    h.parts[0].pop()
    assert h.idem("P1.1", 3, 0, ack=False) == o  # written again at the same offset
    r = check(h.finish())
    assert_only(r, lost=1, offsets_reused=1)
    assert f"p0@{o}: i P0.1 4 (ack), i P1.1 3 (G.2)" in r.text()


def test_a_record_the_group_read_then_replaced_is_an_offset_reused_and_lost():
    h = clean()
    o = h.idem("P1.1", 3, 1, ack=False)  # never acknowledged, but below the high watermark once
    h.group_reads()
    h.parts[1][o] = "i P0.1 9"  # a diverging leader's record at the same offset
    h.events.append({"t": "ack", "w": "P0.1", "s": 9, "p": 1, "o": o})
    r = check(h.finish())
    # The group, already past that offset, never reads the new record.
    assert_only(r, offsets_reused=1, lost=1, group_never_read=1)
    assert "i P1.1 3 read by G.2" in r.text()


def test_a_record_written_twice_is_duplicated():
    h = clean()
    o = h.idem("P0.1", 2, 0, ack=False)  # a retried batch appended again
    r = check(h.finish())
    assert_only(r, duplicated=1)
    assert f"P0.1 2 at [(0, 1), (0, {o})]" in r.text()


def test_a_record_acknowledged_twice_at_different_offsets_is_duplicated():
    h = clean()
    h.events.append({"t": "ack", "w": "P0.1", "s": 0, "p": 0, "o": 0})  # the same offset: fine
    assert check(h.finish()).ok
    h = clean()
    h.events.append({"t": "ack", "w": "P0.1", "s": 0, "p": 1, "o": 7})
    r = check(h.finish())
    assert r.counts["duplicated"] == 1 and "acknowledged twice" in r.text(), r.text()


def test_records_out_of_sequence_are_reordered():
    h = clean()
    h.idem("P2.1", 1, 0)
    h.idem("P2.1", 0, 0)
    r = check(h.finish())
    assert set(k for k, v in r.counts.items() if v) == {"reordered"}, r.text()
    # In the acknowledgements, the group's read and both final reads.
    assert r.counts["reordered"] == 4, r.text()
    assert "final read_committed read: p0: i P2.1 1@" in r.text()


def test_transactional_records_out_of_order_are_reordered():
    h = clean()
    h.txn("T1", 2, "commit", "committed", [0])
    h.txn("T1", 1, "commit", "committed", [0])
    r = check(h.finish())
    assert r.counts["reordered"] == 4 and not r.counts["lost"], r.text()


def test_a_record_read_elsewhere_than_acknowledged_is_moved():
    h = clean()
    h.idem("P0.1", 4, 0, offset=99)
    r = check(h.finish())
    assert_only(r, moved=1)
    assert "P0.1 4 acknowledged at p0@99, read at [(0, " in r.text()


def test_an_acknowledgement_without_an_offset_is_checked_by_value():
    h = clean()
    h.idem("P0.1", 4, 0, offset=-1)
    h.events[-1]["o"] = None  # librdkafka: a retried batch whose first answer it never saw
    assert check(h.finish()).ok
    h = clean()
    h.idem("P0.1", 4, 0)
    h.events[-1]["o"] = None
    h.parts[0].pop()
    assert_only(check(h.finish()), lost=1)


def test_the_group_reading_an_aborted_record_is_an_aborted_read():
    h = clean()
    h.txn("T1", 1, "abort", "aborted", [0, 1])
    h.group_reads(everything=True)
    r = check(h.finish())
    assert_only(r, aborted_reads=2)
    assert "group reader G.2 read t T1 1 0 at p0@" in r.text()


def test_an_aborted_record_in_the_final_read_committed_read_is_an_aborted_read():
    h = clean()
    h.txn("T1", 1, "commit", "abandoned", [0])  # commit never asked, abort not confirmed
    o = len(h.parts[0]) - 1
    h.group_reads()
    r = check(h.finish(committed_extra={(0, o)}))
    # The group (which read up to the end) never saw it: that too is reported.
    assert_only(r, aborted_reads=1, group_never_read=1)
    assert f"final read_committed read has t T1 1 0 at p0@{o} (transaction abandoned)" in r.text()


def test_a_committed_transaction_missing_a_record():
    h = clean()
    h.txn("T1", 1, "commit", "committed", [0, 1])
    h.parts[1].pop()
    r = check(h.finish())
    assert_only(r, committed_txn_records_missing=1)
    assert "T1 txn 1: 1 of 2 missing: ['t T1 1 1 (acknowledged at p1@5, not in the log)']" in r.text()


def test_a_committed_transaction_whose_marker_was_lost_on_one_partition():
    # The record stays in the log, but the producer's next marker on that partition aborts it.
    h = clean()
    h.txn("T1", 1, "commit", "committed", [0, 1])
    o = len(h.parts[1]) - 1
    r = check(h.finish(hidden={(1, o)}))
    assert_only(r, committed_txn_records_missing=1)
    assert f"T1 txn 1: 1 of 2 missing: ['t T1 1 1 (acknowledged at p1@{o}, in the read_uncommitted read)']" in r.text()


def test_a_transaction_of_unknown_outcome_must_be_all_or_nothing():
    for visible in ("all", "none"):
        h = clean()
        h.txn("T1", 1, "commit", "unknown", [0, 1])
        if visible == "none":
            h.outcomes[("T1", 1)] = "aborted"  # as the coordinator decided; the history still says unknown
        h.group_reads()
        assert check(h.finish()).ok
    h = clean()
    h.txn("T1", 1, "commit", "unknown", [0, 1])
    h.parts[1].pop()
    h.group_reads()
    r = check(h.finish())
    assert_only(r, partial_transactions=1)


def test_a_new_member_starting_before_an_acknowledged_commit():
    h = clean()
    h.start_member("G.3")
    h.group_next = [1, 1]  # back to offset 1 although offsets 4 and 5 were committed
    h.group_reads()
    r = check(h.finish())
    assert_only(r, group_commits_lost=2)
    assert "G.3 started p0 at 1, below the committed offset" in r.text()


def test_a_record_the_group_never_read():
    h = clean()
    o = h.idem("P0.1", 4, 0)
    h.group_reads(skip={(0, o)})
    r = check(h.finish())
    assert_only(r, group_never_read=1)


def test_a_record_no_writer_wrote_is_foreign():
    h = clean()
    h.put(1, "hello")
    r = check(h.finish())
    assert_only(r, foreign_records=1)
    assert "'hello'" in r.text()


def test_a_history_that_proves_nothing_fails():
    r = check([])
    assert not r.ok and all(v == 0 for v in r.counts.values())
    for want in ("no complete final read_committed read", "no idempotent record acknowledged",
                 "no transaction committed", "no transaction aborted", "the group read nothing"):
        assert want in r.text(), r.text()
    h = clean()
    events = [e for e in h.events if e["t"] != "final_end"]
    r = check(events)
    assert "no complete final read_committed read" in r.problems, r.text()
    h = Log()
    h.start_member("G.1")
    h.idem("P0.1", 0, 0)
    h.txn("T0", 1, "commit", "committed", [0])
    h.group_reads()
    r = check(h.finish())
    assert r.problems == ["no transaction aborted",
                          "no aborted transaction's record in the log: the aborted-read check proves nothing"], r.text()
    events = clean().finish()
    events[-1]["caught_up"] = False
    assert not check(events).ok


def test_the_report_lists_every_count_and_at_most_keep_examples():
    h = clean()
    for s in range(4, 20):
        h.idem("P0.1", s, 0)
    del h.parts[0][-16:]
    r = check(h.finish(), keep=3)
    assert r.counts["lost"] == 16 and len(r.examples["lost"]) == 3
    text = r.text()
    for a in Report.ANOMALIES:
        assert f"  {a}: " in text
    assert "nemesis checker: FAILED" in text and "  lost: 16" in text
