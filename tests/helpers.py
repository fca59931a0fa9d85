"""Helpers for the real-client suite: a `runnel serve` process on a free port in a temporary
directory, Apache Kafka's tools run from the Maven jars, kcat, and a tiny raw Kafka encoder for
the bad-input tests."""

import json
import os
import random
import shlex
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# RUNNEL_BIN runs the suite against another build (e.g. a copy, while the tree is rebuilt).
RUNNEL = Path(os.environ.get("RUNNEL_BIN", ROOT / "target" / "debug" / "runnel"))
KAFKA_LIBS = ROOT / ".deps" / "kafka-libs"
# Apache Kafka's tools come in two versions (scripts/install-test-deps.sh): the pinned one in
# .deps/kafka-libs and the newest 4.x in .deps/kafka-libs-<version>. KAFKA_TOOLS_VERSION picks the
# default for kafka_tool (not a RUNNEL_* name: those are broker settings).
KAFKA_VERSION = "4.1.1"
KAFKA_NEWEST = "4.4.0"
KAFKA_TOOLS_VERSIONS = (KAFKA_VERSION, KAFKA_NEWEST)


def kafka_libs(version=None):
    """The directory of Apache Kafka `version`'s jars (default: KAFKA_TOOLS_VERSION, else 4.1.1)."""
    version = version or os.environ.get("KAFKA_TOOLS_VERSION") or KAFKA_VERSION
    libs = KAFKA_LIBS if version == KAFKA_VERSION else ROOT / ".deps" / f"kafka-libs-{version}"
    assert libs.exists(), f"{libs} is missing: run scripts/install-test-deps.sh first"
    return libs


TOOLS = {
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-delete-records": "org.apache.kafka.tools.DeleteRecordsCommand",
    "kafka-configs": "kafka.admin.ConfigCommand",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-transactions": "org.apache.kafka.tools.TransactionsCommand",
    "kafka-metadata-quorum": "org.apache.kafka.tools.MetadataQuorumCommand",
    "kafka-log-dirs": "org.apache.kafka.tools.LogDirsCommand",
    "kafka-features": "org.apache.kafka.tools.FeatureCommand",
    "kafka-leader-election": "org.apache.kafka.tools.LeaderElectionCommand",
    "kafka-reassign-partitions": "org.apache.kafka.tools.reassign.ReassignPartitionsCommand",
    "kafka-cluster": "org.apache.kafka.tools.ClusterTool",
    "kafka-acls": "org.apache.kafka.tools.AclCommand",
}


def _port_slice():
    """Where listener ports come from: below the kernel's ephemeral range, so that no outgoing
    connection takes a stopped node's port before it restarts, and a slice of it per pytest-xdist
    worker, so that two workers never pick the same one."""
    try:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    low, high = 10000, max(ephemeral, 12000)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    count = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), 1)
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    span = (high - low) // count
    return low + index * span, low + (index + 1) * span


_next_port = [None]


def free_ports(n):
    """n distinct ports free now (bound, then let go), taken in turn from this worker's slice
    (see `_port_slice`), from a random start."""
    low, high = _port_slice()
    if _next_port[0] is None:
        _next_port[0] = random.randrange(low, high)
    ports = []
    for _ in range(high - low):
        port = _next_port[0]
        _next_port[0] = low if port + 1 >= high else port + 1
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == n:
            return ports
    raise RuntimeError(f"fewer than {n} free ports in {low}-{high}")


def free_port():
    """One free port (see `free_ports`)."""
    return free_ports(1)[0]


