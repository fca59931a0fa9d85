//! How a node secures the connections it opens to other nodes, as Kafka's brokers do: TLS when
//! the listener it reaches is an SSL one ([`TlsListeners`]), and SASL when that listener is a
//! SASL one, with `sasl.mechanism.inter.broker.protocol` towards the inter-broker listener
//! (replication, transaction markers) or `sasl.mechanism.controller.protocol` towards the
//! controller listener (the metadata quorum, forwarded requests, start-up hellos), and the
//! `username` / `password` of that listener's JAAS entry for the mechanism
//! (`listener.name.<l>.<mechanism>.sasl.jaas.config`, else `sasl.jaas.config`).
//!
//! The exchange itself is the client's ([`runnel_client::sasl::SaslClient`]): the replica
//! fetcher's connections run it in [`runnel_client::conn::Connection`], the raw inter-node
//! connections in [`crate::internode`] with [`handshake_request`] and [`authenticate_request`].

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use runnel_client::jaas;
use runnel_client::sasl::{Mechanism, SaslClient};
use runnel_client::security::{SaslLogin, Security};
use runnel_config::BrokerConfig;

use super::sasl::{is_sasl_protocol, listener_protocol, listener_value};
use super::tls::TlsListeners;

/// The SaslHandshake version inter-node connections send (classic request header).
pub const HANDSHAKE_VERSION: i16 = 1;
/// The SaslAuthenticate version inter-node connections send (v1: classic header, with the
/// session lifetime in the answer).
pub const AUTHENTICATE_VERSION: i16 = 1;

/// The security of this node's connections to other nodes.
pub struct Outbound {
    tls: Arc<TlsListeners>,
    brokers: Option<SaslLogin>,
    controllers: Option<SaslLogin>,
}

impl Outbound {
    /// From the config: SASL credentials for the inter-broker and the controller listener when
    /// they are SASL ones. Errors name the key at fault. A node alone (a cluster of one) connects to no other node and needs none.
    pub fn from_config(cfg: &BrokerConfig, tls: Arc<TlsListeners>) -> Result<Outbound, String> {
        if cfg.cluster.is_single_node(cfg.node_id) {
            return Ok(Outbound {
                tls,
                brokers: None,
                controllers: None,
            });
        }
        let brokers = login(
            cfg,
            &cfg.cluster.inter_broker_listener_name,
            "sasl.mechanism.inter.broker.protocol",
        )?;
        let controllers = match cfg.cluster.controller_listener_names.first() {
            Some(l) => login(cfg, l, "sasl.mechanism.controller.protocol")?,
            None => None,
        };
        Ok(Outbound {
            tls,
            brokers,
            controllers,
        })
    }

    /// Plain TCP, no SASL (tests, a node alone).
    pub fn none() -> Outbound {
        Outbound {
            tls: Arc::new(TlsListeners::default()),
            brokers: None,
            controllers: None,
        }
    }

    /// How this node reaches other brokers' inter-broker listener.
    pub fn for_brokers(&self) -> Security {
        Security {
            tls: self.tls.for_brokers(),
            sasl: self.brokers.clone(),
        }
    }

    /// How this node reaches the controllers' listener (and broker-only nodes' inter-broker
    /// listener for raft messages: with broker-only nodes, both listeners take the same
    /// security, as with TLS).
    pub fn for_controllers(&self) -> Security {
        Security {
            tls: self.tls.for_controllers(),
            sasl: self.controllers.clone(),
        }
    }
}

/// The principal other nodes reach this one's inter-broker listener as, when the config tells:
/// `User:<username>` on a SASL listener, `User:ANONYMOUS` on a plaintext one; None on an SSL one
/// (the certificate's subject decides).
pub fn node_principal(cfg: &BrokerConfig) -> Option<String> {
    let listener = &cfg.cluster.inter_broker_listener_name;
    match listener_protocol(cfg, listener) {
        Some("SSL") => None,
        Some(p) if is_sasl_protocol(p) => {
            login(cfg, listener, "sasl.mechanism.inter.broker.protocol")
                .ok()
                .flatten()
                .map(|l| format!("User:{}", l.username))
        }
        _ => Some(super::KafkaPrincipal::anonymous().to_string()),
    }
}

