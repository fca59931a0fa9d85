"""The broker's own logs: JSON lines with `log.format=json`, and levels changed at run time with
Apache Kafka's `kafka-configs --entity-type broker-loggers` (DescribeConfigs and
IncrementalAlterConfigs on BROKER_LOGGER), effective at once, without a restart."""

import json
import time

from helpers import kafka_tool, metadata_v7


def configs(bootstrap, *args):
    rc, out, err = kafka_tool("kafka-configs", "--bootstrap-server", bootstrap, "--entity-type", "broker-loggers",
                              "--entity-name", "1", *args)
    assert rc == 0, err + out
    return out


def events_of_a_request(b):
    """The log events (JSON) the broker writes while it answers one Metadata request."""
    seen = len(b.log_text().splitlines())
    metadata_v7(b.bootstrap)
    time.sleep(0.5)
    return [json.loads(line) for line in b.log_text().splitlines()[seen:] if line.strip()]


def test_json_logs_and_broker_logger_levels_changed_at_run_time(broker_factory):
    b = broker_factory(**{"log.format": "json"})
    metadata_v7(b.bootstrap)
    lines = [line for line in b.log_text().splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]
    assert len(events) > 10 and all("level" in e and "fields" in e for e in events)
    assert any(e["fields"].get("message") == "Runnel broker started" for e in events)
    # No request is logged at INFO; DEBUG on the connection module logs each one answered.
    assert not any(e["fields"].get("message") == "completed request" for e in events)
    out = configs(b.bootstrap, "--describe")
    assert "root=INFO" in out and "runnel_broker=INFO" in out, out
    configs(b.bootstrap, "--alter", "--add-config", "runnel_broker.server=DEBUG")
    assert "runnel_broker.server=DEBUG" in configs(b.bootstrap, "--describe")
    new = events_of_a_request(b)
    done = [e for e in new if e["fields"].get("message") == "completed request"]
    assert done and all(e["level"] == "DEBUG" and e["target"] == "runnel_broker::server" for e in done), new
    # Back to the parent's level: the lines stop.
    configs(b.bootstrap, "--alter", "--delete-config", "runnel_broker.server")
    assert "runnel_broker.server=INFO" in configs(b.bootstrap, "--describe")
    new = events_of_a_request(b)
    assert not any(e["fields"].get("message") == "completed request" for e in new), new
    # A logger the broker does not describe is refused by the tool itself; a level that is not
    # one by the broker (INVALID_CONFIG), as by Kafka.
    rc, out, err = kafka_tool("kafka-configs", "--bootstrap-server", b.bootstrap, "--entity-type", "broker-loggers",
                              "--entity-name", "1", "--alter", "--add-config", "kafka.server.Nope=DEBUG")
    assert rc != 0 and "Invalid broker logger(s): kafka.server.Nope" in (out + err), out + err
    rc, out, err = kafka_tool("kafka-configs", "--bootstrap-server", b.bootstrap, "--entity-type", "broker-loggers",
                              "--entity-name", "1", "--alter", "--add-config", "runnel_broker=LOUD")
    assert rc != 0 and "not a supported log level" in (out + err), out + err


def test_an_unknown_log_format_is_refused_at_start(tmp_path):
    import subprocess
    from helpers import RUNNEL
    p = subprocess.run([str(RUNNEL), "serve", "--override", f"log.dirs={tmp_path}/d", "--override", "log.format=xml",
                        "--override", "listeners=PLAINTEXT://127.0.0.1:0"], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "log.format" in p.stderr and "text or json" in p.stderr, p.stderr
