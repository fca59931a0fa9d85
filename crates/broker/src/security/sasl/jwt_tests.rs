//! Unit tests of signed-JWT validation: an RSA test key (made with `openssl genpkey -algorithm
//! RSA -pkeyopt rsa_keygen_bits:2048`, kept here as a test vector) and EC keys made by `ring`
//! in the test; every refusal case.

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, RsaKeyPair, RsaPublicKeyComponents};

use super::*;
use crate::security::sasl::jwks::parse_jwks;

/// A 2048-bit RSA private key (PKCS#8), for tests only.
const RSA_TEST_KEY: &str = "
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCvwmUeKVByPoRq
quKJO32RMWZxzQY8rETKvUJOORNwZa69WNQ9K1YTbMjdBx8J7Vdbvf8UKISN3WlM
yhlzFtomNrv1jV4K+LK2xa1rVIqqbnHEX5DFnXKDpW7LDiE1MVWx3i7A/SEP/UNZ
sPcHi5T3UfGsDevxGNXzJQDhbqJdbSQQDI2QBJNYWOfi1Ot8sI6Gab/je3jRG4jU
Wjfe2fGOh6Ymgkss+NsI+43AhhjM4AkxXpj+rCOnqDqCRsv84PdbQFsyyJedkUC5
0bo27qX1nBPqDRG1vvF3nniUWPNKN5mkwdirF9W5hbYK384MhGeuxJZkwnKbsPLP
A2qUfPr/AgMBAAECggEAJ4p8ZUS2LH2UHMtFG8qefUO34HJXrN60u0fI2wBMN0Up
AsAxP3G4c7ZNmiw392vF84XTFR3odGIThosRHqtNeLtnnd6oAZ/h1Oy0Dyl96Mng
HmXBlDPPx344ZsZPAkCPHuz1Z8WK4qX/uPXvHWtxoBJ3ZFXddug3efQhNpZFQO8k
2Z79w7SAIh3om81XbwT4lVqBTP/YvpuaRdU9EPgS/IMAGtepg/qjVqsWCHUYYmON
QhOm9dVH4gHhD88ZBe5Bh1ps8CUL5DdE8BrQcn8Rw61eVLB8Ms+0XgRDB5kDvGkk
LU773nnmDDOsJmEHowKuULFygi+pUVxCwpLXrM1OgQKBgQDtYGQLqaGKjHiPfTTm
gsa1S+VzH0BHvcUB3Z2j6uDdcw+NiNT7VTkk+ZVB8yzP1ZtLfE1bzHfJphkufvJm
jinbz0N8p9v/ue4gKQJuujtsiN+/H/8cAJKb3rz8n3G+MhU3p8hm/cJ9jNkogJ6J
Igo/40BoBNzaPDMVd4MGfD4WqQKBgQC9jHLmsolOIitx7PQACfMpeYaLstkqKDys
/6KNdKXOb9Gb6ulhsrpx1euzgHsGKXvAzepT81ilKl2ux3WUbwFuPHdO3xDG9Kri
w6ckXOZEWbiLwm90eEP2WUB58ep7s8LOf8RcvybfON4ir/Jn/QzQpMQpCH0UHmND
Lbup+DYVZwKBgCvaEcFhzfj1aFRBsiMfZ6wYYEP7MvnN4fYtRbEBdBcU6XuhGo9v
uAXPobY0QUQH1w+D4BqkVEDJUX+YbhlqC+uSh4ogzHCanZYNXWitOMsdIhCBzbQT
mwH2jP0yS2XyhJ7qfQghuutMuNVVpXP5+ODCj6RnuZELa/h8QpVRIHs5AoGAQE/S
/Gs/Iv989h6LeyflFQFioSuBe0hDrf7eTFhzmWNfHyPJI5jcoZsPacwB8clJb9Vt
2CYMwZ1qQ87xGfe/6IMjh+MvchG5mU8A+tl6V16JuwGxhzb2+DK4KafnAymuwxme
qklBCyPkWqiP+rBlFLWSyMlUhur4iuaNcdIBp6kCgYEAzpzNNVThl1Xo0jTJzsSh
cpVfiAkSU72w3Evj6nNNagZPrWth+hoV3H1g8j1z1qIXCQReIZ8STaFUccpiHJ/L
wcAH/JUNWRoETmJ56+wJqsGUQZKW7xbiPD5OmphV0uQbxRIk4x1MhOJFq+AwtkC7
nrqeLqm64ULsexYm4/SQJEc=
";

const NOW_MS: i64 = 1_700_000_000_000;
const NOW_S: i64 = NOW_MS / 1000;