def wait_listening(proc, port, name, log, timeout=30):
    """Waits until `proc` accepts connections on `port`; fails with `log()` if it exits or not."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}:\n{log()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{name} did not listen within {timeout} s:\n{log()}")


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
        env = {k: v for k, v in os.environ.items() if k != "RUNNEL_BIN"}
        env["NO_COLOR"] = "1"
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_listening(self.proc, self.port, "runnel", self.log_text)
        return self

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


def kafka_tool_cmd(name, *args, version=None):
    """The command line that runs one of Apache Kafka's tools (to run it elsewhere, e.g. in a
    network namespace: tests/netns.py)."""
    main_class = TOOLS[name]
    if name == "kafka-configs" and (version or KAFKA_VERSION) != KAFKA_VERSION:
        # Kafka 4.2 moved ConfigCommand from the core jar (Scala) to the tools jar.
        main_class = "org.apache.kafka.tools.ConfigCommand"
    return java_cmd(main_class, *args, version=version)


def java_cmd(main_class, *args, version=None):
    """The command line that runs any main class from the Kafka jars, as kafka-run-class.sh would
    (with the JVM options of KAFKA_OPTS, e.g. a -D system property)."""
    opts = shlex.split(os.environ.get("KAFKA_OPTS", ""))
    return ["java", "-Xss4m", *opts, "-cp", f"{kafka_libs(version)}/*", main_class, *args]


def kafka_tool(name, *args, timeout=120, input=None, version=None):
    """Runs one of Apache Kafka's tools from the Maven jars (Kafka `version`, see kafka_libs);
    returns (rc, stdout, stderr)."""
    cmd = kafka_tool_cmd(name, *args, version=version)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
    return p.returncode, p.stdout, p.stderr


def java_main(main_class, *args, stdout=subprocess.PIPE, stderr=None, version=KAFKA_VERSION):
    """Starts any main class from the Kafka jars in the background, as kafka-run-class.sh would
    (e.g. org.apache.kafka.tools.VerifiableConsumer), with Kafka `version`'s Java client (4.1.1
    unless asked, whatever KAFKA_TOOLS_VERSION says); returns the Popen, stdout in text mode."""
    return subprocess.Popen(java_cmd(main_class, *args, version=version), stdout=stdout, stderr=stderr,
                            text=True)


def transactional_copier(bootstrap, src, dst, tid, group, stderr_path, *extra):
    """Starts Apache Kafka's TransactionalMessageCopier (partition 0 of `src` to `dst`, 50 records a
    transaction, offsets sent with the group's metadata) with its stderr appended to stderr_path;
    returns (process, its JSON progress lines as they arrive, the thread reading them)."""
    err = open(stderr_path, "a")
    proc = java_main("org.apache.kafka.tools.TransactionalMessageCopier",
                     "--broker-list", bootstrap, "--input-topic", src, "--input-partition", "0",
                     "--output-topic", dst, "--transactional-id", tid, "--consumer-group", group,
                     "--transaction-size", "50", "--use-group-metadata", *extra, stderr=err)
    seen = []

    def read():
        for line in proc.stdout:
            if line.startswith("{"):
                try:
                    seen.append(json.loads(line))
                except ValueError:
                    pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return proc, seen, reader


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
    that a client works against Kafka itself and not only against Runnel. `version` picks the jars
    (see kafka_libs): the pinned 4.1.1 unless asked (e.g. KAFKA_NEWEST, .deps/kafka-libs-4.4.0),
    whatever KAFKA_TOOLS_VERSION says, since that variable picks the tools and not this broker."""

    def __init__(self, tmp: Path, version=None):
        self.version = version or KAFKA_VERSION
        self.libs = kafka_libs(self.version)
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
        cp = f"{self.libs}/*"
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


