#!/usr/bin/env bash
# Installs what the test suite needs, skipping whatever is already there:
#   - kcat (Debian package)
#   - a Python venv at tests/.venv with pytest, confluent-kafka (librdkafka), kafka-python and codecs
#   - Apache Kafka's command-line tools and Java client (Maven) copied to .deps/kafka-libs
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v kcat >/dev/null 2>&1; then
  echo "== installing kcat"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q kcat >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q kcat >/dev/null; }
fi

REQ=tests/requirements.txt
MARK=tests/.venv/.installed
if [ ! -f "$MARK" ] || ! cmp -s "$REQ" "$MARK"; then
  echo "== creating tests/.venv"
  python3 -m venv tests/.venv
  tests/.venv/bin/pip install -q --upgrade pip >/dev/null
  tests/.venv/bin/pip install -q -r "$REQ"
  cp "$REQ" "$MARK"
fi

POM=tests/java/pom.xml
JMARK=.deps/kafka-libs/.pom
if [ ! -f "$JMARK" ] || ! cmp -s "$POM" "$JMARK"; then
  echo "== fetching Apache Kafka tools (Maven)"
  rm -rf .deps/kafka-libs
  mkdir -p .deps/kafka-libs
  mvn -q -B -f "$POM" dependency:copy-dependencies -DoutputDirectory="$PWD/.deps/kafka-libs"
  cp "$POM" "$JMARK"
fi
echo "== test dependencies ready"
