#!/usr/bin/env bash
# Installs what the test suite needs, skipping whatever is already there:
#   - kcat, rapidjson-dev and libssl-dev (Debian packages; RapidJSON and OpenSSL for librdkafka's
#     tests, scripts/peer), chromium and chromium-driver (the web console's browser tests)
#   - a Python venv at tests/.venv with pytest, confluent-kafka (librdkafka), kafka-python, codecs,
#     PyJWT + cryptography (signed OAUTHBEARER tokens) and Selenium (the console's browser tests)
#   - Apache Kafka's command-line tools and Java client (Maven) copied to .deps/kafka-libs (4.1.1)
#     and .deps/kafka-libs-4.4.0 (the newest 4.x)
#   - Kafka Connect's runtime and the FileStream connectors (Maven) copied to .deps/connect-libs
#   - Kafka Streams and Apache Kafka's WordCountDemo (Maven) copied to .deps/streams-libs
#   - MirrorMaker 2 (Maven) copied to .deps/mm2-libs
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v kcat >/dev/null 2>&1; then
  echo "== installing kcat"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q kcat >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q kcat >/dev/null; }
fi
if ! command -v openssl >/dev/null 2>&1; then
  # The TLS tests make their certificates with the openssl CLI (tests/helpers.make_tls_certs).
  echo "== installing openssl"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q openssl >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q openssl >/dev/null; }
fi
if [ ! -x /usr/bin/chromedriver ]; then
  # The web console's browser tests (tests/test_console.py) drive headless Chromium through
  # Debian's chromedriver, never one that Selenium would download.
  echo "== installing chromium and chromium-driver"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null; }
fi
if [ ! -f /usr/include/rapidjson/schema.h ]; then
  echo "== installing rapidjson-dev"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q rapidjson-dev >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q rapidjson-dev >/dev/null; }
fi
if [ ! -f /usr/include/openssl/ssl.h ]; then
  # librdkafka's suite is built with SSL: 0064 checks that a bad SSL setting fails rd_kafka_new.
  echo "== installing libssl-dev"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q libssl-dev >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q libssl-dev >/dev/null; }
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
# Apache Kafka's tools and Java client, one directory per version: the pinned one (the pom's
# kafka.version) in .deps/kafka-libs, and the newest 4.x in .deps/kafka-libs-<version> (the
# cluster tool tests run both; tests/helpers.py `kafka_tool(..., version=)` picks one).
KAFKA_NEWEST=4.4.0
fetch_kafka_libs() {  # <directory> [kafka version, else the pom's]
  local dir=$1 version=${2:-} mark=$1/.pom
  if [ ! -f "$mark" ] || ! cmp -s "$POM" "$mark"; then
    echo "== fetching Apache Kafka ${version:-(pom version)} tools (Maven) into $dir"
    rm -rf "$dir"
    mkdir -p "$dir"
    mvn -q -B -f "$POM" ${version:+-Dkafka.version=$version} dependency:copy-dependencies \
      -DoutputDirectory="$PWD/$dir"
    cp "$POM" "$mark"
  fi
}
fetch_kafka_libs .deps/kafka-libs
fetch_kafka_libs ".deps/kafka-libs-$KAFKA_NEWEST" "$KAFKA_NEWEST"

# Kafka Connect (distributed worker) with the FileStream connectors, for tests/test_connect.py; the
# pom says which versions and why.
CONNECT_POM=tests/java/connect/pom.xml
CONNECT_LIBS=.deps/connect-libs
if [ ! -f "$CONNECT_LIBS/.pom" ] || ! cmp -s "$CONNECT_POM" "$CONNECT_LIBS/.pom"; then
  echo "== fetching Kafka Connect and the FileStream connectors (Maven) into $CONNECT_LIBS"
  rm -rf "$CONNECT_LIBS"
  mkdir -p "$CONNECT_LIBS"
  mvn -q -B -f "$CONNECT_POM" dependency:copy-dependencies -DoutputDirectory="$PWD/$CONNECT_LIBS"
  cp "$CONNECT_POM" "$CONNECT_LIBS/.pom"
fi
# Kafka Streams and Apache Kafka's WordCountDemo for tests/test_streams.py (its own pom: the
# versions there), in .deps/streams-libs; the test compiles tests/java/streams/*.java against them.
STREAMS_POM=tests/java/streams/pom.xml
if [ ! -f .deps/streams-libs/.pom ] || ! cmp -s "$STREAMS_POM" .deps/streams-libs/.pom; then
  echo "== fetching Kafka Streams (Maven) into .deps/streams-libs"
  rm -rf .deps/streams-libs
  mkdir -p .deps/streams-libs
  mvn -q -B -f "$STREAMS_POM" dependency:copy-dependencies -DoutputDirectory="$PWD/.deps/streams-libs"
  cp "$STREAMS_POM" .deps/streams-libs/.pom
fi
# MirrorMaker 2 (connect-mirror with its Connect runtime) for tests/test_mirror_maker.py, in
# .deps/mm2-libs; its pom says which version and why.
MM2_POM=tests/java/mirror/pom.xml
if [ ! -f .deps/mm2-libs/.pom ] || ! cmp -s "$MM2_POM" .deps/mm2-libs/.pom; then
  echo "== fetching MirrorMaker 2 (Maven) into .deps/mm2-libs"
  rm -rf .deps/mm2-libs
  mkdir -p .deps/mm2-libs
  mvn -q -B -f "$MM2_POM" dependency:copy-dependencies -DoutputDirectory="$PWD/.deps/mm2-libs"
  cp "$MM2_POM" .deps/mm2-libs/.pom
fi
echo "== test dependencies ready"
