"""The `runnel` command-line tool against a real `runnel serve`: every client command with its
text and JSON output, exit codes, profiles and environment, and the partitioner checked against
the Java client (kafka-console-producer with parse.key=true)."""

import json
import os
import re
import subprocess
import time

import pytest

from helpers import ROOT, RUNNEL, kafka_tool, runnel_cli


def run(broker, *args, input=None, env=None, timeout=60, bootstrap=True):
    """Runs `runnel ARGS`; returns (rc, stdout, stderr)."""
    return runnel_cli(broker.bootstrap if bootstrap else None, *args, input=input, env=env,
                      timeout=timeout)


def ok(broker, *args, **kw):
    rc, out, err = run(broker, *args, **kw)
    assert rc == 0, f"runnel {' '.join(args)} exited {rc}:\n{out}\n{err}"
    return out


def js(broker, *args, **kw):
    return json.loads(ok(broker, "--format", "json", *args, **kw))


def test_topic_commands(broker):
    assert ok(broker, "topic", "create", "orders", "-p", "3", "-c", "retention.ms=86400000") == "Created topic orders.\n"
    rc, out, err = run(broker, "topic", "create", "orders", "-p", "3")
    assert rc == 1
    assert "TOPIC_ALREADY_EXISTS (36)" in err and "hint: pass --if-not-exists" in err
    assert ok(broker, "topic", "create", "orders", "--if-not-exists") == "Topic orders exists already.\n"
    ok(broker, "topic", "create", "a-much-longer-topic-name", "-p", "1")
    lines = ok(broker, "topic", "list").splitlines()
    assert lines[0].split() == ["TOPIC", "PARTITIONS", "REPLICATION"]
    assert lines[1:] == [
        "a-much-longer-topic-name  1           1",
        "orders                    3           1",
    ]
    listed = js(broker, "topic", "list")
    assert {t["topic"]: t["partitions"] for t in listed} == {"a-much-longer-topic-name": 1, "orders": 3}

    desc = ok(broker, "topic", "describe", "orders").splitlines()
    assert re.match(r"Topic: orders  TopicId: [0-9a-f-]{36}  PartitionCount: 3  ReplicationFactor: 1$", desc[0])
    assert desc[1].split() == ["PARTITION", "LEADER", "REPLICAS", "ISR"]
    assert [l.split() for l in desc[2:5]] == [[str(p), "1", "1", "1"] for p in range(3)]
    assert desc[5:] == ["Configs:", "  retention.ms=86400000"]

    assert ok(broker, "topic", "add-partitions", "orders", "--total", "5") == "Topic orders now has 5 partitions.\n"
    ok(broker, "topic", "alter-config", "orders", "--set", "cleanup.policy=compact", "--delete", "retention.ms")
    d = js(broker, "topic", "describe", "orders")
    assert len(d["partitions"]) == 5
    assert {c["name"]: c["value"] for c in d["configs"]} == {"cleanup.policy": "compact"}

    rc, _, err = run(broker, "topic", "add-partitions", "orders", "--total", "2")
    assert rc == 2 and "INVALID_PARTITIONS (37)" in err, err
    assert ok(broker, "topic", "delete", "orders") == "Deleted topic orders.\n"
    rc, _, err = run(broker, "topic", "describe", "orders")
    assert rc == 3 and "UNKNOWN_TOPIC_OR_PARTITION" in err and "runnel topic list" in err
    assert ok(broker, "topic", "delete", "orders", "--if-exists") == ""


