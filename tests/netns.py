"""A Runnel cluster whose nodes each run in their own Linux network namespace with their own IP
address, on a private bridge, plus a client namespace: faults that 127.0.0.1 cannot show (a node cut
off from every other one while it keeps running, clients that can reach only some listeners).

Needs root and iproute2 (`ip netns`, veth pairs, bridges); CI machines are root.

Two layouts (`listeners=`):

- "plain": one bridge, 10.77.0.0/24. Node i (0-based, node id i + 1) is 10.77.0.<i+1> with
  PLAINTEXT on :9092 and CONTROLLER on :9093; the client namespace is 10.77.0.200.
- "internal_external": the classic docker-compose setup. An internal bridge (10.77.0.0/24) that only
  the nodes share carries INTERNAL (:9092, `inter.broker.listener.name`) and CONTROLLER (:9093); an
  external bridge (10.78.0.0/24) that the nodes share with the client namespace (10.78.0.200) carries
  EXTERNAL (:9094); the nodes' ports on that bridge are isolated from each other (they reach only
  the client's), so brokers can talk to each other over INTERNAL and CONTROLLER only. The client
  namespace has no route to 10.77.0.0/24 at all; a client beside a node (run_in_node) reaches the
  others over INTERNAL only. With `external_names=True` EXTERNAL is advertised as
  `node<id>.external`, resolved through /etc/netns/<namespace>/hosts, which `ip netns exec` mounts
  over /etc/hosts: only processes started through the harness resolve those names (not clients
  created in-process with in_client).

The test process itself stays in the root namespace, where no address of the cluster is reachable
(on some machines a proxy even accepts every outgoing connection there). It reaches the cluster in
two ways: processes started with `ip netns exec` (run_in_client, client_popen, run_in_node,
node_popen; the command lines of kafka_tool_cmd/java_cmd fit), or Python callables run in a thread
that entered a namespace (in_client, in_node): sockets, confluent-kafka clients and the threads they
start belong to that namespace (create the client inside the callable).

Nodes are addressed by index 0..n-1 as in helpers.Cluster, whose methods (start_all, wait_formed,
kill9, pause, resume, restart, leader_of, log_bytes, wait_replicas_identical, ...) work unchanged.
`metadata(i)` asks node i from inside its own namespace (its own view, even while it is isolated).

Every name carries the owner's pid and a random tag (namespaces `runnel-<pid>-<tag>-n1`, links
`rn<tag>...`), so parallel runs do not collide; a new NetnsCluster first removes what runs whose
process is gone left behind, and close() removes its own even after a failure."""

import atexit
import ctypes
import fcntl
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from helpers import Cluster, ClusterNode, metadata_v7

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

INTERNAL_NET = "10.77.0"
EXTERNAL_NET = "10.78.0"
CLIENT_HOST = 200
NS_PREFIX = "runnel-"
NETNS_ETC = Path("/etc/netns")


def ip(*args, check=True):
    """Runs `ip <args>`; raises with its stderr when it fails (unless check=False)."""
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and p.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {p.stderr.strip()}")
    return p


def ns_prefix(ns):
    """The command prefix that runs a program in network namespace `ns` (ip execs it: same pid)."""
    return ["ip", "netns", "exec", ns]


