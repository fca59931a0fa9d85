//! SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka's ScramSaslServer: the
//! credential (salted password, stored and server keys, what Kafka's UserScramCredentialRecord
//! holds) and the server's two-step exchange. The hash math and the client side are
//! `runnel_client::sasl`. Failure messages are Kafka's.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::AuthError;
/// The mechanisms and their credential math live in the client crate (its admin client computes
/// salted passwords; its SASL client is the other side of this exchange).
pub use runnel_client::sasl::scram::{nonce, ScramMechanism};

/// Kafka's minimum iterations for both mechanisms.
pub const MIN_ITERATIONS: i32 = 4096;
/// Kafka's maximum iterations accepted by AlterUserScramCredentials.
pub const MAX_ITERATIONS: i32 = 16384;

/// What the broker keeps of a SCRAM password (Kafka's ScramCredential).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    /// The salt.
    pub salt: Vec<u8>,
    /// H(ClientKey).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: i32,
}

impl ScramCredential {
    /// The credential of a salted password (what AlterUserScramCredentials carries).
    pub fn from_salted_password(
        mech: ScramMechanism,
        salt: &[u8],
        salted_password: &[u8],
        iterations: i32,
    ) -> ScramCredential {
        let client_key = mech.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            stored_key: mech.hash(&client_key),
            server_key: mech.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }

    /// The credential of a password (tests, tools).
    pub fn from_password(
        mech: ScramMechanism,
        password: &str,
        salt: &[u8],
        iterations: i32,
    ) -> ScramCredential {
        let salted = mech.salted_password(password, salt, iterations);
        ScramCredential::from_salted_password(mech, salt, &salted, iterations)
    }
}

/// `saslname` to user name: `=2C` is `,` and `=3D` is `=` (RFC 5802 5.1); None for any other
/// `=` escape.
fn decode_saslname(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// The parts of a client-first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// The GS2 header (`n,,` or `n,a=x,`), echoed base64-encoded in the final message.
    pub gs2_header: String,
    /// The authorization id (empty if none).
    pub authzid: String,
    /// The user name (decoded).
    pub username: String,
    /// The client nonce.
    pub nonce: String,
    /// Extensions (`key=value` after the nonce), e.g. `tokenauth=true`.
    pub extensions: Vec<(String, String)>,
    /// client-first-message-bare, part of the AuthMessage.
    pub bare: String,
}

fn invalid_first() -> AuthError {
    AuthError::hidden("Invalid SCRAM client first message")
}

/// Parses a client-first message (`n,[a=authzid],n=user,r=nonce[,ext=value...]`).
pub fn parse_client_first(token: &[u8]) -> Result<ClientFirst, AuthError> {
    let text = std::str::from_utf8(token).map_err(|_| invalid_first())?;
    // gs2-cbind-flag: Kafka's clients send "n"; "y" (client supports binding, server does
    // not) is accepted too; "p=" asks for channel binding, which is not offered.
    let (flag, rest) = text.split_once(',').ok_or_else(invalid_first)?;
    if flag != "n" && flag != "y" {
        return Err(invalid_first());
    }
    let (authz, bare) = rest.split_once(',').ok_or_else(invalid_first)?;
    let authzid = match authz {
        "" => String::new(),
        a => decode_saslname(a.strip_prefix("a=").ok_or_else(invalid_first)?)
            .ok_or_else(invalid_first)?,
    };
    let mut fields = bare.split(',');
    let mut user = fields.next().ok_or_else(invalid_first)?;
    if user.starts_with("m=") {
        // A mandatory extension the server cannot know: refuse (RFC 5802).
        return Err(invalid_first());
    }
    user = user.strip_prefix("n=").ok_or_else(invalid_first)?;
    let username = decode_saslname(user).ok_or_else(invalid_first)?;
    let nonce = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b','))
        .ok_or_else(invalid_first)?
        .to_string();
    let mut extensions = Vec::new();
    for f in fields {
        let (k, v) = f.split_once('=').ok_or_else(invalid_first)?;
        if k.is_empty() {
            return Err(invalid_first());
        }
        extensions.push((k.to_string(), v.to_string()));
    }
    Ok(ClientFirst {
        gs2_header: format!("{flag},{authz},"),
        authzid,
        username,
        nonce,
        extensions,
        bare: bare.to_string(),
    })
}

/// The parts of a client-final message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFinal {
    /// The channel binding (base64 of the GS2 header).
    pub channel_binding: String,
    /// The combined nonce.
    pub nonce: String,
    /// The proof (decoded).
    pub proof: Vec<u8>,
    /// client-final-message-without-proof, part of the AuthMessage.
    pub without_proof: String,
}

