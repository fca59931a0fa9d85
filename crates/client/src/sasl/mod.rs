//! A sans-IO SASL client: the mechanism's tokens in and out, no sockets. The client's
//! [`Connection`](crate::conn::Connection) carries them in SaslAuthenticate requests; the broker
//! can carry them on its inter-broker connections the same way.
//!
//! PLAIN (RFC 4616) and SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677). GSSAPI and
//! OAUTHBEARER are not offered by the client.
//!
//! ```
//! # use runnel_client::sasl::SaslClient;
//! let mut c = SaslClient::new("PLAIN", "alice", "alice-pw").unwrap();
//! assert_eq!(c.initial(), b"\0alice\0alice-pw");
//! assert_eq!(c.step(b"").unwrap(), None); // the server's (empty) answer ends PLAIN
//! ```

pub mod scram;

use crate::error::{Error, Result};
use scram::{ScramExchange, ScramMechanism};

/// The mechanisms the client speaks, by Kafka's names.
pub const CLIENT_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// A SASL mechanism the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// PLAIN: user name and password in the clear (use it over TLS).
    Plain,
    /// SCRAM-SHA-256 or SCRAM-SHA-512.
    Scram(ScramMechanism),
}

impl Mechanism {
    /// From Kafka's name (`sasl.mechanism`); names the client does not speak are a Config error.
    pub fn from_name(name: &str) -> Result<Mechanism> {
        let name = name.trim();
        if name == "PLAIN" {
            return Ok(Mechanism::Plain);
        }
        if let Some(m) = ScramMechanism::from_name(name) {
            return Ok(Mechanism::Scram(m));
        }
        Err(Error::Config(format!(
            "sasl.mechanism {name:?} is not supported by this client (it speaks {})",
            CLIENT_MECHANISMS.join(", ")
        )))
    }

    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(m) => m.name(),
        }
    }
}

#[derive(Debug)]
enum State {
    /// PLAIN: the initial response was (or will be) sent; the server's answer ends it.
    Plain { user: String },
    /// SCRAM: waiting for the server-first message.
    ScramFirst(Box<ScramExchange>),
    /// SCRAM: waiting for the server-final message.
    ScramFinal(Box<ScramExchange>),
    /// Finished (or failed).
    Done,
}

/// One authentication exchange, client side.
#[derive(Debug)]
pub struct SaslClient {
    mechanism: Mechanism,
    state: State,
    initial: Vec<u8>,
}

impl SaslClient {
    /// A client of `mechanism` (Kafka's name) for `username` with `password`.
    pub fn new(mechanism: &str, username: &str, password: &str) -> Result<SaslClient> {
        SaslClient::with_nonce(mechanism, username, password, scram::nonce())
    }

    /// [`SaslClient::new`] with a fixed SCRAM client nonce (test vectors); PLAIN ignores it.
    pub fn with_nonce(
        mechanism: &str,
        username: &str,
        password: &str,
        nonce: String,
    ) -> Result<SaslClient> {
        let mechanism = Mechanism::from_name(mechanism)?;
        if username.is_empty() {
            return Err(Error::Config(format!(
                "SASL {}: the user name is empty",
                mechanism.name()
            )));
        }
        let (state, initial) = match mechanism {
            Mechanism::Plain => {
                if username.contains('\0') || password.contains('\0') {
                    return Err(Error::Config(
                        "SASL PLAIN: user name and password cannot contain NUL".into(),
                    ));
                }
                (
                    State::Plain {
                        user: username.to_string(),
                    },
                    format!("\0{username}\0{password}").into_bytes(),
                )
            }
            Mechanism::Scram(m) => {
                if nonce.is_empty()
                    || nonce
                        .bytes()
                        .any(|b| !(0x21..=0x7e).contains(&b) || b == b',')
                {
                    return Err(Error::Config(
                        "SCRAM: the client nonce must be printable, without ','".into(),
                    ));
                }
                let x = ScramExchange::new(m, username, password, nonce);
                let first = x.first_message();
                (State::ScramFirst(Box::new(x)), first)
            }
        };
        Ok(SaslClient {
            mechanism,
            state,
            initial,
        })
    }

