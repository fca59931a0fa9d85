#!/usr/bin/env python3
"""Runs librdkafka's own test suite, unmodified, against a fresh `runnel serve`.

librdkafka's source (tests/ included) ships inside the `rdkafka-sys` crate; it is fetched with
cargo, copied to .deps/, configured and built once. The non-local tests (0001-0999, those that
need a broker) run with `-L -E -Q`; auto-creation and the 4 partitions the suite assumes come from
broker settings. A test counts only if it is on tests/peer/librdkafka.allowlist."""

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, Broker, Cluster, report  # noqa: E402

CRATE_VERSION = "4.10.0+2.12.1"
CRATE_SEMVER = CRATE_VERSION.split("+")[0]
DEPS = ROOT / ".deps"
SRC = DEPS / "librdkafka-2.12.1"
FETCH = DEPS / "rdkafka-sys-fetch"
PER_TEST_S = int(os.environ.get("LIBRDKAFKA_TEST_TIMEOUT_S", "150"))
PARALLEL = 4
ANSI = re.compile(r"\x1b\[[0-9;]*m|\x1b\(B")


def build():
    marker = SRC / ".built"
    if marker.exists():
        return
    FETCH.mkdir(parents=True, exist_ok=True)
    (FETCH / "src").mkdir(exist_ok=True)
    (FETCH / "src" / "main.rs").write_text("fn main() {}\n")
    (FETCH / "Cargo.toml").write_text(
        '[package]\nname = "rdkafka-sys-fetch"\nversion = "0.0.0"\nedition = "2021"\n\n'
        f'[dependencies]\nrdkafka-sys = "={CRATE_SEMVER}"\n\n[workspace]\n')
    subprocess.run(["cargo", "fetch", "--manifest-path", str(FETCH / "Cargo.toml")], check=True)
    home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    found = sorted(home.glob(f"registry/src/*/rdkafka-sys-{CRATE_VERSION}/librdkafka"))
    if not found:
        raise SystemExit("rdkafka-sys source not found after cargo fetch")
    if SRC.exists():
        shutil.rmtree(SRC)
    shutil.copytree(found[0], SRC)
    for p in SRC.rglob("*"):
        if not p.is_symlink():
            p.chmod(p.stat().st_mode | 0o200)
    run = lambda *a, **kw: subprocess.run(list(a), check=True, cwd=kw.get("cwd", SRC),
                                          stdout=subprocess.DEVNULL)
    run("./configure", "--disable-ssl", "--disable-gssapi", "--disable-sasl")
    run("make", "-j2", "libs")
    run("make", "-j2", "build", cwd=SRC / "tests")
    marker.write_text("built\n")


def suite_tests():
    """The non-local tests 0001-0999, as the suite's own table (tests/test.c) lists them."""
    text = (SRC / "tests" / "test.c").read_text(errors="replace")
    out = []
    for m in re.finditer(r"_TEST\(\s*(\d{4})(\w*)\s*,\s*([^,)]*)", text):
        num, rest, flags = m.groups()
        if 1 <= int(num) <= 999 and "TEST_F_LOCAL" not in flags:
            out.append(num + rest)
    return out


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
    settings = {"auto.create.topics.enable": "true", "num.partitions": "4"}
    if rf3:
        settings["default.replication.factor"] = "3"
    broker = Cluster(settings) if rf3 else Broker(settings)
    tests = SRC / "tests"
    results, logs = {}, []
    try:
        (tests / "test.conf").write_text(f"metadata.broker.list={broker.bootstrap}\n")
        env = dict(os.environ, LD_LIBRARY_PATH=f"{SRC / 'src'}:{SRC / 'src-cpp'}",
                   TEST_KAFKA_VERSION="4.0.0.0")
        with ThreadPoolExecutor(PARALLEL) as pool:
            for name, result, out in pool.map(lambda t: run_one(t, env), suite_tests()):
                results[name] = result
                logs.append(f"===== {name}: {result[0]}\n{out}")
    finally:
        broker.stop()
    (ROOT / "target").mkdir(exist_ok=True)
    suite = "librdkafka-rf3" if rf3 else "librdkafka"
    (ROOT / "target" / f"{suite}-suite.log").write_text("\n".join(logs))
    return report(suite, results, ROOT / "tests" / "peer" / f"{suite}.allowlist")


if __name__ == "__main__":
    sys.exit(main())