def test_produce_and_consume(broker, tmp_path):
    ok(broker, "topic", "create", "events", "-p", "3")
    lines = "".join(f"user{i}:payload {i}\n" for i in range(30))
    report = ok(broker, "produce", "events", "-K", ":", "-H", "source=cli", "--report", input=lines).splitlines()
    assert len(report) == 30
    placed = {}
    for line in report:
        part, offset, key = line.split("\t")
        placed[key] = (int(part), int(offset))

    # Every record back, in kcat's format language.
    out = ok(broker, "consume", "events", "--from", "beginning", "-e", "-F", "%p|%o|%k|%s|%h\\n")
    got = [l.split("|") for l in out.splitlines()]
    assert len(got) == 30
    for p, o, k, v, h in got:
        assert placed[k] == (int(p), int(o))
        assert v == f"payload {k[4:]}"
        assert h == "source=cli"

    # JSON lines.
    recs = [json.loads(l) for l in ok(broker, "--format", "json", "consume", "events", "--from", "beginning", "-e").splitlines()]
    assert len(recs) == 30
    assert recs[0]["headers"] == [{"key": "source", "value": "cli"}]
    assert {r["key"] for r in recs} == set(placed)

    # A line format with headers, partition and timestamp.
    ok(broker, "topic", "create", "timed", "-p", "3")
    ok(broker, "produce", "timed", "--line-format", "%h\\t%p\\t%T\\t%k=%v", input="kind=x,n=1\t2\t1700000000000\tk1=v1\nkind=y\t2\t1700000001000\tk2=v2\n")
    ok(broker, "produce", "timed", "-p", "2", input="now\n")
    tail = ok(broker, "consume", "timed", "-p", "2", "--from", "-3", "-c", "2", "-F", "%T %k %s %h\\n").splitlines()
    assert tail == ["1700000000000 k1 v1 kind=x,n=1", "1700000001000 k2 v2 kind=y"]
    # From a time, from an offset, with a count, with a header filter.
    assert ok(broker, "consume", "timed", "-p", "2", "--from", "@2023-11-14T22:13:20.500Z", "-e", "-F", "%k %s\\n") == "k2 v2\n %s\n" % "now"
    assert ok(broker, "consume", "timed", "--from", "@1700000000000", "-e", "-F", "%k\\n") == "k1\nk2\n\n"
    p2 = placed["user0"][0]
    out = ok(broker, "consume", "events", "-p", str(p2), "--from", "1", "-c", "2", "-F", "%o\\n")
    assert out == "1\n2\n"
    assert ok(broker, "consume", "timed", "--from", "beginning", "-e", "--header-filter", "kind=y", "-F", "%k\\n") == "k2\n"
    assert ok(broker, "consume", "timed", "--from", "beginning", "-e", "--header-filter", "n", "-F", "%k\\n") == "k1\n"
    # The default start is the end: nothing old is printed.
    assert ok(broker, "consume", "events", "-e") == ""
    rc, _, err = run(broker, "consume", "events", "-p", "9", "-e")
    assert rc == 3 and "has no partition 9" in err
    src = tmp_path / "lines.txt"
    src.write_text("f1|one\nf2|two\n")
    ok(broker, "produce", "timed", "-p", "0", "-K", "|", "-f", str(src))
    assert ok(broker, "consume", "timed", "-p", "0", "--from", "beginning", "-e", "-F", "%k %s\\n") == "f1 one\nf2 two\n"
    rc, _, err = run(broker, "produce", "events", "-f", str(tmp_path / "missing.txt"))
    assert rc == 2 and "cannot read" in err
    rc, _, err = run(broker, "produce", "events", "-K", ":", input="no separator here\n")
    assert rc == 2 and "line 1" in err


def test_read_committed(broker):
    from confluent_kafka import Producer

    ok(broker, "topic", "create", "tx", "-p", "1")
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "cli-tx"})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce("tx", key="a", value="aborted")
    p.flush()
    p.abort_transaction(30)
    p.begin_transaction()
    p.produce("tx", key="c", value="committed")
    p.commit_transaction(30)
    all_ = ok(broker, "consume", "tx", "--from", "beginning", "-e", "-F", "%s\\n")
    assert all_ == "aborted\ncommitted\n"
    committed = ok(broker, "consume", "tx", "--from", "beginning", "-e", "--read-committed", "-F", "%s\\n")
    assert committed == "committed\n"


def test_partitioner_matches_the_java_client(broker):
    """The same keys land on the same partitions from kafka-console-producer (parse.key=true)
    and from `runnel produce -K`."""
    ok(broker, "topic", "create", "java-keys", "-p", "7")
    ok(broker, "topic", "create", "runnel-keys", "-p", "7")
    keys = [f"key-{i}" for i in range(150)] + ["", "ü-unicode", "a", "abc", "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"]
    keys = [k for k in keys if k]
    lines = "".join(f"{k}\t{k}-value\n" for k in keys)
    rc, out, err = kafka_tool(
        "kafka-console-producer", "--bootstrap-server", broker.bootstrap, "--topic", "java-keys",
        "--property", "parse.key=true", input=lines,
    )
    assert rc == 0, err
    ok(broker, "produce", "runnel-keys", "-K", "\\t", input=lines)

    def placement(topic):
        recs = [json.loads(l) for l in ok(broker, "--format", "json", "consume", topic, "--from", "beginning", "-e").splitlines()]
        return {r["key"]: r["partition"] for r in recs}

    java, ours = placement("java-keys"), placement("runnel-keys")
    assert len(java) == len(keys)
    assert java == ours
    assert len(set(java.values())) == 7, "the keys spread over every partition"


