//! Signed JWTs (RFC 7519, JWS compact form RFC 7515) checked as Kafka's
//! OAuthBearerValidatorCallbackHandler checks them: the header's `alg` (RS256/384/512,
//! PS256/384/512, ES256/384; `none` and HMAC refused), the key its `kid` selects from the JWKS,
//! the signature (verified with `ring`), then the claims: `exp` required and not past, `iat`
//! required and not in the future, `nbf`, `aud` and `iss` when expected, each with
//! `sasl.oauthbearer.clock.skew.seconds`; the principal from `sasl.oauthbearer.sub.claim.name`
//! and the scope from `sasl.oauthbearer.scope.claim.name`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::Value;

use super::jwks::{Curve, Jwk, PublicKey};

/// The claim checks (the `sasl.oauthbearer.*` settings of a listener).
#[derive(Debug, Clone)]
pub struct ClaimRules {
    /// `sasl.oauthbearer.expected.audience`: `aud` must hold one of them (empty: unchecked).
    pub expected_audience: Vec<String>,
    /// `sasl.oauthbearer.expected.issuer`: `iss` must equal it.
    pub expected_issuer: Option<String>,
    /// `sasl.oauthbearer.sub.claim.name`.
    pub sub_claim: String,
    /// `sasl.oauthbearer.scope.claim.name`.
    pub scope_claim: String,
    /// `sasl.oauthbearer.clock.skew.seconds`.
    pub clock_skew_s: i64,
}

impl Default for ClaimRules {
    fn default() -> Self {
        ClaimRules {
            expected_audience: Vec::new(),
            expected_issuer: None,
            sub_claim: "sub".into(),
            scope_claim: "scope".into(),
            clock_skew_s: 30,
        }
    }
}

/// A token that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidToken {
    /// The principal name (the sub claim, trimmed).
    pub subject: String,
    /// `exp` in unix ms.
    pub expires_at_ms: i64,
    /// The scope claim's entries.
    pub scope: Vec<String>,
}

/// A JWS split and decoded (signature not yet checked).
#[derive(Debug)]
pub struct Jws<'a> {
    /// The protected header.
    pub header: Value,
    /// The claims.
    pub claims: Value,
    /// `<header>.<payload>` as sent: the signed bytes.
    pub signing_input: &'a str,
    /// The signature bytes.
    pub signature: Vec<u8>,
}

fn b64(part: &str, what: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| format!("the JWS {what} is not base64url"))
}

fn json_object(bytes: &[u8], what: &str) -> Result<Value, String> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|_| format!("the JWS {what} is not JSON"))?;
    if !v.is_object() {
        return Err(format!("the JWS {what} is not a JSON object"));
    }
    Ok(v)
}

/// Splits and decodes a compact JWS.
pub fn split(jws: &str) -> Result<Jws<'_>, String> {
    let mut parts = jws.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("a JWS has three parts".into());
    };
    let header = json_object(&b64(h, "header")?, "header")?;
    let claims = json_object(&b64(p, "payload")?, "payload")?;
    let signature = b64(s, "signature")?;
    Ok(Jws {
        header,
        claims,
        signing_input: &jws[..h.len() + 1 + p.len()],
        signature,
    })
}

/// The JWS algorithms served, with the key kind each needs.
fn key_fits(alg: &str, key: &PublicKey) -> bool {
    match (alg, key) {
        ("RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512", PublicKey::Rsa { .. }) => true,
        ("ES256", PublicKey::Ec { curve, .. }) => *curve == Curve::P256,
        ("ES384", PublicKey::Ec { curve, .. }) => *curve == Curve::P384,
        _ => false,
    }
}

/// Checks the header's `alg`: served, not `none`, not HMAC.
pub fn check_alg(alg: &str) -> Result<(), String> {
    match alg {
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" | "ES256" | "ES384" => Ok(()),
        "none" => Err("alg none is refused: a JWKS is configured, tokens must be signed".into()),
        a if a.starts_with("HS") => Err(format!("alg {a} (HMAC) is refused with a JWKS")),
        a => Err(format!("alg {a} is not supported")),
    }
}

/// Verifies `sig` over `input` with `key` under `alg` (already checked to fit).
pub fn verify(alg: &str, key: &PublicKey, input: &[u8], sig: &[u8]) -> bool {
    match key {
        PublicKey::Rsa { n, e } => {
            let params: &signature::RsaParameters = match alg {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
                _ => return false,
            };
            RsaPublicKeyComponents { n, e }
                .verify(params, input, sig)
                .is_ok()
        }
        PublicKey::Ec { point, .. } => {
            let alg: &dyn signature::VerificationAlgorithm = match alg {
                "ES256" => &signature::ECDSA_P256_SHA256_FIXED,
                "ES384" => &signature::ECDSA_P384_SHA384_FIXED,
                _ => return false,
            };
            UnparsedPublicKey::new(alg, point)
                .verify(input, sig)
                .is_ok()
        }
    }
}

