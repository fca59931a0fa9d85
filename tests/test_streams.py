"""Kafka Streams 4.4.0, unmodified (Maven jars in .deps/streams-libs), on Runnel: Apache Kafka's
WordCountDemo (kafka-streams-examples 4.3.1, the newest served) and our own stateful application
with a KTable–KStream join (tests/java/streams/RegionClicks.java: user → region table, user → clicks
stream, joined and summed per region), each with processing.guarantee at_least_once and
exactly_once_v2.

Every run feeds input while the application runs, kills the application with SIGKILL half a second
after it has written output and committed input offsets (commit.interval.ms 1000 / 1500: so inside
an open transaction under exactly_once_v2, after progress not yet committed under at_least_once), restarts
it on the same state directory while the input keeps coming, and stops it with SIGTERM once its
output has caught up. Then, with the input the broker acknowledged as the truth:

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
repartition records (DeleteRecords) moved their log start offset. The restarted instance restored
its stores from the changelogs. The whole file takes about 55 s (four runs of about 13 s)."""

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
# its short session timeout.
BROKER_SETTINGS = {"group.initial.rebalance.delay.ms": "0", "group.min.session.timeout.ms": "1000"}
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
        # the main consumer's: a killed instance is out of the group within 3 s
        "session.timeout.ms": 3000,
        "heartbeat.interval.ms": 500,
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


class OutputReader:
    """Every record of an output topic (string keys, long values) from the beginning, in order per
    partition, read with `isolation`."""

    def __init__(self, bootstrap, topic, isolation):
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
            key, (value,) = m.key().decode(), struct.unpack(">q", m.value())
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


def run_with_crash(broker, app, feeder, output, guarantee, truth_of):
    """Starts the app while the feeder runs; once it wrote output and committed its input offsets,
    SIGKILLs it half a second later, restarts it, ends the input, waits until the output caught up
    with truth_of(acked input) and stops the app with SIGTERM. Returns the truth."""
    isolation = "read_committed" if guarantee == "exactly_once_v2" else "read_uncommitted"
    reader = OutputReader(broker.bootstrap, output, isolation)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    feeder.start()
    app.start()
    wait_until("output and an offset commit",
               lambda: len(reader.records) >= 50 and committed(admin, app.group, feeder.topic) > 0,
               90, app, reader)
    time.sleep(0.5)
    app.kill9()  # the feeder goes on: input arrives before, during and after the crash
    before = len(reader.records)
    time.sleep(0.5)
    app.start()
    time.sleep(2)  # input arrives while the restarted instance rejoins and restores its state
    truth = truth_of(feeder.finish())
    if guarantee == "exactly_once_v2":
        def caught_up():
            return reader.last == truth
    else:
        def caught_up():
            return reader.last.keys() == truth.keys() and all(reader.last[k] >= v for k, v in truth.items())
    wait_until(f"output equal to the truth {truth}", caught_up, 90, app, reader)
    reader.close()
    print(f"{guarantee}: {feeder.sent} input records; {before} output records before the SIGKILL")
    # The restarted instance rebuilt its stores from the changelog topics on Runnel (under
    # exactly_once_v2 it wipes them first: after a crash they may hold uncommitted writes).
    restart_log = app.log_path.read_text(errors="replace").split(f"===== run {app.runs} =====")[-1]
    restored = [int(n) for n in re.findall(r"Finished restoring changelog \S+ to store \S+ with a total "
                                           r"number of (\d+) records", restart_log)]
    assert sum(restored) > 0, f"nothing restored from the changelogs: {restored}\n{app.log_tail()}"
    return truth


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
    read_committed for exactly_once_v2 (then the number of records that read_uncommitted sees
    besides, those of transactions aborted after the SIGKILL, is printed)."""
    eos = guarantee == "exactly_once_v2"
    reader = OutputReader(broker.bootstrap, topic, "read_committed" if eos else "read_uncommitted")
    updates, committed = reader.read_to_end().updates(), len(reader.records)
    reader.close()
    if eos:
        everything = OutputReader(broker.bootstrap, topic, "read_uncommitted").read_to_end()
        print(f"{topic}: {committed} committed records, {len(everything.records) - committed} aborted")
        everything.close()
    return updates


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

    app = StreamsApp(tmp_path, "org.apache.kafka.streams.examples.wordcount.WordCountDemo",
                     "streams-wordcount", classes,
                     app_settings(broker, tmp_path, guarantee))
    feeder = Feeder(broker.bootstrap, "streams-plaintext-input", line, rate=100, minimum=300)
    try:
        truth = run_with_crash(broker, app, feeder, "streams-wordcount-output",
                                       guarantee, truth_of)
        store = "streams-wordcount-KSTREAM-AGGREGATE-STATE-STORE-0000000003"
        wait_purged(broker, app, f"{store}-repartition")
        app.stop()
    finally:
        if app.alive():
            app.kill9()
    check_internal_topics(broker, "streams-wordcount", [f"{store}-changelog"], [f"{store}-repartition"])

    updates = final_output(broker, "streams-wordcount-output", guarantee)
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
        truth = run_with_crash(broker, app, feeder, "clicks-per-region", guarantee,
                                       truth_of)
        wait_purged(broker, app, "region-clicks-by-region-repartition")
        app.stop()
    finally:
        if app.alive():
            app.kill9()
    check_internal_topics(broker, "region-clicks",
                          ["region-clicks-user-regions-STATE-STORE-0000000000-changelog",
                           "region-clicks-region-totals-changelog"],
                          ["region-clicks-by-region-repartition"])

    updates = final_output(broker, "clicks-per-region", guarantee)
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
