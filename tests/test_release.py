"""The release artefacts of scripts/release.sh: the tarball holds the binary, config/, the
licence and deploy/, and its binary runs; the Debian package has the right metadata and files,
installs on this machine (as root, when no runnel package is installed already), creates its
system user and data directory, and the broker it installs serves as that user with the shipped
configuration and stops cleanly on SIGTERM; the package is then purged."""

import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from helpers import RUNNEL, free_port, metadata_v7

ROOT = Path(__file__).parent.parent
DIST = ROOT / "target" / "dist"


@pytest.fixture(scope="module")
def dist():
    p = subprocess.run([str(ROOT / "scripts" / "release.sh"), "--bin", str(RUNNEL)], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    tarballs = sorted(DIST.glob("runnel-*-linux-*.tar.gz"))
    debs = sorted(DIST.glob("runnel_*.deb"))
    assert len(tarballs) == 1 and len(debs) == 1, list(DIST.iterdir())
    return tarballs[0], debs[0]


def test_the_tarball_holds_a_working_binary_config_and_licence(dist, tmp_path):
    tarball, _ = dist
    with tarfile.open(tarball) as t:
        names = t.getnames()
        top = tarball.name.removesuffix(".tar.gz")
        for f in ("bin/runnel", "config/server.properties", "LICENSE", "README.md",
                  "deploy/systemd/runnel.service", "deploy/grafana/runnel-dashboard.json"):
            assert f"{top}/{f}" in names, (f, names)
        t.extractall(tmp_path, filter="data")
    out = subprocess.run([str(tmp_path / top / "bin" / "runnel"), "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("runnel ") and "commit " in out.stdout, out


def test_the_debian_package_metadata_and_files(dist):
    _, deb = dist
    info = subprocess.run(["dpkg-deb", "--info", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "Package: runnel" in info and "Architecture: " in info
    contents = subprocess.run(["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True,
                              check=True).stdout
    for f in ("./usr/bin/runnel", "./etc/runnel/server.properties", "./lib/systemd/system/runnel.service",
              "./usr/share/doc/runnel/copyright"):
        assert f in contents, (f, contents)
    conffiles = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(deb)], capture_output=True, check=True).stdout
    assert b"conffiles" in conffiles


def installed(package):
    p = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return p.returncode == 0 and "installed" in p.stdout


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("dpkg") is None, reason="installing a package needs root and dpkg")
def test_the_debian_package_installs_serves_and_purges(dist):
    _, deb = dist
    if installed("runnel"):
        pytest.skip("a runnel package is already installed here")
    user_existed = subprocess.run(["getent", "passwd", "runnel"], capture_output=True).returncode == 0
    p = subprocess.run(["dpkg", "-i", str(deb)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    proc = None
    try:
        assert subprocess.run(["getent", "passwd", "runnel"], capture_output=True).returncode == 0
        data = Path("/var/lib/runnel")
        assert data.is_dir() and data.owner() == "runnel"
        assert "log.dirs=/var/lib/runnel/data" in Path("/etc/runnel/server.properties").read_text()
        # What the unit runs, as its user, in its working directory.
        port = free_port()
        proc = subprocess.Popen(["setpriv", "--reuid=runnel", "--regid=runnel", "--init-groups", "/usr/bin/runnel", "serve", "--config",
                                 "/etc/runnel/server.properties", "--override",
                                 f"listeners=PLAINTEXT://127.0.0.1:{port}"],
                                cwd=data, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 30
        while True:
            try:
                metadata_v7(f"127.0.0.1:{port}")
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.poll() is not None else "no answer"
                time.sleep(0.2)
        assert (data / "data" / "meta.properties").exists()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        proc = None
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        p = subprocess.run(["dpkg", "--purge", "runnel"], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        assert not Path("/usr/bin/runnel").exists()
        shutil.rmtree("/var/lib/runnel", ignore_errors=True)
        if not user_existed:
            subprocess.run(["userdel", "runnel"], capture_output=True)
