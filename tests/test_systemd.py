"""Running under systemd: the unit in deploy/systemd passes `systemd-analyze verify` (against a
root holding the built binary where the unit expects it and the system's own units), and the
broker speaks systemd's readiness protocol: READY=1 on the socket of NOTIFY_SOCKET once it
serves, STOPPING=1 when SIGTERM starts a clean shutdown. No systemd runs on these machines:
the protocol is checked with a socket of the test's own, as systemd would hold it."""

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from helpers import RUNNEL, free_port, metadata_v7

UNIT = Path(__file__).parent.parent / "deploy" / "systemd" / "runnel.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_unit_file_verifies(tmp_path):
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(RUNNEL, root / "usr/bin/runnel")
    shutil.copy(UNIT, root / "etc/systemd/system/runnel.service")
    # The targets it names (network-online, multi-user) come from the system's own units.
    for units in ("/lib/systemd/system", "/usr/lib/systemd/system"):
        if Path(units).is_dir() and not (root / units.lstrip("/")).exists():
            shutil.copytree(units, root / units.lstrip("/"), symlinks=True)
            break
    p = subprocess.run(["systemd-analyze", "verify", f"--root={root}", "--man=no", "runnel.service"],
                       capture_output=True, text=True, timeout=60)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    # verify exits 0 on lines it ignores: none may be about this unit.
    assert "runnel.service:" not in out and "not executable" not in out, out
    text = UNIT.read_text()
    assert "Type=notify" in text and "KillSignal=SIGTERM" in text


def test_ready_and_stopping_go_to_the_notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "RUNNEL_BIN"}
    env["NOTIFY_SOCKET"] = path
    proc = subprocess.Popen([str(RUNNEL), "serve", "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
                             "--override", f"log.dirs={tmp_path}/data"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert sock.recv(4096) == b"READY=1"
        # Ready means serving: a request is answered at once.
        assert metadata_v7(f"127.0.0.1:{port}")
        proc.send_signal(signal.SIGTERM)
        assert sock.recv(4096) == b"STOPPING=1"
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
