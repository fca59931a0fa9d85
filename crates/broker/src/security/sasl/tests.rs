//! The authenticator fed whole frames, as a connection feeds it.

use std::collections::BTreeMap;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, MetadataRequest, RequestHeader, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::scram::{ScramCredential, ScramMechanism};
use super::*;
use runnel_client::sasl::SaslClient;

struct Store(BTreeMap<(String, i8), ScramCredential>);

impl CredentialStore for Store {
    fn scram_credential(&self, user: &str, mech: ScramMechanism) -> Option<ScramCredential> {
        self.0.get(&(user.to_string(), mech.code())).cloned()
    }
}

fn store() -> Store {
    let mut m = BTreeMap::new();
    for mech in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
        m.insert(
            ("carol".to_string(), mech.code()),
            ScramCredential::from_password(mech, "carol-pw", b"salt", 4096),
        );
    }
    Store(m)
}

fn settings(reauth_ms: i64) -> Arc<ListenerSasl> {
    let mechanisms: Vec<String> = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    Arc::new(ListenerSasl {
        listener: "SASL_PLAINTEXT".into(),
        max_reauth_ms: mechanisms.iter().map(|m| (m.clone(), reauth_ms)).collect(),
        mechanisms,
        jaas: BTreeMap::new(),
        plain_users: [("alice", "alice-pw"), ("bob", "bob-pw")]
            .iter()
            .map(|(u, p)| (u.to_string(), p.to_string()))
            .collect(),
        failed_delay: Duration::from_millis(100),
        max_receive_size: 524288,
        oauth: Default::default(),
    })
}

fn frame<T: Encodable>(key: ApiKey, version: i16, req: &T) -> Bytes {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("test")))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    req.encode(&mut buf, version).unwrap();
    buf.freeze()
}

fn handshake(mech: &str, version: i16) -> Bytes {
    frame(
        ApiKey::SaslHandshake,
        version,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mech.into())),
    )
}

fn authenticate(token: &[u8], version: i16) -> Bytes {
    frame(
        ApiKey::SaslAuthenticate,
        version,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token)),
    )
}

fn metadata() -> Bytes {
    frame(ApiKey::Metadata, 12, &MetadataRequest::default())
}

/// The body of a response frame (size, correlation id and header tags skipped).
fn body(resp: &Bytes, flexible: bool) -> Bytes {
    let mut b = resp.clone();
    assert_eq!(b.get_i32() as usize, resp.len() - 4);
    assert_eq!(b.get_i32(), 7);
    if flexible {
        assert_eq!(b.get_u8(), 0);
    }
    b
}

fn handshake_resp(g: &Gate) -> SaslHandshakeResponse {
    let bytes = match g {
        Gate::Respond(b) => b.clone(),
        Gate::Fail {
            response: Some(b), ..
        } => b.clone(),
        _ => panic!("no response"),
    };
    SaslHandshakeResponse::decode(&mut body(&bytes, false), 1).unwrap()
}

fn auth_resp(g: &Gate, version: i16) -> SaslAuthenticateResponse {
    let bytes = match g {
        Gate::Respond(b) => b.clone(),
        Gate::Fail {
            response: Some(b), ..
        } => b.clone(),
        _ => panic!("no response"),
    };
    SaslAuthenticateResponse::decode(&mut body(&bytes, version >= 2), version).unwrap()
}

struct Conn {
    auth: Authenticator,
    principal: Arc<KafkaPrincipal>,
    store: Store,
}

