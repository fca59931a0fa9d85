//! The JSON Web Key Set (RFC 7517) that signed OAUTHBEARER tokens are verified against, read
//! from the file that `sasl.oauthbearer.jwks.endpoint.url` (`file:` URL) names, and kept fresh:
//! re-read every `sasl.oauthbearer.jwks.endpoint.refresh.ms`, and at once when a token names a
//! `kid` the set does not hold, rate limited by `sasl.oauthbearer.jwks.endpoint.retry.backoff.ms`
//! (doubling while unknown kids keep coming, up to `...retry.backoff.max.ms`). A failed re-read
//! keeps the keys it had, as Kafka's RefreshingHttpsJwks does.
//!
//! Authenticators are built per connection, so the key sets live in a process-wide registry
//! keyed by file and timings ([`open`]): every connection of a listener shares one set, and what
//! one re-read learnt serves the next connection.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use parking_lot::Mutex;

/// The largest JWKS file read (a set of a few keys is a few kB).
pub const MAX_JWKS_FILE_BYTES: u64 = 1024 * 1024;

/// How many unknown kids are remembered for rate limiting (Kafka keeps 16).
pub const MAX_MISSING_KIDS: usize = 16;

/// A `kid` longer than this never triggers a re-read (Kafka's RefreshingHttpsJwks bound).
pub const MAX_KID_LEN: usize = 1000;

/// An elliptic curve a JWK of kty EC may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256 (ES256).
    P256,
    /// NIST P-384 (ES384).
    P384,
}

impl Curve {
    fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }
}

/// A public key of the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// kty RSA: modulus and exponent, big-endian without leading zeros.
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
    /// kty EC: the uncompressed point `04 || x || y`.
    Ec {
        /// The curve.
        curve: Curve,
        /// The point.
        point: Vec<u8>,
    },
}

/// One usable key of a JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    /// `kid`, if given.
    pub kid: Option<String>,
    /// `alg`, if given: the key is used with this algorithm only.
    pub alg: Option<String>,
    /// The key.
    pub key: PublicKey,
}

fn b64_field(obj: &serde_json::Value, name: &str) -> Result<Vec<u8>, String> {
    let text = obj
        .get(name)
        .and_then(|v| v.as_str())
        .ok_or_else(|| format!("no {name}"))?;
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| format!("{name} is not base64url"))
}

fn strip_leading_zeros(mut b: Vec<u8>) -> Vec<u8> {
    let zeros = b.iter().take_while(|&&x| x == 0).count();
    b.drain(..zeros);
    b
}

fn parse_key(obj: &serde_json::Value) -> Result<Option<Jwk>, String> {
    if !obj.is_object() {
        return Err("a key is not a JSON object".into());
    }
    let text = |name: &str| obj.get(name).and_then(|v| v.as_str()).map(str::to_string);
    if text("use").is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    let key = match text("kty").as_deref() {
        Some("RSA") => {
            let n = strip_leading_zeros(b64_field(obj, "n")?);
            let e = strip_leading_zeros(b64_field(obj, "e")?);
            if n.is_empty() || e.is_empty() {
                return Err("empty n or e".into());
            }
            PublicKey::Rsa { n, e }
        }
        Some("EC") => {
            let curve = match text("crv").as_deref() {
                Some("P-256") => Curve::P256,
                Some("P-384") => Curve::P384,
                _ => return Ok(None),
            };
            let (x, y) = (b64_field(obj, "x")?, b64_field(obj, "y")?);
            let len = curve.coordinate_len();
            if x.len() != len || y.len() != len {
                return Err(format!("x and y of a {curve:?} key are {len} bytes"));
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            PublicKey::Ec { curve, point }
        }
        _ => return Ok(None),
    };
    Ok(Some(Jwk {
        kid: text("kid"),
        alg: text("alg"),
        key,
    }))
}

/// The usable keys of a JWKS document: kty RSA, and EC on P-256 / P-384, for signatures. Keys of
/// other kinds (oct, OKP, other curves, `use` enc) are skipped; a key of a served kind that is
/// malformed is skipped with a warning. Errors only when the document is not a JWKS.
pub fn parse_jwks(json: &[u8]) -> Result<Vec<Jwk>, String> {
    let doc: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))?;
    let keys = doc
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or("not a JWKS: no \"keys\" array")?;
    let mut out = Vec::new();
    for k in keys {
        match parse_key(k) {
            Ok(Some(jwk)) => out.push(jwk),
            Ok(None) => {}
            Err(e) => tracing::warn!(kid = ?k.get("kid"), error = %e, "JWKS key skipped"),
        }
    }
    Ok(out)
}

