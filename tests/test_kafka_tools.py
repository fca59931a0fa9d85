"""Apache Kafka's own command-line tools (from the Maven jars) against Runnel."""

import json

from helpers import kafka_tool


def topics(broker, *args):
    return kafka_tool("kafka-topics", "--bootstrap-server", broker.bootstrap, *args)


def test_kafka_topics_lifecycle(broker):
    rc, out, err = topics(broker, "--create", "--topic", "tools", "--partitions", "2", "--replication-factor", "1")
    assert rc == 0, err
    assert "Created topic tools." in out
    rc, out, err = topics(broker, "--list")
    assert rc == 0 and out.split() == ["tools"], (out, err)
    rc, out, err = topics(broker, "--describe", "--topic", "tools")
    assert rc == 0, err
    assert "PartitionCount: 2" in out and "ReplicationFactor: 1" in out
    assert "Partition: 1\tLeader: 1\tReplicas: 1\tIsr: 1" in out
    rc, out, err = topics(broker, "--alter", "--topic", "tools", "--partitions", "5")
    assert rc == 0, err
    rc, out, err = topics(broker, "--describe", "--topic", "tools")
    assert "PartitionCount: 5" in out
    # Fewer partitions are refused.
    rc, out, err = topics(broker, "--alter", "--topic", "tools", "--partitions", "3")
    assert rc != 0 and "currently has 5 partition(s); 3 would not be an increase" in (out + err), (out, err)
    # Replication factor 3 on one broker is refused.
    rc, out, err = topics(broker, "--create", "--topic", "rf3", "--partitions", "1", "--replication-factor", "3")
    assert rc != 0 and "Unable to replicate the partition 3 time(s)" in (out + err), (out, err)
    rc, out, err = topics(broker, "--delete", "--topic", "tools")
    assert rc == 0, err
    rc, out, err = topics(broker, "--list")
    assert "tools" not in out.split()


def test_console_producer_consumer_get_offsets_delete_records(broker, tmp_path):
    rc, _, err = topics(broker, "--create", "--topic", "cons", "--partitions", "1")
    assert rc == 0, err
    lines = "".join(f"k{i}\tv{i}\n" for i in range(30))
    rc, out, err = kafka_tool(
        "kafka-console-producer", "--bootstrap-server", broker.bootstrap, "--topic", "cons",
        "--property", "parse.key=true", input=lines,
    )
    assert rc == 0, err
    rc, out, err = kafka_tool(
        "kafka-console-consumer", "--bootstrap-server", broker.bootstrap, "--topic", "cons",
        "--partition", "0", "--offset", "earliest", "--max-messages", "30",
        "--property", "print.key=true", "--timeout-ms", "20000",
    )
    assert rc == 0, err
    assert out.splitlines() == [f"k{i}\tv{i}" for i in range(30)]
    rc, out, err = kafka_tool("kafka-get-offsets", "--bootstrap-server", broker.bootstrap, "--topic", "cons")
    assert rc == 0, err
    assert out.split() == ["cons:0:30"]
    spec = tmp_path / "offsets.json"
    spec.write_text(json.dumps({"partitions": [{"topic": "cons", "partition": 0, "offset": 12}], "version": 1}))
    rc, out, err = kafka_tool("kafka-delete-records", "--bootstrap-server", broker.bootstrap, "--offset-json-file", str(spec))
    assert rc == 0, err
    assert "low_watermark: 12" in out
    rc, out, err = kafka_tool("kafka-get-offsets", "--bootstrap-server", broker.bootstrap, "--topic", "cons", "--time", "-2")
    assert out.split() == ["cons:0:12"], (out, err)
    # Deleted and re-created: the new topic starts empty.
    assert topics(broker, "--delete", "--topic", "cons")[0] == 0
    assert topics(broker, "--create", "--topic", "cons", "--partitions", "1")[0] == 0
    rc, out, err = kafka_tool("kafka-get-offsets", "--bootstrap-server", broker.bootstrap, "--topic", "cons")
    assert out.split() == ["cons:0:0"], (out, err)


def test_kafka_configs_describe_and_alter(broker):
    assert topics(broker, "--create", "--topic", "cfg", "--partitions", "1")[0] == 0
    rc, out, err = kafka_tool(
        "kafka-configs", "--bootstrap-server", broker.bootstrap, "--entity-type", "topics", "--entity-name", "cfg",
        "--alter", "--add-config", "retention.ms=86400000,max.message.bytes=2000",
    )
    assert rc == 0, err
    rc, out, err = kafka_tool("kafka-configs", "--bootstrap-server", broker.bootstrap, "--entity-type", "topics", "--entity-name", "cfg", "--describe")
    assert rc == 0, err
    assert "retention.ms=86400000" in out and "max.message.bytes=2000" in out
    rc, out, err = kafka_tool(
        "kafka-configs", "--bootstrap-server", broker.bootstrap, "--entity-type", "topics", "--entity-name", "cfg",
        "--alter", "--delete-config", "max.message.bytes",
    )
    assert rc == 0, err
    rc, out, err = kafka_tool("kafka-configs", "--bootstrap-server", broker.bootstrap, "--entity-type", "topics", "--entity-name", "cfg", "--describe", "--all")
    assert rc == 0, err
    assert "max.message.bytes=1048588" in out and "retention.ms=86400000" in out
    assert "segment.bytes=1073741824" in out
