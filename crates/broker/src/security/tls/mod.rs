//! TLS on SSL and SASL_SSL listeners (rustls), configured with Kafka's keys:
//!
//! - the keystore, PEM only (`ssl.keystore.type=PEM`): inline with `ssl.keystore.certificate.chain`
//!   and `ssl.keystore.key`, or a file of key and chain at `ssl.keystore.location`; an encrypted
//!   PKCS#8 key is opened with `ssl.key.password`;
//! - the trust store, PEM (`ssl.truststore.type=PEM`): `ssl.truststore.certificates` inline or a
//!   file at `ssl.truststore.location`; client certificates are checked against it, and so are the
//!   other brokers' when this node connects to them over TLS;
//! - `ssl.client.auth` none / requested / required (on SASL_SSL listeners only when given
//!   listener-prefixed, as Kafka since KIP-684); a client certificate's subject (RFC 2253) mapped
//!   by `ssl.principal.mapping.rules` is the principal of an SSL connection;
//! - `ssl.enabled.protocols`, `ssl.cipher.suites`, `ssl.endpoint.identification.algorithm`.
//!
//! Every key can be given per listener as `listener.name.<listener>.<key>` (lower-case name),
//! which wins over the plain key. Keystore and truststore files are checked every
//! `runnel.ssl.reload.interval.ms` and reloaded when they change: new connections get the new
//! certificates, open ones keep theirs; a file that does not load (half written, key and
//! certificate that do not match) is logged and the previous material kept.

pub mod principal;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use runnel_config::BrokerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
// PEM reading and the host-name-blind verifier are shared with the client's `ssl.*` settings.
use runnel_client::tls::{certs_of, key_of, NoHostnameCheck};
use tracing::{info, warn};

use self::principal::PrincipalMapper;
use super::KafkaPrincipal;

/// How long a client may take to finish the TLS handshake after connecting.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate asked for.
    None,
    /// Asked for; a client without one connects as User:ANONYMOUS.
    Requested,
    /// Required: a client without a trusted certificate fails the handshake.
    Required,
}

/// Where a keystore or truststore comes from.
#[derive(Debug, Clone)]
enum Source {
    Inline(String),
    File(PathBuf),
}

/// The TLS settings of one listener, read from the config.
#[derive(Debug, Clone)]
struct Settings {
    listener: String,
    /// Certificate chain and key: one PEM text (inline chain + key, or the file).
    keystore: Option<(Source, Option<Source>)>,
    key_password: Option<String>,
    truststore: Option<Source>,
    client_auth: ClientAuth,
    protocols: Vec<&'static rustls::SupportedProtocolVersion>,
    cipher_suites: Option<Vec<String>>,
    check_hostname: bool,
}

