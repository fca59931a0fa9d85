"""A single Runnel node with three `log.dirs`, driven with Apache Kafka's own tools (4.4.0 and
4.1.1): new partitions spread over the dirs (the one holding the fewest gets the next), each dir
formatted with its own `meta.properties`; `kafka-log-dirs --describe` reports every dir with the
partitions its files hold; `kafka-reassign-partitions --execute` with `log_dirs` in the plan moves a
partition to another dir (AlterReplicaLogDirs, then DescribeLogDirs for `--verify`) while an
idempotent acks=all producer writes to it: every acknowledged record is read back, the old dir is
gone, and a restart finds everything where it was moved."""

import json
import re
import time

import pytest

from helpers import KAFKA_TOOLS_VERSIONS, kafka_tool
from test_cluster import check_acked_read_back, create_topic, steady  # noqa: F401 (fixture)
from test_reassign import fill


def three_dirs(broker_factory, tmp_path, **extra):
    dirs = [tmp_path / "b0" / f"d{i}" for i in range(3)]
    b = broker_factory(**{"log.dirs": ",".join(str(d) for d in dirs), **extra})
    return b, dirs


def log_dirs_report(version, bootstrap, *args):
    """kafka-log-dirs --describe: {logDir: {partition: entry}} of broker 1, with each dir's error."""
    rc, out, err = kafka_tool("kafka-log-dirs", "--bootstrap-server", bootstrap, "--describe", *args,
                              version=version)
    assert rc == 0, err + out
    assert "Querying brokers for log directories information" in out, out
    assert "Received log directory information from brokers 1" in out, out
    report = json.loads(out.strip().splitlines()[-1])
    assert report["version"] == 1 and [b["broker"] for b in report["brokers"]] == [1], report
    dirs = {}
    for d in report["brokers"][0]["logDirs"]:
        assert d["error"] is None, d
        dirs[d["logDir"]] = {p["partition"]: p for p in d["partitions"]}
    return dirs


def segment_bytes(path):
    return sum(f.stat().st_size for f in path.iterdir() if f.suffix == ".log")


def where(dirs, topic):
    """{partition name: index of the dir holding its directory}, from the files."""
    out = {}
    for i, d in enumerate(dirs):
        for p in d.iterdir():
            if p.is_dir() and re.fullmatch(re.escape(topic) + r"-\d+", p.name):
                assert p.name not in out, f"{p.name} in two dirs"
                out[p.name] = i
    return out


@pytest.mark.parametrize("version", KAFKA_TOOLS_VERSIONS)
def test_partitions_spread_over_log_dirs_and_kafka_log_dirs_describes_them(broker_factory, tmp_path, version):
    b, dirs = three_dirs(broker_factory, tmp_path)
    create_topic(b.bootstrap, "spread", partitions=6, rf=1)
    fill(b.bootstrap, "spread", 6, 50, size=100)

    # Each dir is formatted: the same node and cluster, its own directory id; the metadata log
    # lives in the first.
    props = [dict(line.split("=", 1) for line in (d / "meta.properties").read_text().splitlines()
                  if "=" in line) for d in dirs]
    assert {p["node.id"] for p in props} == {"1"}
    assert len({p["cluster.id"] for p in props}) == 1
    assert len({p["directory.id"] for p in props}) == 3
    assert (dirs[0] / "__cluster_metadata-0").is_dir()
    assert not (dirs[1] / "__cluster_metadata-0").exists()

    placed = where(dirs, "spread")
    assert sorted(placed) == [f"spread-{p}" for p in range(6)]
    assert sorted(list(placed.values()).count(i) for i in range(3)) == [2, 2, 2], placed

    report = log_dirs_report(version, b.bootstrap, "--topic-list", "spread")
    assert sorted(report) == sorted(str(d) for d in dirs), report
    for i, d in enumerate(dirs):
        listed = report[str(d)]
        assert sorted(listed) == sorted(p for p, at in placed.items() if at == i), (d, listed)
        for name, entry in listed.items():
            assert entry["isFuture"] is False and entry["offsetLag"] == 0, entry
            assert entry["size"] == segment_bytes(d / name) > 0, (name, entry)
    # Without --topic-list every partition is there, internal topics included once created.
    everything = log_dirs_report(version, b.bootstrap)
    assert sum(len(v) for v in everything.values()) >= 6


