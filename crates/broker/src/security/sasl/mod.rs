//! SASL authentication on SASL_PLAINTEXT and SASL_SSL listeners, as Kafka's
//! SaslServerAuthenticator: a connection first may send ApiVersions, then SaslHandshake (17)
//! names a mechanism of `sasl.enabled.mechanisms`, then the mechanism's tokens travel in
//! SaslAuthenticate (36) requests (or bare, size-prefixed, after a v0 handshake). Until that
//! completes nothing else is served. A failure answers SASL_AUTHENTICATION_FAILED (or
//! UNSUPPORTED_SASL_MECHANISM) after `connection.failed.authentication.delay.ms` and closes the
//! connection. With `connections.max.reauth.ms` (or a credential that expires) the session has
//! a lifetime (KIP-368): the client re-authenticates on the same connection with a new
//! handshake before then, as the same principal and mechanism, or the connection is closed at
//! its next request.
//!
//! The [`Authenticator`] is a per-connection state machine fed whole frames; it knows nothing of
//! the stream, so it runs the same over TCP and TLS.

pub mod jwks;
pub mod jwt;
pub mod oauth;
pub mod plain;
pub mod scram;

/// The JAAS parser lives in the client crate (clients read `sasl.jaas.config` too).
pub use runnel_client::jaas;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use runnel_config::BrokerConfig;
use runnel_protocol::frame::{encode_response_kind, parse_request_head, peek_prefix};
use runnel_protocol::versions::{check, VersionCheck};

use crate::broker::Broker;
use crate::security::KafkaPrincipal;
use jaas::JaasEntry;
use scram::{ScramMechanism, ScramServer, ScramStep};

/// The mechanisms Runnel serves.
pub const SUPPORTED_MECHANISMS: &[&str] =
    &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

/// A failed authentication step: the message for the client, or Kafka's generic one when the
/// detail must not be told (it could reveal whether a user exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    /// What went wrong.
    pub message: String,
    /// Whether the client is told `message` (Kafka's SaslAuthenticationException) or only
    /// "Authentication failed during authentication due to invalid credentials ..." (a
    /// SaslException).
    pub shown: bool,
}

impl AuthError {
    /// A failure whose message the client sees.
    pub fn shown(m: impl Into<String>) -> AuthError {
        AuthError {
            message: m.into(),
            shown: true,
        }
    }

    /// A failure the client is told of only generically.
    pub fn hidden(m: impl Into<String>) -> AuthError {
        AuthError {
            message: m.into(),
            shown: false,
        }
    }
}

/// Whether a listener's security protocol uses SASL.
pub fn is_sasl_protocol(protocol: &str) -> bool {
    protocol == "SASL_PLAINTEXT" || protocol == "SASL_SSL"
}

/// The security protocol of listener `name`.
pub fn listener_protocol<'a>(config: &'a BrokerConfig, name: &str) -> Option<&'a str> {
    config
        .listener_security_protocol_map
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p.as_str())
}

/// A SASL config value for a listener, as Kafka resolves it:
/// `listener.name.<listener>.<mechanism>.<key>`, then `listener.name.<listener>.<key>`, then
/// `<key>` (listener and mechanism lowercased in the prefix).
pub fn listener_value(
    config: &BrokerConfig,
    listener: &str,
    mechanism: Option<&str>,
    key: &str,
) -> Option<String> {
    listener_setting(config, listener, mechanism, key).map(|(_, v)| v)
}

/// As [`listener_value`], with the key that supplied the value (to name it in messages).
pub fn listener_setting(
    config: &BrokerConfig,
    listener: &str,
    mechanism: Option<&str>,
    key: &str,
) -> Option<(String, String)> {
    let l = listener.to_ascii_lowercase();
    if let Some(m) = mechanism {
        let k = format!("listener.name.{l}.{}.{key}", m.to_ascii_lowercase());
        if let Some(v) = config.explicit.get(&k) {
            return Some((k, v.clone()));
        }
    }
    let k = format!("listener.name.{l}.{key}");
    if let Some(v) = config.explicit.get(&k) {
        return Some((k, v.clone()));
    }
    config.value_of(key).map(|v| (key.to_string(), v))
}

