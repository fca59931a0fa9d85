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
RUNNEL = ROOT / "target" / "debug" / "runnel"
RESULTS = ROOT / "target" / "peer-results"


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
            args += ["--override", f"{k}={v}"]
        self.log = open(Path(self.tmp.name) / "broker.log", "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
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


def report(suite, results, allowlist_path):
    """Prints every test's outcome, checks the allowlist, writes target/peer-results/<suite>.json.

    results: {test name: (status, first failure line)} with status PASS, FAIL or SKIP.
    Returns the exit code: 1 when a listed test did not pass (or the suite ran nothing)."""
    allow = [l.strip() for l in Path(allowlist_path).read_text().splitlines()
             if l.strip() and not l.startswith("#")]
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
        print(f"ALLOWLISTED BUT NOT PASSING: {t} ({results.get(t, ('MISSING', ''))[0]})")
    print(f"{suite} suite: {passed} passed, {failed} failed, {skipped} skipped (of {len(results)})")
    listed_ok = len(allow) - len(regressions)
    print(f"allowlist: {listed_ok} passed, {len(regressions)} failed")
    if not results:
        print(f"{suite}: no test ran", file=sys.stderr)
        return 1
    return 1 if regressions else 0