struct Keys {
    rsa: RsaKeyPair,
    ec256: EcdsaKeyPair,
    ec384: EcdsaKeyPair,
    jwks: Vec<Jwk>,
}

fn enc(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn keys() -> Keys {
    let rng = SystemRandom::new();
    let der = base64::engine::general_purpose::STANDARD
        .decode(RSA_TEST_KEY.split_whitespace().collect::<String>())
        .unwrap();
    let rsa = RsaKeyPair::from_pkcs8(&der).unwrap();
    let ec = |alg: &'static signature::EcdsaSigningAlgorithm| {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap()
    };
    let ec256 = ec(&signature::ECDSA_P256_SHA256_FIXED_SIGNING);
    let ec384 = ec(&signature::ECDSA_P384_SHA384_FIXED_SIGNING);
    let comps: RsaPublicKeyComponents<Vec<u8>> = rsa.public().into();
    let (n, e) = (comps.n, comps.e);
    let ec_jwk = |kid: &str, crv: &str, kp: &EcdsaKeyPair| {
        let p = kp.public_key().as_ref();
        let half = (p.len() - 1) / 2;
        format!(
            r#"{{"kty":"EC","kid":"{kid}","crv":"{crv}","x":"{}","y":"{}"}}"#,
            enc(&p[1..1 + half]),
            enc(&p[1 + half..])
        )
    };
    // The modulus with a leading zero byte, as some JWKS writers put it.
    let mut n0 = vec![0u8];
    n0.extend_from_slice(&n);
    let doc = format!(
        r#"{{"keys":[{{"kty":"RSA","kid":"rsa","use":"sig","n":"{}","e":"{}"}},{},{},
        {{"kty":"RSA","kid":"rsa-ps-only","alg":"PS256","n":"{}","e":"{}"}}]}}"#,
        enc(&n0),
        enc(&e),
        ec_jwk("ec256", "P-256", &ec256),
        ec_jwk("ec384", "P-384", &ec384),
        enc(&n),
        enc(&e),
    );
    let jwks = parse_jwks(doc.as_bytes()).unwrap();
    assert_eq!(jwks.len(), 4);
    Keys {
        rsa,
        ec256,
        ec384,
        jwks,
    }
}

fn claims(sub: &str) -> String {
    format!(
        r#"{{"sub":"{sub}","iat":{},"exp":{}}}"#,
        NOW_S - 10,
        NOW_S + 3600
    )
}