/// A listener's SASL settings.
#[derive(Debug, Clone)]
pub struct ListenerSasl {
    /// The listener name.
    pub listener: String,
    /// `sasl.enabled.mechanisms`, in order.
    pub mechanisms: Vec<String>,
    /// The JAAS entry of each enabled mechanism that has one.
    pub jaas: BTreeMap<String, JaasEntry>,
    /// PLAIN users (`user_<name>` options of the PLAIN JAAS entry).
    pub plain_users: BTreeMap<String, String>,
    /// `connections.max.reauth.ms` of each mechanism (0: sessions do not expire).
    pub max_reauth_ms: BTreeMap<String, i64>,
    /// `connection.failed.authentication.delay.ms`.
    pub failed_delay: Duration,
    /// `sasl.server.max.receive.size`: the largest frame before authentication completes.
    pub max_receive_size: i32,
    /// How OAUTHBEARER tokens are checked (when it is enabled).
    pub oauth: oauth::Validator,
}

impl ListenerSasl {
    /// The settings of listener `listener`, or why they are unusable.
    pub fn from_config(config: &BrokerConfig, listener: &str) -> Result<ListenerSasl, String> {
        Self::build(config, listener, false)
    }

    /// The settings; `fresh` (at start-up) reads files such as the OAUTHBEARER JWKS anew.
    fn build(config: &BrokerConfig, listener: &str, fresh: bool) -> Result<ListenerSasl, String> {
        let mechs_text =
            listener_value(config, listener, None, "sasl.enabled.mechanisms").unwrap_or_default();
        let mechanisms: Vec<String> = mechs_text
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect();
        if mechanisms.is_empty() {
            return Err(format!(
                "listener {listener}: sasl.enabled.mechanisms names no mechanism"
            ));
        }
        let mut jaas = BTreeMap::new();
        let mut plain_users = BTreeMap::new();
        let mut max_reauth_ms = BTreeMap::new();
        for m in &mechanisms {
            if !SUPPORTED_MECHANISMS.contains(&m.as_str()) {
                return Err(format!(
                    "listener {listener}: SASL mechanism {m} is not supported (sasl.enabled.mechanisms; Runnel serves {})",
                    SUPPORTED_MECHANISMS.join(", ")
                ));
            }
            if let Some(text) = listener_value(config, listener, Some(m), "sasl.jaas.config") {
                let entry = jaas::parse(&text).map_err(|e| {
                    format!(
                        "listener {listener}: invalid sasl.jaas.config for {m}: {e} (listener.name.{}.{}.sasl.jaas.config)",
                        listener.to_ascii_lowercase(),
                        m.to_ascii_lowercase()
                    )
                })?;
                jaas.insert(m.clone(), entry);
            }
            if m == "PLAIN" {
                let Some(entry) = jaas.get(m) else {
                    return Err(format!(
                        "listener {listener}: PLAIN needs a JAAS entry with its users: set listener.name.{}.plain.sasl.jaas.config (PlainLoginModule required user_<name>=\"<password>\" ...)",
                        listener.to_ascii_lowercase()
                    ));
                };
                for (k, v) in &entry.options {
                    if let Some(user) = k.strip_prefix("user_") {
                        plain_users.insert(user.to_string(), v.clone());
                    }
                }
            }
            let reauth = listener_value(config, listener, Some(m), "connections.max.reauth.ms")
                .unwrap_or_else(|| "0".into());
            let reauth: i64 = reauth.trim().parse().map_err(|_| {
                format!("listener {listener}: connections.max.reauth.ms {reauth:?} is not a number")
            })?;
            max_reauth_ms.insert(m.clone(), reauth.max(0));
            let class_key = format!(
                "listener.name.{}.{}.sasl.server.callback.handler.class",
                listener.to_ascii_lowercase(),
                m.to_ascii_lowercase()
            );
            if m != "OAUTHBEARER" && config.explicit.contains_key(&class_key) {
                return Err(format!(
                    "listener {listener}: {class_key}: server callback handlers are not supported for {m} (only OAUTHBEARER's validators)"
                ));
            }
        }
        let oauth = if mechanisms.iter().any(|m| m == "OAUTHBEARER") {
            let lookup = |key: &str| listener_setting(config, listener, Some("OAUTHBEARER"), key);
            oauth::Validator::from_config(&lookup, jaas.get("OAUTHBEARER"), fresh)
                .map_err(|e| format!("listener {listener}: OAUTHBEARER: {e}"))?
        } else {
            oauth::Validator::default()
        };
        let number = |key: &str| -> Result<i64, String> {
            let v = listener_value(config, listener, None, key).unwrap_or_default();
            v.trim()
                .parse::<i64>()
                .map_err(|_| format!("{key} {v:?} is not a number"))
        };
        let failed_delay = Duration::from_millis(
            number("connection.failed.authentication.delay.ms")?.max(0) as u64,
        );
        let max_receive_size =
            number("sasl.server.max.receive.size")?.clamp(1, i32::MAX as i64) as i32;
        Ok(ListenerSasl {
            listener: listener.to_string(),
            mechanisms,
            jaas,
            plain_users,
            max_reauth_ms,
            failed_delay,
            max_receive_size,
            oauth,
        })
    }
}

