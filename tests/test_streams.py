"""Kafka Streams 4.4.0, unmodified (Maven jars in .deps/streams-libs), on Runnel: Apache Kafka's
WordCountDemo (kafka-streams-examples 4.3.1, the newest served) and our own stateful application
with a KTable–KStream join (tests/java/streams/RegionClicks.java: user → region table, user → clicks
stream, joined and summed per region), each with processing.guarantee at_least_once and
exactly_once_v2.

Every run feeds input while the application runs, kills the application with SIGKILL half a second
after it has written output and committed input offsets (commit.interval.ms 1000 / 1500: so inside
an open transaction under exactly_once_v2, after progress not yet committed under at_least_once), restarts
it on the same state directory while the input keeps coming, and does it again once the restarted
instance has written output and committed and the broker's log cleaner has compacted the changelogs
past their ends of that moment; stops it with SIGTERM once its output has caught up and its input
offsets are committed.

The changelogs are really compacted while the application runs: Streams creates its internal topics
with our topic.* settings (segment.ms 1000, min.cleanable.dirty.ratio 0.01, delete.retention.ms
1000; no small segment.bytes, which Kafka 4 refuses below 1 MiB) and the broker looks for dirty logs
every 200 ms (log.cleaner.backoff.ms). So the second restart restores its stores (from offset 0:
under exactly_once_v2 Streams wipes them after a crash, under at_least_once it has written no
checkpoint file for so few records) from a changelog the cleaner has rewritten; under
exactly_once_v2 one that held transactional batches, commit markers and the aborted transaction
(its records and abort marker) of the first SIGKILL, which the first restart aborted. Any mistake
of the cleaner there (an aborted record kept without its marker, a latest value dropped, a
committed batch lost) shows in the output checks below.

Then, with the input the broker acknowledged as the truth:

- exactly_once_v2 (output read with isolation.level=read_committed): the committed update stream of
  every key is exactly what processing each input record once implies, duplicates of none. The
  record caches are off (statestore.cache.max.bytes=0), so every input record yields one update:
  WordCount's updates of word w are exactly 1, 2, …, count(w) in offset order; RegionClicks'
  updates of a region are strictly increasing, the last is the region's true total, and their
  successive differences are, as a multiset, exactly the clicks joined to that region.
- at_least_once: every key is present and its last value is >= the truth. After a SIGKILL the
  records processed since the last offset commit are processed again on top of a state store
  restored from the changelog, which already holds their effect: counts may be over-counted
  (printed as the surplus), never under-counted.

Both: the changelog topics Streams created are compacted on Runnel (DescribeConfigs), its
repartition topics have cleanup.policy=delete and retention.ms=-1, and the purge of consumed
repartition records (DeleteRecords) moved their log start offset. The second restart restored its
stores from the changelogs. Read from the beginning at the end, the part of every partition of the
busy changelogs (WordCount's counts, RegionClicks' totals) that the broker reports cleaned ("cleaned
a log" with its end offset) holds every key once, fewer records than offsets, and under
exactly_once_v2 nothing that read_committed does not also return (no aborted record left); and
under exactly_once_v2 the output has aborted records below its ends of the moment the changelogs
were taken (the first SIGKILL's transaction had writes). The whole file takes about 80 s (four runs
of about 20 s) on two busy cores."""

import collections
import random
import re
import signal
import struct
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from helpers import ROOT

STREAMS_LIBS = ROOT / ".deps" / "streams-libs"
SOURCES = ROOT / "tests" / "java" / "streams"
# Small heaps (RocksDB keeps its memory off-heap) and a quick start.
JAVA_OPTS = ["-Xmx128m", "-Xss1m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
             "-Dorg.slf4j.simpleLogger.showDateTime=true",
             "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS"]
# A restarted instance joins at once (no initial delay); the killed one leaves the group within
# its short session timeout. The log cleaner looks for dirty logs every 200 ms (Kafka: 15 s).
BROKER_SETTINGS = {"group.initial.rebalance.delay.ms": "0", "group.min.session.timeout.ms": "1000",
                   "log.cleaner.backoff.ms": "200"}
