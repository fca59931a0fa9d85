//! SASL/OAUTHBEARER (RFC 7628) with Kafka's default server-side validation for development,
//! OAuthBearerUnsecuredValidatorCallbackHandler: the client's initial response
//! `n,[a=authzid],\x01auth=Bearer <jws>\x01[key=value\x01]*\x01` carries an unsecured JWS
//! (`{"alg":"none"}` header, empty signature) whose claims name the principal (`sub`, or the JAAS
//! option `unsecuredValidatorPrincipalClaimName`) and must not be expired (`exp`, with
//! `unsecuredValidatorAllowableClockSkewMs`). A refused token gets the RFC 7628 error challenge
//! `{"status":"invalid_token"}`; the client's `\x01` then fails the authentication with it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::jaas::JaasEntry;
use super::AuthError;

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
        v: &UnsecuredValidator,
        token: &[u8],
        now_ms: i64,
    ) -> Result<OAuthStep, AuthError> {
        if let Some(err) = self.error.take() {
            // The client acknowledged the error challenge (RFC 7628 3.2.3).
            return Err(AuthError::shown(err));
        }
        let jws = parse_initial_response(token)?;
        match validate_unsecured(v, &jws, now_ms) {
            Ok((user, expires_at_ms)) => Ok(OAuthStep::Complete {
                user,
                expires_at_ms,
            }),
            Err(reason) => {
                tracing::debug!(%reason, "OAUTHBEARER token refused");
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
        let v = UnsecuredValidator::from_jaas(None);
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