/// Checks the SASL settings of every SASL listener (at start-up, so a mistake stops the broker
/// with a message rather than failing each connection).
pub fn check_config(config: &BrokerConfig) -> Result<(), String> {
    for l in &config.listeners {
        if listener_protocol(config, &l.name).is_some_and(is_sasl_protocol) {
            ListenerSasl::build(config, &l.name, true)?;
        }
    }
    Ok(())
}

/// One mechanism's server side of an exchange.
enum MechServer {
    Plain,
    Scram(Box<ScramServer>),
    OAuth(oauth::OAuthServer),
}

/// What a step of a mechanism produced.
enum MechStep {
    /// A challenge; the exchange goes on.
    Challenge(Vec<u8>),
    /// Done: the user, the last server token, and when the credential expires (unix ms).
    Complete {
        user: String,
        response: Vec<u8>,
        expires_at_ms: Option<i64>,
    },
}

impl MechServer {
    fn new(mechanism: &str) -> MechServer {
        match ScramMechanism::from_name(mechanism) {
            Some(m) => MechServer::Scram(Box::new(ScramServer::new(m))),
            None if mechanism == "OAUTHBEARER" => MechServer::OAuth(Default::default()),
            None => MechServer::Plain,
        }
    }

    fn evaluate(
        &mut self,
        store: &dyn CredentialStore,
        settings: &ListenerSasl,
        token: &[u8],
    ) -> Result<MechStep, AuthError> {
        match self {
            MechServer::Plain => {
                plain::authenticate(&settings.plain_users, token).map(|user| MechStep::Complete {
                    user,
                    response: Vec::new(),
                    expires_at_ms: None,
                })
            }
            MechServer::OAuth(server) => {
                let v = &settings.oauth;
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0);
                match server.evaluate(v, token, now_ms)? {
                    oauth::OAuthStep::Challenge(c) => Ok(MechStep::Challenge(c)),
                    oauth::OAuthStep::Complete {
                        user,
                        expires_at_ms,
                    } => Ok(MechStep::Complete {
                        user,
                        response: Vec::new(),
                        expires_at_ms: Some(expires_at_ms),
                    }),
                }
            }
            MechServer::Scram(server) => {
                let mech = server.mechanism();
                let lookup = |user: &str| store.scram_credential(user, mech);
                match server.evaluate(token, &lookup)? {
                    ScramStep::Challenge(c) => Ok(MechStep::Challenge(c)),
                    ScramStep::Complete { response, user } => Ok(MechStep::Complete {
                        user,
                        response,
                        expires_at_ms: None,
                    }),
                }
            }
        }
    }
}

/// Where credentials come from (the broker's metadata image; a map in tests).
pub trait CredentialStore {
    /// A user's SCRAM credential for a mechanism.
    fn scram_credential(&self, user: &str, mech: ScramMechanism) -> Option<scram::ScramCredential>;
}

impl CredentialStore for Broker {
    fn scram_credential(&self, user: &str, mech: ScramMechanism) -> Option<scram::ScramCredential> {
        let image = self.image();
        image
            .scram
            .get(user, mech.code())
            .map(|c| scram::ScramCredential {
                salt: c.salt.clone(),
                stored_key: c.stored_key.clone(),
                server_key: c.server_key.clone(),
                iterations: c.iterations,
            })
    }
}

/// Where a connection is in authentication.
enum Phase {
    /// Nothing received yet: ApiVersions or SaslHandshake may come.
    Start,
    /// ApiVersions answered: SaslHandshake must come.
    Handshake,
    /// A mechanism was chosen: its tokens come (in SaslAuthenticate requests unless `raw`).
    Authenticate { server: MechServer, raw: bool },
    /// Authenticated: requests are served.
    Authenticated,
    /// A re-authentication asked for another mechanism: the next token fails.
    ReauthBadMechanism(String),
}

