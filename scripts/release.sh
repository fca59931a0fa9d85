#!/usr/bin/env bash
# Builds a versioned release of Runnel into target/dist/:
#   runnel-<version>-linux-<arch>.tar.gz   the binary, config/, LICENSE, README.md, CHANGELOG.md,
#                                          deploy/ (systemd unit, Grafana dashboard, Dockerfile)
#   runnel_<version>_<arch>.deb            /usr/bin/runnel, /etc/runnel/server.properties (a
#                                          conffile, data in /var/lib/runnel), the systemd unit
#                                          (Type=notify), a `runnel` system user
# Usage: scripts/release.sh [--bin PATH]   (default: cargo build --release, then that binary)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN="$2"; shift 2 ;;
    *) echo "usage: $0 [--bin PATH]" >&2; exit 2 ;;
  esac
done
if [ -z "$BIN" ]; then
  cargo build --release --bin runnel
  BIN=target/release/runnel
fi
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
ARCH=$(dpkg --print-architecture 2>/dev/null || uname -m)
DIST=target/dist
rm -rf "$DIST" && mkdir -p "$DIST"

# The tarball.
NAME="runnel-$VERSION-linux-$ARCH"
T="$DIST/$NAME"
mkdir -p "$T/bin"
install -m 0755 "$BIN" "$T/bin/runnel"
cp -r config "$T/config"
mkdir -p "$T/deploy"
cp -r deploy/systemd deploy/grafana "$T/deploy/"
[ -d deploy/docker ] && cp -r deploy/docker "$T/deploy/"
cp LICENSE README.md CHANGELOG.md "$T/"
tar -C "$DIST" -czf "$DIST/$NAME.tar.gz" "$NAME"
rm -rf "$T"

# The Debian package.
P="$DIST/deb"
mkdir -p "$P/DEBIAN" "$P/usr/bin" "$P/etc/runnel" "$P/lib/systemd/system" "$P/usr/share/doc/runnel"
install -m 0755 "$BIN" "$P/usr/bin/runnel"
# The shipped configuration, with the data where the package keeps it.
sed 's#^log.dirs=.*#log.dirs=/var/lib/runnel/data#' config/server.properties > "$P/etc/runnel/server.properties"
install -m 0644 deploy/systemd/runnel.service "$P/lib/systemd/system/runnel.service"
install -m 0644 LICENSE "$P/usr/share/doc/runnel/copyright"
install -m 0644 README.md "$P/usr/share/doc/runnel/README.md"
echo "/etc/runnel/server.properties" > "$P/DEBIAN/conffiles"
SIZE=$(du -sk "$P" | cut -f1)
cat > "$P/DEBIAN/control" <<CONTROL
Package: runnel
Version: $VERSION
Architecture: $ARCH
Maintainer: Runnel developers <runnel@localhost>
Installed-Size: $SIZE
Depends: libc6
Section: net
Priority: optional
Description: Kafka-compatible event streaming broker in one binary
 Runnel speaks Apache Kafka's protocol: unmodified Kafka clients and Kafka's
 own tools work against it. One binary, no JVM, no ZooKeeper.
CONTROL
cat > "$P/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  if ! getent passwd runnel >/dev/null; then
    adduser --system --group --home /var/lib/runnel --no-create-home --quiet runnel 2>/dev/null ||
      useradd --system --user-group --home-dir /var/lib/runnel --shell /usr/sbin/nologin runnel
  fi
  install -d -o runnel -g runnel -m 0750 /var/lib/runnel
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
    systemctl enable runnel.service >/dev/null || true
    systemctl start runnel.service || true
  fi
fi
POSTINST
cat > "$P/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
  systemctl stop runnel.service || true
  systemctl disable runnel.service >/dev/null || true
fi
PRERM
cat > "$P/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null || true
fi
# The data stays on purge too: removing a broker's logs is the operator's decision.
POSTRM
chmod 0755 "$P/DEBIAN/postinst" "$P/DEBIAN/prerm" "$P/DEBIAN/postrm"
dpkg-deb --root-owner-group --build "$P" "$DIST/runnel_${VERSION}_${ARCH}.deb" >/dev/null
rm -rf "$P"
ls -1 "$DIST"