/// Parses a client-final message (`c=...,r=...[,ext...],p=...`).
pub fn parse_client_final(token: &[u8]) -> Result<ClientFinal, AuthError> {
    let bad = || AuthError::hidden("Invalid SCRAM client final message");
    let text = std::str::from_utf8(token).map_err(|_| bad())?;
    let (without_proof, proof) = text.rsplit_once(",p=").ok_or_else(bad)?;
    let mut fields = without_proof.split(',');
    let channel_binding = fields
        .next()
        .and_then(|f| f.strip_prefix("c="))
        .ok_or_else(bad)?
        .to_string();
    let nonce = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .ok_or_else(bad)?
        .to_string();
    let proof = B64.decode(proof).map_err(|_| bad())?;
    Ok(ClientFinal {
        channel_binding,
        nonce,
        proof,
        without_proof: without_proof.to_string(),
    })
}

/// Where the server is in the exchange.
#[derive(Debug)]
enum ServerState {
    ReceiveClientFirst,
    ReceiveClientFinal(Box<FinalState>),
    Done,
}

/// What the server keeps between its first and final message.
#[derive(Debug)]
struct FinalState {
    first: ClientFirst,
    server_first: String,
    nonce: String,
    credential: ScramCredential,
}

/// The server side of one SCRAM exchange.
#[derive(Debug)]
pub struct ScramServer {
    mech: ScramMechanism,
    state: ServerState,
}

/// What one step of the server produced.
#[derive(Debug, PartialEq, Eq)]
pub enum ScramStep {
    /// The server-first message; the client's final message comes next.
    Challenge(Vec<u8>),
    /// The server-final message: `user` is authenticated.
    Complete {
        /// The server-final message.
        response: Vec<u8>,
        /// The authenticated user.
        user: String,
    },
}

impl ScramServer {
    /// A new exchange for `mech`.
    pub fn new(mech: ScramMechanism) -> ScramServer {
        ScramServer {
            mech,
            state: ServerState::ReceiveClientFirst,
        }
    }

    /// The mechanism.
    pub fn mechanism(&self) -> ScramMechanism {
        self.mech
    }

