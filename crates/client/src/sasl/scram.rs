//! SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677): the mechanisms with Kafka's codes and
//! their credential math (Hi = PBKDF2, HMAC, H), used by the client's exchange, by the admin
//! client's `AlterUserScramCredentials` (the salted password is computed here, as Kafka's admin
//! client does) and by the broker's SCRAM server; and the client side of one exchange.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::{Digest, Sha256, Sha512};

/// A SCRAM mechanism, with Kafka's codes (ScramMechanism in the protocol and the records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramMechanism {
    /// SCRAM-SHA-256 (code 1).
    Sha256,
    /// SCRAM-SHA-512 (code 2).
    Sha512,
}

impl ScramMechanism {
    /// From Kafka's code (1, 2).
    pub fn from_code(code: i8) -> Option<ScramMechanism> {
        match code {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    /// From the mechanism name (`SCRAM-SHA-256`, `SCRAM-SHA-512`).
    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        match name {
            "SCRAM-SHA-256" => Some(ScramMechanism::Sha256),
            "SCRAM-SHA-512" => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    /// Kafka's code.
    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    /// The mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// H(data).
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// HMAC(key, data).
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut m = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    /// Hi(password, salt, iterations): PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &str, salt: &[u8], iterations: i32) -> Vec<u8> {
        let rounds = iterations.max(1) as u32;
        match self {
            ScramMechanism::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, rounds, &mut out);
                out.to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, rounds, &mut out);
                out.to_vec()
            }
        }
    }
}

/// A random printable nonce (32 alphanumeric characters).
pub fn nonce() -> String {
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// A random salt for a new credential (32 bytes).
pub fn salt() -> Vec<u8> {
    let mut s = vec![0u8; 32];
    rand::thread_rng().fill(&mut s[..]);
    s
}

/// User name to `saslname`: `,` is `=2C` and `=` is `=3D` (RFC 5802 5.1).
pub fn encode_saslname(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

/// The client side of one SCRAM exchange: client-first, then client-final from the
/// server-first message, then the server's signature checked.
#[derive(Debug)]
pub(crate) struct ScramExchange {
    mech: ScramMechanism,
    user: String,
    password: String,
    nonce: String,
    first_bare: String,
    server_signature: Option<Vec<u8>>,
}

impl ScramExchange {
    pub(crate) fn new(mech: ScramMechanism, user: &str, password: &str, nonce: String) -> Self {
        let first_bare = format!("n={},r={nonce}", encode_saslname(user));
        ScramExchange {
            mech,
            user: user.to_string(),
            password: password.to_string(),
            nonce,
            first_bare,
            server_signature: None,
        }
    }

    /// The client-first message (no authorization id, no channel binding).
    pub(crate) fn first_message(&self) -> Vec<u8> {
        format!("n,,{}", self.first_bare).into_bytes()
    }

    /// The client-final message answering the server-first message.
    pub(crate) fn final_message(&mut self, server_first: &[u8]) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(server_first)
            .map_err(|_| "the server-first message is not UTF-8".to_string())?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for f in text.split(',') {
            if let Some(v) = f.strip_prefix("r=") {
                nonce = Some(v.to_string());
            } else if let Some(v) = f.strip_prefix("s=") {
                salt = Some(B64.decode(v).map_err(|e| format!("bad salt: {e}"))?);
            } else if let Some(v) = f.strip_prefix("i=") {
                iterations = Some(
                    v.parse::<i32>()
                        .map_err(|_| format!("bad iteration count {v:?}"))?,
                );
            } else if let Some(v) = f.strip_prefix("e=") {
                return Err(format!("server error: {v}"));
            } else if f.starts_with("m=") {
                return Err("the server asks for a mandatory extension".into());
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(format!("malformed server-first message {text:?}"));
        };
        if nonce.len() <= self.nonce.len() || !nonce.starts_with(&self.nonce) {
            return Err("the server nonce does not extend the client's".into());
        }
        if iterations < 1 {
            return Err(format!("bad iteration count {iterations}"));
        }
        let salted = self.mech.salted_password(&self.password, &salt, iterations);
        let client_key = self.mech.hmac(&salted, b"Client Key");
        let stored_key = self.mech.hash(&client_key);
        let without_proof = format!("c={},r={nonce}", B64.encode(b"n,,"));
        let auth_message = format!("{},{text},{without_proof}", self.first_bare);
        let signature = self.mech.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = self.mech.hmac(&salted, b"Server Key");
        self.server_signature = Some(self.mech.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server-final message: the server proves it knows the credential.
    pub(crate) fn verify_server_final(&self, server_final: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(server_final)
            .map_err(|_| "the server-final message is not UTF-8".to_string())?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(format!("server error: {e}"));
        }
        let v = text
            .split(',')
            .next()
            .and_then(|f| f.strip_prefix("v="))
            .and_then(|v| B64.decode(v).ok())
            .ok_or("malformed server-final message")?;
        let expected = self
            .server_signature
            .as_ref()
            .ok_or("server-final message before the server-first one")?;
        if !constant_time_eq(&v, expected) {
            return Err(format!(
                "invalid server signature for user {}: the server does not know the credential",
                self.user
            ));
        }
        Ok(())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