def test_group_commands(broker_factory):
    broker = broker_factory(**{"group.initial.rebalance.delay.ms": "0"})
    ok(broker, "topic", "create", "work", "-p", "2")
    ok(broker, "produce", "work", "-p", "0", input="".join(f"a{i}\n" for i in range(10)))
    ok(broker, "produce", "work", "-p", "1", input="".join(f"b{i}\n" for i in range(4)))
    # A group member reads 6 records and commits exactly those.
    out = ok(broker, "consume", "work", "-g", "billing", "--from", "beginning", "-c", "6", "-F", "%s\\n")
    assert len(out.splitlines()) == 6
    groups = ok(broker, "group", "list").splitlines()
    assert groups[0].split() == ["GROUP", "STATE", "PROTOCOL-TYPE"]
    assert groups[1].split() == ["billing", "Empty", "consumer"]
    d = js(broker, "group", "describe", "billing")
    assert d["state"] == "Empty"
    assert sum(o["current_offset"] for o in d["offsets"]) == 6
    assert all(o["lag"] == o["log_end_offset"] - o["current_offset"] for o in d["offsets"])
    assert {o["log_end_offset"] for o in d["offsets"]} <= {10, 4}
    text = ok(broker, "group", "describe", "billing").splitlines()
    assert text[0] == "Group billing is Empty (0 members)."
    assert text[1].split() == ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"]

    # Resets: a dry run by default, then applied.
    rc, out, err = run(broker, "group", "reset-offsets", "billing", "-t", "work", "--to-earliest")
    assert rc == 0 and "Dry run" in err
    current = {o["partition"]: str(o["current_offset"]) for o in d["offsets"]}
    assert [l.split() for l in out.splitlines()] == [
        ["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"],
        ["work", "0", current.get(0, "-"), "0"],
        ["work", "1", current.get(1, "-"), "0"],
    ]
    assert js(broker, "group", "describe", "billing")["offsets"] == d["offsets"], "a dry run changes nothing"
    ok(broker, "group", "reset-offsets", "billing", "-t", "work", "--to-offset", "3", "--execute")
    offs = {o["partition"]: o["current_offset"] for o in js(broker, "group", "describe", "billing")["offsets"]}
    assert offs == {0: 3, 1: 3}
    ok(broker, "group", "reset-offsets", "billing", "--all-topics", "--shift-by", "-2", "--execute")
    offs = {o["partition"]: o["current_offset"] for o in js(broker, "group", "describe", "billing")["offsets"]}
    assert offs == {0: 1, 1: 1}
    ok(broker, "group", "reset-offsets", "billing", "-t", "work", "--to-latest", "--execute")
    offs = {o["partition"]: o["current_offset"] for o in js(broker, "group", "describe", "billing")["offsets"]}
    assert offs == {0: 10, 1: 4}
    ok(broker, "group", "reset-offsets", "billing", "-t", "work", "--to-datetime", "2000-01-01T00:00:00Z", "--execute")
    offs = {o["partition"]: o["current_offset"] for o in js(broker, "group", "describe", "billing")["offsets"]}
    assert offs == {0: 0, 1: 0}

    # While a member is active: shown with its id and host, and resets and deletes are refused.
    member = subprocess.Popen(
        [str(RUNNEL), "--bootstrap-server", broker.bootstrap, "consume", "work", "-g", "billing", "-F", "%s\\n"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            d = js(broker, "group", "describe", "billing")
            if d["state"] == "Stable" and all(o["member_id"] for o in d["offsets"]):
                break
            time.sleep(0.3)
        assert d["state"] == "Stable", d
        assert d["members"][0]["host"] == "/127.0.0.1"
        assert d["members"][0]["client_id"] == "runnel-cli"
        text = ok(broker, "group", "describe", "billing")
        assert "Group billing is Stable (1 member, assignor range)." in text
        rc, _, err = run(broker, "group", "reset-offsets", "billing", "-t", "work", "--to-earliest", "--execute")
        assert rc == 2 and "stop its consumers" in err, err
        rc, _, err = run(broker, "group", "delete", "billing")
        assert rc == 1 and "NON_EMPTY_GROUP" in err and "stop its consumers first" in err, err
    finally:
        member.terminate()
        member.wait(10)
    deadline = time.time() + 30
    while js(broker, "group", "describe", "billing")["state"] != "Empty" and time.time() < deadline:
        time.sleep(0.3)
    assert ok(broker, "group", "delete", "billing") == "Deleted group billing.\n"
    rc, _, err = run(broker, "group", "describe", "billing")
    assert rc == 3 and "GROUP_ID_NOT_FOUND" in err


def test_records_cluster_and_perf(broker):
    ok(broker, "topic", "create", "recs", "-p", "2")
    ok(broker, "produce", "recs", "-p", "0", input="".join(f"{i}\n" for i in range(10)))
    out = ok(broker, "records", "delete", "recs", "-p", "0", "--before", "4").splitlines()
    assert out[0].split() == ["TOPIC", "PARTITION", "LOW-WATERMARK"]
    assert out[1].split() == ["recs", "0", "4"]
    assert ok(broker, "consume", "recs", "-p", "0", "--from", "beginning", "-e", "-F", "%o\\n").splitlines()[0] == "4"
    assert js(broker, "records", "delete", "recs", "--before", "-1") == [
        {"topic": "recs", "partition": 0, "low_watermark": 10},
        {"topic": "recs", "partition": 1, "low_watermark": 0},
    ]
    info = ok(broker, "cluster", "info").splitlines()
    assert re.match(r"Cluster id: \S{22}$", info[0])
    assert info[1] == "Controller: 1"
    assert info[2].split() == ["ID", "HOST", "PORT", "RACK"]
    assert info[3].split() == ["1", "127.0.0.1", str(broker.port), "-"]

    ok(broker, "topic", "create", "perf", "-p", "2")
    out = ok(broker, "perf", "produce", "perf", "-n", "20000", "-s", "200", "--quiet", timeout=120)
    assert re.match(r"20000 records sent, [\d.]+ records/sec \([\d.]+ MB/sec\), [\d.]+ ms avg latency, [\d.]+ ms max latency, [\d.]+ ms 50th, [\d.]+ ms 95th, [\d.]+ ms 99th, [\d.]+ ms 99.9th\.$", out), out
    p = js(broker, "perf", "produce", "perf", "-n", "5000", "-s", "100", "--acks", "1", "-z", "lz4", "--quiet")
    assert p["records"] == 5000 and p["errors"] == 0 and p["latency_ms"]["p99"] >= p["latency_ms"]["p50"] > 0
    c = js(broker, "perf", "consume", "perf", "-n", "25000", "--quiet", timeout=120)
    assert c["records"] == 25000
    assert abs(c["mb"] - (20000 * 200 + 5000 * 100) / 1048576) < 0.01
    rc, _, err = run(broker, "perf", "consume", "perf", "-n", "30000", "--timeout-ms", "1000", "--quiet")
    assert rc == 5 and "only 25000 of 30000" in err


def test_settings_profiles_and_exit_codes(broker, tmp_path):
    ok(broker, "topic", "create", "prof", "-p", "1")
    profiles = tmp_path / "profiles"
    profiles.write_text(f"[default]\nbootstrap.servers = 127.0.0.1:1\n\n[local]\nbootstrap.servers = {broker.bootstrap}\nclient.id = from-profile\n")
    env = {"RUNNEL_PROFILES": str(profiles)}
    assert "prof" in ok(broker, "--profile", "local", "topic", "list", bootstrap=False, env=env)
    assert "prof" in ok(broker, "topic", "list", bootstrap=False, env={**env, "RUNNEL_PROFILE": "local"})
    # The environment wins over the profile, the flag over both.
    assert "prof" in ok(broker, "topic", "list", bootstrap=False, env={**env, "RUNNEL_BOOTSTRAP_SERVER": broker.bootstrap})
    rc, _, err = run(broker, "topic", "list", bootstrap=False, env=env)
    assert rc == 4 and "cannot reach 127.0.0.1:1" in err and "hint: is a broker running" in err
    rc, _, err = run(broker, "--profile", "nope", "topic", "list", bootstrap=False, env=env)
    assert rc == 2 and "no profile [nope]" in err and "default, local" in err
    rc, _, err = run(broker, "topic", "frobnicate")
    assert rc == 2
    rc, _, err = run(broker, "-X", "acks=banana", "produce", "prof", input="x\n")
    assert rc == 2 and "acks" in err
    rc, out, err = run(broker, "-X", "fetch.min.bytes=1", "produce", "prof", input="x\n")
    assert rc == 0 and "ignoring fetch.min.bytes" in err
    bash = ok(broker, "completions", "bash", bootstrap=False)
    assert "_runnel()" in bash and "reset-offsets" in bash
    assert "#compdef runnel" in ok(broker, "completions", "zsh", bootstrap=False)


def test_cli_against_apache_kafka(tmp_path):
    """The same commands against Apache Kafka 4 itself: the tool is a Kafka client, not a
    Runnel-only one."""
    from helpers import ApacheKafka

    kafka = ApacheKafka(tmp_path).start()
    try:
        k = kafka  # has .bootstrap, as the Runnel fixture does
        deadline = time.time() + 60
        while True:
            rc, out, err = run(k, "topic", "create", "ak", "-p", "3", "-c", "retention.ms=7200000")
            if rc == 0 or time.time() > deadline:
                break
            time.sleep(1)  # the broker may still be registering with its controller
        assert rc == 0, err
        assert "ak" in ok(k, "topic", "list")
        desc = ok(k, "topic", "describe", "ak")
        assert "PartitionCount: 3" in desc and "retention.ms=7200000" in desc
        ok(k, "topic", "alter-config", "ak", "--set", "retention.ms=3600000")
        assert "retention.ms=3600000" in ok(k, "topic", "describe", "ak")
        ok(k, "topic", "add-partitions", "ak", "--total", "4")
        report = ok(k, "produce", "ak", "-K", ":", "-H", "h=1", "-z", "zstd", "--report",
                    input="".join(f"k{i}:v{i}\n" for i in range(40))).splitlines()
        assert len(report) == 40
        # Kafka's broker decompresses and validates every batch: each codec, repeated header keys.
        for codec in ("none", "gzip", "snappy", "lz4"):
            ok(k, "produce", "ak", "-K", ":", "-H", "h=1", "-H", "h=2", "-z", codec, input=f"{codec}:x\n")
        out = ok(k, "consume", "ak", "--from", "beginning", "-e", "-F", "%k=%s %h\\n").splitlines()
        assert sorted(out) == sorted([f"k{i}=v{i} h=1" for i in range(40)] + [f"{c}=x h=1,h=2" for c in ("none", "gzip", "snappy", "lz4")])
        got = ok(k, "consume", "ak", "-g", "ak-group", "--from", "beginning", "-c", "44", "-F", "%s\\n")
        assert len(got.splitlines()) == 44
        d = js(k, "group", "describe", "ak-group")
        assert d["state"] == "Empty" and sum(o["lag"] for o in d["offsets"]) == 0
        assert sum(o["current_offset"] for o in d["offsets"]) == 44
        ok(k, "group", "reset-offsets", "ak-group", "-t", "ak", "--to-earliest", "--execute")
        assert sum(o["current_offset"] for o in js(k, "group", "describe", "ak-group")["offsets"]) == 0
        assert "ak-group" in ok(k, "group", "list")
        ok(k, "group", "delete", "ak-group")
        part = report[0].split("\t")[0]
        assert ok(k, "records", "delete", "ak", "-p", part, "--before", "1").split()[-1] == "1"
        info = js(k, "cluster", "info")
        assert info["controller"] == 1 and info["brokers"][0]["port"] == kafka.port
        out = ok(k, "perf", "produce", "ak", "-n", "5000", "-s", "100", "--quiet")
        assert out.startswith("5000 records sent")
        ok(k, "topic", "delete", "ak")
    finally:
        kafka.stop()


def test_client_examples(broker):
    """The client crate's example per role runs against a real broker (built by `cargo test`)."""
    examples = ROOT / "target" / "debug" / "examples"
    for name in ("admin", "produce", "consume"):
        assert (examples / name).exists(), f"{name} example missing: cargo test builds the examples"

    def example(name, *args):
        p = subprocess.run([str(examples / name), broker.bootstrap, *args], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout.splitlines()

    out = example("admin", "ex")
    assert out[0] == "created ex" and "topic ex with 3 partitions" in out
    out = example("produce", "ex")
    assert len(out) == 10 and all(re.match(r"written to ex-[0-2] at offset \d+$", l) for l in out)
    out = example("consume", "ex", "ex-group")
    assert out[-1] == "read 10 records"
    assert sorted(l.split(" ", 1)[1] for l in out[:-1]) == sorted(f"user-{i % 3}=event {i}" for i in range(10))
    assert js(broker, "group", "describe", "ex-group")["offsets"][0]["lag"] == 0