/// What the connection does with a frame.
pub enum Gate {
    /// Authenticated: serve the frame as usual.
    Pass,
    /// Write this response and read on.
    Respond(Bytes),
    /// Authentication failed: after the delay, write the response (if any), then close.
    Fail {
        /// The failure response.
        response: Option<Bytes>,
        /// Why (logged).
        reason: String,
        /// How long to wait first.
        delay: Duration,
    },
    /// Close the connection now.
    Close(String),
}

/// A connection's authentication state (one per connection on a SASL listener).
pub struct Authenticator {
    settings: Arc<ListenerSasl>,
    phase: Phase,
    /// The mechanism of the last successful authentication.
    mechanism: Option<String>,
    /// The principal of the last successful authentication.
    principal: Option<KafkaPrincipal>,
    /// When the session ends (KIP-368), if it does.
    expires: Option<Instant>,
    /// Whether the client sent SaslAuthenticate v1+ (it can re-authenticate).
    supports_reauth: bool,
    /// Whether this is a re-authentication.
    reauthenticating: bool,
}

fn auth_text(reauth: bool) -> &'static str {
    if reauth {
        "re-authentication"
    } else {
        "authentication"
    }
}

fn encode(key: ApiKey, version: i16, correlation_id: i32, resp: ResponseKind) -> Option<Bytes> {
    encode_response_kind(key, version, correlation_id, &resp).ok()
}

fn size_prefixed(token: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + token.len());
    b.put_i32(token.len() as i32);
    b.put_slice(token);
    b.freeze()
}

/// Decodes a request of one of the SASL-path APIs; None if malformed or unserved.
fn decode(frame: &Bytes) -> Option<(i16, i32, RequestKind)> {
    let (key, version, correlation_id) = peek_prefix(frame).ok()?;
    if check(key, version) != VersionCheck::Served {
        return None;
    }
    let api_key = ApiKey::try_from(key).ok()?;
    let head = parse_request_head(frame, api_key.request_header_version(version)).ok()?;
    let mut body = frame.slice(head.header_len..);
    runnel_protocol::validate::check_request_body(key, version, &body).ok()?;
    let req = RequestKind::decode(api_key, &mut body, version).ok()?;
    Some((version, correlation_id, req))
}

impl Authenticator {
    /// A new connection's authenticator.
    pub fn new(settings: Arc<ListenerSasl>) -> Authenticator {
        Authenticator {
            settings,
            phase: Phase::Start,
            mechanism: None,
            principal: None,
            expires: None,
            supports_reauth: false,
            reauthenticating: false,
        }
    }

    /// Whether requests are served (authenticated, not re-authenticating).
    pub fn authenticated(&self) -> bool {
        matches!(self.phase, Phase::Authenticated)
    }

    /// The largest frame to accept now: `sasl.server.max.receive.size` until authenticated.
    pub fn max_frame(&self, socket_max: i32) -> i32 {
        if self.authenticated() {
            socket_max
        } else {
            self.settings.max_receive_size
        }
    }

    /// A frame too large (or of a negative size) arrived during authentication: Kafka fails
    /// the authentication (after the delay) without a response.
    pub fn oversized(&self, size: i32) -> Gate {
        self.fail(
            None,
            format!(
                "invalid receive size {size} during {}",
                auth_text(self.reauthenticating)
            ),
        )
    }

    fn fail(&self, response: Option<Bytes>, reason: String) -> Gate {
        Gate::Fail {
            response,
            reason,
            delay: self.settings.failed_delay,
        }
    }

    /// Handles one frame; `principal` is set when authentication completes.
    pub fn on_frame(
        &mut self,
        broker: &dyn CredentialStore,
        principal: &mut Arc<KafkaPrincipal>,
        frame: &Bytes,
    ) -> Gate {
        let phase = std::mem::replace(&mut self.phase, Phase::Start);
        let (gate, next) = self.step(broker, principal, frame, phase);
        self.phase = next;
        gate
    }