/// The credentials this node authenticates with on `listener`, when it is a SASL one.
fn login(
    cfg: &BrokerConfig,
    listener: &str,
    mechanism_key: &str,
) -> Result<Option<SaslLogin>, String> {
    if !listener_protocol(cfg, listener).is_some_and(is_sasl_protocol) {
        return Ok(None);
    }
    let name = cfg
        .value_of(mechanism_key)
        .unwrap_or_else(|| "GSSAPI".into());
    let mechanism = Mechanism::from_name(&name).map_err(|_| {
        format!(
            "{mechanism_key}={name}: nodes connect to each other over the SASL listener {listener} with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (GSSAPI and OAUTHBEARER are not offered between nodes)"
        )
    })?;
    let jaas_key = format!(
        "listener.name.{}.{}.sasl.jaas.config",
        listener.to_ascii_lowercase(),
        name.to_ascii_lowercase()
    );
    let missing = || {
        format!(
            "listener {listener}: nodes authenticate to it with {name} as the username and password of {jaas_key} (or sasl.jaas.config), which has none"
        )
    };
    let text =
        listener_value(cfg, listener, Some(&name), "sasl.jaas.config").ok_or_else(missing)?;
    let entry = jaas::parse(&text).map_err(|e| format!("{jaas_key}: {e}"))?;
    let (Some(username), Some(password)) = (entry.option("username"), entry.option("password"))
    else {
        return Err(missing());
    };
    Ok(Some(SaslLogin {
        mechanism,
        username: username.to_string(),
        password: password.to_string(),
    }))
}

/// The body of a SaslHandshake request naming the login's mechanism.
pub fn handshake_request(login: &SaslLogin) -> io::Result<Vec<u8>> {
    let req = SaslHandshakeRequest::default()
        .with_mechanism(StrBytes::from_static_str(login.mechanism.name()));
    encode(&req, HANDSHAKE_VERSION)
}

/// Checks a SaslHandshake response body.
pub fn handshake_response(body: &[u8]) -> io::Result<()> {
    let r = SaslHandshakeResponse::decode(&mut Bytes::copy_from_slice(body), HANDSHAKE_VERSION)
        .map_err(|e| invalid(format!("unreadable SaslHandshake response: {e}")))?;
    if r.error_code != 0 {
        let offered: Vec<&str> = r.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(refused(format!(
            "SaslHandshake refused (error {}; the listener offers {offered:?})",
            r.error_code
        )));
    }
    Ok(())
}

/// The body of a SaslAuthenticate request carrying `token`.
pub fn authenticate_request(token: Vec<u8>) -> io::Result<Vec<u8>> {
    let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
    encode(&req, AUTHENTICATE_VERSION)
}

/// The server's token and the session lifetime in ms (0: none) of a SaslAuthenticate response
/// body, or the refusal.
pub fn authenticate_response(body: &[u8]) -> io::Result<(Vec<u8>, i64)> {
    let r =
        SaslAuthenticateResponse::decode(&mut Bytes::copy_from_slice(body), AUTHENTICATE_VERSION)
            .map_err(|e| invalid(format!("unreadable SaslAuthenticate response: {e}")))?;
    if r.error_code != 0 {
        let msg = r.error_message.as_ref().map(|m| m.as_str()).unwrap_or("");
        return Err(refused(format!(
            "authentication to another node failed (error {}): {msg}",
            r.error_code
        )));
    }
    Ok((r.auth_bytes.to_vec(), r.session_lifetime_ms))
}

/// A new exchange for `login`.
pub fn client(login: &SaslLogin) -> io::Result<SaslClient> {
    login.client().map_err(step_error)
}

/// A failed step of the exchange (e.g. a SCRAM server signature that does not verify).
pub fn step_error(e: runnel_client::Error) -> io::Error {
    refused(format!("authentication to another node failed: {e}"))
}

fn encode<T: Encodable>(msg: &T, version: i16) -> io::Result<Vec<u8>> {
    let mut buf = bytes::BytesMut::new();
    msg.encode(&mut buf, version)
        .map_err(|e| invalid(format!("encoding a SASL request: {e}")))?;
    Ok(buf.to_vec())
}

fn invalid(m: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m)
}

