#!/usr/bin/env python3
"""Runs librdkafka's own test suite, unmodified, against a fresh `runnel serve`.

librdkafka's source (tests/ included) ships inside Confluent's JavaScript client on the npm
registry (`@confluentinc/kafka-javascript`, deps/librdkafka); `npm pack` fetches it, the source is
copied to .deps/, configured (with RapidJSON, which 0053, 0098 and 0110 need, and OpenSSL, which
0064 needs) and built
once. The non-local tests (0001-0999, those that need a broker) run with `-L -E -Q`;
auto-creation and the 4 partitions the suite assumes come from broker settings. KAFKA_PATH names
a directory whose bin/ holds kafka-topics.sh and the other scripts the tests call, generated here
to run Apache Kafka's tools from the Maven jars (.deps/kafka-libs), and BROKERS the bootstrap they
get. A test counts only if it is on tests/peer/librdkafka.allowlist."""

import fcntl
import os
import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, Broker, Cluster, report, rerun_alone  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from helpers import KAFKA_VERSION, TOOLS, java_cmd, kafka_libs, kafka_tool_cmd  # noqa: E402

# The npm package that carries librdkafka's source, and the librdkafka version it carries.
NPM_PACKAGE = "@confluentinc/kafka-javascript@1.10.1"
LIBRDKAFKA_VERSION = "2.15.1"
DEPS = ROOT / ".deps"
SRC = DEPS / f"librdkafka-{LIBRDKAFKA_VERSION}"
FETCH = DEPS / "librdkafka-npm"
PER_TEST_S = int(os.environ.get("LIBRDKAFKA_TEST_TIMEOUT_S", "150"))
PARALLEL = 4
ANSI = re.compile(r"\x1b\[[0-9;]*m|\x1b\(B")


# What the build in SRC was made with: a build marked otherwise is made again.
BUILD_ID = "built with rapidjson and openssl\n"