PARTITIONS = 2
GUARANTEES = ["at_least_once", "exactly_once_v2"]


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    """Our applications compiled against the Streams jars."""
    assert STREAMS_LIBS.exists(), f"{STREAMS_LIBS} is missing: run scripts/install-test-deps.sh first"
    out = tmp_path_factory.mktemp("streams-classes")
    p = subprocess.run(["javac", "-cp", f"{STREAMS_LIBS}/*", "-d", str(out),
                        *map(str, sorted(SOURCES.glob("*.java")))],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return out


class StreamsApp:
    """A Streams application (a main class taking a properties file) as a JVM subprocess; its log
    (slf4j-simple, INFO) in app.log, appended across restarts."""

    def __init__(self, tmp, main_class, group, classes, settings):
        self.main_class, self.group = main_class, group
        self.classpath = f"{STREAMS_LIBS}/*:{classes}"
        self.props = tmp / "app.properties"
        self.props.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        self.log_path = tmp / "app.log"
        self.proc = None
        self.runs = 0

    def start(self):
        self.runs += 1
        log = open(self.log_path, "ab")
        log.write(f"===== run {self.runs} =====\n".encode())
        log.flush()
        self.proc = subprocess.Popen(["java", *JAVA_OPTS, "-cp", self.classpath, self.main_class,
                                      str(self.props)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    def kill9(self):
        self.proc.kill()
        self.proc.wait(10)

    def stop(self):
        """SIGTERM: the shutdown hook closes KafkaStreams (a last commit); the JVM exits 143."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(60)
        assert rc in (0, 143), f"{self.main_class} exited with {rc}:\n{self.log_tail()}"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=80):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""


def app_settings(broker, tmp, guarantee):
    return {
        "bootstrap.servers": broker.bootstrap,
        "processing.guarantee": guarantee,
        "state.dir": tmp / "state",
        "num.stream.threads": 1,
        # Long enough that a SIGKILL half a second after output was seen lands inside an open
        # transaction (exactly_once_v2) or after output whose input offsets were not committed yet
        # (at_least_once), short enough for a quick run.
        "commit.interval.ms": 1000 if guarantee == "exactly_once_v2" else 1500,
        "statestore.cache.max.bytes": 0,
        "repartition.purge.interval.ms": 500,
        # the main consumer's: a killed instance is out of the group within 2 s
        "session.timeout.ms": 2000,
        "heartbeat.interval.ms": 500,
        # Configs of the internal topics Streams creates: a segment a second (rolled by time:
        # Kafka 4 refuses a segment.bytes below 1 MiB), cleaned as soon as a closed segment is
        # dirty, tombstones and transaction markers removed a second after their first cleaning.
        # So the changelogs are compacted while the application runs.
        "topic.segment.ms": 1000,
        "topic.min.cleanable.dirty.ratio": 0.01,
        "topic.delete.retention.ms": 1000,
    }


def create_topics(bootstrap, *topics, config=None):
    a = AdminClient({"bootstrap.servers": bootstrap})
    for f in a.create_topics([NewTopic(t, PARTITIONS, 1, config=config or {}) for t in topics]).values():
        f.result(20)


def producer(bootstrap):
    # Java's partitioner, so that a user's region and clicks are in the same partition number.
    return Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True,
                     "partitioner": "murmur2_random"})


class Feeder(threading.Thread):
    """Produces make(i) = (key, value) for i = 0, 1, … at about `rate` records a second until
    finish() is called and at least `minimum` were sent; `acked` holds what the broker acknowledged,
    in order (the truth the output is checked against)."""

    def __init__(self, bootstrap, topic, make, rate, minimum):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.make = bootstrap, topic, make
        self.rate, self.minimum = rate, minimum
        self.acked, self.errors, self.sent = [], [], 0
        self.finishing = threading.Event()

    def run(self):
        p = producer(self.bootstrap)

        def done(record):
            def cb(err, _msg):
                (self.errors if err else self.acked).append(err or record)
            return cb

        start = time.time()
        while not self.finishing.is_set() or self.sent < self.minimum:
            record = self.make(self.sent)
            p.produce(self.topic, key=record[0], value=record[1], on_delivery=done(record))
            self.sent += 1
            p.poll(0)
            time.sleep(max(0.0, start + self.sent / self.rate - time.time()))
        assert p.flush(30) == 0

    def finish(self):
        self.finishing.set()
        self.join(60)
        assert not self.is_alive(), "the feeder did not finish"
        assert not self.errors, self.errors
        assert len(self.acked) == self.sent
        return self.acked


def long_value(v):
    return struct.unpack(">q", v)[0]


class OutputReader:
    """Every record of an output topic (string keys, long values; other values with another
    `decode`) from the beginning, in order per partition, read with `isolation`."""

    def __init__(self, bootstrap, topic, isolation, decode=long_value):
        self.decode = decode
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": "checker",
                           "enable.auto.commit": False, "isolation.level": isolation,
                           "enable.partition.eof": True})
        self.c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        self.topic = topic
        self.records = []  # (partition, offset, key, value)
        self.last = {}
        self.eof = {}

    def poll(self, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            m = self.c.poll(0.1)
            if m is None:
                continue
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    self.eof[m.partition()] = m.offset()
                    continue
                raise AssertionError(m.error())
            key, value = m.key().decode(), m.value()
            value = None if value is None else self.decode(value)
            self.records.append((m.partition(), m.offset(), key, value))
            self.last[key] = value
            self.eof.pop(m.partition(), None)

    def read_to_end(self, timeout=30):
        """Polls until every partition reported its end at or past its high watermark (for
        read_committed with no open transaction, the last stable offset is the high watermark)."""
        highs = {p: self.c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1]
                 for p in range(PARTITIONS)}
        deadline = time.time() + timeout
        while time.time() < deadline:
            if all(self.eof.get(p, -1) >= h for p, h in highs.items()):
                return self
            self.poll(0.2)
        raise AssertionError(f"{self.topic}: not at the end {highs} after {timeout} s: {self.eof}")

    def updates(self):
        """key → its values in offset order (a key's records are all in one partition)."""
        out = collections.defaultdict(list)
        for _p, _o, key, value in sorted(self.records):
            out[key].append(value)
        return out

    def close(self):
        self.c.close()


def wait_until(what, predicate, timeout, app, reader):
    deadline = time.time() + timeout
    while time.time() < deadline:
        reader.poll(0.3)
        if predicate():
            return
        assert app.alive(), f"the application died while waiting for {what}:\n{app.log_tail()}"
    raise AssertionError(f"no {what} within {timeout} s; last values {reader.last}\n{app.log_tail()}")


def committed(admin, group, topic):
    """The sum of the offsets `group` committed on `topic`'s partitions."""
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])
    result = admin.list_consumer_group_offsets([request])[group].result(10)
    return sum(max(tp.offset, 0) for tp in result.topic_partitions)


def end_offsets(consumer, topic):
    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(PARTITIONS)}


def cleaned_to(broker, topic):
    """partition → the end offset of the furthest cleaning of `topic` in the broker's log."""
    out = {}
    for line in broker.log_text().splitlines():
        if "cleaned a log" in line:
            fields = dict(re.findall(r"(\w+)=(\S+)", line))
            if fields.get("topic") == topic:
                p = int(fields["partition"])
                out[p] = max(out.get(p, 0), int(fields["to"]))
    return out


def restored(app):
    """The records the latest run of `app` restored into its stores, per changelog."""
    log = app.log_path.read_text(errors="replace").split(f"===== run {app.runs} =====")[-1]
    out = collections.Counter()
    for changelog, n in re.findall(r"Finished restoring changelog (\S+) to store \S+ with a total "
                                   r"number of (\d+) records", log):
        out[changelog.rsplit("-", 1)[0]] += int(n)
    return out


def run_with_crash(broker, app, feeder, output, guarantee, truth_of, changelogs):
    """Starts the app while the feeder runs; once it wrote output and committed its input offsets,
    SIGKILLs it half a second later and restarts it; once the restarted instance wrote output and
    committed, waits until the broker cleaned every partition of `changelogs` past the end it had then, and
    SIGKILLs and restarts it again, so that this second restart restores its stores from
    changelogs compacted over the first crash (under exactly_once_v2: over the transaction the
    first SIGKILL left open, which the first restart aborted). Then ends the input, waits until
    the output caught up with truth_of(acked input) and stops the app with SIGTERM. Returns the
    truth, and per partition the output's end offset when the first restart wrote output."""
    isolation = "read_committed" if guarantee == "exactly_once_v2" else "read_uncommitted"
    reader = OutputReader(broker.bootstrap, output, isolation)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    t0 = time.time()
    phases = []

    def phase(name):
        phases.append(f"{name} {time.time() - t0:.1f}")

    feeder.start()
    app.start()
    wait_until("output and an offset commit",
               lambda: len(reader.records) >= 50 and committed(admin, app.group, feeder.topic) > 0,
               90, app, reader)
    time.sleep(0.5)
    app.kill9()  # the feeder goes on: input arrives before, during and after the crash
    phase("kill")
    before, commits = len(reader.records), committed(admin, app.group, feeder.topic)
    app.start()
    # Output and an offset commit from the restarted instance (so that the second SIGKILL, like
    # the first, loses only the progress since a commit): under exactly_once_v2 its producer
    # (the same transactional.id: the process id is kept in the state directory) aborted the
    # killed instance's transaction first, so the changelogs' ends are past its abort markers.
    wait_until("output and an offset commit from the restarted instance",
               lambda: len(reader.records) >= before + 20
               and committed(admin, app.group, feeder.topic) > commits,
               90, app, reader)
    phase("restarted")
    marks = {t: end_offsets(reader.c, t) for t in changelogs}
    output_marks = end_offsets(reader.c, output)
    started = time.time()
    wait_until(f"cleanings of {changelogs} past {marks}",
               lambda: all(cleaned_to(broker, t).get(p, -1) >= end
                           for t, ends in marks.items() for p, end in ends.items()),
               60, app, reader)
    waited = time.time() - started
    app.kill9()
    phase("kill")
    app.start()
    time.sleep(1)  # input arrives while the restarted instance rejoins and restores its state
    truth = truth_of(feeder.finish())
    # Caught up: all input processed and its offsets committed (under at_least_once the output
    # alone can reach the truth early, counts being over-counted), and the output as expected.
    input_end = sum(end_offsets(reader.c, feeder.topic).values())
    if guarantee == "exactly_once_v2":
        def output_ok():
            return reader.last == truth
    else:
        def output_ok():
            return reader.last.keys() == truth.keys() and all(reader.last[k] >= v for k, v in truth.items())
    wait_until(f"output equal to the truth {truth} and input offsets committed",
               lambda: output_ok() and committed(admin, app.group, feeder.topic) == input_end,
               90, app, reader)
    phase("caught up")
    reader.close()
    # The second restart rebuilt the stores from the changelog topics on Runnel (under
    # exactly_once_v2 it wipes them first: after a crash they may hold uncommitted writes).
    counts = restored(app)
    print(f"{guarantee}: {feeder.sent} input records; {before} output records before the first "
          f"SIGKILL; changelogs cleaned past {marks} {waited:.1f} s after; the second restart "
          f"restored {dict(counts)}; seconds: {', '.join(phases)}")
    assert all(counts[t] > 0 for t in changelogs), f"not restored: {counts}\n{app.log_tail()}"
    return truth, output_marks


def check_changelogs(broker, changelogs, guarantee):
    """Read from the beginning once the application stopped, the part of every partition of
    `changelogs` that the broker cleaned is compacted: every key once, nothing an aborted
    transaction wrote (read_uncommitted sees exactly what read_committed sees), fewer records
    than offsets."""
    for topic in changelogs:
        upto = cleaned_to(broker, topic)
        assert sorted(upto) == list(range(PARTITIONS)), f"{topic}: cleaned {upto}"
        views = {}
        eos = guarantee == "exactly_once_v2"
        for isolation in ["read_uncommitted"] + (["read_committed"] if eos else []):
            r = OutputReader(broker.bootstrap, topic, isolation, decode=bytes).read_to_end()
            views[isolation] = sorted(r.records)
            ends = end_offsets(r.c, topic)
            r.close()
        for p, end in upto.items():
            cleaned = {i: [x for x in views[i] if x[0] == p and x[1] < end] for i in views}
            keys = [k for _p, _o, k, _v in cleaned["read_uncommitted"]]
            assert len(keys) == len(set(keys)), f"{topic}-{p}: keys repeated below {end}: {keys}"
            if "read_committed" in cleaned:
                assert cleaned["read_uncommitted"] == cleaned["read_committed"], \
                    f"{topic}-{p}: aborted records below {end}"
            assert len(keys) < end, (topic, p, end, keys)
            print(f"{topic}-{p} ({guarantee}): {len(keys)} records below offset {end} (cleaned), "
                  f"{ends[p]} offsets in all")


def check_internal_topics(broker, app_id, changelogs, repartitions):
    """The changelog topics are compacted; the repartition topics are deleted by Streams' purge."""
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    topics = sorted(t for t in a.list_topics(timeout=10).topics
                    if t.startswith(app_id + "-") and t.endswith(("-changelog", "-repartition")))
    assert topics == sorted(changelogs + repartitions)
    res = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, t) for t in topics])
    configs = {r.name: {k: e.value for k, e in f.result(10).items()} for r, f in res.items()}
    for t in changelogs:
        assert configs[t]["cleanup.policy"] == "compact", (t, configs[t])
    for t in repartitions:
        assert configs[t]["cleanup.policy"] == "delete", (t, configs[t])
        assert configs[t]["retention.ms"] == "-1", (t, configs[t])


