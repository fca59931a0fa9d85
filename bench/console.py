#!/usr/bin/env python3
"""How fast the web console's pages answer on a big cluster (not a test; prints figures).

One Runnel node (`runnel serve` with console.listeners) on a fresh data directory under target/:
T topics of P partitions (--topics 100 --partitions 100: 10,000 partitions), and one topic `big`
of 6 partitions holding R records of 100 B (--records 3,000,000, written by `runnel perf
produce`). Then each page below is asked --repeat times (5) over one keep-alive-less HTTP request
each, and its median and slowest answer times printed, with the size of the page. The search
scans the newest 1,000,000 records of `big` for a string that is not there (so it reads them
all). Run with the tests' Python (tests/.venv/bin/python bench/console.py), which has
confluent-kafka; --runnel picks the binary (default target/release/runnel, else target/debug).
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed_get(url):
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        body = r.read()
        status = r.status
    return time.perf_counter() - t, status, len(body)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--topics", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=100)
    ap.add_argument("--records", type=int, default=3_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--runnel", default=None)
    a = ap.parse_args()
    runnel = a.runnel or next(str(p) for p in [ROOT / "target/release/runnel", ROOT / "target/debug/runnel"]
                              if p.exists())
    data = ROOT / "target/bench-console"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    port, cport, http = free_port(), free_port(), free_port()
    log = open(data / "broker.log", "wb")
    broker = subprocess.Popen(
        [runnel, "serve", "--override", f"log.dirs={data}/data",
         "--override", f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
         "--override", "controller.listener.names=CONTROLLER",
         "--override", f"console.listeners=http://127.0.0.1:{http}"],
        stdout=log, stderr=subprocess.STDOUT)
    boot = f"127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", http), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline, "the broker did not start"
                time.sleep(0.2)
        admin = AdminClient({"bootstrap.servers": boot})
        t = time.time()
        for f in admin.create_topics([NewTopic(f"scale-{i:04d}", a.partitions, 1) for i in range(a.topics)],
                                     request_timeout=600).values():
            f.result(600)
        for f in admin.create_topics([NewTopic("big", 6, 1)]).values():
            f.result(60)
        created = time.time() - t
        t = time.time()
        subprocess.run([runnel, "perf", "produce", "big", "-n", str(a.records), "-s", "100", "-b", boot],
                       check=True, capture_output=True)
        produced = time.time() - t
        base = f"http://127.0.0.1:{http}"
        pages = [
            ("overview", "/"),
            ("topics, first page", "/topics"),
            ("topics, filtered", "/topics?q=scale-005"),
            (f"topic of {a.partitions} partitions", "/topics/scale-0050"),
            ("topic big", "/topics/big"),
            ("messages of big, newest 50", "/topics/big/messages"),
            ("messages of big, partition 3 from an offset", "/topics/big/messages?partition=3&offset=250000"),
            ("export of big, 10,000 records", "/topics/big/export?limit=10000"),
            ("search of big, 1,000,000 records", "/topics/big/search?q=not-there&max=1000000"),
            ("groups", "/groups"),
        ]
        print(f"runnel: {runnel}; {a.topics} topics x {a.partitions} partitions created in {created:.1f} s; "
              f"{a.records:,} records of 100 B in `big` in {produced:.1f} s\n")
        print("| page | median | slowest | size |")
        print("|---|---|---|---|")
        rows = []
        for name, path in pages:
            times, size = [], 0
            for _ in range(a.repeat):
                secs, status, size = timed_get(base + path)
                assert status == 200, (path, status)
                times.append(secs)
            rows.append({"page": name, "median_ms": statistics.median(times) * 1000,
                         "max_ms": max(times) * 1000, "bytes": size})
            print(f"| {name} | {statistics.median(times) * 1000:.1f} ms | {max(times) * 1000:.1f} ms | {size:,} B |",
                  flush=True)
        rss = int(next(x for x in Path(f"/proc/{broker.pid}/status").read_text().splitlines()
                       if x.startswith("VmRSS")).split()[1]) // 1024
        print(f"\nbroker + console RSS after: {rss} MiB")
        print(json.dumps({"rows": rows, "rss_mib": rss}), file=sys.stderr)
    finally:
        broker.terminate()
        try:
            broker.wait(60)
        except subprocess.TimeoutExpired:
            broker.kill()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
