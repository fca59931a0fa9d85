"""The Docker deployment, checked without a Docker engine (none runs on these machines): the three
services of deploy/docker/docker-compose.yml run as `runnel` processes, each in its own network
namespace named after the service, with what the image and the compose file give a container:

- the command is the Dockerfile's ENTRYPOINT + CMD, its config file the one the image COPYs
  (config/server.properties), its environment the Dockerfile's ENV then the service's
  `environment` (anchors merged as Compose merges them), its working directory the WORKDIR;
- each named volume is a directory of the test, its container path mapped onto it;
- service names resolve to the nodes (an /etc/netns hosts file, as Compose's DNS does);
- `ports: ["29092:9094"]` is published on the "host" (the client namespace, on the same bridge as
  Docker's host is) by a userland proxy on 127.0.0.1:29092, as docker-proxy does.

What is not emulated: the image build itself (the test runs the binary it built), the non-root
user, and `restart: unless-stopped`.

Checked: the three nodes form a quorum over CONTROLLER and replicate over INTERNAL; Metadata asked
through a published port advertises the EXTERNAL names (localhost:29092, 39092, 49092); Kafka's
tools on the host create a topic (replication 3 and min ISR 2 from the environment), produce and
consume through the published ports; the metrics endpoint answers ready; `docker compose stop`
(SIGTERM, within stop_grace_period) stops every node cleanly."""

import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from helpers import RUNNEL, kafka_tool_cmd, metadata_v7
from netns import NETNS_ETC, NetnsCluster, NetnsNode

ROOT = Path(__file__).resolve().parent.parent
CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"
COMPOSE = ROOT / "deploy/docker/docker-compose.yml"
DOCKERFILE = ROOT / "deploy/docker/Dockerfile"


def dockerfile():
    """What the image gives a container: {"env", "entrypoint", "cmd", "workdir", "copies"}."""
    out = {"env": {}, "entrypoint": [], "cmd": [], "workdir": "/", "copies": {}}
    stage = 0
    for line in DOCKERFILE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage += 1
            out["env"], out["copies"] = {}, {}
        elif word == "ENV":
            for item in shlex.split(rest):
                k, _, v = item.partition("=")
                out["env"][k] = v
        elif word in ("ENTRYPOINT", "CMD"):
            out[word.lower()] = json.loads(rest)
        elif word == "WORKDIR":
            out["workdir"] = rest
        elif word == "COPY" and not rest.startswith("--from"):
            src, dst = rest.split()
            out["copies"][dst] = ROOT / src
    assert stage == 2, "a multi-stage build: a build stage, then the runtime image"
    return out


def compose_services():
    """{service: {"hostname", "environment", "ports", "volumes", "stop_grace_period"}} with anchors
    and `<<` merges resolved (PyYAML's safe loader merges them as Compose does)."""
    doc = yaml.safe_load(COMPOSE.read_text())
    return doc["services"]


def seconds(text):
    m = re.fullmatch(r"(\d+)([sm])", text)
    assert m, text
    return int(m.group(1)) * (60 if m.group(2) == "m" else 1)


class ServiceNode(NetnsNode):
    """A compose service run as a process in its namespace, as its container would run it."""

    def __init__(self, base: NetnsNode, image, service, volume_dirs):
        super().__init__(base.node_id, base.dir, 9092, 9093, {}, base.ns, base.host)
        self.command_prefix = base.command_prefix
        self.image, self.service, self.volume_dirs = image, service, volume_dirs

    def container_path(self, path):
        """A container path, through the service's volume mounts (and the image's COPYs)."""
        for src, dst in self.image["copies"].items():
            if path == src:
                return str(dst)
        for mount in self.service.get("volumes", []):
            name, target = mount.split(":")[:2]
            if path == target or path.startswith(target + "/"):
                return str(self.volume_dirs[name]) + path[len(target):]
        return path

    def spawn(self):
        assert not self.alive()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNEL_")}
        env.update(NO_COLOR="1", RUST_LOG="info")
        for k, v in {**self.image["env"], **self.service["environment"]}.items():
            env[k] = self.container_path(str(v))
        entry, *args = [*self.image["entrypoint"], *self.image["cmd"]]
        assert entry.endswith("/runnel"), entry
        cmd = [*self.command_prefix, str(RUNNEL), *[self.container_path(a) for a in args]]
        workdir = Path(self.container_path(self.image["workdir"]))
        workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env, cwd=workdir)
        log.close()
        self.paused = False