/// Reads a listener's setting: `listener.name.<listener>.<key>`, else `<key>`, else the
/// table's default.
fn setting(cfg: &BrokerConfig, listener: &str, key: &str) -> Option<String> {
    let prefixed = format!("listener.name.{}.{key}", listener.to_ascii_lowercase());
    cfg.explicit
        .get(&prefixed)
        .or_else(|| cfg.explicit.get(key))
        .cloned()
        .or_else(|| {
            runnel_config::tables::broker_entry(key)
                .and_then(|e| e.default)
                .map(str::to_string)
        })
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

impl Settings {
    fn read(cfg: &BrokerConfig, listener: &str, protocol: &str) -> Result<Settings, String> {
        let get = |k: &str| setting(cfg, listener, k);
        let err = |k: &str, m: &str| format!("listener {listener}: {k}: {m}");
        let ks_type = get("ssl.keystore.type").unwrap_or_else(|| "JKS".into());
        let chain = get("ssl.keystore.certificate.chain");
        let key = get("ssl.keystore.key");
        let ks_location = get("ssl.keystore.location");
        let any_keystore = chain.is_some() || key.is_some() || ks_location.is_some();
        if any_keystore && !ks_type.eq_ignore_ascii_case("PEM") {
            return Err(err(
                "ssl.keystore.type",
                &format!("{ks_type} keystores are not read by Runnel: set ssl.keystore.type=PEM (convert a JKS or PKCS12 keystore with keytool -importkeystore and openssl pkcs12, see the README)"),
            ));
        }
        if any_keystore && get("ssl.keystore.password").is_some() {
            return Err(err(
                "ssl.keystore.password",
                "not used with PEM keystores (as Kafka); an encrypted key takes ssl.key.password",
            ));
        }
        let keystore = match (chain, key, ks_location) {
            (Some(c), Some(k), None) => Some((Source::Inline(c), Some(Source::Inline(k)))),
            (None, None, Some(path)) => Some((Source::File(PathBuf::from(path)), None)),
            (None, None, None) => None,
            (Some(_), None, _) | (None, Some(_), _) => {
                return Err(err(
                    "ssl.keystore.certificate.chain",
                    "ssl.keystore.certificate.chain and ssl.keystore.key go together",
                ))
            }
            _ => {
                return Err(err(
                    "ssl.keystore.location",
                    "give either ssl.keystore.location or the inline ssl.keystore.certificate.chain and ssl.keystore.key, not both",
                ))
            }
        };
        if keystore.is_none() {
            return Err(err(
                "ssl.keystore.location",
                &format!("a {protocol} listener needs a keystore: ssl.keystore.type=PEM with ssl.keystore.location, or ssl.keystore.certificate.chain and ssl.keystore.key"),
            ));
        }
        let ts_type = get("ssl.truststore.type").unwrap_or_else(|| "JKS".into());
        let truststore =
            match (
                get("ssl.truststore.certificates"),
                get("ssl.truststore.location"),
            ) {
                (Some(_), Some(_)) => return Err(err(
                    "ssl.truststore.location",
                    "give either ssl.truststore.location or ssl.truststore.certificates, not both",
                )),
                (Some(c), None) => Some(Source::Inline(c)),
                (None, Some(p)) => Some(Source::File(PathBuf::from(p))),
                (None, None) => None,
            };
        if truststore.is_some() && !ts_type.eq_ignore_ascii_case("PEM") {
            return Err(err(
                "ssl.truststore.type",
                &format!(
                    "{ts_type} trust stores are not read by Runnel: set ssl.truststore.type=PEM"
                ),
            ));
        }
        if truststore.is_some() && get("ssl.truststore.password").is_some() {
            return Err(err(
                "ssl.truststore.password",
                "not used with PEM trust stores (as Kafka)",
            ));
        }
        // KIP-684: on SASL_SSL listeners ssl.client.auth applies only listener-prefixed.
        let auth_text = if protocol == "SASL_SSL" {
            cfg.explicit
                .get(&format!(
                    "listener.name.{}.ssl.client.auth",
                    listener.to_ascii_lowercase()
                ))
                .cloned()
                .unwrap_or_else(|| "none".into())
        } else {
            get("ssl.client.auth").unwrap_or_else(|| "none".into())
        };
        let client_auth = match auth_text.trim().to_ascii_lowercase().as_str() {
            "none" => ClientAuth::None,
            "requested" => ClientAuth::Requested,
            "required" => ClientAuth::Required,
            other => {
                return Err(err(
                    "ssl.client.auth",
                    &format!("{other}: expected none, requested or required"),
                ))
            }
        };
        if client_auth != ClientAuth::None && truststore.is_none() {
            return Err(err(
                "ssl.client.auth",
                "client certificates are checked against a trust store: set ssl.truststore.type=PEM with ssl.truststore.location or ssl.truststore.certificates",
            ));
        }
        let mut protocols = Vec::new();
        for p in get("ssl.enabled.protocols")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            match p {
                "TLSv1.3" => protocols.push(&rustls::version::TLS13),
                "TLSv1.2" => protocols.push(&rustls::version::TLS12),
                "TLSv1" | "TLSv1.1" | "SSLv3" => {
                    warn!(listener, protocol = p, "ssl.enabled.protocols: {p} is not offered (rustls serves TLSv1.2 and TLSv1.3 only)")
                }
                other => {
                    return Err(err(
                        "ssl.enabled.protocols",
                        &format!("unknown protocol {other}"),
                    ))
                }
            }
        }
        if protocols.is_empty() {
            return Err(err(
                "ssl.enabled.protocols",
                "no protocol left: enable TLSv1.2 or TLSv1.3",
            ));
        }
        let cipher_suites = get("ssl.cipher.suites").map(|s| {
            s.split(',')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect()
        });
        let check_hostname = get("ssl.endpoint.identification.algorithm")
            .is_some_and(|a| a.eq_ignore_ascii_case("https"));
        Ok(Settings {
            listener: listener.to_string(),
            keystore,
            key_password: get("ssl.key.password"),
            truststore,
            client_auth,
            protocols,
            cipher_suites,
            check_hostname,
        })
    }

    /// The files whose changes reload this listener's TLS material.
    fn files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Some((Source::File(p), _)) = &self.keystore {
            out.push(p.clone());
        }
        if let Some(Source::File(p)) = &self.truststore {
            out.push(p.clone());
        }
        out
    }
}

