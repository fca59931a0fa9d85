"""Shared pieces of the peer-suite runners: a fresh `runnel serve` on a free port, allowlist
checking, and the report every runner prints (one line per test, then a count line)."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNEL = Path(os.environ.get("RUNNEL_BIN", ROOT / "target" / "debug" / "runnel"))
RESULTS = ROOT / "target" / "peer-results"


def node_env():
    """The environment of a node: RUNNEL_* variables are settings, RUNNEL_BIN is the harness's."""
    return {k: v for k, v in os.environ.items() if k != "RUNNEL_BIN"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A fresh broker for one suite run, configured only through server settings."""

    def __init__(self, overrides):
        self.tmp = tempfile.TemporaryDirectory(prefix="runnel-peer-")
        self.port = free_port()
        args = [str(RUNNEL), "serve",
                "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "--override", f"log.dirs={self.tmp.name}/data"]
        for k, v in overrides.items():
            # "{port}" in a value is this broker's first (PLAINTEXT) port, e.g. to add listeners.
            args += ["--override", f"{k}={v}".replace("{port}", str(self.port))]
        self.log = open(Path(self.tmp.name) / "broker.log", "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=node_env())
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("runnel did not start")

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is not None:
            # The broker died during the suite: say so, with the end of its log.
            self.log.flush()
            tail = (Path(self.tmp.name) / "broker.log").read_text(errors="replace")[-3000:]
            print(f"BROKER EXITED DURING THE SUITE with code {self.proc.returncode}; log tail:\n{tail}")
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.tmp.cleanup()


class Cluster:
    """A fresh 3-node cluster (broker and controller in each process) for one suite run, each
    node configured only through server settings; `bootstrap` lists every node."""

    def __init__(self, overrides, nodes=3):
        self.tmp = tempfile.TemporaryDirectory(prefix="runnel-peer-cluster-")
        ports = [free_port() for _ in range(2 * nodes)]
        self.client_ports = ports[0::2]
        voters = ",".join(f"{i + 1}@127.0.0.1:{ports[2 * i + 1]}" for i in range(nodes))
        self.procs, self.logs = [], []
        for i in range(nodes):
            args = [str(RUNNEL), "serve",
                    "--override", f"node.id={i + 1}",
                    "--override", f"listeners=PLAINTEXT://127.0.0.1:{ports[2 * i]},CONTROLLER://127.0.0.1:{ports[2 * i + 1]}",
                    "--override", "controller.listener.names=CONTROLLER",
                    "--override", f"controller.quorum.voters={voters}",
                    "--override", f"log.dirs={self.tmp.name}/data{i + 1}"]
            for k, v in overrides.items():
                args += ["--override", f"{k}={v}"]
            log = open(Path(self.tmp.name) / f"node{i + 1}.log", "wb")
            self.logs.append(log)
            self.procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=node_env()))
        deadline = time.time() + 60
        for port in self.client_ports:
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    if time.time() > deadline:
                        raise SystemExit("the runnel cluster did not start")
                    time.sleep(0.1)
        # Every node registered and unfenced: wait until a metadata answer lists all of them.
        self.wait_brokers(nodes, deadline)

    def wait_brokers(self, nodes, deadline):
        import struct
        # A Metadata v1 request (no topics) on the first node, read with the raw encoding.
        req = struct.pack(">hhih", 3, 1, 1, -1) + struct.pack(">i", 0)
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.client_ports[0]), timeout=2) as s:
                    s.sendall(struct.pack(">i", len(req)) + req)
                    size = struct.unpack(">i", s.recv(4))[0]
                    body = b""
                    while len(body) < size:
                        body += s.recv(size - len(body))
                    count = struct.unpack(">i", body[4:8])[0]
                    if count >= nodes:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("the runnel cluster did not form")

    @property
    def bootstrap(self):
        return ",".join(f"127.0.0.1:{p}" for p in self.client_ports)

    def stop(self):
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None:
                self.logs[i].flush()
                tail = (Path(self.tmp.name) / f"node{i + 1}.log").read_text(errors="replace")[-3000:]
                print(f"NODE {i + 1} EXITED DURING THE SUITE with code {proc.returncode}; log tail:\n{tail}")
            else:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.tmp.cleanup()


def read_allowlist(path):
    """The test names an allowlist file lists (comments and blank lines left out)."""
    return [l.strip() for l in Path(path).read_text().splitlines()
            if l.strip() and not l.startswith("#")]


def rerun_alone(results, allowlist_path, run_alone):
    """Runs each allowlisted test that failed beside the others once more by itself
    (`run_alone(name)` gives {name: (status, why), ...}, its subtests' too); one that passes then
    counts. Returns the FLAKY lines to print, so that a test turning flaky is seen."""
    listed = set(read_allowlist(allowlist_path))
    flaky = []
    for name in [t for t, (s, _) in sorted(results.items()) if s == "FAIL" and t in listed]:
        first = results[name][1]
        again = run_alone(name)
        if again[name][0] == "PASS":
            flaky.append(f"FLAKY {name}: failed beside the others ({first[:160]}), passed alone")
            results.update(again)
    return flaky


def report(suite, results, allowlist_path):
    """Prints every test's outcome, checks the allowlist, writes target/peer-results/<suite>.json.

    results: {test name: (status, first failure line)} with status PASS, FAIL or SKIP.
    Returns the exit code: 1 when a listed test did not pass (or the suite ran nothing)."""
    allow = read_allowlist(allowlist_path)
    for name in sorted(results):
        status, why = results[name]
        line = f"{status:4} {name}"
        if status == "FAIL" and why:
            line += f"  -- {why[:160]}"
        print(line)
    passed = sum(1 for s, _ in results.values() if s == "PASS")
    failed = sum(1 for s, _ in results.values() if s == "FAIL")
    skipped = sum(1 for s, _ in results.values() if s == "SKIP")
    regressions = [t for t in allow if results.get(t, ("MISSING", ""))[0] != "PASS"]
    new = sorted(t for t, (s, _) in results.items() if s == "PASS" and t not in allow)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{suite}.json").write_text(json.dumps(
        {"suite": suite, "passed": passed, "failed": failed, "skipped": skipped,
         "tests": {k: list(v) for k, v in sorted(results.items())}}, indent=1))
    for t in new:
        print(f"NEWLY PASSING (add to {allowlist_path.name}): {t}")
    for t in regressions:
        status, why = results.get(t, ("MISSING", ""))
        print(f"ALLOWLISTED BUT NOT PASSING: {t} ({status}{': ' + why[:300] if why else ''})")
    print(f"{suite} suite: {passed} passed, {failed} failed, {skipped} skipped (of {len(results)})")
    listed_ok = len(allow) - len(regressions)
    print(f"allowlist: {listed_ok} passed, {len(regressions)} failed")
    if not results:
        print(f"{suite}: no test ran", file=sys.stderr)
        return 1
    return 1 if regressions else 0