@pytest.fixture(scope="module")
def compose(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compose")
    image, services = dockerfile(), compose_services()
    names = sorted(services)
    assert len(names) == 3, names
    c = NetnsCluster(tmp, n=3, listeners="plain")
    try:
        # Compose's DNS: every service name resolves to its node's address, in every namespace.
        hosts = "127.0.0.1 localhost\n" + "".join(f"{c.internal_ip(i)} {services[s]['hostname']} {s}\n"
                                                  for i, s in enumerate(names))
        for ns in [*c.node_ns, c.client_ns]:
            (NETNS_ETC / ns).mkdir(parents=True, exist_ok=True)
            (NETNS_ETC / ns / "hosts").write_text(hosts)
        for i, s in enumerate(names):
            volumes = {v.split(":")[0]: tmp / "volumes" / v.split(":")[0] for v in services[s].get("volumes", [])}
            c.nodes[i] = ServiceNode(c.nodes[i], image, services[s], volumes)
            c.nodes[i].service_name = s
        # Published ports: docker-proxy's part, on the host side.
        for i, s in enumerate(names):
            for mapping in services[s].get("ports", []):
                host_port, container_port = mapping.split(":")
                p = c.client_popen(c.python_cmd(str(ROOT / "tests/port_forward.py"), f"127.0.0.1:{host_port}",
                                                f"{c.internal_ip(i)}:{container_port}"),
                                   stdout=subprocess.PIPE, text=True)
                assert p.stdout.readline().strip() == "listening"
        c.start_all(timeout=60).wait_formed(timeout=60)
        yield c, services, names
    finally:
        print(f"node logs: {[str(n.log_path) for n in c.nodes]}")
        c.close()


def test_compose_cluster_serves_clients_through_the_published_ports(compose):
    c, services, names = compose
    published = [services[s]["ports"][0].split(":")[0] for s in names]
    # Metadata through a published port advertises every node's EXTERNAL name.
    md = c.in_client(metadata_v7, f"127.0.0.1:{published[0]}", timeout=10)
    advertised = sorted(f"{host}:{port}" for host, port, _rack in md.brokers.values())
    want = sorted(f"localhost:{p}" for p in published)
    assert advertised == want, (md.brokers, want)

    bootstrap = f"localhost:{published[1]}"
    rc, out, err = c.run_in_client(kafka_tool_cmd("kafka-topics", "--bootstrap-server", bootstrap, "--create",
                                                  "--topic", "compose", "--partitions", "3"))
    assert rc == 0, err
    # Replication factor and min ISR come from the services' environment.
    deadline = time.time() + 30
    while True:
        rc, out, err = c.run_in_client(kafka_tool_cmd("kafka-topics", "--bootstrap-server", bootstrap,
                                                      "--describe", "--topic", "compose"))
        rows = [line for line in out.splitlines() if "Partition:" in line]
        if rc == 0 and len(rows) == 3 and all(len(re.search(r"Isr: (\S+)", r).group(1).split(",")) == 3
                                              for r in rows):
            break
        assert time.time() < deadline, out + err
        time.sleep(1)
    assert all(len(re.search(r"Replicas: (\S+)", r).group(1).split(",")) == 3 for r in rows), out
    rc, out, err = c.run_in_client(kafka_tool_cmd("kafka-configs", "--bootstrap-server", bootstrap, "--describe",
                                                  "--entity-type", "brokers", "--entity-name", "1", "--all"))
    assert rc == 0 and "min.insync.replicas=2" in out, out + err

    values = [f"compose-{i}" for i in range(200)]
    rc, out, err = c.run_in_client(kafka_tool_cmd("kafka-console-producer", "--bootstrap-server",
                                                  f"localhost:{published[2]}", "--topic", "compose",
                                                  "--producer-property", "acks=all"),
                                   input="\n".join(values) + "\n")
    assert rc == 0, err
    rc, out, err = c.run_in_client(kafka_tool_cmd("kafka-console-consumer", "--bootstrap-server",
                                                  f"localhost:{published[0]}", "--topic", "compose",
                                                  "--from-beginning", "--max-messages", "200",
                                                  "--group", "compose-readers", "--timeout-ms", "60000"))
    assert rc == 0, err
    assert sorted(out.split()) == sorted(values)

    # Each node's metrics endpoint (RUNNEL_METRICS_LISTENERS) says it is ready.
    for i in range(3):
        rc, out, err = c.run_in_client(["curl", "-s", f"http://{services[names[i]]['hostname']}:9404/health/ready"])
        assert rc == 0 and out == "ready\n", (rc, out, err)


def test_compose_stop_is_clean_within_the_grace_period(compose):
    c, services, names = compose
    for i, s in enumerate(names):
        grace = seconds(services[s]["stop_grace_period"])
        node = c.nodes[i]
        node.proc.send_signal(signal.SIGTERM)
        assert node.proc.wait(grace) == 0, node.log_tail()
        # The clean-shutdown marker is in the data dir, inside the service's volume.
        data = Path(node.container_path(dockerfile()["env"]["RUNNEL_LOG_DIRS"]))
        assert (data / CLEAN_SHUTDOWN_FILE).exists(), (data, node.log_tail())