fn refused(m: String) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &[(&str, &str)]) -> BrokerConfig {
        let mut o: Vec<(String, String)> = [
            ("process.roles", "broker,controller"),
            ("node.id", "1"),
            (
                "controller.quorum.voters",
                "1@127.0.0.1:9093,2@127.0.0.1:9193",
            ),
            (
                "listeners",
                "INTERNAL://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
            ),
            ("controller.listener.names", "CONTROLLER"),
            ("inter.broker.listener.name", "INTERNAL"),
            (
                "listener.security.protocol.map",
                "INTERNAL:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
            ),
            ("sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-512"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        o.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        BrokerConfig::load(None, &[], &o).expect("config").config
    }

    fn outbound(extra: &[(&str, &str)]) -> Result<Outbound, String> {
        Outbound::from_config(&config(extra), Arc::new(TlsListeners::default()))
    }

    #[test]
    fn credentials_come_from_the_listener_jaas_entry_of_the_mechanism() {
        let o = outbound(&[
            ("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-512"),
            (
                "listener.name.internal.scram-sha-512.sasl.jaas.config",
                r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="s3cret";"#,
            ),
        ])
        .unwrap();
        let login = o.for_brokers().sasl.expect("SASL towards INTERNAL");
        assert_eq!(login.mechanism.name(), "SCRAM-SHA-512");
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("broker", "s3cret")
        );
        // The controller listener is a plaintext one: no SASL towards it.
        assert!(o.for_controllers().sasl.is_none());
        assert_eq!(
            node_principal(&config(&[
                ("sasl.mechanism.inter.broker.protocol", "PLAIN"),
                (
                    "sasl.jaas.config",
                    r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="b" password="p" user_b="p";"#,
                ),
            ])),
            Some("User:b".to_string())
        );
    }

    #[test]
    fn unusable_settings_are_refused_naming_the_key() {
        // Kafka's default mechanism, GSSAPI, is not offered between nodes.
        let e = outbound(&[]).err().expect("GSSAPI refused");
        assert!(
            e.contains("sasl.mechanism.inter.broker.protocol=GSSAPI"),
            "{e}"
        );
        // A JAAS entry with server users only: nothing to log in with.
        let e = outbound(&[
            ("sasl.mechanism.inter.broker.protocol", "PLAIN"),
            (
                "listener.name.internal.plain.sasl.jaas.config",
                r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_a="x";"#,
            ),
        ])
        .err()
        .expect("no credentials");
        assert!(
            e.contains("listener.name.internal.plain.sasl.jaas.config"),
            "{e}"
        );
        let e = outbound(&[
            ("sasl.mechanism.inter.broker.protocol", "PLAIN"),
            ("listener.name.internal.plain.sasl.jaas.config", "not jaas"),
        ])
        .err()
        .expect("bad JAAS");
        assert!(
            e.starts_with("listener.name.internal.plain.sasl.jaas.config"),
            "{e}"
        );
        // Plaintext listeners need nothing.
        let o = outbound(&[(
            "listener.security.protocol.map",
            "INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        )])
        .unwrap();
        assert!(o.for_brokers().sasl.is_none() && o.for_controllers().sasl.is_none());
    }

    #[test]
    fn sasl_messages_round_trip() {
        let login = SaslLogin {
            mechanism: Mechanism::Plain,
            username: "u".into(),
            password: "p".into(),
        };
        assert!(!handshake_request(&login).unwrap().is_empty());
        let ok = SaslHandshakeResponse::default();
        let mut buf = bytes::BytesMut::new();
        ok.encode(&mut buf, HANDSHAKE_VERSION).unwrap();
        handshake_response(&buf).unwrap();
        let refused = SaslAuthenticateResponse::default()
            .with_error_code(58)
            .with_error_message(Some(StrBytes::from_static_str("bad password")));
        let mut buf = bytes::BytesMut::new();
        refused.encode(&mut buf, AUTHENTICATE_VERSION).unwrap();
        let e = authenticate_response(&buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("bad password"), "{e}");
        let granted = SaslAuthenticateResponse::default()
            .with_auth_bytes(Bytes::from_static(b"v=x"))
            .with_session_lifetime_ms(60_000);
        let mut buf = bytes::BytesMut::new();
        granted.encode(&mut buf, AUTHENTICATE_VERSION).unwrap();
        assert_eq!(
            authenticate_response(&buf).unwrap(),
            (b"v=x".to_vec(), 60_000)
        );
    }
}
