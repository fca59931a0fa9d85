//! SASL/OAUTHBEARER (RFC 7628): the client's initial response
//! `n,[a=authzid],\x01auth=Bearer <jws>\x01[key=value\x01]*\x01` carries a JWT, checked by one
//! of Kafka's two server callback handlers, as
//! `listener.name.<l>.oauthbearer.sasl.server.callback.handler.class` names it:
//! - the default, OAuthBearerUnsecuredValidatorCallbackHandler (for development): an unsecured
//!   JWS (`{"alg":"none"}` header, empty signature) whose claims name the principal (`sub`, or
//!   the JAAS option `unsecuredValidatorPrincipalClaimName`) and must not be expired (`exp`, with
//!   `unsecuredValidatorAllowableClockSkewMs`);
//! - OAuthBearerValidatorCallbackHandler: a signed JWT verified against the JWKS file of
//!   `sasl.oauthbearer.jwks.endpoint.url` (`jwks.rs`) with the claim checks of `jwt.rs`.
//!
//! A refused token gets the RFC 7628 error challenge `{"status":"invalid_token"}` (and a log
//! line saying why, never the token); the client's `\x01` then fails the authentication with it.

use std::sync::Arc;
use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::jaas::JaasEntry;
use super::jwks::{self, JwksCache, JwksSource};
use super::jwt::{self, ClaimRules};
use super::AuthError;

/// Kafka's JWKS-validating server callback handler (4.x name, then the 3.x one).
pub const VALIDATOR_CLASSES: &[&str] = &[
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler",
];

/// Kafka's default (unsecured) server callback handler.
pub const UNSECURED_VALIDATOR_CLASS: &str =
    "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler";

/// How a listener checks OAUTHBEARER tokens.
#[derive(Debug, Clone)]
pub enum Validator {
    /// Unsecured JWTs (Kafka's default handler).
    Unsecured(UnsecuredValidator),
    /// Signed JWTs verified against a JWKS.
    Jwks {
        /// The claim checks.
        rules: ClaimRules,
        /// The key set (shared by the listener's connections).
        keys: Arc<JwksCache>,
    },
}

impl Default for Validator {
    fn default() -> Self {
        Validator::Unsecured(UnsecuredValidator::from_jaas(None))
    }
}

/// A config lookup for the OAUTHBEARER mechanism of one listener: the key as it was set (or the
/// bare key for a default) and its value.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<(String, String)>;

fn number(lookup: Lookup, key: &str) -> Result<i64, String> {
    let (name, v) = lookup(key).ok_or_else(|| format!("{key} has no value"))?;
    v.trim()
        .parse()
        .map_err(|_| format!("{name} {v:?} is not a number"))
}

impl Validator {
    /// The validator `sasl.server.callback.handler.class` names, with its settings; `fresh`
    /// (at start-up) reads the JWKS file now, so a missing or bad one is an error naming the key.
    pub fn from_config(
        lookup: Lookup,
        jaas: Option<&JaasEntry>,
        fresh: bool,
    ) -> Result<Validator, String> {
        const CLASS: &str = "sasl.server.callback.handler.class";
        const URL: &str = "sasl.oauthbearer.jwks.endpoint.url";
        let class = lookup(CLASS);
        match &class {
            None => {}
            Some((_, c)) if c.trim() == UNSECURED_VALIDATOR_CLASS => {}
            Some((_, c)) if VALIDATOR_CLASSES.contains(&c.trim()) => {
                return Self::jwks(lookup, fresh, CLASS, URL);
            }
            Some((name, c)) => {
                return Err(format!(
                    "{name}={c}: Runnel serves OAUTHBEARER with {} (signed JWTs, JWKS) or Kafka's unsecured default only",
                    VALIDATOR_CLASSES[0]
                ))
            }
        }
        if fresh {
            if let Some((name, _)) = lookup(URL) {
                tracing::warn!(key = %name, "a JWKS is set but the OAUTHBEARER validator is Kafka's unsecured default (set listener.name.<l>.oauthbearer.{CLASS}={}): the JWKS is not used", VALIDATOR_CLASSES[0]);
            }
        }
        Ok(Validator::Unsecured(UnsecuredValidator::from_jaas(jaas)))
    }

