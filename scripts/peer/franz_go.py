#!/usr/bin/env python3
"""Runs franz-go's own kgo integration suite, unmodified, against a fresh `runnel serve`.

The module comes from the Go module proxy at the pinned release; its test binary is built once
and cached under .deps/. Tests are never skipped by editing them: a test counts only if it is on
tests/peer/franz-go.allowlist."""

import hashlib
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, Broker, Cluster, free_port, report, rerun_alone  # noqa: E402

VERSION = "v1.22.3"
MODULE = "github.com/twmb/franz-go"
DEPS = ROOT / ".deps"
BINARY = DEPS / f"kgo-{VERSION}.test"


def build():
    if BINARY.exists():
        return
    env = dict(os.environ, GOFLAGS="-mod=mod")
    out = subprocess.run(["go", "mod", "download", "-json", f"{MODULE}@{VERSION}"],
                         capture_output=True, text=True, check=True, env=env, cwd=DEPS)
    src = Path(re.search(r'"Dir":\s*"([^"]+)"', out.stdout).group(1))
    work = DEPS / f"franz-go-{VERSION}"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(src, work)
    for p in work.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    subprocess.run(["go", "test", "-c", "-o", str(BINARY), "."], check=True, cwd=work / "pkg" / "kgo", env=env)


def parse(output):
    results = {}
    current_fail = {}
    last_msg = {}
    for line in output.splitlines():
        m = re.match(r"^--- (PASS|FAIL|SKIP): (\S+)", line)
        if m:
            status, name = m.groups()
            results[name] = (status, last_msg.get(name, ""))
            continue
        m = re.match(r"^\s+(\w+_test\.go:\d+: .*)", line)
        if m and current_fail.get("name"):
            last_msg.setdefault(current_fail["name"], m.group(1))
        m = re.match(r"^=== (?:RUN|CONT|NAME)\s+(\S+)", line)
        if m:
            current_fail["name"] = m.group(1).split("/")[0]
    return results


# Tests that can wait forever on a feature Runnel lacks (TestTxnEtl polls for transactional
# output until the binary's timeout) run on their own, each in its own process with a bounded
# time, so that one hang does not take the rest of the suite down with it. They are still run and
# reported; nothing is skipped.
ISOLATED = ROOT / "tests" / "peer" / "franz-go.isolated"
ISOLATED_TIMEOUT_S = 150


def isolated_names():
    return [l.strip() for l in ISOLATED.read_text().splitlines()
            if l.strip() and not l.startswith("#")]


SASL_MECHANISMS = "SCRAM-SHA-256,OAUTHBEARER"
SCRAM_USER, SCRAM_PASSWORD = "kgo", "kgo-secret"


def create_scram_user(bootstrap, user, password, iterations=4096):
    """Creates a SCRAM-SHA-256 credential with one AlterUserScramCredentials v0 request (what
    kafka-configs --add-config 'SCRAM-SHA-256=[password=...]' sends): the salted password is
    computed here, the broker derives and stores the keys."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)

    def uvarint(n):
        out = b""
        while n >= 0x80:
            out += bytes([(n & 0x7F) | 0x80])
            n >>= 7
        return out + bytes([n])

    def compact(b):
        return uvarint(len(b) + 1) + b

    header = struct.pack(">hhih", 51, 0, 1, 3) + b"kgo" + b"\0"
    body = (uvarint(1)  # no deletions
            + uvarint(2) + compact(user.encode()) + struct.pack(">bi", 1, iterations)
            + compact(salt) + compact(salted) + b"\0"  # one upsertion
            + b"\0")
    frame = header + body
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", _read(s, 4))[0]
        resp = _read(s, size)
    # correlation id, header tags, throttle, results array (1 entry): user, error code.
    pos = 4 + 1 + 4 + 1
    name_len = resp[pos] - 1
    pos += 1 + name_len
    (code,) = struct.unpack(">h", resp[pos:pos + 2])
    if code != 0:
        raise SystemExit(f"creating the SCRAM user failed with error {code}: {resp!r}")


def _read(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise SystemExit("broker closed the connection")
        buf += chunk
    return buf


def main():
    # --rf3: against a 3-node cluster with KGO_TEST_RF=3 (its own allowlist).
    rf3 = "--rf3" in sys.argv
    DEPS.mkdir(exist_ok=True)
    build()
    settings = {"auto.create.topics.enable": "false"}
    sasl_port = None if rf3 else free_port()
    if sasl_port:
        # A SASL_PLAINTEXT listener beside the suite's PLAINTEXT one, for TestSCRAMAuth and
        # TestSCRAMAuthBadCredentials (KGO_TEST_SCRAM_SEEDS, KGO_TEST_SCRAM) and TestOAuthAuth
        # (KGO_TEST_OAUTH_SEEDS: Kafka's default validator, unsecured tokens).
        settings.update({
            "listeners": f"PLAINTEXT://127.0.0.1:{{port}},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
            "sasl.enabled.mechanisms": SASL_MECHANISMS,
        })
    broker = Cluster(settings) if rf3 else Broker(settings)
    sasl_env = {}
    if sasl_port:
        create_scram_user(broker.bootstrap, SCRAM_USER, SCRAM_PASSWORD)
        sasl_env = {"KGO_TEST_SCRAM_SEEDS": f"127.0.0.1:{sasl_port}",
                    "KGO_TEST_SCRAM": f"{SCRAM_USER}:{SCRAM_PASSWORD}"}
        if "OAUTHBEARER" in SASL_MECHANISMS:
            sasl_env["KGO_TEST_OAUTH_SEEDS"] = f"127.0.0.1:{sasl_port}"
    cwd = DEPS / f"franz-go-{VERSION}" / "pkg" / "kgo"
    isolated = isolated_names()
    suite = "franz-go-rf3" if rf3 else "franz-go"
    logs, flaky = [], []
    try:
        env = dict(os.environ, KGO_SEEDS=broker.bootstrap, KGO_TEST_RF="3" if rf3 else "1",
                   KGO_TEST_RECORDS="5000", **sasl_env)
        args = [str(BINARY), "-test.v", "-test.timeout", "600s"]
        if isolated:
            args += ["-test.skip", "^(" + "|".join(isolated) + ")$"]
        p = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd)
        logs.append(p.stdout + p.stderr)
        results = parse(p.stdout)

        def run_alone(name):
            """Runs one test by itself: the results it printed (its subtests' too), the test
            itself always among them; the log kept."""
            try:
                q = subprocess.run([str(BINARY), "-test.v", "-test.run", f"^{name}$"],
                                   capture_output=True, text=True, env=env, cwd=cwd,
                                   timeout=ISOLATED_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                return {name: ("FAIL", f"did not finish within {ISOLATED_TIMEOUT_S} s")}
            logs.append(f"===== {name} (alone)\n{q.stdout}{q.stderr}")
            found = parse(q.stdout)
            found.setdefault(name, ("FAIL", "no result line"))
            return found

        for name in isolated:
            results.update(run_alone(name))
        flaky = rerun_alone(results, ROOT / "tests" / "peer" / f"{suite}.allowlist", run_alone)
    finally:
        broker.stop()
    (ROOT / "target").mkdir(exist_ok=True)
    (ROOT / "target" / f"{suite}.log").write_text("\n".join(logs))
    rc = report(suite, results, ROOT / "tests" / "peer" / f"{suite}.allowlist")
    for line in flaky:
        print(line)
    return rc


if __name__ == "__main__":
    sys.exit(main())