/// The keys a header may be verified with: the `kid`'s (all when the header has none) of a kind
/// fitting `alg`, and whose own `alg`, if any, is `alg`.
pub fn candidates<'k>(keys: &'k [Jwk], kid: Option<&str>, alg: &str) -> Vec<&'k Jwk> {
    keys.iter()
        .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
        .filter(|k| k.alg.as_deref().is_none_or(|a| a == alg))
        .filter(|k| key_fits(alg, &k.key))
        .collect()
}

/// A NumericDate claim in unix ms (None if absent; an error if not a number).
fn date_ms(claims: &Value, name: &str) -> Result<Option<i64>, String> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|f| f.is_finite())
            .map(|f| Some((f.floor() as i64).saturating_mul(1000)))
            .ok_or_else(|| format!("the {name} claim is not a number")),
    }
}

/// Checks the claims of a token whose signature was verified.
pub fn check_claims(rules: &ClaimRules, claims: &Value, now_ms: i64) -> Result<ValidToken, String> {
    let skew_ms = rules.clock_skew_s.max(0).saturating_mul(1000);
    let exp = date_ms(claims, "exp")?.ok_or("no exp claim")?;
    if now_ms.saturating_sub(skew_ms) >= exp {
        return Err(format!("the token expired at {exp} ms (now {now_ms})"));
    }
    let iat = date_ms(claims, "iat")?.ok_or("no iat claim")?;
    if iat > now_ms.saturating_add(skew_ms) {
        return Err(format!(
            "the token is issued in the future (iat {iat} ms, now {now_ms})"
        ));
    }
    if let Some(nbf) = date_ms(claims, "nbf")? {
        if now_ms.saturating_add(skew_ms) < nbf {
            return Err(format!(
                "the token is not valid before {nbf} ms (now {now_ms})"
            ));
        }
    }
    if !rules.expected_audience.is_empty() {
        let auds: Vec<&str> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
            _ => return Err("no aud claim, and an audience is expected".into()),
        };
        if !auds
            .iter()
            .any(|a| rules.expected_audience.iter().any(|e| e == a))
        {
            return Err(format!(
                "aud {auds:?} holds none of the expected audience {:?}",
                rules.expected_audience
            ));
        }
    }
    if let Some(expected) = &rules.expected_issuer {
        match claims.get("iss").and_then(|v| v.as_str()) {
            Some(iss) if iss == expected => {}
            Some(iss) => return Err(format!("iss {iss:?} is not the expected {expected:?}")),
            None => return Err("no iss claim, and an issuer is expected".into()),
        }
    }
    let subject = claims
        .get(&rules.sub_claim)
        .and_then(|v| v.as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("no {} claim (a non-empty string)", rules.sub_claim))?;
    let scope = match claims.get(&rules.scope_claim) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| format!("the {} claim holds a non-string", rules.scope_claim))?,
        Some(_) => Vec::new(),
    };
    if scope.iter().any(|s| s.trim().is_empty()) {
        return Err(format!(
            "the {} claim holds an empty scope",
            rules.scope_claim
        ));
    }
    Ok(ValidToken {
        subject: subject.to_string(),
        expires_at_ms: exp,
        scope: scope.iter().map(|s| s.trim().to_string()).collect(),
    })
}

/// The `kid` of a token's header, if it has one (to look the key up before [`validate`]).
pub fn header_kid(jws: &str) -> Option<String> {
    let h = jws.split('.').next()?;
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    header.get("kid")?.as_str().map(str::to_string)
}

/// Validates a signed token against `keys`: the principal and the token's lifetime, or why not.
pub fn validate(
    rules: &ClaimRules,
    keys: &[Jwk],
    jws: &str,
    now_ms: i64,
) -> Result<ValidToken, String> {
    let t = split(jws)?;
    let alg = t
        .header
        .get("alg")
        .and_then(|a| a.as_str())
        .ok_or("the JWS header has no alg")?;
    check_alg(alg)?;
    if t.header.get("crit").is_some() {
        return Err("the JWS header has crit parameters, none of which are understood".into());
    }
    let kid = match t.header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err("the JWS header's kid is not a string".into()),
    };
    let keys = candidates(keys, kid, alg);
    if keys.is_empty() {
        return Err(match kid {
            Some(k) => format!(
                "no key in the JWKS for kid {:?} and alg {alg}",
                k.chars().take(100).collect::<String>()
            ),
            None => format!("no key in the JWKS for alg {alg} (the token has no kid)"),
        });
    }
    if !keys
        .iter()
        .any(|k| verify(alg, &k.key, t.signing_input.as_bytes(), &t.signature))
    {
        let kid = kid.map(|k| k.chars().take(100).collect::<String>());
        return Err(format!("bad signature (alg {alg}, kid {kid:?})"));
    }
    check_claims(rules, &t.claims, now_ms)
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