    fn step(
        &mut self,
        broker: &dyn CredentialStore,
        principal: &mut Arc<KafkaPrincipal>,
        frame: &Bytes,
        phase: Phase,
    ) -> (Gate, Phase) {
        let key = peek_prefix(frame).map(|(k, _, _)| k).unwrap_or(-1);
        match phase {
            Phase::Authenticated => {
                if key == ApiKey::SaslHandshake as i16 && self.supports_reauth {
                    return self.handshake(frame, true);
                }
                if self.expires.is_some_and(|e| Instant::now() >= e) {
                    return (
                        Gate::Close("SASL session expired (connections.max.reauth.ms) without re-authentication".into()),
                        Phase::Authenticated,
                    );
                }
                (Gate::Pass, Phase::Authenticated)
            }
            Phase::Start if key == ApiKey::ApiVersions as i16 => (Gate::Pass, Phase::Handshake),
            Phase::Start | Phase::Handshake => {
                if key == ApiKey::SaslHandshake as i16 {
                    return self.handshake(frame, false);
                }
                let gate = if key == ApiKey::ApiVersions as i16 {
                    Gate::Close("ApiVersions sent twice during SASL authentication".into())
                } else {
                    self.fail(
                        None,
                        format!("Unexpected Kafka request of type {key} during SASL handshake."),
                    )
                };
                (gate, Phase::Handshake)
            }
            Phase::ReauthBadMechanism(msg) => {
                let resp = decode(frame).and_then(|(version, corr, req)| match req {
                    RequestKind::SaslAuthenticate(_) => encode(
                        ApiKey::SaslAuthenticate,
                        version,
                        corr,
                        SaslAuthenticateResponse::default()
                            .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                            .with_error_message(Some(StrBytes::from_string(msg.clone())))
                            .into(),
                    ),
                    _ => None,
                });
                (self.fail(resp, msg), Phase::Start)
            }
            Phase::Authenticate { mut server, raw } => {
                if raw {
                    // After a v0 handshake: the frame is the token itself.
                    return match server.evaluate(broker, &self.settings, frame) {
                        Ok(MechStep::Challenge(c)) => (
                            Gate::Respond(size_prefixed(&c)),
                            Phase::Authenticate { server, raw },
                        ),
                        Ok(MechStep::Complete {
                            user,
                            response,
                            expires_at_ms,
                        }) => match self.complete(principal, user, expires_at_ms) {
                            Ok(_) => (
                                Gate::Respond(size_prefixed(&response)),
                                Phase::Authenticated,
                            ),
                            Err(e) => (self.fail(None, e), Phase::Start),
                        },
                        Err(e) => (self.fail(None, e.message), Phase::Start),
                    };
                }
                let Some((version, corr, req)) = decode(frame) else {
                    return (
                        self.fail(None, format!("malformed or unexpected request (key {key}) during SASL authentication")),
                        Phase::Start,
                    );
                };
                let RequestKind::SaslAuthenticate(req) = req else {
                    return (
                        self.fail(
                            None,
                            format!("Unexpected Kafka request of type {key} during SASL authentication."),
                        ),
                        Phase::Start,
                    );
                };
                if version > 0 {
                    self.supports_reauth = true;
                }
                self.authenticate(broker, principal, server, version, corr, req)
            }
        }
    }