class ClusterNode:
    """One `runnel serve --config <file>` process of a Cluster: its own directory, config file and log."""

    def __init__(self, node_id, directory: Path, port, controller_port, settings: dict):
        self.node_id = node_id
        self.dir = directory
        self.port = port
        self.controller_port = controller_port
        self.config_path = directory / "server.properties"
        self.data_dir = directory / "data"
        self.log_path = directory / "node.log"
        self.settings = settings
        self.proc = None
        self.paused = False
        # Put before `runnel serve` (e.g. `ip netns exec <namespace>`, which execs: the pid stays the node's).
        self.command_prefix = []

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def write_config(self):
        lines = [f"# node {self.node_id} of a test cluster, written as a user would write it"]
        lines += [f"{k}={v}" for k, v in self.settings.items()]
        self.config_path.write_text("\n".join(lines) + "\n")

    def spawn(self):
        assert not self.alive(), f"node {self.node_id} is already running"
        self.write_config()
        log = open(self.log_path, "ab")
        log.write(f"\n===== test harness: starting node {self.node_id} at {time.time():.3f} =====\n".encode())
        log.flush()
        # RUNNEL_* variables are settings to runnel serve; the harness's own RUNNEL_BIN is not one.
        env = {k: v for k, v in os.environ.items() if k != "RUNNEL_BIN"}
        env["NO_COLOR"] = "1"
        env.setdefault("RUST_LOG", "info")
        cmd = [*self.command_prefix, str(RUNNEL), "serve", "--config", str(self.config_path)]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.dir)
        log.close()
        self.paused = False

    def wait_listening(self, timeout=30):
        wait_listening(self.proc, self.port, f"node {self.node_id}", self.log_tail, timeout)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # Raft chatter that would crowd the interesting lines out of a failure message.
    NOISE = ("openraft", "RPCError", "error replication to", "update progress error", "heartbeat error",
             "Vote", "vote", "INFO   ")

    def log_tail(self, n=60):
        lines = [x for x in self.log_text().splitlines() if not any(s in x for s in self.NOISE)]
        return "\n".join(lines[-n:])