    /// Evaluates the client's next message; `lookup` finds a user's credential.
    pub fn evaluate(
        &mut self,
        token: &[u8],
        lookup: &dyn Fn(&str) -> Option<ScramCredential>,
    ) -> Result<ScramStep, AuthError> {
        let state = std::mem::replace(&mut self.state, ServerState::Done);
        match state {
            ServerState::ReceiveClientFirst => {
                let first = parse_client_first(token)?;
                if first
                    .extensions
                    .iter()
                    .any(|(k, v)| k == "tokenauth" && v.eq_ignore_ascii_case("true"))
                {
                    return Err(AuthError::hidden(format!(
                        "Token Authentication failed: Invalid tokenId : {}",
                        first.username
                    )));
                }
                let credential = lookup(&first.username).ok_or_else(|| {
                    AuthError::hidden("Authentication failed: Invalid user credentials")
                })?;
                if !first.authzid.is_empty() && first.authzid != first.username {
                    return Err(AuthError::shown("Authentication failed: Client requested an authorization id that is different from username"));
                }
                if credential.iterations < MIN_ITERATIONS {
                    return Err(AuthError::hidden(format!(
                        "Iterations {} is less than the minimum {} for {}",
                        credential.iterations,
                        MIN_ITERATIONS,
                        self.mech.name()
                    )));
                }
                let nonce = format!("{}{}", first.nonce, nonce());
                let server_first = format!(
                    "r={nonce},s={},i={}",
                    B64.encode(&credential.salt),
                    credential.iterations
                );
                let out = server_first.clone().into_bytes();
                self.state = ServerState::ReceiveClientFinal(Box::new(FinalState {
                    first,
                    server_first,
                    nonce,
                    credential,
                }));
                Ok(ScramStep::Challenge(out))
            }
            ServerState::ReceiveClientFinal(state) => {
                let FinalState {
                    first,
                    server_first,
                    nonce,
                    credential,
                } = *state;
                let fin = parse_client_final(token)?;
                if fin.nonce != nonce {
                    return Err(AuthError::hidden(
                        "Invalid client nonce in the final client message.",
                    ));
                }
                if fin.channel_binding != B64.encode(first.gs2_header.as_bytes()) {
                    return Err(AuthError::hidden(
                        "Invalid channel binding in the final client message.",
                    ));
                }
                let auth_message = format!("{},{},{}", first.bare, server_first, fin.without_proof);
                let client_signature = self
                    .mech
                    .hmac(&credential.stored_key, auth_message.as_bytes());
                if fin.proof.len() != client_signature.len() {
                    return Err(AuthError::hidden("Invalid client credentials"));
                }
                let client_key: Vec<u8> = fin
                    .proof
                    .iter()
                    .zip(&client_signature)
                    .map(|(a, b)| a ^ b)
                    .collect();
                if !super::plain::constant_time_eq(
                    &self.mech.hash(&client_key),
                    &credential.stored_key,
                ) {
                    return Err(AuthError::hidden("Invalid client credentials"));
                }
                let server_signature = self
                    .mech
                    .hmac(&credential.server_key, auth_message.as_bytes());
                Ok(ScramStep::Complete {
                    response: format!("v={}", B64.encode(server_signature)).into_bytes(),
                    user: first.username,
                })
            }
            ServerState::Done => Err(AuthError::hidden(
                "Unexpected challenge in Sasl server state COMPLETE",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        mech: ScramMechanism,
        stored: &ScramCredential,
        user: &str,
        pw: &str,
    ) -> Result<String, AuthError> {
        let lookup = |u: &str| (u == "alice").then(|| stored.clone());
        let mut server = ScramServer::new(mech);
        let mut client = runnel_client::sasl::SaslClient::new(mech.name(), user, pw).unwrap();
        let ScramStep::Challenge(c) = server.evaluate(&client.initial(), &lookup)? else {
            panic!("first step completed")
        };
        let fin = client.step(&c).unwrap().unwrap();
        match server.evaluate(&fin, &lookup)? {
            ScramStep::Complete { response, user } => {
                assert_eq!(client.step(&response).unwrap(), None);
                Ok(user)
            }
            ScramStep::Challenge(_) => panic!("no completion"),
        }
    }

    #[test]
    fn exchanges_with_both_mechanisms() {
        for mech in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            let cred = ScramCredential::from_password(mech, "alice-pw", b"salty", 4096);
            assert_eq!(run(mech, &cred, "alice", "alice-pw").unwrap(), "alice");
            assert!(run(mech, &cred, "alice", "wrong")
                .unwrap_err()
                .message
                .contains("Invalid client credentials"));
            assert!(run(mech, &cred, "bob", "alice-pw")
                .unwrap_err()
                .message
                .contains("Invalid user credentials"));
        }
    }

    #[test]
    fn rfc7677_test_vector() {
        // RFC 7677 section 3: user "user", password "pencil".
        let mech = ScramMechanism::Sha256;
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let cred = ScramCredential::from_password(mech, "pencil", &salt, 4096);
        let first = parse_client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let without_proof = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let auth = format!("{},{server_first},{without_proof}", first.bare);
        let sig = mech.hmac(&cred.stored_key, auth.as_bytes());
        let client_key = mech.hmac(&mech.salted_password("pencil", &salt, 4096), b"Client Key");
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        assert_eq!(
            B64.encode(proof),
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let server_sig = mech.hmac(&cred.server_key, auth.as_bytes());
        assert_eq!(
            B64.encode(server_sig),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn refuses_malformed_messages() {
        for bad in [
            &b""[..],
            b"n",
            b"p=tls-unique,,n=a,r=x",
            b"n,,r=x",
            b"n,,n=a",
            b"n,,n=a,r=",
            b"n,,m=ext,n=a,r=x",
            b"n,,n=a=2X,r=x",
            b"n,x,n=a,r=x",
            b"n,,n=a,r=x,noequals",
            &[b'n', b',', b',', 0xff],
        ] {
            assert!(
                parse_client_first(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let f = parse_client_first(b"n,a=al=2Cice,n=al=2Cice,r=abc,tokenauth=false").unwrap();
        assert_eq!(
            (f.authzid.as_str(), f.username.as_str(), f.nonce.as_str()),
            ("al,ice", "al,ice", "abc")
        );
        assert_eq!(f.extensions, vec![("tokenauth".into(), "false".into())]);
        for bad in [&b"c=biws,r=x"[..], b"r=x,p=AAAA", b"c=biws,r=x,p=***", b""] {
            assert!(parse_client_final(bad).is_err());
        }
        // A server fed a final message first, or anything after completion, fails cleanly.
        let lookup = |_: &str| None;
        let mut s = ScramServer::new(ScramMechanism::Sha256);
        assert!(s.evaluate(b"c=biws,r=x,p=AAAA", &lookup).is_err());
        assert!(s.evaluate(b"n,,n=a,r=x", &lookup).is_err());
    }
}