impl Conn {
    fn new(reauth_ms: i64) -> Conn {
        Conn {
            auth: Authenticator::new(settings(reauth_ms)),
            principal: Arc::new(KafkaPrincipal::anonymous()),
            store: store(),
        }
    }
    fn send(&mut self, f: &Bytes) -> Gate {
        self.auth.on_frame(&self.store, &mut self.principal, f)
    }
    fn plain(&mut self, user: &str, pw: &str) -> Gate {
        let g = self.send(&handshake("PLAIN", 1));
        assert_eq!(handshake_resp(&g).error_code, 0);
        self.send(&authenticate(format!("\0{user}\0{pw}").as_bytes(), 2))
    }
    fn scram(&mut self, mech: ScramMechanism, user: &str, pw: &str) -> Gate {
        let g = self.send(&handshake(mech.name(), 1));
        assert_eq!(handshake_resp(&g).error_code, 0);
        let mut client = SaslClient::new(mech.name(), user, pw).unwrap();
        let g = self.send(&authenticate(&client.initial(), 1));
        let Gate::Respond(_) = &g else { return g };
        let first = auth_resp(&g, 1);
        let fin = client.step(&first.auth_bytes).unwrap().unwrap();
        let g = self.send(&authenticate(&fin, 1));
        if let Gate::Respond(_) = &g {
            assert_eq!(client.step(&auth_resp(&g, 1).auth_bytes).unwrap(), None);
        }
        g
    }
}

fn is_fail(g: &Gate) -> bool {
    matches!(g, Gate::Fail { .. })
}

#[test]
fn plain_authenticates_and_sets_the_principal() {
    let mut c = Conn::new(0);
    assert!(matches!(
        c.send(&frame(
            ApiKey::ApiVersions,
            3,
            &ApiVersionsRequest::default()
        )),
        Gate::Pass
    ));
    assert!(!c.auth.authenticated());
    let g = c.plain("alice", "alice-pw");
    let r = auth_resp(&g, 2);
    assert_eq!((r.error_code, r.session_lifetime_ms), (0, 0));
    assert!(c.auth.authenticated());
    assert_eq!(c.principal.to_string(), "User:alice");
    assert!(matches!(c.send(&metadata()), Gate::Pass));
    // No re-authentication from a v2 client without a lifetime... but it may: a new handshake
    // is answered by the authenticator, not passed on.
    assert!(matches!(c.send(&handshake("PLAIN", 1)), Gate::Respond(_)));
}

#[test]
fn failures_answer_and_close() {
    // Wrong password: SASL_AUTHENTICATION_FAILED with Kafka's message, after the delay.
    let mut c = Conn::new(0);
    let g = c.plain("alice", "nope");
    assert!(is_fail(&g));
    let r = auth_resp(&g, 2);
    assert_eq!(r.error_code, ResponseError::SaslAuthenticationFailed.code());
    assert_eq!(
        r.error_message.unwrap().as_str(),
        "Authentication failed: Invalid username or password"
    );
    if let Gate::Fail { delay, .. } = g {
        assert_eq!(delay, Duration::from_millis(100));
    }
    assert_eq!(c.principal.to_string(), "User:ANONYMOUS");

    // A mechanism not enabled: UNSUPPORTED_SASL_MECHANISM with the enabled ones.
    let mut c = Conn::new(0);
    let g = c.send(&handshake("GSSAPI", 1));
    assert!(is_fail(&g));
    let r = handshake_resp(&g);
    assert_eq!(r.error_code, ResponseError::UnsupportedSaslMechanism.code());
    assert_eq!(r.mechanisms.len(), 3);

    // Requests before authentication: refused (no response), as Kafka's IllegalSaslState.
    let mut c = Conn::new(0);
    assert!(matches!(
        c.send(&metadata()),
        Gate::Fail { response: None, .. }
    ));
    let mut c = Conn::new(0);
    assert!(matches!(c.send(&handshake("PLAIN", 1)), Gate::Respond(_)));
    assert!(matches!(
        c.send(&metadata()),
        Gate::Fail { response: None, .. }
    ));
    // ApiVersions twice: closed at once.
    let mut c = Conn::new(0);
    let av = frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert!(matches!(c.send(&av), Gate::Pass));
    assert!(matches!(c.send(&av), Gate::Close(_)));
    // Truncated frames, garbage, an empty frame: a failure, never a panic.
    for bad in [
        &b""[..],
        b"\x00",
        b"\x00\x11\x00\x01\x00\x00",
        b"\xff\xff\xff\xff\xff\xff\xff\xff",
    ] {
        let mut c = Conn::new(0);
        let g = c.send(&Bytes::copy_from_slice(bad));
        assert!(matches!(g, Gate::Fail { .. } | Gate::Close(_)));
    }
    let mut c = Conn::new(0);
    c.send(&handshake("PLAIN", 1));
    let mut t = authenticate(b"\0alice\0alice-pw", 2).to_vec();
    t.truncate(t.len() - 3);
    assert!(matches!(
        c.send(&Bytes::from(t)),
        Gate::Fail { response: None, .. }
    ));
    // PLAIN tokens that are not three fields.
    let mut c = Conn::new(0);
    c.send(&handshake("PLAIN", 1));
    let g = c.send(&authenticate(b"alice", 2));
    assert!(auth_resp(&g, 2)
        .error_message
        .unwrap()
        .contains("expected 3 tokens"));
}