class Cluster:
    """n combined broker+controller nodes on 127.0.0.1, each `runnel serve --config <its file>` in
    its own directory; every port is picked up front so restarts keep their addresses.

    `settings` go into every node's config file, `node_settings[i]` into node i's only."""

    def __init__(self, tmp: Path, n=3, settings=None, node_settings=None):
        if not RUNNEL.exists():
            raise AssertionError(f"{RUNNEL} is missing: run `cargo build --bins` first")
        ports = free_ports(2 * n)
        client_ports, controller_ports = ports[:n], ports[n:]
        voters = ",".join(f"{i + 1}@127.0.0.1:{controller_ports[i]}" for i in range(n))
        self.nodes = []
        for i in range(n):
            d = tmp / f"node{i + 1}"
            d.mkdir(parents=True, exist_ok=True)
            conf = {
                "process.roles": "broker,controller",
                "node.id": str(i + 1),
                "controller.quorum.voters": voters,
                "listeners": f"PLAINTEXT://127.0.0.1:{client_ports[i]},CONTROLLER://127.0.0.1:{controller_ports[i]}",
                "controller.listener.names": "CONTROLLER",
                "inter.broker.listener.name": "PLAINTEXT",
                "log.dirs": str(d / "data"),
                "default.replication.factor": str(min(3, n)),
                "offsets.topic.replication.factor": str(min(3, n)),
                "group.initial.rebalance.delay.ms": "0",
            }
            conf.update({k: str(v) for k, v in (settings or {}).items()})
            conf.update({k: str(v) for k, v in ((node_settings or {}).get(i, {})).items()})
            self.nodes.append(ClusterNode(i + 1, d, client_ports[i], controller_ports[i], conf))

    # Nodes are addressed by index 0..n-1; node ids are index + 1.
    def __getitem__(self, i):
        return self.nodes[i]

    def __len__(self):
        return len(self.nodes)

    def index_of(self, node_id):
        return node_id - 1

    @property
    def bootstrap(self):
        return ",".join(n.bootstrap for n in self.nodes)

    def live_bootstrap(self):
        return ",".join(n.bootstrap for n in self.nodes if n.alive() and not n.paused)

    def start_all(self, timeout=30):
        """Starts every stopped node first (each waits for the quorum), then waits for all to listen."""
        for n in self.nodes:
            if not n.alive():
                n.spawn()
        for n in self.nodes:
            n.wait_listening(timeout)
        return self

    def wait_formed(self, timeout=30):
        """Every live node's Metadata lists every live broker and the same controller."""
        live = self.live_indexes()
        want = sorted(self.nodes[i].node_id for i in live)

        def formed():
            views = [self.metadata(i) for i in live]
            return all(sorted(v.brokers) == want for v in views) and len({v.controller for v in views}) == 1 \
                and views[0].controller in want

        self.wait_for(f"nodes {want} formed a cluster", formed, timeout)
        return self

    def start(self, i, timeout=30):
        self.nodes[i].spawn()
        return self.nodes[i].wait_listening(timeout)

    def stop(self, i, timeout=30):
        n = self.nodes[i]
        if n.alive():
            if n.paused:
                self.resume(i)
            n.proc.send_signal(signal.SIGTERM)
            rc = n.proc.wait(timeout)
            assert rc == 0, f"node {n.node_id} exited with {rc} on SIGTERM:\n{n.log_tail()}"

    def kill9(self, i):
        n = self.nodes[i]
        if n.alive():
            n.proc.kill()
            n.proc.wait(10)
        n.paused = False

    def pause(self, i):
        n = self.nodes[i]
        n.proc.send_signal(signal.SIGSTOP)
        n.paused = True

    def resume(self, i):
        n = self.nodes[i]
        n.proc.send_signal(signal.SIGCONT)
        n.paused = False

    def restart(self, i, timeout=30):
        self.stop(i)
        return self.start(i, timeout)

    def kill_all(self):
        for i in range(len(self.nodes)):
            self.kill9(i)

    def logs(self):
        """{node id: log text}."""
        return {n.node_id: n.log_text() for n in self.nodes}

    def log_tails(self, n=40):
        return "\n".join(f"--- node {x.node_id} ({x.log_path}) ---\n{x.log_tail(n)}" for x in self.nodes)

    # ---- metadata ----

    def metadata(self, i, timeout=5):
        """Metadata v7 asked of node i alone: a ClusterView."""
        return metadata_v7(self.nodes[i].bootstrap, timeout=timeout)

    def describe(self, topic=None, timeout=10):
        """The cluster's view through confluent-kafka's AdminClient (bootstrap: every live node):
        {"brokers": [ids], "controller": id, "topics": {name: {partition: (leader, replicas, isr)}}}."""
        from confluent_kafka.admin import AdminClient
        a = AdminClient({"bootstrap.servers": self.live_bootstrap(), "socket.timeout.ms": 3000})
        md = a.list_topics(topic=topic, timeout=timeout)
        topics = {}
        for name, t in md.topics.items():
            if t.error is not None:
                continue
            topics[name] = {p.id: (p.leader, list(p.replicas), list(p.isrs)) for p in t.partitions.values()}
        return {"brokers": sorted(md.brokers), "controller": md.controller_id, "topics": topics}

    def wait_for(self, what, predicate, timeout=30, interval=0.25):
        """Polls predicate() until it returns a true value (returned); an exception counts as not yet."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                v = predicate()
                if v:
                    return v
                last = v
            except Exception as e:  # noqa: BLE001 - a node may be down or not elected yet
                last = e
            time.sleep(interval)
        raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})\n{self.log_tails()}")

    def leader_of(self, topic, partition, via=None):
        """The partition's leader id as the given (or any live) node reports it; -1 for none."""
        for i in ([via] if via is not None else self.live_indexes()):
            try:
                return self.metadata(i).partition(topic, partition).leader
            except (OSError, AssertionError):
                continue
        raise AssertionError("no live node answered Metadata")

    def log_bytes(self, i, topic, partition):
        """The bytes of node i's replica of topic-partition: its segment files in offset order."""
        d = self.nodes[i].data_dir / f"{topic}-{partition}"
        return b"".join(f.read_bytes() for f in sorted(d.glob("*.log")))

    def wait_replicas_identical(self, topic, partition, timeout=20):
        """Waits until every node's replica holds the same bytes (followers append the leader's
        batches verbatim, so once caught up the segment files are equal)."""
        def same():
            logs = [self.log_bytes(i, topic, partition) for i in range(len(self.nodes))]
            return all(x == logs[0] for x in logs) and len(logs[0]) > 0

        try:
            self.wait_for(f"{topic}-{partition}: identical replicas", same, timeout, interval=0.5)
        except AssertionError:
            logs = [self.log_bytes(i, topic, partition) for i in range(len(self.nodes))]
            first = next((k for k in range(min(map(len, logs))) if len({x[k] for x in logs}) > 1), None)
            raise AssertionError(f"{topic}-{partition}: replicas differ: sizes {[len(x) for x in logs]}, "
                                 f"first differing byte {first}\n{self.log_tails()}") from None

    def live_indexes(self):
        return [i for i, n in enumerate(self.nodes) if n.alive() and not n.paused]