    fn jwks(lookup: Lookup, fresh: bool, class: &str, url: &str) -> Result<Validator, String> {
        let (url_key, url_value) = lookup(url).ok_or_else(|| {
            format!(
                "{class} names {} but {url} is not set (the JWKS file's file: URL)",
                VALIDATOR_CLASSES[0]
            )
        })?;
        let path = jwks::file_url_path(url_value.trim()).map_err(|e| format!("{url_key}: {e}"))?;
        let refresh_ms = number(lookup, "sasl.oauthbearer.jwks.endpoint.refresh.ms")?;
        if refresh_ms <= 0 {
            return Err("sasl.oauthbearer.jwks.endpoint.refresh.ms must be positive".into());
        }
        let backoff_ms = number(lookup, "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms")?;
        let backoff_max_ms = number(
            lookup,
            "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
        )?;
        let source = JwksSource {
            path,
            refresh_ms: refresh_ms as u64,
            retry_backoff_ms: backoff_ms.max(0) as u64,
            retry_backoff_max_ms: backoff_max_ms.max(0) as u64,
        };
        let keys = jwks::open(&source, fresh).map_err(|e| format!("{url_key}: {e}"))?;
        let text = |k: &str| {
            lookup(k)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let rules = ClaimRules {
            expected_audience: text("sasl.oauthbearer.expected.audience")
                .map(|a| {
                    a.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            expected_issuer: text("sasl.oauthbearer.expected.issuer"),
            sub_claim: text("sasl.oauthbearer.sub.claim.name").unwrap_or_else(|| "sub".into()),
            scope_claim: text("sasl.oauthbearer.scope.claim.name")
                .unwrap_or_else(|| "scope".into()),
            clock_skew_s: number(lookup, "sasl.oauthbearer.clock.skew.seconds")?,
        };
        Ok(Validator::Jwks { rules, keys })
    }

    /// Checks a token: the principal and `exp` (unix ms), or why not.
    pub fn validate(&self, jws: &str, now_ms: i64) -> Result<(String, i64), String> {
        match self {
            Validator::Unsecured(v) => validate_unsecured(v, jws, now_ms),
            Validator::Jwks { rules, keys } => {
                let kid = jwt::header_kid(jws);
                let keys = keys.keys(kid.as_deref(), Instant::now());
                let t = jwt::validate(rules, &keys, jws, now_ms)?;
                tracing::debug!(subject = %t.subject, scope = ?t.scope, expires_at_ms = t.expires_at_ms, "OAUTHBEARER signed token accepted");
                Ok((t.subject, t.expires_at_ms))
            }
        }
    }
}

/// The validator's settings (JAAS options of the OAUTHBEARER entry).
#[derive(Debug, Clone)]
pub struct UnsecuredValidator {
    /// The claim naming the principal.
    pub principal_claim: String,
    /// Allowed clock skew in ms.
    pub clock_skew_ms: i64,
}

impl UnsecuredValidator {
    /// From the listener's OAUTHBEARER JAAS entry, if any.
    pub fn from_jaas(entry: Option<&JaasEntry>) -> UnsecuredValidator {
        let opt = |k: &str| entry.and_then(|e| e.option(k));
        UnsecuredValidator {
            principal_claim: opt("unsecuredValidatorPrincipalClaimName")
                .unwrap_or("sub")
                .to_string(),
            clock_skew_ms: opt("unsecuredValidatorAllowableClockSkewMs")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        }
    }
}

/// The server side of one OAUTHBEARER exchange.
#[derive(Debug, Default)]
pub struct OAuthServer {
    error: Option<String>,
}

/// A step's outcome.
pub enum OAuthStep {
    /// The error challenge: the client answers `\x01` and the exchange fails.
    Challenge(Vec<u8>),
    /// Authenticated as `user`, whose token expires at `expires_at_ms`.
    Complete {
        /// The principal name.
        user: String,
        /// The token's `exp` in unix ms.
        expires_at_ms: i64,
    },
}

fn b64url(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

/// The bearer token of a client initial response.
pub fn parse_initial_response(token: &[u8]) -> Result<String, AuthError> {
    let bad = || AuthError::shown("Invalid OAUTHBEARER client first message");
    let text = std::str::from_utf8(token).map_err(|_| bad())?;
    let (gs2, rest) = text.split_once('\u{1}').ok_or_else(bad)?;
    if !(gs2 == "n,," || (gs2.starts_with("n,a=") && gs2.ends_with(','))) {
        return Err(bad());
    }
    let kvs = rest.strip_suffix("\u{1}\u{1}").ok_or_else(bad)?;
    let mut auth = None;
    for kv in kvs.split('\u{1}') {
        let (k, v) = kv.split_once('=').ok_or_else(bad)?;
        if k == "auth" {
            auth = Some(v);
        }
    }
    let auth = auth.ok_or_else(bad)?;
    let (scheme, tok) = auth.split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("bearer") || tok.is_empty() {
        return Err(bad());
    }
    Ok(tok.trim().to_string())
}

/// Validates an unsecured JWS: the principal and `exp` (unix ms), or why not.
pub fn validate_unsecured(
    v: &UnsecuredValidator,
    jws: &str,
    now_ms: i64,
) -> Result<(String, i64), String> {
    let parts: Vec<&str> = jws.split('.').collect();
    if parts.len() != 3 {
        return Err("an unsecured JWS has three parts".into());
    }
    if !parts[2].is_empty() {
        return Err("an unsecured JWS has an empty signature".into());
    }
    let json = |p: &str| -> Result<serde_json::Value, String> {
        let bytes = b64url(p).ok_or("not base64url")?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    let header = json(parts[0])?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("none") {
        return Err("the JWS header's alg must be none".into());
    }
    let claims = json(parts[1])?;
    let exp = claims
        .get("exp")
        .and_then(|e| e.as_f64())
        .ok_or("no exp claim")?;
    let exp_ms = (exp * 1000.0) as i64;
    if now_ms >= exp_ms.saturating_add(v.clock_skew_ms) {
        return Err("the token has expired".into());
    }
    let sub = claims
        .get(&v.principal_claim)
        .and_then(|s| s.as_str())
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| format!("no {} claim", v.principal_claim))?;
    Ok((sub.to_string(), exp_ms))
}

impl OAuthServer {
    /// Evaluates the client's next message.
    pub fn evaluate(
        &mut self,
        v: &Validator,
        token: &[u8],
        now_ms: i64,
    ) -> Result<OAuthStep, AuthError> {
        if let Some(err) = self.error.take() {
            // The client acknowledged the error challenge (RFC 7628 3.2.3).
            return Err(AuthError::shown(err));
        }
        let jws = parse_initial_response(token)?;
        match v.validate(&jws, now_ms) {
            Ok((user, expires_at_ms)) => Ok(OAuthStep::Complete {
                user,
                expires_at_ms,
            }),
            Err(reason) => {
                tracing::info!(%reason, "OAUTHBEARER token refused");
                let err = r#"{"status":"invalid_token"}"#.to_string();
                self.error = Some(err.clone());
                Ok(OAuthStep::Challenge(err.into_bytes()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: &str) -> String {
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(claims.as_bytes())
        )
    }

    fn first(t: &str) -> Vec<u8> {
        format!("n,,\u{1}auth=Bearer {t}\u{1}\u{1}").into_bytes()
    }

    #[test]
    fn unsecured_tokens() {
        let v = Validator::default();
        let now = 1_000_000_000;
        let mut s = OAuthServer::default();
        match s.evaluate(&v, &first(&token(r#"{"sub":"admin","exp":2000000}"#)), now) {
            Ok(OAuthStep::Complete {
                user,
                expires_at_ms,
            }) => {
                assert_eq!((user.as_str(), expires_at_ms), ("admin", 2_000_000_000))
            }
            _ => panic!("refused"),
        }
        // Expired: the error challenge, then the failure with it.
        let mut s = OAuthServer::default();
        let Ok(OAuthStep::Challenge(c)) =
            s.evaluate(&v, &first(&token(r#"{"sub":"a","exp":999999}"#)), now)
        else {
            panic!("no challenge")
        };
        assert_eq!(c, br#"{"status":"invalid_token"}"#);
        let e = s.evaluate(&v, b"\x01", now).err().unwrap();
        assert!(e.message.contains("invalid_token"));
        for bad in [
            token(r#"{"exp":2000000}"#),
            token(r#"{"sub":"a"}"#),
            "a.b.c".to_string(),
            format!("{}x", token(r#"{"sub":"a","exp":2000000}"#)),
        ] {
            let mut s = OAuthServer::default();
            assert!(matches!(
                s.evaluate(&v, &first(&bad), now),
                Ok(OAuthStep::Challenge(_))
            ));
        }
        for bad in [
            &b""[..],
            b"n,,",
            b"y,,\x01auth=Bearer x\x01\x01",
            b"n,,\x01auth=Basic x\x01\x01",
            b"n,,\x01x=y\x01\x01",
        ] {
            let mut s = OAuthServer::default();
            assert!(s.evaluate(&v, bad, now).is_err());
        }
    }
}