/// The file a `file:` URL names (`file:/p`, `file:///p`, `file://localhost/p`; `%XX` decoded).
pub fn file_url_path(url: &str) -> Result<PathBuf, String> {
    let rest = url
        .get(..5)
        .filter(|s| s.eq_ignore_ascii_case("file:"))
        .map(|_| &url[5..])
        .ok_or_else(|| {
            format!("{url:?} is not a file: URL (only file: JWKS URLs are served; an http(s) JWKS endpoint is not)")
        })?;
    let path = match rest.strip_prefix("//") {
        Some(r) => {
            let (host, p) = r.split_at(r.find('/').unwrap_or(r.len()));
            if !(host.is_empty() || host.eq_ignore_ascii_case("localhost")) {
                return Err(format!("{url:?} names a remote host"));
            }
            p
        }
        None => rest,
    };
    if !path.starts_with('/') {
        return Err(format!("{url:?} does not name an absolute path"));
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    let text = String::from_utf8(out).map_err(|_| format!("{url:?} is not UTF-8"))?;
    Ok(PathBuf::from(text))
}

/// Reads and parses a JWKS file.
pub fn read_jwks_file(path: &Path) -> Result<Vec<Jwk>, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.len() > MAX_JWKS_FILE_BYTES {
        return Err(format!(
            "{} is larger than {MAX_JWKS_FILE_BYTES} bytes",
            path.display()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_jwks(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Where a key set comes from and how it is kept fresh.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JwksSource {
    /// The JWKS file.
    pub path: PathBuf,
    /// `sasl.oauthbearer.jwks.endpoint.refresh.ms`.
    pub refresh_ms: u64,
    /// `sasl.oauthbearer.jwks.endpoint.retry.backoff.ms`.
    pub retry_backoff_ms: u64,
    /// `sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms`.
    pub retry_backoff_max_ms: u64,
}

#[derive(Debug)]
struct State {
    keys: Arc<Vec<Jwk>>,
    /// When the next scheduled re-read is due.
    next_refresh: Instant,
    /// Kids recently asked for and not found: before when each may re-read again, and the
    /// wait after that (at most [`MAX_MISSING_KIDS`] kept).
    missing: HashMap<String, (Instant, Duration)>,
    /// The last re-read an unknown kid caused: at most one per retry backoff in all.
    last_unknown_read: Option<Instant>,
    /// The current wait after a failed scheduled re-read.
    failure_backoff: Duration,
}

/// A JWKS file's keys, shared by the connections of the listeners that name it.
#[derive(Debug)]
pub struct JwksCache {
    source: JwksSource,
    state: Mutex<State>,
}

impl JwksCache {
    /// Reads the file now; an error if it cannot be read or is not a JWKS.
    pub fn load(source: JwksSource, now: Instant) -> Result<JwksCache, String> {
        let keys = read_jwks_file(&source.path)?;
        if keys.is_empty() {
            tracing::warn!(path = %source.path.display(), "the JWKS holds no usable key: every signed token will be refused until it does");
        }
        let base = Duration::from_millis(source.retry_backoff_ms);
        Ok(JwksCache {
            state: Mutex::new(State {
                keys: Arc::new(keys),
                next_refresh: now + Duration::from_millis(source.refresh_ms),
                missing: HashMap::new(),
                last_unknown_read: None,
                failure_backoff: base,
            }),
            source,
        })
    }

    /// The source.
    pub fn source(&self) -> &JwksSource {
        &self.source
    }

    fn reread(&self, st: &mut State, why: &str) -> bool {
        match read_jwks_file(&self.source.path) {
            Ok(keys) => {
                tracing::info!(path = %self.source.path.display(), keys = keys.len(), why, "JWKS re-read");
                st.keys = Arc::new(keys);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, why, "JWKS re-read failed: keeping the keys read before");
                false
            }
        }
    }

    fn backoff_step(&self, d: Duration) -> Duration {
        (d * 2).min(Duration::from_millis(
            self.source
                .retry_backoff_max_ms
                .max(self.source.retry_backoff_ms),
        ))
    }

    /// The keys as of `now`: re-read first if the refresh interval has passed, or if `kid` is
    /// named but not held and the unknown-kid backoff allows a re-read.
    pub fn keys(&self, kid: Option<&str>, now: Instant) -> Arc<Vec<Jwk>> {
        let mut st = self.state.lock();
        let base = Duration::from_millis(self.source.retry_backoff_ms);
        if now >= st.next_refresh {
            if self.reread(&mut st, "refresh interval") {
                st.next_refresh = now + Duration::from_millis(self.source.refresh_ms);
                st.failure_backoff = base;
            } else {
                st.next_refresh = now + st.failure_backoff;
                st.failure_backoff = self.backoff_step(st.failure_backoff);
            }
        }
        if let Some(kid) = kid.filter(|k| k.len() <= MAX_KID_LEN) {
            let held = |st: &State| st.keys.iter().any(|k| k.kid.as_deref() == Some(kid));
            if !held(&st) {
                let (next, wait) = st.missing.get(kid).copied().unwrap_or((now, base));
                let floor_passed = st.last_unknown_read.is_none_or(|t| now >= t + base);
                if now >= next && floor_passed {
                    self.reread(&mut st, "unknown kid");
                    st.last_unknown_read = Some(now);
                    if held(&st) {
                        st.missing.remove(kid);
                    } else {
                        if st.missing.len() >= MAX_MISSING_KIDS && !st.missing.contains_key(kid) {
                            let oldest = st.missing.iter().min_by_key(|(_, (t, _))| *t);
                            if let Some(k) = oldest.map(|(k, _)| k.clone()) {
                                st.missing.remove(&k);
                            }
                        }
                        let step = self.backoff_step(wait);
                        st.missing.insert(kid.to_string(), (now + wait, step));
                    }
                }
            }
        }
        st.keys.clone()
    }
}

type Registry = Mutex<HashMap<JwksSource, Arc<JwksCache>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The shared key set of `source`: read now if `fresh` (start-up, so a missing or bad file is an
/// error then) or if no connection has read it yet; the cached one otherwise.
pub fn open(source: &JwksSource, fresh: bool) -> Result<Arc<JwksCache>, String> {
    if !fresh {
        if let Some(c) = registry().lock().get(source) {
            return Ok(c.clone());
        }
    }
    let cache = Arc::new(JwksCache::load(source.clone(), Instant::now())?);
    registry().lock().insert(source.clone(), cache.clone());
    Ok(cache)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsa_json(kid: &str) -> String {
        format!(r#"{{"kty":"RSA","kid":"{kid}","n":"AMFA","e":"AQAB"}}"#)
    }

    #[test]
    fn parses_keys_and_skips_others() {
        let x = URL_SAFE_NO_PAD.encode([1u8; 32]);
        let doc = format!(
            r#"{{"keys":[{},{{"kty":"EC","crv":"P-256","kid":"e","x":"{x}","y":"{x}"}},
            {{"kty":"oct","k":"AAAA"}},{{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}},
            {{"kty":"RSA","use":"enc","n":"AQ","e":"AQ"}},{{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}},
            {{"kty":"RSA","n":"!!","e":"AQAB"}}]}}"#,
            rsa_json("r")
        );
        let keys = parse_jwks(doc.as_bytes()).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(
            keys[0].key,
            PublicKey::Rsa {
                n: vec![0xc1, 0x40],
                e: vec![1, 0, 1]
            }
        );
        match &keys[1].key {
            PublicKey::Ec { curve, point } => {
                assert_eq!(*curve, Curve::P256);
                assert_eq!(point.len(), 65);
                assert_eq!(point[0], 4);
            }
            k => panic!("{k:?}"),
        }
        assert!(parse_jwks(b"{}").is_err());
        assert!(parse_jwks(b"nope").is_err());
        assert!(parse_jwks(br#"{"keys":{}}"#).is_err());
    }

    #[test]
    fn file_urls() {
        assert_eq!(file_url_path("file:/a/b").unwrap(), PathBuf::from("/a/b"));
        assert_eq!(file_url_path("file:///a/b").unwrap(), PathBuf::from("/a/b"));
        assert_eq!(
            file_url_path("FILE://localhost/a%20b").unwrap(),
            PathBuf::from("/a b")
        );
        assert!(file_url_path("https://idp/jwks")
            .unwrap_err()
            .contains("http(s)"));
        assert!(file_url_path("file://remote/a").is_err());
        assert!(file_url_path("file:a").is_err());
        assert!(file_url_path("fil").is_err());
    }

    #[test]
    fn refresh_and_unknown_kid_rereads_are_rate_limited() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let write = |kids: &[&str]| {
            let keys: Vec<String> = kids.iter().map(|k| rsa_json(k)).collect();
            std::fs::write(&path, format!(r#"{{"keys":[{}]}}"#, keys.join(","))).unwrap();
        };
        write(&["a"]);
        let t0 = Instant::now();
        let source = JwksSource {
            path: path.clone(),
            refresh_ms: 60_000,
            retry_backoff_ms: 100,
            retry_backoff_max_ms: 400,
        };
        let c = JwksCache::load(source.clone(), t0).unwrap();
        let kids = |c: &JwksCache, kid: Option<&str>, at_ms: u64| -> Vec<String> {
            c.keys(kid, t0 + Duration::from_millis(at_ms))
                .iter()
                .filter_map(|k| k.kid.clone())
                .collect()
        };
        assert_eq!(kids(&c, Some("a"), 0), ["a"]);
        // A new key: a known kid does not re-read, an unknown one does at once.
        write(&["a", "b"]);
        assert_eq!(kids(&c, Some("a"), 10), ["a"]);
        assert_eq!(kids(&c, Some("b"), 10), ["a", "b"]);
        // At most one unknown-kid re-read per 100 ms in all.
        write(&["a", "b", "x"]);
        assert_eq!(kids(&c, Some("x"), 20), ["a", "b"]);
        assert_eq!(kids(&c, Some("x"), 110), ["a", "b", "x"]);
        // A kid that stays unknown re-reads after 100, 200, then 400 ms (the max) again.
        write(&["q"]);
        assert_eq!(kids(&c, Some("y"), 210), ["q"]);
        write(&["r"]);
        assert_eq!(kids(&c, Some("y"), 309), ["q"]);
        assert_eq!(kids(&c, Some("y"), 310), ["r"]);
        write(&["s"]);
        assert_eq!(kids(&c, Some("y"), 509), ["r"]);
        assert_eq!(kids(&c, Some("y"), 510), ["s"]);
        write(&["t"]);
        assert_eq!(kids(&c, Some("y"), 909), ["s"]);
        assert_eq!(kids(&c, Some("y"), 910), ["t"]);
        // Another kid is held back only by the 100 ms floor.
        write(&["u"]);
        assert_eq!(kids(&c, Some("z"), 1009), ["t"]);
        assert_eq!(kids(&c, Some("z"), 1010), ["u"]);
        // An overlong kid never re-reads.
        write(&["u2"]);
        let long = "k".repeat(MAX_KID_LEN + 1);
        assert_eq!(kids(&c, Some(&long), 5000), ["u"]);
        // The scheduled refresh picks up changes without an unknown kid; a failed one keeps
        // the keys and retries after the backoff.
        write(&["v"]);
        assert_eq!(kids(&c, None, 59_999), ["u"]);
        assert_eq!(kids(&c, None, 60_000), ["v"]);
        std::fs::write(&path, "garbage").unwrap();
        assert_eq!(kids(&c, None, 120_000), ["v"]);
        write(&["w"]);
        assert_eq!(kids(&c, None, 120_099), ["v"]);
        assert_eq!(kids(&c, None, 120_100), ["w"]);
        // A missing file is an error at load.
        let gone = JwksSource {
            path: dir.path().join("missing.json"),
            ..source
        };
        assert!(JwksCache::load(gone, t0)
            .unwrap_err()
            .contains("cannot read"));
    }
}