class PartitionView:
    def __init__(self, error, index, leader, leader_epoch, replicas, isr, offline):
        self.error, self.index, self.leader, self.leader_epoch = error, index, leader, leader_epoch
        self.replicas, self.isr, self.offline = replicas, isr, offline

    def __repr__(self):
        return (f"P{self.index}(err={self.error} leader={self.leader} epoch={self.leader_epoch} "
                f"replicas={self.replicas} isr={self.isr})")


class ClusterView:
    """A decoded Metadata response: brokers {id: (host, port, rack)}, controller, cluster_id, topics
    {name: (error, {partition: PartitionView})}."""

    def __init__(self, brokers, cluster_id, controller, topics):
        self.brokers, self.cluster_id, self.controller, self.topics = brokers, cluster_id, controller, topics

    def partition(self, topic, p):
        err, parts = self.topics[topic]
        assert err == 0, f"topic {topic}: error {err}"
        return parts[p]

    def __repr__(self):
        return f"ClusterView(brokers={sorted(self.brokers)} controller={self.controller} topics={self.topics})"


def metadata_v7(bootstrap, topics=None, timeout=5):
    """Metadata v7 (non-flexible) over one connection to exactly this address, so the answer is this
    node's own view (a client library would spread requests over the cluster)."""
    host, port = bootstrap.rsplit(":", 1)
    if topics is None:
        body = struct.pack(">i", -1)
    else:
        body = struct.pack(">i", len(topics))
        for t in topics:
            body += struct.pack(">h", len(t)) + t.encode()
    body += b"\x00"  # allow_auto_topic_creation = false
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(raw_frame(3, 7, 1, body, client_id=b"cluster-test"))
        frame = read_frame(s, timeout)
    if frame is None:
        raise OSError(f"{bootstrap} closed the connection")
    r = _Reader(frame)
    assert r.i32() == 1, "correlation id"
    r.i32()  # throttle
    brokers = {}
    for _ in range(r.i32()):
        nid, host, port, rack = r.i32(), r.string(), r.i32(), r.string()
        brokers[nid] = (host, port, rack)
    cluster_id = r.string()
    controller = r.i32()
    topics = {}
    for _ in range(r.i32()):
        err, name, _internal = r.i16(), r.string(), r.i8()
        parts = {}
        for _ in range(r.i32()):
            perr, idx, leader, epoch = r.i16(), r.i32(), r.i32(), r.i32()
            replicas, isr, offline = r.ints(), r.ints(), r.ints()
            parts[idx] = PartitionView(perr, idx, leader, epoch, replicas, isr, offline)
        topics[name] = (err, parts)
    return ClusterView(brokers, cluster_id, controller, topics)


class _Reader:
    def __init__(self, b):
        self.b, self.o = b, 0

    def _take(self, fmt):
        v = struct.unpack_from(fmt, self.b, self.o)[0]
        self.o += struct.calcsize(fmt)
        return v

    def i8(self):
        return self._take(">b")

    def i16(self):
        return self._take(">h")

    def i32(self):
        return self._take(">i")

    def string(self):
        n = self.i16()
        if n < 0:
            return None
        s = self.b[self.o:self.o + n].decode()
        self.o += n
        return s

    def ints(self):
        return [self.i32() for _ in range(self.i32())]