    fn handshake(&mut self, frame: &Bytes, reauth: bool) -> (Gate, Phase) {
        let back = if reauth {
            Phase::Authenticated
        } else {
            Phase::Handshake
        };
        let Some((version, corr, RequestKind::SaslHandshake(req))) = decode(frame) else {
            return (Gate::Close("malformed SaslHandshake request".into()), back);
        };
        let SaslHandshakeRequest { mechanism, .. } = req;
        let mechanism = mechanism.to_string();
        let enabled: Vec<StrBytes> = self
            .settings
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_string(m.clone()))
            .collect();
        if !self.settings.mechanisms.contains(&mechanism) {
            let resp = encode(
                ApiKey::SaslHandshake,
                version,
                corr,
                SaslHandshakeResponse::default()
                    .with_error_code(ResponseError::UnsupportedSaslMechanism.code())
                    .with_mechanisms(enabled)
                    .into(),
            );
            return (
                self.fail(resp, format!("Unsupported SASL mechanism {mechanism}")),
                Phase::Start,
            );
        }
        let Some(resp) = encode(
            ApiKey::SaslHandshake,
            version,
            corr,
            SaslHandshakeResponse::default()
                .with_error_code(0)
                .with_mechanisms(enabled)
                .into(),
        ) else {
            return (
                Gate::Close("SaslHandshake response encoding failed".into()),
                back,
            );
        };
        self.reauthenticating = reauth;
        if reauth && self.mechanism.as_deref() != Some(mechanism.as_str()) {
            let msg = format!(
                "SASL mechanism '{mechanism}' requested by client is not supported for re-authentication of mechanism '{}'",
                self.mechanism.as_deref().unwrap_or("")
            );
            return (Gate::Respond(resp), Phase::ReauthBadMechanism(msg));
        }
        let server = MechServer::new(&mechanism);
        self.mechanism = Some(mechanism);
        (
            Gate::Respond(resp),
            Phase::Authenticate {
                server,
                raw: version == 0,
            },
        )
    }

    fn authenticate(
        &mut self,
        broker: &dyn CredentialStore,
        principal: &mut Arc<KafkaPrincipal>,
        mut server: MechServer,
        version: i16,
        corr: i32,
        req: SaslAuthenticateRequest,
    ) -> (Gate, Phase) {
        let respond = |resp: SaslAuthenticateResponse| {
            encode(ApiKey::SaslAuthenticate, version, corr, resp.into())
        };
        let failure = |message: String| {
            respond(
                SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            )
        };
        match server.evaluate(broker, &self.settings, &req.auth_bytes) {
            Ok(MechStep::Challenge(c)) => match respond(
                SaslAuthenticateResponse::default()
                    .with_auth_bytes(Bytes::from(c))
                    .with_session_lifetime_ms(0),
            ) {
                Some(b) => (Gate::Respond(b), Phase::Authenticate { server, raw: false }),
                None => (
                    Gate::Close("SaslAuthenticate response encoding failed".into()),
                    Phase::Start,
                ),
            },
            Ok(MechStep::Complete {
                user,
                response,
                expires_at_ms,
            }) => match self.complete(principal, user, expires_at_ms) {
                Ok(lifetime_ms) => match respond(
                    SaslAuthenticateResponse::default()
                        .with_auth_bytes(Bytes::from(response))
                        .with_session_lifetime_ms(lifetime_ms),
                ) {
                    Some(b) => (Gate::Respond(b), Phase::Authenticated),
                    None => (
                        Gate::Close("SaslAuthenticate response encoding failed".into()),
                        Phase::Start,
                    ),
                },
                Err(msg) => (self.fail(failure(msg.clone()), msg), Phase::Start),
            },
            Err(e) => {
                let msg = if e.shown {
                    e.message.clone()
                } else {
                    format!(
                        "Authentication failed during {} due to invalid credentials with SASL mechanism {}",
                        auth_text(self.reauthenticating),
                        self.mechanism.as_deref().unwrap_or("")
                    )
                };
                let reason = format!("{msg} ({})", e.message);
                (self.fail(failure(msg), reason), Phase::Start)
            }
        }
    }

    /// Authentication completed as `user`: sets the principal and the session's end; the
    /// session lifetime to tell the client (0: none).
    fn complete(
        &mut self,
        principal: &mut Arc<KafkaPrincipal>,
        user: String,
        expires_at_ms: Option<i64>,
    ) -> Result<i64, String> {
        let new = KafkaPrincipal::user(user);
        if self.reauthenticating {
            if let Some(prev) = &self.principal {
                if *prev != new {
                    return Err(format!(
                        "Cannot change principals during re-authentication from {}.{}: {}.{}",
                        prev.principal_type, prev.name, new.principal_type, new.name
                    ));
                }
            }
        }
        let mech = self.mechanism.clone().unwrap_or_default();
        let max_reauth = self.settings.max_reauth_ms.get(&mech).copied().unwrap_or(0);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let lifetime = match (expires_at_ms, max_reauth > 0) {
            (None, false) => None,
            (None, true) => Some(max_reauth),
            (Some(exp), false) => Some((exp - now_ms).max(0)),
            (Some(exp), true) => Some((exp - now_ms).min(max_reauth).max(0)),
        };
        self.expires = lifetime.map(|ms| Instant::now() + Duration::from_millis(ms as u64));
        tracing::debug!(principal = %new, mechanism = %mech, listener = %self.settings.listener,
            reauth = self.reauthenticating, lifetime_ms = ?lifetime, "SASL authentication complete");
        *principal = Arc::new(new.clone());
        self.principal = Some(new);
        self.reauthenticating = false;
        Ok(lifetime.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests;