fn read_source(s: &Source, what: &str) -> Result<String, String> {
    match s {
        Source::Inline(t) => Ok(t.clone()),
        Source::File(p) => std::fs::read_to_string(p)
            .map_err(|e| format!("reading the {what} {}: {e}", p.display())),
    }
}

/// Loaded key material of a listener.
struct Material {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Option<Arc<RootCertStore>>,
}

impl Settings {
    fn load(&self) -> Result<Material, String> {
        let (ks, key_src) = self.keystore.as_ref().expect("checked when read");
        let ks_text = read_source(ks, "keystore")?;
        let key_text = match key_src {
            Some(k) => read_source(k, "keystore key")?,
            None => ks_text.clone(),
        };
        let chain = certs_of(&ks_text, "keystore")?;
        let key = key_of(&key_text, self.key_password.as_deref(), "keystore")?;
        let roots = match &self.truststore {
            None => None,
            Some(s) => {
                let mut store = RootCertStore::empty();
                for c in certs_of(&read_source(s, "truststore")?, "truststore")? {
                    store
                        .add(c)
                        .map_err(|e| format!("truststore: unusable certificate: {e}"))?;
                }
                Some(Arc::new(store))
            }
        };
        Ok(Material { chain, key, roots })
    }

    fn provider(&self) -> Result<Arc<CryptoProvider>, String> {
        let mut p = rustls::crypto::ring::default_provider();
        if let Some(wanted) = &self.cipher_suites {
            let name = |s: &rustls::SupportedCipherSuite| {
                format!("{:?}", s.suite()).replace("TLS13_", "TLS_")
            };
            p.cipher_suites
                .retain(|s| wanted.iter().any(|w| *w == name(s)));
            if p.cipher_suites.is_empty() {
                let all: Vec<String> = rustls::crypto::ring::ALL_CIPHER_SUITES
                    .iter()
                    .map(name)
                    .collect();
                return Err(format!(
                    "listener {}: ssl.cipher.suites: none of {wanted:?} is served (served: {})",
                    self.listener,
                    all.join(",")
                ));
            }
        }
        Ok(Arc::new(p))
    }

    /// The server side: what clients connecting to this listener get.
    fn server_config(&self, m: &Material) -> Result<Arc<ServerConfig>, String> {
        let provider = self.provider()?;
        let verifier = match (self.client_auth, &m.roots) {
            (ClientAuth::None, _) | (_, None) => WebPkiClientVerifier::no_client_auth(),
            (auth, Some(roots)) => {
                let b =
                    WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
                let b = if auth == ClientAuth::Requested {
                    b.allow_unauthenticated()
                } else {
                    b
                };
                b.build()
                    .map_err(|e| format!("listener {}: trust store: {e}", self.listener))?
            }
        };
        let cfg = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&self.protocols)
            .map_err(|e| format!("listener {}: {e}", self.listener))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(m.chain.clone(), m.key.clone_key())
            .map_err(|e| {
                format!(
                    "listener {}: keystore: the key does not fit the certificate: {e}",
                    self.listener
                )
            })?;
        Ok(Arc::new(cfg))
    }

    /// The client side: how this node connects to this listener on other nodes (the
    /// inter-broker and controller listeners), presenting its own certificate. None without a
    /// trust store.
    fn client_config(&self, m: &Material) -> Result<Option<Arc<ClientConfig>>, String> {
        let Some(roots) = &m.roots else {
            return Ok(None);
        };
        let provider = self.provider()?;
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&self.protocols)
            .map_err(|e| format!("listener {}: {e}", self.listener))?;
        let builder = if self.check_hostname {
            builder.with_root_certificates(roots.clone())
        } else {
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                roots.clone(),
                provider,
            )
            .build()
            .map_err(|e| format!("listener {}: trust store: {e}", self.listener))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoHostnameCheck(inner)))
        };
        let cfg = builder
            .with_client_auth_cert(m.chain.clone(), m.key.clone_key())
            .map_err(|e| format!("listener {}: keystore: {e}", self.listener))?;
        Ok(Some(Arc::new(cfg)))
    }
}