/// Signs `claims` with the key fitting `alg`, under the header `header`.
fn sign_raw(k: &Keys, alg: &str, header: &str, claims: &str) -> String {
    let input = format!("{}.{}", enc(header.as_bytes()), enc(claims.as_bytes()));
    let rng = SystemRandom::new();
    let sig = match alg {
        "ES256" => k
            .ec256
            .sign(&rng, input.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec(),
        "ES384" => k
            .ec384
            .sign(&rng, input.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec(),
        _ => {
            let padding: &dyn signature::RsaEncoding = match alg {
                "RS256" => &signature::RSA_PKCS1_SHA256,
                "RS384" => &signature::RSA_PKCS1_SHA384,
                "RS512" => &signature::RSA_PKCS1_SHA512,
                "PS256" => &signature::RSA_PSS_SHA256,
                "PS384" => &signature::RSA_PSS_SHA384,
                _ => &signature::RSA_PSS_SHA512,
            };
            let mut sig = vec![0; k.rsa.public().modulus_len()];
            k.rsa
                .sign(padding, &rng, input.as_bytes(), &mut sig)
                .unwrap();
            sig
        }
    };
    format!("{input}.{}", enc(&sig))
}

fn sign(k: &Keys, alg: &str, kid: &str, claims: &str) -> String {
    sign_raw(
        k,
        alg,
        &format!(r#"{{"alg":"{alg}","kid":"{kid}","typ":"JWT"}}"#),
        claims,
    )
}

fn check(k: &Keys, rules: &ClaimRules, token: &str) -> Result<ValidToken, String> {
    validate(rules, &k.jwks, token, NOW_MS)
}

fn refused(k: &Keys, rules: &ClaimRules, token: &str, why: &str) {
    match check(k, rules, token) {
        Ok(t) => panic!("accepted {t:?}, expected a refusal for {why}"),
        Err(e) => assert!(e.contains(why), "{e:?} does not say {why:?}"),
    }
}

#[test]
fn every_served_algorithm_verifies() {
    let k = keys();
    let rules = ClaimRules::default();
    for (alg, kid) in [
        ("RS256", "rsa"),
        ("RS384", "rsa"),
        ("RS512", "rsa"),
        ("PS256", "rsa"),
        ("PS256", "rsa-ps-only"),
        ("PS384", "rsa"),
        ("PS512", "rsa"),
        ("ES256", "ec256"),
        ("ES384", "ec384"),
    ] {
        let t = check(&k, &rules, &sign(&k, alg, kid, &claims("alice")))
            .unwrap_or_else(|e| panic!("{alg}/{kid}: {e}"));
        assert_eq!(t.subject, "alice");
        assert_eq!(t.expires_at_ms, (NOW_S + 3600) * 1000);
    }
    // Without a kid, every key of the right kind is tried.
    let t = sign_raw(&k, "ES384", r#"{"alg":"ES384"}"#, &claims("bob"));
    assert_eq!(check(&k, &rules, &t).unwrap().subject, "bob");
}

#[test]
fn refused_headers_keys_and_signatures() {
    let k = keys();
    let r = ClaimRules::default();
    let c = claims("alice");
    // A bad signature: one byte of it changed, or the claims changed after signing.
    let good = sign(&k, "RS256", "rsa", &c);
    let (head, sig) = good.rsplit_once('.').unwrap();
    let mut s = URL_SAFE_NO_PAD.decode(sig).unwrap();
    s[10] ^= 1;
    refused(&k, &r, &format!("{head}.{}", enc(&s)), "bad signature");
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        enc(claims("admin").as_bytes()),
        parts[2]
    );
    refused(&k, &r, &forged, "bad signature");
    let ec = sign(&k, "ES256", "ec256", &c);
    let (head, sig) = ec.rsplit_once('.').unwrap();
    let mut s = URL_SAFE_NO_PAD.decode(sig).unwrap();
    s[40] ^= 1;
    refused(&k, &r, &format!("{head}.{}", enc(&s)), "bad signature");
    // Signed with another key than the kid's (the EC P-384 signature under the P-256 kid).
    let t = sign_raw(&k, "ES384", r#"{"alg":"ES256","kid":"ec256"}"#, &c);
    refused(&k, &r, &t, "bad signature");
    // Unknown kid; a kid whose key is of another kind; a key restricted to another alg.
    refused(
        &k,
        &r,
        &sign(&k, "RS256", "nope", &c),
        "no key in the JWKS for kid \"nope\"",
    );
    refused(
        &k,
        &r,
        &sign(&k, "RS256", "ec256", &c),
        "no key in the JWKS",
    );
    refused(
        &k,
        &r,
        &sign(&k, "ES384", "ec256", &c),
        "no key in the JWKS",
    );
    refused(
        &k,
        &r,
        &sign(&k, "RS256", "rsa-ps-only", &c),
        "no key in the JWKS",
    );
    // alg none (an unsecured token), HMAC, others, missing.
    let unsecured = format!("{}.{}.", enc(br#"{"alg":"none"}"#), enc(c.as_bytes()));
    refused(&k, &r, &unsecured, "alg none is refused");
    let hs = format!(
        "{}.{}.{}",
        enc(br#"{"alg":"HS256","kid":"rsa"}"#),
        enc(c.as_bytes()),
        enc(b"mac")
    );
    refused(&k, &r, &hs, "HMAC");
    refused(
        &k,
        &r,
        &sign_raw(&k, "RS256", r#"{"alg":"EdDSA"}"#, &c),
        "not supported",
    );
    refused(
        &k,
        &r,
        &sign_raw(&k, "RS256", r#"{"kid":"rsa"}"#, &c),
        "no alg",
    );
    refused(
        &k,
        &r,
        &sign_raw(&k, "RS256", r#"{"alg":"RS256","kid":7}"#, &c),
        "kid is not a string",
    );
    refused(
        &k,
        &r,
        &sign_raw(
            &k,
            "RS256",
            r#"{"alg":"RS256","kid":"rsa","crit":["exp"]}"#,
            &c,
        ),
        "crit",
    );
    // Malformed compact forms.
    refused(&k, &r, "a.b", "three parts");
    refused(&k, &r, &format!("{good}.x"), "three parts");
    refused(
        &k,
        &r,
        &format!("{}.{}.AA", enc(b"[1]"), enc(c.as_bytes())),
        "not a JSON object",
    );
    refused(
        &k,
        &r,
        &format!("{}.{}.AA", enc(b"{"), enc(c.as_bytes())),
        "not JSON",
    );
    refused(
        &k,
        &r,
        &format!("{}x=", &good),
        "signature is not base64url",
    );
    refused(&k, &r, &format!("*{}", &good), "header is not base64url");
}

#[test]
fn refused_claims() {
    let k = keys();
    let r = ClaimRules::default();
    let tok = |claims: &str| sign(&k, "ES256", "ec256", claims);
    let (iat, exp) = (NOW_S - 10, NOW_S + 3600);
    // exp: required, and past only beyond the 30 s skew.
    refused(
        &k,
        &r,
        &tok(&format!(r#"{{"sub":"a","iat":{iat}}}"#)),
        "no exp claim",
    );
    refused(
        &k,
        &r,
        &tok(&format!(r#"{{"sub":"a","iat":{iat},"exp":"x"}}"#)),
        "exp claim is not a number",
    );
    let at = |e: i64| tok(&format!(r#"{{"sub":"a","iat":{},"exp":{e}}}"#, NOW_S - 100));
    refused(&k, &r, &at(NOW_S - 30), "expired");
    assert!(check(&k, &r, &at(NOW_S - 29)).is_ok());
    let strict = ClaimRules {
        clock_skew_s: 0,
        ..ClaimRules::default()
    };
    refused(&k, &strict, &at(NOW_S), "expired");
    assert!(check(&k, &strict, &at(NOW_S + 1)).is_ok());
    // iat: required, not in the future beyond the skew.
    refused(
        &k,
        &r,
        &tok(&format!(r#"{{"sub":"a","exp":{exp}}}"#)),
        "no iat claim",
    );
    let issued = |i: i64| tok(&format!(r#"{{"sub":"a","iat":{i},"exp":{exp}}}"#));
    refused(&k, &r, &issued(NOW_S + 31), "issued in the future");
    assert!(check(&k, &r, &issued(NOW_S + 30)).is_ok());
    // nbf.
    let nbf = |n: i64| {
        tok(&format!(
            r#"{{"sub":"a","iat":{iat},"exp":{exp},"nbf":{n}}}"#
        ))
    };
    refused(&k, &r, &nbf(NOW_S + 31), "not valid before");
    assert!(check(&k, &r, &nbf(NOW_S + 30)).is_ok());
    // aud: one of the expected audiences, as a string or in an array.
    let aud = ClaimRules {
        expected_audience: vec!["kafka".into(), "runnel".into()],
        ..ClaimRules::default()
    };
    let with = |extra: &str| tok(&format!(r#"{{"sub":"a","iat":{iat},"exp":{exp}{extra}}}"#));
    refused(&k, &aud, &with(""), "no aud claim");
    refused(&k, &aud, &with(r#","aud":"other""#), "expected audience");
    refused(&k, &aud, &with(r#","aud":["x","y"]"#), "expected audience");
    assert!(check(&k, &aud, &with(r#","aud":"runnel""#)).is_ok());
    assert!(check(&k, &aud, &with(r#","aud":["x","kafka"]"#)).is_ok());
    assert!(check(&k, &r, &with(r#","aud":"other""#)).is_ok());
    // iss.
    let iss = ClaimRules {
        expected_issuer: Some("https://idp".into()),
        ..ClaimRules::default()
    };
    refused(&k, &iss, &with(""), "no iss claim");
    refused(
        &k,
        &iss,
        &with(r#","iss":"https://evil""#),
        "not the expected",
    );
    assert!(check(&k, &iss, &with(r#","iss":"https://idp""#)).is_ok());
    // The subject: required, a non-empty string, from the configured claim.
    let no_sub = |extra: &str| tok(&format!(r#"{{"iat":{iat},"exp":{exp}{extra}}}"#));
    refused(&k, &r, &no_sub(""), "no sub claim");
    refused(&k, &r, &no_sub(r#","sub":"  ""#), "no sub claim");
    refused(&k, &r, &no_sub(r#","sub":5"#), "no sub claim");
    let client_id = ClaimRules {
        sub_claim: "client_id".into(),
        ..ClaimRules::default()
    };
    refused(
        &k,
        &client_id,
        &no_sub(r#","sub":"a""#),
        "no client_id claim",
    );
    let t = check(&k, &client_id, &no_sub(r#","client_id":" svc ""#)).unwrap();
    assert_eq!(t.subject, "svc");
    // The scope: a string or a list of non-empty strings.
    let t = check(&k, &r, &with(r#","scope":["read"," write"]"#)).unwrap();
    assert_eq!(t.scope, ["read", "write"]);
    assert_eq!(
        check(&k, &r, &with(r#","scope":"read""#)).unwrap().scope,
        ["read"]
    );
    refused(&k, &r, &with(r#","scope":["read",""]"#), "empty scope");
    refused(&k, &r, &with(r#","scope":["read",1]"#), "non-string");
}