def build():
    # Two runs at once (RF 1 and RF 3, or two checkouts sharing .deps) build it once.
    DEPS.mkdir(exist_ok=True)
    with open(DEPS / "librdkafka-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        build_locked()


def build_locked():
    marker = SRC / ".built"
    if marker.exists() and marker.read_text() == BUILD_ID:
        return
    FETCH.mkdir(parents=True, exist_ok=True)
    tgz = subprocess.run(["npm", "pack", "--silent", NPM_PACKAGE], cwd=FETCH, check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    unpacked = FETCH / "package"
    if unpacked.exists():
        shutil.rmtree(unpacked)
    subprocess.run(["tar", "xzf", tgz], cwd=FETCH, check=True)
    found = unpacked / "deps" / "librdkafka"
    header = (found / "src" / "rdkafka.h").read_text(errors="replace")
    want = "0x%02x%02x%02xff" % tuple(int(x) for x in LIBRDKAFKA_VERSION.split("."))
    if f"#define RD_KAFKA_VERSION {want}" not in header:
        raise SystemExit(f"{NPM_PACKAGE} does not carry librdkafka {LIBRDKAFKA_VERSION}")
    if SRC.exists():
        shutil.rmtree(SRC)
    shutil.copytree(found, SRC)
    shutil.rmtree(unpacked)
    for p in SRC.rglob("*"):
        if not p.is_symlink():
            p.chmod(p.stat().st_mode | 0o200)
    run = lambda *a, **kw: subprocess.run(list(a), check=True, cwd=kw.get("cwd", SRC),
                                          stdout=subprocess.DEVNULL)
    run("./configure", "--disable-gssapi", "--disable-sasl")
    config_h = (SRC / "config.h").read_text()
    for define, what in [("WITH_RAPIDJSON", "RapidJSON"), ("WITH_SSL", "OpenSSL")]:
        if f"#define {define} 1" not in config_h:
            raise SystemExit(f"librdkafka's configure found no {what}: run scripts/install-test-deps.sh")
    run("make", "-j2", "libs")
    run("make", "-j2", "build", cwd=SRC / "tests")
    marker.write_text(BUILD_ID)


def suite_tests():
    """The non-local tests 0001-0999, as the suite's own table (tests/test.c) lists them."""
    text = (SRC / "tests" / "test.c").read_text(errors="replace")
    out = []
    for m in re.finditer(r"_TEST\(\s*(\d{4})(\w*)\s*,\s*([^,)]*)", text):
        num, rest, flags = m.groups()
        if 1 <= int(num) <= 999 and "TEST_F_LOCAL" not in flags:
            out.append(num + rest)
    return out


def kafka_path():
    """A stand-in for an Apache Kafka installation, as the suite's KAFKA_PATH: bin/<tool>.sh for
    every tool of tests/helpers.py TOOLS (the suite calls kafka-topics.sh and kafka-acls.sh),
    bin/kafka-run-class.sh (0016's JmxTool; the Java helpers of librdkafka's tests/java, which
    build against libs/kafka-clients-*.jar: 0098's transactional producer), each running the class from the Maven jars."""
    path = ROOT / "target" / "librdkafka-kafka-path"
    (path / "bin").mkdir(parents=True, exist_ok=True)
    libs = kafka_libs(KAFKA_VERSION)
    if not (path / "libs").is_symlink() or (path / "libs").resolve() != libs.resolve():
        (path / "libs").unlink(missing_ok=True)
        (path / "libs").symlink_to(libs)

    def script(name, cmd):
        # Written aside and renamed: another run (RF 1 and RF 3 side by side) may be using it.
        f = path / "bin" / f"{name}.sh"
        tmp = f.with_name(f"{f.name}.{os.getpid()}")
        tmp.write_text(f"#!/bin/sh\n# Generated by scripts/peer/librdkafka.py.\nexec {cmd} \"$@\"\n")
        tmp.chmod(0o755)
        os.replace(tmp, f)

    for name in TOOLS:
        script(name, shlex.join(kafka_tool_cmd(name, version=KAFKA_VERSION)))
    # kafka-run-class.sh <class> args: with the caller's CLASSPATH in front, as Kafka's script.
    *java_cp, libs = java_cmd("", version=KAFKA_VERSION)[:-1]
    script("kafka-run-class", f'{shlex.join(java_cp)} "${{CLASSPATH:+$CLASSPATH:}}"{shlex.quote(libs)}')
    return path


def run_one(name, env):
    """Runs one test in its own test-runner (a timeout ends the whole runner process)."""
    tests = SRC / "tests"
    try:
        p = subprocess.run(["./test-runner", "-L", "-E", "-Q"], cwd=tests, capture_output=True,
                           env=dict(env, TESTS=name[:4]), text=True, errors="replace", timeout=PER_TEST_S)
        out = ANSI.sub("", p.stdout + p.stderr)
    except subprocess.TimeoutExpired as e:
        out = ANSI.sub("", (e.stdout or b"").decode(errors="replace"))
        return name, ("FAIL", f"no result within {PER_TEST_S} s"), out
    m = re.search(r"^\|\s+" + re.escape(name) + r"\s+\|\s+([A-Z][A-Z ()a-z]*?)\s+\|", out, re.M)
    state = m.group(1) if m else ""
    if state == "PASSED":
        return name, ("PASS", ""), out
    if state.startswith("SKIP"):
        return name, ("SKIP", ""), out
    why = ""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if "failed at" in line and "### Test" in line:
            why = lines[i + 1].strip() if i + 1 < len(lines) else line.strip()
            break
    return name, ("FAIL", why or state or f"exit code {p.returncode}"), out


def main():
    # --rf3: against a 3-node cluster, topics replicated 3 times (its own allowlist).
    rf3 = "--rf3" in sys.argv
    DEPS.mkdir(exist_ok=True)
    build()
    # The authorizer is on, with Kafka's allow-when-no-ACL mode as librdkafka's own test clusters
    # run it: the ACL tests (0081's admin ACL calls, 0109, 0115, 0119 setting deny ACLs with
    # kafka-acls.sh) then see real authorization, and every other test is unaffected.
    settings = {"auto.create.topics.enable": "true", "num.partitions": "4",
                "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "allow.everyone.if.no.acl.found": "true"}
    if rf3:
        settings["default.replication.factor"] = "3"
    broker = Cluster(settings) if rf3 else Broker(settings)
    suite = "librdkafka-rf3" if rf3 else "librdkafka"
    results, logs, flaky = {}, [], []
    try:
        # The run's own test config (RDKAFKA_TEST_CONF), not the shared tests/test.conf: two
        # runs at once (RF 1 and RF 3, two checkouts sharing .deps) must not point each
        # other's tests at their broker.
        conf = ROOT / "target" / f"librdkafka-test-{'rf3' if rf3 else 'rf1'}-{os.getpid()}.conf"
        conf.parent.mkdir(exist_ok=True)
        conf.write_text(f"metadata.broker.list={broker.bootstrap}\n")
        env = dict(os.environ, LD_LIBRARY_PATH=f"{SRC / 'src'}:{SRC / 'src-cpp'}",
                   RDKAFKA_TEST_CONF=str(conf),
                   TEST_KAFKA_VERSION="4.0.0.0", KAFKA_PATH=str(kafka_path()),
                   BROKERS=broker.bootstrap)
        with ThreadPoolExecutor(PARALLEL) as pool:
            # LIBRDKAFKA_TESTS=0081,0115 runs only those (a quick check; CI runs them all).
            only = [t for t in os.environ.get("LIBRDKAFKA_TESTS", "").split(",") if t]
            chosen = [t for t in suite_tests() if not only or t[:4] in only]
            for name, result, out in pool.map(lambda t: run_one(t, env), chosen):
                results[name] = result
                logs.append(f"===== {name}: {result[0]}\n{out}")
        # A test that failed among 4 at once on 2 cores gets one more run, alone.

        def run_alone(name):
            _, result, out = run_one(name, env)
            logs.append(f"===== {name} (run again, alone): {result[0]}\n{out}")
            return {name: result}

        flaky = rerun_alone(results, ROOT / "tests" / "peer" / f"{suite}.allowlist", run_alone)
    finally:
        broker.stop()
        for f in (ROOT / "target").glob(f"librdkafka-test-*-{os.getpid()}.conf"):
            f.unlink()
    (ROOT / "target").mkdir(exist_ok=True)
    (ROOT / "target" / f"{suite}-suite.log").write_text("\n".join(logs))
    rc = report(suite, results, ROOT / "tests" / "peer" / f"{suite}.allowlist")
    for line in flaky:
        print(line)
    return rc


if __name__ == "__main__":
    sys.exit(main())
