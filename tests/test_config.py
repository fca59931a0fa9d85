"""Start-up configuration as an operator meets it: the shipped server.properties, environment
variables, overrides, invalid values and unknown keys, clean shutdown on SIGTERM."""

import os
import signal
import subprocess
import time

from helpers import RUNNEL, ROOT, free_port, kcat


def run_briefly(args, env=None, seconds=1.5):
    p = subprocess.Popen([str(RUNNEL), "serve", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         env=dict(os.environ, **(env or {})))
    try:
        p.wait(seconds)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        p.wait(20)
    return p.returncode, p.stdout.read().decode(errors="replace")


def test_invalid_value_stops_startup_naming_the_key(tmp_path):
    rc, out = run_briefly(["--override", f"log.dirs={tmp_path}", "--override", "log.segment.bytes=lots"])
    assert rc != 0
    assert "log.segment.bytes" in out and "lots" in out


def test_file_env_and_override_precedence_and_effective_config(tmp_path):
    port = free_port()
    conf = tmp_path / "server.properties"
    conf.write_text((ROOT / "config" / "server.properties").read_text()
                    + f"\nlisteners=PLAINTEXT://127.0.0.1:{port}\nnum.partitions=2\nno.such.key=1\n")
    env = {"RUNNEL_LOG_DIRS": str(tmp_path / "data"), "RUNNEL_NUM_PARTITIONS": "3"}
    p = subprocess.Popen([str(RUNNEL), "serve", "--config", str(conf), "--override", "num.partitions=4",
                          "--override", "auto.create.topics.enable=true"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ, **env))
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            rc, out, _ = kcat("-b", f"127.0.0.1:{port}", "-L", "-t", "auto-4", timeout=10)
            if rc == 0 and b"with 4 partitions" in out:
                break
            time.sleep(0.3)
        assert b'topic "auto-4" with 4 partitions' in out, out
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
    log = p.stdout.read().decode(errors="replace")
    assert "num.partitions = 4" in log
    assert f"log.dirs = {tmp_path / 'data'}" in log
    assert "unknown configuration key no.such.key" in log
    assert (tmp_path / "data" / ".kafka_cleanshutdown").exists()
    assert (tmp_path / "data" / "meta.properties").exists()
    assert (tmp_path / "data" / "__cluster_metadata-0").is_dir()
    assert (tmp_path / "data" / "auto-4-3" / "partition.metadata").exists()