def wait_purged(broker, app, topic):
    """Streams deletes the consumed records of its repartition topics (DeleteRecords) after its
    commits: some partition's log start offset moves up."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "purge-checker"})
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            lows = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[0]
                    for p in range(PARTITIONS)]
            if any(low > 0 for low in lows):
                return
            assert app.alive(), app.log_tail()
            time.sleep(0.5)
        raise AssertionError(f"{topic}: log start offsets still {lows}\n{app.log_tail()}")
    finally:
        c.close()


def final_output(broker, topic, guarantee):
    """The whole output once the application stopped: key → its values in offset order, read
    read_committed for exactly_once_v2; and the (partition, offset) of the records that
    read_uncommitted sees besides, those of aborted transactions (none for at_least_once)."""
    eos = guarantee == "exactly_once_v2"
    reader = OutputReader(broker.bootstrap, topic, "read_committed" if eos else "read_uncommitted")
    updates, committed = reader.read_to_end().updates(), {(p, o) for p, o, _k, _v in reader.records}
    reader.close()
    aborted = set()
    if eos:
        everything = OutputReader(broker.bootstrap, topic, "read_uncommitted").read_to_end()
        aborted = {(p, o) for p, o, _k, _v in everything.records} - committed
        print(f"{topic}: {len(committed)} committed records, {len(aborted)} aborted")
        everything.close()
    return updates, aborted


def check_aborted_before(aborted, marks, guarantee):
    """Under exactly_once_v2 the first SIGKILL left a transaction with output (and so changelog
    writes: every update goes to both) that was aborted before `marks`, the output's ends when
    the changelogs' ends were taken and then cleaned past."""
    if guarantee == "exactly_once_v2":
        assert any(o < marks[p] for p, o in aborted), f"no aborted output below {marks}: {sorted(aborted)}"


WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliett kilo lima mike november "
         "oscar papa quebec romeo sierra tango").split()


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_wordcount_demo(broker_factory, tmp_path, classes, guarantee):
    broker = broker_factory(**BROKER_SETTINGS)
    create_topics(broker.bootstrap, "streams-plaintext-input", "streams-wordcount-output")
    rng = random.Random(13)

    def line(_i):
        return None, " ".join(rng.choice(WORDS) for _ in range(4)).encode()

    def truth_of(acked):
        return dict(collections.Counter(w for _k, v in acked for w in v.decode().split()))

    store = "streams-wordcount-KSTREAM-AGGREGATE-STATE-STORE-0000000003"
    app = StreamsApp(tmp_path, "org.apache.kafka.streams.examples.wordcount.WordCountDemo",
                     "streams-wordcount", classes,
                     app_settings(broker, tmp_path, guarantee))
    feeder = Feeder(broker.bootstrap, "streams-plaintext-input", line, rate=100, minimum=300)
    try:
        truth, marks = run_with_crash(broker, app, feeder, "streams-wordcount-output", guarantee,
                                      truth_of, [f"{store}-changelog"])
        wait_purged(broker, app, f"{store}-repartition")
        app.stop()
    finally:
        if app.alive():
            app.kill9()
    check_internal_topics(broker, "streams-wordcount", [f"{store}-changelog"], [f"{store}-repartition"])
    check_changelogs(broker, [f"{store}-changelog"], guarantee)

    updates, aborted = final_output(broker, "streams-wordcount-output", guarantee)
    check_aborted_before(aborted, marks, guarantee)
    assert updates.keys() == truth.keys()
    if guarantee == "exactly_once_v2":
        for word, n in truth.items():
            assert updates[word] == list(range(1, n + 1)), (word, n, updates[word])
    else:
        for word, n in truth.items():
            assert updates[word][-1] >= n, (word, n, updates[word])
        print(f"at_least_once surplus: {sum(u[-1] for u in updates.values()) - sum(truth.values())} "
              f"of {sum(truth.values())} words")