#[test]
fn scram_both_mechanisms() {
    for mech in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
        let mut c = Conn::new(0);
        let g = c.scram(mech, "carol", "carol-pw");
        assert!(matches!(g, Gate::Respond(_)));
        assert_eq!(c.principal.to_string(), "User:carol");
        let mut c = Conn::new(0);
        let g = c.scram(mech, "carol", "wrong");
        let r = auth_resp(&g, 1);
        assert_eq!(r.error_code, ResponseError::SaslAuthenticationFailed.code());
        assert_eq!(
            r.error_message.unwrap().as_str(),
            format!("Authentication failed during authentication due to invalid credentials with SASL mechanism {}", mech.name())
        );
        let mut c = Conn::new(0);
        assert!(is_fail(&c.scram(mech, "nobody", "x")));
    }
}

#[test]
fn handshake_v0_takes_bare_tokens() {
    let mut c = Conn::new(0);
    assert_eq!(
        handshake_resp(&c.send(&handshake("PLAIN", 0))).error_code,
        0
    );
    let g = c.send(&Bytes::from_static(b"\0bob\0bob-pw"));
    let Gate::Respond(b) = g else {
        panic!("no response")
    };
    assert_eq!(&b[..], &[0, 0, 0, 0]);
    assert_eq!(c.principal.to_string(), "User:bob");
    let mut c = Conn::new(0);
    c.send(&handshake("PLAIN", 0));
    assert!(matches!(
        c.send(&Bytes::from_static(b"\0bob\0x")),
        Gate::Fail { response: None, .. }
    ));
}

#[test]
fn reauthentication() {
    let mut c = Conn::new(60_000);
    let r = auth_resp(&c.plain("alice", "alice-pw"), 2);
    assert_eq!(r.session_lifetime_ms, 60_000);
    // Same principal again: fine, a new lifetime.
    let r = auth_resp(&c.plain("alice", "alice-pw"), 2);
    assert_eq!((r.error_code, r.session_lifetime_ms), (0, 60_000));
    assert!(matches!(c.send(&metadata()), Gate::Pass));
    // Another principal: refused, and the connection is failed.
    let g = c.plain("bob", "bob-pw");
    let r = auth_resp(&g, 2);
    assert_eq!(r.error_code, ResponseError::SaslAuthenticationFailed.code());
    assert!(r
        .error_message
        .unwrap()
        .contains("Cannot change principals during re-authentication"));
    assert_eq!(c.principal.to_string(), "User:alice");
    // Another mechanism: the handshake is answered, the token refused.
    let mut c = Conn::new(60_000);
    c.plain("alice", "alice-pw");
    let g = c.scram(ScramMechanism::Sha256, "carol", "carol-pw");
    let r = auth_resp(&g, 1);
    assert!(r
        .error_message
        .unwrap()
        .contains("not supported for re-authentication"));
    // An expired session: the next request closes the connection; a handshake is still
    // taken (re-authentication).
    let mut c = Conn::new(1);
    c.plain("alice", "alice-pw");
    std::thread::sleep(Duration::from_millis(5));
    assert!(matches!(c.send(&metadata()), Gate::Close(_)));
    let mut c = Conn::new(1);
    c.plain("alice", "alice-pw");
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(auth_resp(&c.plain("alice", "alice-pw"), 2).error_code, 0);
    // A v0 SaslAuthenticate client cannot re-authenticate: its handshake goes to the
    // dispatcher (ILLEGAL_SASL_STATE there).
    let mut c = Conn::new(0);
    c.send(&handshake("PLAIN", 1));
    c.send(&authenticate(b"\0alice\0alice-pw", 0));
    assert!(c.auth.authenticated());
    assert!(matches!(c.send(&handshake("PLAIN", 1)), Gate::Pass));
}