def make_tls_certs(directory: Path, clients=("client",), hosts=("localhost",), ips=("127.0.0.1",)):
    """Test certificates made with the openssl CLI, as the README's "Securing a cluster" shows: a
    CA (ca.crt, ca.key), a server certificate for `hosts`/`ips` signed by it (server.crt,
    server.key, and server.pem = key + chain for ssl.keystore.location), and one client
    certificate per name in `clients` with subject CN=<name>,OU=test,O=runnel (<name>.crt,
    <name>.key, <name>.pem). Returns `directory`."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", "ca.key",
        "-out", "ca.crt", "-subj", "/CN=runnel-test-ca")

    def issue(name, subj, ext):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", subj)
        (d / f"{name}.ext").write_text(ext)
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext")
        (d / f"{name}.pem").write_text((d / f"{name}.key").read_text() + (d / f"{name}.crt").read_text())

    san = ",".join([f"DNS:{h}" for h in hosts] + [f"IP:{i}" for i in ips])
    issue("server", "/CN=localhost/O=runnel",
          f"basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
          f"extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName={san}\n")
    for c in clients:
        issue(c, f"/O=runnel/OU=test/CN={c}",
              "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
              "extendedKeyUsage=clientAuth\n")
    return d


def java_config(path, user, password, mechanism="PLAIN", protocol="SASL_PLAINTEXT", **extra):
    """Writes a Kafka client properties file (for a Java tool's --command-config) logging in as
    `user` with SASL `mechanism` (PLAIN, SCRAM-SHA-256/512) over `protocol`; `extra` keys (dots
    written as underscores, e.g. ssl_truststore_location) are added. Returns its path."""
    module = ("org.apache.kafka.common.security.plain.PlainLoginModule" if mechanism == "PLAIN"
              else "org.apache.kafka.common.security.scram.ScramLoginModule")
    lines = [f"security.protocol={protocol}", f"sasl.mechanism={mechanism}",
             f'sasl.jaas.config={module} required username="{user}" password="{password}";']
    lines += [f"{k.replace('_', '.')}={v}" for k, v in extra.items()]
    Path(path).write_text("\n".join(lines) + "\n")
    return str(path)


def runnel_cli(bootstrap, *args, input=None, env=None, timeout=60):
    """Runs the `runnel` client `ARGS` (with --bootstrap-server `bootstrap` unless None), away from
    the user's profiles and RUNNEL_* settings; returns (rc, stdout, stderr)."""
    cmd = [str(RUNNEL)]
    if bootstrap:
        cmd += ["--bootstrap-server", bootstrap]
    cmd += list(args)
    e = dict(os.environ)
    e.pop("RUNNEL_BOOTSTRAP_SERVER", None)
    e.pop("RUNNEL_PROFILE", None)
    e["RUNNEL_PROFILES"] = "/nonexistent/runnel-profiles"
    e.update(env or {})
    p = subprocess.run(cmd, capture_output=True, text=True, input=input, env=e, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def wait_full_isr(admin, topic, replicas=(1, 2, 3), timeout=40):
    """Polls Metadata (an AdminClient) until every partition of `topic` has `replicas` in its
    ISR, or `timeout` passes; returns ({partition: sorted ISR}, {partition: leader})."""
    want = sorted(replicas)
    deadline = time.time() + timeout
    while True:
        md = admin.list_topics(topic, timeout=10).topics[topic]
        isrs = {p: sorted(pm.isrs) for p, pm in md.partitions.items()}
        leaders = {p: pm.leader for p, pm in md.partitions.items()}
        if all(i == want for i in isrs.values()) or time.time() > deadline:
            return isrs, leaders
        time.sleep(0.5)


def poll_values(consumer, count, prefix=b"", timeout=30):
    """The distinct values starting with `prefix` a confluent_kafka Consumer reads, until it has
    `count` of them or `timeout` passes."""
    seen = set()
    deadline = time.time() + timeout
    while len(seen) < count and time.time() < deadline:
        m = consumer.poll(0.5)
        if m is not None and m.error() is None and m.value().startswith(prefix):
            seen.add(m.value())
    return seen
