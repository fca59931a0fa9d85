"""Helpers for the real-client suite: a `runnel serve` process on a free port in a temporary
directory, Apache Kafka's tools run from the Maven jars, kcat, and a tiny raw Kafka encoder for
the bad-input tests."""

import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# RUNNEL_BIN runs the suite against another build (e.g. a copy, while the tree is rebuilt).
RUNNEL = Path(os.environ.get("RUNNEL_BIN", ROOT / "target" / "debug" / "runnel"))
KAFKA_LIBS = ROOT / ".deps" / "kafka-libs"

TOOLS = {
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-delete-records": "org.apache.kafka.tools.DeleteRecordsCommand",
    "kafka-configs": "kafka.admin.ConfigCommand",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-transactions": "org.apache.kafka.tools.TransactionsCommand",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A runnel serve process; start()/stop()/kill9()/restart() keep the port and data dir."""

    def __init__(self, tmp: Path, overrides: dict):
        if not RUNNEL.exists():
            raise AssertionError(f"{RUNNEL} is missing: run `cargo build --bins` first")
        self.port = free_port()
        self.data_dir = tmp / "data"
        self.log_path = tmp / "broker.log"
        self.overrides = {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "log.dirs": str(self.data_dir),
            "node.id": "1",
        }
        self.overrides.update(overrides)
        # A test that sets its own listener decides the port.
        self.port = int(self.overrides["listeners"].split(",")[0].rsplit(":", 1)[1])
        self.proc = None

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        args = [str(RUNNEL), "serve"]
        for k, v in self.overrides.items():
            args += ["--override", f"{k}={v}"]
        log = open(self.log_path, "ab")
        env = dict(os.environ, NO_COLOR="1")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"runnel exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"runnel did not listen within 30 s:\n{self.log_text()}")

    def stop(self, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.proc.wait(timeout)
            assert rc == 0, f"runnel exited with {rc} on SIGTERM:\n{self.log_text()}"

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self):
        self.stop()
        return self.start()

    def rss_kib(self):
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def kafka_tool(name, *args, timeout=120, input=None):
    """Runs one of Apache Kafka's tools from the Maven jars; returns (rc, stdout, stderr)."""
    assert KAFKA_LIBS.exists(), "run scripts/install-test-deps.sh first"
    cmd = ["java", "-Xss4m", "-cp", f"{KAFKA_LIBS}/*", TOOLS[name], *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
    return p.returncode, p.stdout, p.stderr


def java_main(main_class, *args, stdout=subprocess.PIPE, stderr=None):
    """Starts any main class from the Kafka jars in the background, as kafka-run-class.sh would
    (e.g. org.apache.kafka.tools.VerifiableConsumer); returns the Popen, stdout in text mode."""
    assert KAFKA_LIBS.exists(), "run scripts/install-test-deps.sh first"
    cmd = ["java", "-Xss4m", "-cp", f"{KAFKA_LIBS}/*", main_class, *args]
    return subprocess.Popen(cmd, stdout=stdout, stderr=stderr, text=True)


def kcat(*args, input=None, timeout=60):
    p = subprocess.run(["kcat", *args], capture_output=True, timeout=timeout, input=input)
    return p.returncode, p.stdout, p.stderr


def raw_frame(api_key, api_version, correlation_id, body=b"", client_id=b"raw"):
    """A request frame with a v1 header (non-flexible)."""
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id)) + client_id
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def read_frame(sock, timeout=5):
    """Reads one response frame; None if the broker closed the connection."""
    sock.settimeout(timeout)
    size = _read_exact(sock, 4)
    if size is None:
        return None
    (n,) = struct.unpack(">i", size)
    return _read_exact(sock, n)


def _read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


def closed_by_peer(sock, timeout=5):
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


class ApacheKafka:
    """A real Apache Kafka broker (KRaft, one broker+controller) from the Maven jars, for checks
    that a client works against Kafka itself and not only against Runnel."""

    def __init__(self, tmp: Path):
        assert KAFKA_LIBS.exists(), "run scripts/install-test-deps.sh first"
        self.tmp = tmp
        self.port, self.cport = free_port(), free_port()
        self.proc = None

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        conf = self.tmp / "server.properties"
        conf.write_text(
            "process.roles=broker,controller\nnode.id=1\n"
            f"controller.quorum.bootstrap.servers=127.0.0.1:{self.cport}\n"
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.cport}\n"
            "controller.listener.names=CONTROLLER\ninter.broker.listener.name=PLAINTEXT\n"
            f"log.dirs={self.tmp}/kafka-data\noffsets.topic.replication.factor=1\n"
            "offsets.topic.num.partitions=3\n"
            "transaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\n"
            "group.initial.rebalance.delay.ms=0\n")
        cp = f"{KAFKA_LIBS}/*"
        subprocess.run(["java", "-cp", cp, "kafka.tools.StorageTool", "format", "-t", "Mk3OEYBSD34fcwNTJENDM2",
                        "-c", str(conf), "--standalone"], check=True, capture_output=True, timeout=120)
        self.log = open(self.tmp / "kafka.log", "wb")
        self.proc = subprocess.Popen(["java", "-Xmx512m", "-Xms512m", "-cp", cp, "kafka.Kafka", str(conf)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"kafka exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError("kafka did not listen within 90 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