#[test]
fn oversized_frames_fail_authentication() {
    let c = Conn::new(0);
    assert_eq!(c.auth.max_frame(100 << 20), 524288);
    assert!(matches!(
        c.auth.oversized(1 << 30),
        Gate::Fail { response: None, .. }
    ));
}

/// A listener serving OAUTHBEARER with a JWKS validator (an EC P-256 key made here), and a
/// signer of tokens for that key.
fn jwks_settings(
    dir: &std::path::Path,
    reauth_ms: i64,
) -> (Arc<ListenerSasl>, impl Fn(&str, i64) -> String) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let p = key.public_key().as_ref().to_vec();
    let path = dir.join("jwks.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"k1","x":"{}","y":"{}"}}]}}"#,
            URL_SAFE_NO_PAD.encode(&p[1..33]),
            URL_SAFE_NO_PAD.encode(&p[33..])
        ),
    )
    .unwrap();
    let source = jwks::JwksSource {
        path,
        refresh_ms: 3_600_000,
        retry_backoff_ms: 100,
        retry_backoff_max_ms: 10_000,
    };
    let keys = Arc::new(jwks::JwksCache::load(source, Instant::now()).unwrap());
    let mut s = (*settings(reauth_ms)).clone();
    s.mechanisms = vec!["OAUTHBEARER".into()];
    s.max_reauth_ms = [("OAUTHBEARER".to_string(), reauth_ms)].into();
    s.oauth = oauth::Validator::Jwks {
        rules: jwt::ClaimRules::default(),
        keys,
    };
    let sign = move |sub: &str, lifetime_s: i64| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","kid":"k1"}"#),
            URL_SAFE_NO_PAD.encode(
                format!(
                    r#"{{"sub":"{sub}","iat":{now},"exp":{}}}"#,
                    now + lifetime_s
                )
                .as_bytes()
            )
        );
        let sig = key.sign(&rng, input.as_bytes()).unwrap();
        let jws = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
        format!("n,,\u{1}auth=Bearer {jws}\u{1}\u{1}")
    };
    (Arc::new(s), sign)
}

#[test]
fn oauthbearer_signed_tokens_set_the_principal_and_the_session_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    for (reauth_ms, lifetime_s, lo, hi) in [
        (0, 3600, 3_590_000, 3_600_000),
        (5000, 3600, 5000, 5000),
        (3_600_000, 60, 50_000, 60_000),
    ] {
        let (settings, sign) = jwks_settings(dir.path(), reauth_ms);
        let mut c = Conn::new(0);
        c.auth = Authenticator::new(settings);
        let g = c.send(&handshake("OAUTHBEARER", 1));
        assert_eq!(handshake_resp(&g).error_code, 0);
        let g = c.send(&authenticate(sign("alice", lifetime_s).as_bytes(), 1));
        let r = auth_resp(&g, 1);
        assert_eq!(r.error_code, 0);
        assert!(
            (lo..=hi).contains(&r.session_lifetime_ms),
            "{reauth_ms}/{lifetime_s}: {}",
            r.session_lifetime_ms
        );
        assert!(c.auth.authenticated());
        assert_eq!(c.principal.to_string(), "User:alice");
    }
    // Expired: the error challenge, then the failure.
    let (settings, sign) = jwks_settings(dir.path(), 0);
    let mut c = Conn::new(0);
    c.auth = Authenticator::new(settings);
    c.send(&handshake("OAUTHBEARER", 1));
    let g = c.send(&authenticate(sign("alice", -60).as_bytes(), 1));
    let r = auth_resp(&g, 1);
    assert_eq!(
        (r.error_code, &r.auth_bytes[..]),
        (0, &br#"{"status":"invalid_token"}"#[..])
    );
    let g = c.send(&authenticate(b"\x01", 1));
    assert!(is_fail(&g));
    assert_eq!(
        auth_resp(&g, 1).error_code,
        ResponseError::SaslAuthenticationFailed.code()
    );
    assert!(!c.auth.authenticated());
}
