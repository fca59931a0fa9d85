#!/usr/bin/env bash
# Fuzzes the request decode path (header, version check, length check, kafka-protocol decode)
# the SASL path (PLAIN / SCRAM / JAAS parsers, the per-connection authenticator fed frames) and
# the TLS path (client bytes into an SSL listener's server connection, client certificates into
# principals, principal mapping rules),
# each for a bounded time: ./scripts/fuzz.sh [seconds] (default 120). Not part of CI.
# cargo-fuzz needs nightly-only compiler flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN="${1:-120}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
cd fuzz
export RUSTC_BOOTSTRAP=1
# Seeds for the TLS target: a real ClientHello (mode byte 0) and a real certificate (mode 1).
if [ ! -d corpus/tls_handshake ]; then
  mkdir -p corpus/tls_handshake
  python3 - <<'PY'
import ssl
c = ssl.create_default_context()
c.check_hostname, c.verify_mode = False, ssl.CERT_NONE
i, o = ssl.MemoryBIO(), ssl.MemoryBIO()
s = c.wrap_bio(i, o, server_hostname="localhost")
try:
    s.do_handshake()
except ssl.SSLWantReadError:
    pass
open("corpus/tls_handshake/client-hello", "wb").write(b"\x00" + o.read())
der = ssl.PEM_cert_to_DER_cert(open("fuzz_targets/tls_handshake.rs").read().split('const CERT: &str = "')[1].split('";')[0])
open("corpus/tls_handshake/certificate", "wb").write(b"\x01" + der)
open("corpus/tls_handshake/rules", "wb").write(b"\x02RULE:^CN=(.*?),OU=(.*?)$/$1@$2/L,DEFAULT")
PY
fi
for target in request_decode sasl_tokens tls_handshake; do
  mkdir -p "corpus/$target"
  cargo fuzz run "$target" "corpus/$target" -- \
    -max_total_time="$SECONDS_TO_RUN" -rss_limit_mb=1024 -malloc_limit_mb=256 -print_final_stats=1
done