@pytest.mark.parametrize("version", KAFKA_TOOLS_VERSIONS)
def test_a_partition_moves_to_another_log_dir_under_acks_all(broker_factory, steady, tmp_path, version):
    b, dirs = three_dirs(broker_factory, tmp_path)
    boot = b.bootstrap
    topic = "moving"
    create_topic(boot, topic, partitions=1, rf=1, config={"segment.bytes": "1048576"})
    # 12 MiB to copy, held to 1.5 MB/s by the throttle: the move is seen in progress for seconds.
    fill(boot, topic, 1, 12000, size=1024)
    src = where(dirs, topic)[f"{topic}-0"]
    dst = (src + 1) % 3
    prod = steady(boot, topic, 1, rate=200)
    prod.wait_acks_beyond(100, 30, "producer running")

    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": topic, "partition": 0, "replicas": [1], "log_dirs": [str(dirs[dst])]}]}))
    rc, out, err = kafka_tool("kafka-reassign-partitions", "--bootstrap-server", boot, "--execute",
                              "--reassignment-json-file", str(plan),
                              "--replica-alter-log-dirs-throttle", "1500000", version=version)
    assert rc == 0, err + out
    assert "The replica-alter-dir throttle limit was set to 1500000 B/s" in out, out
    assert f"Successfully started moving log directory to {dirs[dst]} for replica {topic}-0 with broker 1" \
        in out, out

    # In progress: kafka-log-dirs shows the future replica in the target dir.
    report = log_dirs_report(version, boot, "--topic-list", topic)
    future = report[str(dirs[dst])].get(f"{topic}-0")
    current = report[str(dirs[src])].get(f"{topic}-0")
    assert current is not None and current["isFuture"] is False, report
    assert future is not None and future["isFuture"] is True, report
    rc, out, err = kafka_tool("kafka-reassign-partitions", "--bootstrap-server", boot, "--verify",
                              "--preserve-throttles", "--reassignment-json-file", str(plan), version=version)
    assert rc == 0, err + out
    assert f"Reassignment of replica {topic}-0-1 is still in progress." in out, out

    t0 = time.time()

    def verified():
        rc, out, err = kafka_tool("kafka-reassign-partitions", "--bootstrap-server", boot, "--verify",
                                  "--reassignment-json-file", str(plan), version=version)
        assert rc == 0, err + out
        return out if "still in progress" not in out else None

    deadline = time.time() + 90
    while (out := verified()) is None:
        assert time.time() < deadline, "the move did not finish"
        time.sleep(1)
    print(f"move finished {time.time() - t0:.1f} s after the first --verify")
    assert f"Reassignment of replica {topic}-0-1 completed successfully." in out, out
    assert "Clearing broker-level throttles on broker 1" in out, out

    report = log_dirs_report(version, boot, "--topic-list", topic)
    assert list(report[str(dirs[dst])]) == [f"{topic}-0"], report
    assert report[str(dirs[dst])][f"{topic}-0"]["isFuture"] is False
    assert not report[str(dirs[src])], report
    deadline = time.time() + 20
    while any(p.name.startswith(f"{topic}-0") for p in dirs[src].iterdir()):
        assert time.time() < deadline, "the old directory is still there"
        time.sleep(0.2)
    assert where(dirs, topic) == {f"{topic}-0": dst}

    n = prod.acked_count()
    prod.wait_acks_beyond(n + 100, 30, "producer still acknowledged after the move")
    prod.stop()
    assert not prod.failed, prod.failure_summary()
    print(f"acknowledged during the test: {len(prod.acked)}")
    check_acked_read_back(boot, topic, 1, prod.acked, skip_prefix=b"f")

    # A restart finds the moved partition in its new dir, with everything in it.
    b.restart()
    assert where(dirs, topic) == {f"{topic}-0": dst}
    report = log_dirs_report(version, boot, "--topic-list", topic)
    assert list(report[str(dirs[dst])]) == [f"{topic}-0"], report
    check_acked_read_back(boot, topic, 1, prod.acked, skip_prefix=b"f")


def test_alter_replica_log_dirs_errors(broker_factory, tmp_path):
    """A plan naming a dir that is not one of log.dirs is refused by the broker
    (LOG_DIR_NOT_FOUND), and nothing moves."""
    version = KAFKA_TOOLS_VERSIONS[-1]
    b, dirs = three_dirs(broker_factory, tmp_path)
    create_topic(b.bootstrap, "stay", partitions=1, rf=1)
    before = where(dirs, "stay")
    plan = tmp_path / "bad.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": "stay", "partition": 0, "replicas": [1], "log_dirs": [str(tmp_path / "nowhere")]}]}))
    rc, out, err = kafka_tool("kafka-reassign-partitions", "--bootstrap-server", b.bootstrap, "--execute",
                              "--reassignment-json-file", str(plan), version=version)
    assert rc != 0, out
    assert "LogDirNotFoundException" in out + err, out + err
    assert where(dirs, "stay") == before