/// A file's identity for change detection: modification time and length.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(p: &Path) -> Stamp {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// One TLS listener: its settings, current server and client configs, and principal mapping.
pub struct ListenerTls {
    /// The listener's name.
    pub listener: String,
    /// SSL or SASL_SSL.
    pub protocol: String,
    settings: Settings,
    mapper: PrincipalMapper,
    server: RwLock<Arc<ServerConfig>>,
    client: RwLock<Option<Arc<ClientConfig>>>,
    stamps: Mutex<Vec<(PathBuf, Stamp)>>,
}

impl ListenerTls {
    /// Reads and loads a listener's TLS settings; errors name the key at fault.
    pub fn from_config(
        cfg: &BrokerConfig,
        listener: &str,
        protocol: &str,
    ) -> Result<ListenerTls, String> {
        let settings = Settings::read(cfg, listener, protocol)?;
        let rules = setting(cfg, listener, "ssl.principal.mapping.rules")
            .unwrap_or_else(|| "DEFAULT".into());
        let mapper = PrincipalMapper::parse(&rules)
            .map_err(|e| format!("listener {listener}: ssl.principal.mapping.rules: {e}"))?;
        let stamps = settings.files().into_iter().map(|p| {
            let s = stamp(&p);
            (p, s)
        });
        let stamps: Vec<_> = stamps.collect();
        let m = settings
            .load()
            .map_err(|e| format!("listener {listener}: {e}"))?;
        let server = settings.server_config(&m)?;
        let client = settings.client_config(&m)?;
        Ok(ListenerTls {
            listener: listener.to_string(),
            protocol: protocol.to_string(),
            settings,
            mapper,
            server: RwLock::new(server),
            client: RwLock::new(client),
            stamps: Mutex::new(stamps),
        })
    }

    /// The acceptor for a new connection (the current certificates).
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server_config())
    }

    /// The current server-side rustls config (what [`ListenerTls::acceptor`] accepts with).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server.read().clone()
    }

    /// How this node connects to this listener on other nodes, if it has a trust store.
    pub fn client_config(&self) -> Option<Arc<ClientConfig>> {
        self.client.read().clone()
    }

    /// `ssl.client.auth` of the listener.
    pub fn client_auth(&self) -> ClientAuth {
        self.settings.client_auth
    }

    /// The principal of a TLS connection on an SSL listener: the client certificate's subject
    /// mapped by `ssl.principal.mapping.rules`, User:ANONYMOUS without a certificate. Err when
    /// no mapping rule applies (Kafka fails the authentication then).
    pub fn principal(
        &self,
        peer_certs: Option<&[CertificateDer<'_>]>,
    ) -> Result<KafkaPrincipal, String> {
        let Some(cert) = peer_certs.and_then(|c| c.first()) else {
            return Ok(KafkaPrincipal::anonymous());
        };
        let subject = principal::subject_rfc2253(cert.as_ref())?;
        Ok(KafkaPrincipal::user(self.mapper.name(&subject)?))
    }

    /// Reloads the material when a keystore or truststore file changed since it was last
    /// loaded. Returns Some(error) when a changed file does not load (the old material stays).
    pub fn reload_if_changed(&self) -> Option<Result<(), String>> {
        let mut stamps = self.stamps.lock();
        let now: Vec<(PathBuf, Stamp)> =
            stamps.iter().map(|(p, _)| (p.clone(), stamp(p))).collect();
        if now == *stamps {
            return None;
        }
        let result = self.settings.load().and_then(|m| {
            let server = self.settings.server_config(&m)?;
            let client = self.settings.client_config(&m)?;
            *self.server.write() = server;
            *self.client.write() = client;
            Ok(())
        });
        // A failed load is retried only after the files change again.
        *stamps = now;
        Some(result)
    }
}