REGIONS = ["north", "south", "east", "west"]
USERS = [f"user{i:02d}" for i in range(12)]


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_ktable_kstream_join(broker_factory, tmp_path, classes, guarantee):
    broker = broker_factory(**BROKER_SETTINGS)
    create_topics(broker.bootstrap, "user-regions", config={"cleanup.policy": "compact"})
    create_topics(broker.bootstrap, "user-clicks", "clicks-per-region")
    rng = random.Random(17)
    # The table, written before the clicks (earlier timestamps: Streams processes it first): every
    # user's region, a move for some users (the latest counts), and a deleted user whose clicks the
    # inner join drops.
    region = {u: REGIONS[i % len(REGIONS)] for i, u in enumerate(USERS)}
    table = [(u, r) for u, r in region.items()]
    for u in USERS[::3]:
        region[u] = REGIONS[(REGIONS.index(region[u]) + 1) % len(REGIONS)]
        table.append((u, region[u]))
    deleted = USERS[-1]
    del region[deleted]
    table.append((deleted, None))
    p = producer(broker.bootstrap)
    for u, r in table:
        p.produce("user-regions", key=u.encode(), value=r.encode() if r else None)
    assert p.flush(30) == 0

    def click(_i):
        return rng.choice(USERS).encode(), struct.pack(">q", rng.randint(1, 9))

    joined = collections.defaultdict(list)  # region → the clicks joined to it

    def truth_of(acked):
        for k, v in acked:
            if k.decode() in region:
                joined[region[k.decode()]].append(struct.unpack(">q", v)[0])
        return {r: sum(c) for r, c in joined.items()}

    app = StreamsApp(tmp_path, "RegionClicks", "region-clicks", classes,
                     app_settings(broker, tmp_path, guarantee))
    feeder = Feeder(broker.bootstrap, "user-clicks", click, rate=100, minimum=300)
    try:
        truth, marks = run_with_crash(broker, app, feeder, "clicks-per-region", guarantee,
                                      truth_of, ["region-clicks-region-totals-changelog"])
        wait_purged(broker, app, "region-clicks-by-region-repartition")
        app.stop()
    finally:
        if app.alive():
            app.kill9()
    check_internal_topics(broker, "region-clicks",
                          ["region-clicks-user-regions-STATE-STORE-0000000000-changelog",
                           "region-clicks-region-totals-changelog"],
                          ["region-clicks-by-region-repartition"])
    check_changelogs(broker, ["region-clicks-region-totals-changelog"], guarantee)

    updates, aborted = final_output(broker, "clicks-per-region", guarantee)
    check_aborted_before(aborted, marks, guarantee)
    assert updates.keys() == truth.keys()
    if guarantee == "exactly_once_v2":
        for r, values in updates.items():
            diffs = [b - a for a, b in zip([0] + values, values)]
            assert all(d > 0 for d in diffs), (r, values)
            assert sorted(diffs) == sorted(joined[r]), (r, values, joined[r])
            assert values[-1] == truth[r]
    else:
        for r, total in truth.items():
            assert updates[r][-1] >= total, (r, total, updates[r])
        print(f"at_least_once surplus: {sum(u[-1] for u in updates.values()) - sum(truth.values())} "
              f"of {sum(truth.values())} clicks")