    /// Kafka's name of the mechanism (what SaslHandshake names).
    pub fn mechanism_name(&self) -> &'static str {
        self.mechanism.name()
    }

    /// The mechanism.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The client's first token (PLAIN's only one; SCRAM's client-first message).
    pub fn initial(&mut self) -> Vec<u8> {
        self.initial.clone()
    }

    /// Whether the exchange has finished successfully or failed.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Takes the server's token; `Some(next)` to send, `None` when the exchange is complete
    /// (for SCRAM only once the server's signature checked out). An error is
    /// [`Error::Authentication`]; the exchange cannot continue after it.
    pub fn step(&mut self, server: &[u8]) -> Result<Option<Vec<u8>>> {
        let failed =
            |m: String| Error::Authentication(format!("SASL {}: {m}", self.mechanism.name()));
        match std::mem::replace(&mut self.state, State::Done) {
            State::Plain { user } => {
                if server.is_empty() {
                    Ok(None)
                } else {
                    Err(failed(format!(
                        "unexpected server challenge after authenticating {user}"
                    )))
                }
            }
            State::ScramFirst(mut x) => {
                let next = x.final_message(server).map_err(failed)?;
                self.state = State::ScramFinal(x);
                Ok(Some(next))
            }
            State::ScramFinal(x) => {
                x.verify_server_final(server).map_err(failed)?;
                Ok(None)
            }
            State::Done => Err(failed("the exchange is already over".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanisms_by_name() {
        assert_eq!(Mechanism::from_name("PLAIN").unwrap(), Mechanism::Plain);
        assert_eq!(
            Mechanism::from_name("SCRAM-SHA-512").unwrap().name(),
            "SCRAM-SHA-512"
        );
        for bad in ["GSSAPI", "OAUTHBEARER", "plain", ""] {
            let e = Mechanism::from_name(bad).unwrap_err();
            assert!(matches!(e, Error::Config(_)), "{bad}");
        }
        assert!(SaslClient::new("PLAIN", "", "x").is_err());
        assert!(SaslClient::new("PLAIN", "a\0b", "x").is_err());
    }

    #[test]
    fn plain_is_one_token() {
        let mut c = SaslClient::new("PLAIN", "alice", "pw").unwrap();
        assert_eq!(c.mechanism_name(), "PLAIN");
        assert_eq!(c.initial(), b"\0alice\0pw".to_vec());
        assert_eq!(c.step(b"").unwrap(), None);
        assert!(c.is_done());
        assert!(c.step(b"").is_err());
        let mut c = SaslClient::new("PLAIN", "alice", "pw").unwrap();
        assert!(matches!(c.step(b"more?"), Err(Error::Authentication(_))));
    }

    /// RFC 7677 section 3: user "user", password "pencil", client nonce rOprNGfwEbeRWgbNEkqO.
    #[test]
    fn rfc7677_test_vector() {
        let mut c = SaslClient::with_nonce(
            "SCRAM-SHA-256",
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO".into(),
        )
        .unwrap();
        assert_eq!(c.initial(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO".to_vec());
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let fin = c.step(server_first).unwrap().unwrap();
        assert_eq!(
            String::from_utf8(fin).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            c.step(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
                .unwrap(),
            None
        );
    }

    #[test]
    fn scram_refuses_a_wrong_server() {
        let server_first = b"r=abc123XYZ,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let new =
            || SaslClient::with_nonce("SCRAM-SHA-256", "user", "pencil", "abc".into()).unwrap();
        // A wrong server signature: the server does not know the password.
        let mut c = new();
        c.step(server_first).unwrap().unwrap();
        let e = c
            .step(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap_err();
        assert!(e.to_string().contains("invalid server signature"), "{e}");
        // A nonce that does not extend ours, a server error, junk.
        for bad in [
            &b"r=xyz,s=AAAA,i=4096"[..],
            b"r=abc,s=AAAA,i=4096",
            b"e=unknown-user",
            b"r=abcd,s=***,i=4096",
            b"r=abcd,s=AAAA,i=0",
            b"r=abcd,s=AAAA",
            &[0xff, 0xfe],
        ] {
            let mut c = new();
            assert!(
                matches!(c.step(bad), Err(Error::Authentication(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut c = new();
        c.step(server_first).unwrap();
        assert!(c.step(b"e=invalid-proof").is_err());
    }

    #[test]
    fn scram_escapes_user_names() {
        let mut c = SaslClient::with_nonce("SCRAM-SHA-512", "a,b=c", "pw", "n0nce".into()).unwrap();
        assert_eq!(c.initial(), b"n,,n=a=2Cb=3Dc,r=n0nce".to_vec());
        assert_eq!(c.mechanism(), Mechanism::Scram(ScramMechanism::Sha512));
    }
}