def in_netns(ns, fn, *args, **kwargs):
    """Calls fn(*args, **kwargs) in a new thread that first entered network namespace `ns`; returns
    its result or raises its exception. Threads started inside fn inherit the namespace."""
    out = {}

    def body():
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({ns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            out["value"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            out["error"] = e

    t = threading.Thread(target=body, name=f"in-{ns}", daemon=True)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def can_connect(host, port, timeout=1.0):
    """(True, None) if a TCP connection to host:port opens, else (False, the OSError)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, None
    except OSError as e:
        return False, e


def _pid_alive(pid):
    """Whether process `pid` runs (a zombie, exited but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _namespaces():
    return [line.split()[0] for line in ip("netns", "list").stdout.splitlines() if line.strip()]


def _kill_namespace(ns):
    """SIGKILLs every process still in namespace `ns` (by pid, as `ip netns pids` lists them), then
    deletes it."""
    for pid in ip("netns", "pids", ns, check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    ip("netns", "del", ns, check=False)
    shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)


def clean_leftovers():
    """Removes the namespaces, links and /etc/netns entries of runs whose process is gone."""
    live_tags = set()
    for ns in _namespaces():
        m = re.match(rf"{NS_PREFIX}(\d+)-([0-9a-f]{{5}})-", ns)
        if not m:
            continue
        if _pid_alive(int(m.group(1))):
            live_tags.add(m.group(2))
        else:
            _kill_namespace(ns)
    for line in ip("-o", "link", "show").stdout.splitlines():
        m = re.match(r"\d+: (rn([0-9a-f]{5})\w+)[@:]", line)
        if m and m.group(2) not in live_tags:
            ip("link", "del", m.group(1), check=False)
    if NETNS_ETC.exists():
        for d in NETNS_ETC.glob(f"{NS_PREFIX}*"):
            m = re.match(rf"{NS_PREFIX}(\d+)-", d.name)
            if m and not _pid_alive(int(m.group(1))) and not Path(f"/run/netns/{d.name}").exists():
                shutil.rmtree(d, ignore_errors=True)


class NetnsNode(ClusterNode):
    """A ClusterNode started with `ip netns exec <its namespace>`; `bootstrap` is its client address,
    and wait_listening probes it from inside its namespace."""

    def __init__(self, node_id, directory, port, controller_port, settings, ns, host):
        super().__init__(node_id, directory, port, controller_port, settings)
        self.ns, self.host = ns, host
        self.command_prefix = ns_prefix(ns)

    @property
    def bootstrap(self):
        return f"{self.host}:{self.port}"

    def wait_listening(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"node {self.node_id} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if in_netns(self.ns, can_connect, self.host, self.port, 0.5)[0]:
                return self
            time.sleep(0.05)
        raise AssertionError(f"node {self.node_id} did not listen within {timeout} s:\n{self.log_tail()}")


class NetnsCluster(Cluster):
    """n combined broker+controller nodes, each in its own network namespace (see the module's doc).

    `settings` go into every node's config file, `node_settings[i]` into node i's only (both after
    the network keys, so they win)."""

    def __init__(self, tmp: Path, n=3, settings=None, listeners="plain", node_settings=None, external_names=False):
        assert listeners in ("plain", "internal_external"), listeners
        assert os.geteuid() == 0, "network namespaces need root"
        assert 1 <= n <= 99
        super().__init__(tmp, n=n, settings=settings, node_settings=node_settings)
        self.mode = listeners
        self.external_names = external_names
        self.tag = secrets.token_hex(3)[:5]
        base = f"{NS_PREFIX}{os.getpid()}-{self.tag}"
        self.node_ns = [f"{base}-n{i + 1}" for i in range(n)]
        self.client_ns = f"{base}-client"
        self.bridges = [f"rn{self.tag}bi"] + ([f"rn{self.tag}bx"] if listeners == "internal_external" else [])
        # Root-side ends of each node's veth pairs (one per bridge): what isolate() takes down.
        self.outer = [[f"rn{self.tag}{i}{b[-1]}" for b in self.bridges] for i in range(n)]
        self.isolated = set()
        self.processes = []
        self.closed = False

        split = listeners == "internal_external"
        voters = ",".join(f"{i + 1}@{self.internal_ip(i)}:9093" for i in range(n))
        for i, node in enumerate(self.nodes):
            ip_int, ext = self.internal_ip(i), self.external_ip(i)
            if split:
                net = {
                    "listeners": f"INTERNAL://{ip_int}:9092,EXTERNAL://{ext}:9094,CONTROLLER://{ip_int}:9093",
                    "advertised.listeners": f"INTERNAL://{ip_int}:9092,EXTERNAL://{self.external_host(i)}:9094",
                    "listener.security.protocol.map": "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    "inter.broker.listener.name": "INTERNAL",
                }
            else:
                net = {
                    "listeners": f"PLAINTEXT://{ip_int}:9092,CONTROLLER://{ip_int}:9093",
                    "advertised.listeners": f"PLAINTEXT://{ip_int}:9092",
                    "inter.broker.listener.name": "PLAINTEXT",
                }
            net["controller.quorum.voters"] = voters
            net["controller.listener.names"] = "CONTROLLER"
            conf = {**node.settings, **net}
            conf.update({k: str(v) for k, v in (settings or {}).items()})
            conf.update({k: str(v) for k, v in ((node_settings or {}).get(i, {})).items()})
            host, port = self.address(i).rsplit(":", 1)
            self.nodes[i] = NetnsNode(node.node_id, node.dir, int(port), 9093, conf, self.node_ns[i], host)

        atexit.register(self.close)
        # One cleaning-and-building at a time on the machine: a cleaning that listed the
        # namespaces before another run (a parallel pytest worker) made its own, then the links
        # after, would take that run's links for leftovers.
        with open("/tmp/runnel-netns.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            clean_leftovers()
            try:
                self._build()
            except BaseException:
                self.close()
                raise

    # ---- addresses ----

    def internal_ip(self, i):
        return f"{INTERNAL_NET}.{i + 1}"

    def external_ip(self, i):
        """The address clients use: the EXTERNAL one, or the only one in the plain layout."""
        return f"{EXTERNAL_NET}.{i + 1}" if self.mode == "internal_external" else self.internal_ip(i)

    def address(self, i, listener=None):
        """host:port of node i's listener (default: the one clients use: EXTERNAL or PLAINTEXT)."""
        listener = (listener or ("EXTERNAL" if self.mode == "internal_external" else "PLAINTEXT")).upper()
        ports = {"PLAINTEXT": 9092, "INTERNAL": 9092, "CONTROLLER": 9093, "EXTERNAL": 9094}
        host = self.external_ip(i) if listener == "EXTERNAL" else self.internal_ip(i)
        return f"{host}:{ports[listener]}"

    def bootstrap(self, listener=None):
        """Every node's client-reachable address (or `listener`'s), comma-separated."""
        return ",".join(self.address(i, listener) for i in range(len(self.nodes)))

    def live_bootstrap(self):
        """The client addresses of the nodes running, not paused and not isolated."""
        return ",".join(self.address(i) for i in self.live_indexes() if i not in self.isolated)

    def external_host(self, i):
        """What node i advertises on EXTERNAL (its name with external_names, else its address)."""
        return f"node{i + 1}.external" if self.external_names else self.external_ip(i)

    # ---- building and tearing down the network ----

    def _build(self):
        for ns in [*self.node_ns, self.client_ns]:
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
        for br in self.bridges:
            ip("link", "add", br, "type", "bridge")
            ip("link", "set", br, "up")
        nets = [INTERNAL_NET, EXTERNAL_NET]
        for i, ns in enumerate(self.node_ns):
            for b, br in enumerate(self.bridges):
                self._plug(ns, ["int0", "ext0"][b], self.outer[i][b], br, f"{nets[b]}.{i + 1}")
                if b == 1:
                    # Isolated bridge ports reach only the non-isolated one (the client's): nodes cannot
                    # talk to each other over the external network, only over the internal one.
                    ip("link", "set", "dev", self.outer[i][b], "type", "bridge_slave", "isolated", "on")
        # The client namespace is on the last bridge only: the external one, or the only one.
        last = len(self.bridges) - 1
        self._plug(self.client_ns, "eth0", f"rn{self.tag}c", self.bridges[last], f"{nets[last]}.{CLIENT_HOST}")
        if self.external_names:
            hosts = Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else "127.0.0.1 localhost\n"
            hosts += "".join(f"{self.external_ip(i)} node{i + 1}.external\n" for i in range(len(self.nodes)))
            for ns in [*self.node_ns, self.client_ns]:
                (NETNS_ETC / ns).mkdir(parents=True, exist_ok=True)
                (NETNS_ETC / ns / "hosts").write_text(hosts)

    def _plug(self, ns, inner, outer, bridge, address):
        ip("link", "add", inner, "netns", ns, "type", "veth", "peer", "name", outer)
        ip("link", "set", outer, "master", bridge)
        ip("link", "set", outer, "up")
        ip("-n", ns, "addr", "add", f"{address}/24", "dev", inner)
        ip("-n", ns, "link", "set", inner, "up")

    def close(self):
        """Kills every process of the cluster and its namespaces, deletes namespaces and links.
        Safe to call twice and after a half-built start."""
        if self.closed:
            return
        self.closed = True
        for i, node in enumerate(self.nodes):
            try:
                if node.paused and node.alive():
                    node.proc.send_signal(signal.SIGCONT)
                self.kill9(i)
            except Exception:  # noqa: BLE001 - tearing down regardless
                pass
        for p in self.processes:
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    pass
        for ns in [*self.node_ns, self.client_ns]:
            _kill_namespace(ns)
        for link in [*self.bridges, *(o for outs in self.outer for o in outs), f"rn{self.tag}c"]:
            if ip("link", "show", link, check=False).returncode == 0:
                ip("link", "del", link, check=False)
        atexit.unregister(self.close)

    # ---- faults ----

    def isolate(self, i):
        """Cuts node i off from every other namespace (the client's too): its links to the bridges
        go down, so packets are dropped without a reset, as in a real partition. The node keeps
        running and still reaches itself: in_node(i)/run_in_node(i) are on its side."""
        for link in self.outer[i]:
            ip("link", "set", link, "down")
        self.isolated.add(i)
        self.note(f"node {i + 1} isolated")

    def heal(self, i):
        """Reconnects node i; forgets the neighbour entries that failed meanwhile, so connections
        work again at once rather than after the kernel's next probe."""
        for link in self.outer[i]:
            ip("link", "set", link, "up")
        self.isolated.discard(i)
        self.note(f"node {i + 1} healed")
        for ns in [*self.node_ns, self.client_ns]:
            ip("-n", ns, "neigh", "flush", "all", check=False)

    def note(self, what):
        """Writes a line into every node's log, so the logs show when the harness did what."""
        line = f"===== test harness: {what} at {time.time():.3f} ({time.strftime('%H:%M:%S', time.gmtime())}) =====\n"
        for node in self.nodes:
            with open(node.log_path, "a") as f:
                f.write(line)

    # ---- running things in the namespaces ----

    @property
    def client_prefix(self):
        """Command prefix that runs a program in the client namespace."""
        return ns_prefix(self.client_ns)

    def node_prefix(self, i):
        """Command prefix that runs a program in node i's namespace (on its side of a partition)."""
        return ns_prefix(self.node_ns[i])

    def _run(self, prefix, cmd, timeout, input, env):
        p = subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=timeout, input=input,
                           env=env)
        return p.returncode, p.stdout, p.stderr

    def run_in_client(self, cmd, timeout=120, input=None, env=None):
        """Runs cmd (a list) in the client namespace; returns (rc, stdout, stderr) as kafka_tool does."""
        return self._run(self.client_prefix, cmd, timeout, input, env)

    def run_in_node(self, i, cmd, timeout=120, input=None, env=None):
        """Runs cmd in node i's namespace: a client beside node i, on its side of a partition."""
        return self._run(self.node_prefix(i), cmd, timeout, input, env)

    def client_popen(self, cmd, **popen_kwargs):
        """Starts cmd in the client namespace; killed by close()."""
        p = subprocess.Popen([*self.client_prefix, *cmd], **popen_kwargs)
        self.processes.append(p)
        return p

    def node_popen(self, i, cmd, **popen_kwargs):
        """Starts cmd in node i's namespace; killed by close()."""
        p = subprocess.Popen([*self.node_prefix(i), *cmd], **popen_kwargs)
        self.processes.append(p)
        return p

    def in_client(self, fn, *args, **kwargs):
        """Calls fn in a thread in the client namespace (see in_netns)."""
        return in_netns(self.client_ns, fn, *args, **kwargs)

    def in_node(self, i, fn, *args, **kwargs):
        """Calls fn in a thread in node i's namespace."""
        return in_netns(self.node_ns[i], fn, *args, **kwargs)

    def python_cmd(self, *args):
        """A command line running the tests' Python (with its venv) on args: for run_in_*/..._popen."""
        return [sys.executable, *args]

    # ---- Cluster's probes, from inside the namespaces ----

    def metadata(self, i, timeout=5, listener=None):
        """Metadata v7 asked of node i from inside its own namespace (its own view, even when it is
        isolated), on its client listener or `listener`."""
        return self.in_node(i, metadata_v7, self.address(i, listener), timeout=timeout)

    def describe(self, topic=None, timeout=10):
        """Cluster.describe, asked from the client namespace."""
        return self.in_client(super().describe, topic, timeout)

    def __repr__(self):
        return f"NetnsCluster({self.mode}, tag {self.tag}, namespaces {self.node_ns + [self.client_ns]})"
