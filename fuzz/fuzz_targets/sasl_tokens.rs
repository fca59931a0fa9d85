//! Fuzz target: the SASL path's parsers and the per-connection authenticator never panic on any
//! input. The first byte picks what the rest is: a PLAIN message, a SCRAM client-first or
//! client-final message (also as the second step of a real exchange), JAAS text, a JWKS
//! document, a signed JWT checked against a small key set, or a sequence of frames (split at "\n--\n") fed to an authenticator as a connection would.
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use runnel_broker::security::sasl::scram::{
    parse_client_final, parse_client_first, ScramCredential, ScramMechanism, ScramServer,
};
use runnel_broker::security::sasl::{
    jaas, jwks, jwt, plain, Authenticator, CredentialStore, ListenerSasl,
};
use runnel_broker::security::KafkaPrincipal;

struct Store;

impl CredentialStore for Store {
    fn scram_credential(&self, user: &str, mech: ScramMechanism) -> Option<ScramCredential> {
        (user == "carol").then(|| ScramCredential::from_password(mech, "pw", b"salt", 4096))
    }
}

fn settings() -> Arc<ListenerSasl> {
    let mechanisms: Vec<String> = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    Arc::new(ListenerSasl {
        listener: "SASL_PLAINTEXT".into(),
        max_reauth_ms: mechanisms.iter().map(|m| (m.clone(), 1)).collect(),
        mechanisms,
        jaas: BTreeMap::new(),
        plain_users: [("alice".to_string(), "pw".to_string())].into(),
        failed_delay: Duration::ZERO,
        max_receive_size: 524288,
        oauth: Default::default(),
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 8 {
        0 => {
            let users = [("alice".to_string(), "pw".to_string())].into();
            let _ = plain::authenticate(&users, rest);
        }
        1 => {
            let _ = parse_client_first(rest);
        }
        2 => {
            let _ = parse_client_final(rest);
        }
        3 => {
            // A well-formed first step, then the fuzz bytes as the final message.
            let lookup = |u: &str| Store.scram_credential(u, ScramMechanism::Sha256);
            let mut s = ScramServer::new(ScramMechanism::Sha256);
            if s.evaluate(b"n,,n=carol,r=abc", &lookup).is_ok() {
                let _ = s.evaluate(rest, &lookup);
            }
        }
        4 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = jaas::parse(text);
            }
        }
        5 => {
            let _ = jwks::parse_jwks(rest);
        }
        6 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let keys = jwks::parse_jwks(
                    br#"{"keys":[{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB"},
                    {"kty":"EC","kid":"e","crv":"P-256","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}"#,
                )
                .unwrap_or_default();
                let _ = jwt::header_kid(text);
                let _ = jwt::validate(&jwt::ClaimRules::default(), &keys, text, 0);
            }
        }
        _ => {
            let mut auth = Authenticator::new(settings());
            let mut principal = Arc::new(KafkaPrincipal::anonymous());
            let mut start = 0;
            let sep = b"\n--\n";
            loop {
                let end = rest[start..]
                    .windows(sep.len())
                    .position(|w| w == sep)
                    .map(|i| start + i);
                let frame = bytes::Bytes::copy_from_slice(&rest[start..end.unwrap_or(rest.len())]);
                let _ = auth.on_frame(&Store, &mut principal, &frame);
                match end {
                    Some(e) => start = e + sep.len(),
                    None => break,
                }
            }
        }
    }
});