/// The TLS listeners of a node, by listener name.
#[derive(Default)]
pub struct TlsListeners {
    by_name: HashMap<String, Arc<ListenerTls>>,
    reload_interval: Option<Duration>,
    inter_broker: String,
    controller: Option<String>,
}

impl TlsListeners {
    /// Sets up every SSL and SASL_SSL listener of the config (those bound here, and the
    /// inter-broker and controller listeners this node connects to).
    pub fn from_config(cfg: &BrokerConfig) -> Result<TlsListeners, String> {
        let mut by_name = HashMap::new();
        for (name, protocol) in &cfg.listener_security_protocol_map {
            if protocol != "SSL" && protocol != "SASL_SSL" {
                continue;
            }
            let used = cfg.listeners.iter().any(|l| &l.name == name)
                || cfg.cluster.inter_broker_listener_name == *name
                || cfg
                    .cluster
                    .controller_listener_names
                    .iter()
                    .any(|n| n == name);
            if !used {
                continue;
            }
            let tls = ListenerTls::from_config(cfg, name, protocol)?;
            let is_internal = cfg.cluster.inter_broker_listener_name == *name
                || cfg.cluster.controller_listener_names.first() == Some(name);
            let alone = cfg.cluster.is_single_node(cfg.node_id);
            if is_internal && !alone && tls.client_config().is_none() {
                return Err(format!(
                    "listener {name}: nodes connect to each other over it with TLS, so it needs a trust store (ssl.truststore.type=PEM with ssl.truststore.location or ssl.truststore.certificates)"
                ));
            }
            info!(
                listener = %name,
                protocol = %protocol,
                client_auth = ?tls.client_auth(),
                "TLS listener set up"
            );
            by_name.insert(name.clone(), Arc::new(tls));
        }
        let ms = cfg
            .explicit
            .get("runnel.ssl.reload.interval.ms")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(5000);
        Ok(TlsListeners {
            by_name,
            reload_interval: (ms > 0).then(|| Duration::from_millis(ms)),
            inter_broker: cfg.cluster.inter_broker_listener_name.clone(),
            controller: cfg.cluster.controller_listener_names.first().cloned(),
        })
    }

    /// The TLS of a listener; None for PLAINTEXT and SASL_PLAINTEXT listeners.
    pub fn get(&self, listener: &str) -> Option<Arc<ListenerTls>> {
        self.by_name.get(listener).cloned()
    }

    /// Whether any listener uses TLS.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The client config for connecting to `listener` on another node; None when the listener
    /// does not use TLS.
    pub fn client_for(&self, listener: &str) -> Option<Arc<ClientConfig>> {
        self.by_name.get(listener).and_then(|t| t.client_config())
    }

    /// How this node reaches other brokers' inter-broker listener (replication, transaction
    /// markers): TLS when that listener is an SSL one.
    pub fn for_brokers(&self) -> Option<Arc<ClientConfig>> {
        self.client_for(&self.inter_broker)
    }

    /// How this node reaches controllers (the metadata quorum, forwarded requests, start-up
    /// hellos): TLS when the first of `controller.listener.names` is an SSL one. Raft messages
    /// to broker-only nodes go to their inter-broker listener with the same settings, so with
    /// broker-only nodes both listeners use TLS or neither does.
    pub fn for_controllers(&self) -> Option<Arc<ClientConfig>> {
        self.controller.as_deref().and_then(|c| self.client_for(c))
    }

    /// Checks the keystore and truststore files every `runnel.ssl.reload.interval.ms` and
    /// reloads those that changed, until the task is aborted.
    pub async fn reload_loop(self: Arc<Self>) {
        let Some(every) = self.reload_interval else {
            return;
        };
        if self.by_name.values().all(|t| t.settings.files().is_empty()) {
            return;
        }
        loop {
            tokio::time::sleep(every).await;
            for t in self.by_name.values() {
                match t.reload_if_changed() {
                    None => {}
                    Some(Ok(())) => {
                        info!(listener = %t.listener, "TLS keystore / truststore changed: reloaded (new connections use it)")
                    }
                    Some(Err(e)) => {
                        warn!(listener = %t.listener, error = %e, "TLS keystore / truststore changed but does not load: keeping the previous one")
                    }
                }
            }
        }
    }
}
