//! The client's security settings by Kafka's names: `security.protocol`, the `ssl.*` trust and
//! key stores (see [`crate::tls`]), `sasl.mechanism` with the credentials of `sasl.jaas.config`
//! (or librdkafka's `sasl.username` / `sasl.password`); and what a connection needs of them,
//! loaded once per client ([`Security`]).

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::sasl::Mechanism;
use crate::tls::{PemSource, TlsSettings};

/// `security.protocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SecurityProtocol {
    /// No TLS, no SASL.
    #[default]
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL over plain TCP.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// From Kafka's name (case-insensitive, as Kafka).
    pub fn from_name(name: &str) -> Result<SecurityProtocol> {
        match name.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(SecurityProtocol::Plaintext),
            "SSL" => Ok(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Ok(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Ok(SecurityProtocol::SaslSsl),
            _ => Err(Error::Config(format!(
                "security.protocol must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, not {name:?}"
            ))),
        }
    }

    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections use TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections authenticate with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// The security settings of a client, as given (nothing loaded yet).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecuritySettings {
    /// `security.protocol`.
    pub protocol: SecurityProtocol,
    /// The `ssl.*` settings.
    pub tls: TlsSettings,
    /// `sasl.mechanism`.
    pub sasl_mechanism: Option<Mechanism>,
    /// `sasl.jaas.config`.
    pub jaas_config: Option<String>,
    /// `sasl.username` (librdkafka's; wins over the JAAS config's).
    pub sasl_username: Option<String>,
    /// `sasl.password` (librdkafka's; wins over the JAAS config's).
    pub sasl_password: Option<String>,
}

impl std::fmt::Debug for SecuritySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecuritySettings")
            .field("protocol", &self.protocol)
            .field("tls", &self.tls)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .finish_non_exhaustive()
    }
}

fn non_empty(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

impl SecuritySettings {
    /// Sets one security setting by its Kafka (or librdkafka) name; `Ok(false)` when the name is
    /// not a security setting. Values are checked here where they can be alone; how they fit
    /// together is checked by [`SecuritySettings::load`].
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        let file = |v: &str| non_empty(v).map(|p| PemSource::File(PathBuf::from(p)));
        let inline = |v: &str| non_empty(v).map(|_| PemSource::Inline(v.to_string()));
        match key {
            "security.protocol" => self.protocol = SecurityProtocol::from_name(value)?,
            "ssl.truststore.location" | "ssl.ca.location" => self.tls.truststore = file(value),
            "ssl.truststore.certificates" => self.tls.truststore = inline(value),
            "ssl.truststore.type" => self.tls.truststore_type = non_empty(value),
            "ssl.keystore.location" | "ssl.certificate.location" => self.tls.keystore = file(value),
            "ssl.keystore.certificate.chain" => self.tls.keystore = inline(value),
            "ssl.keystore.key" => self.tls.key = inline(value),
            "ssl.key.location" => self.tls.key = file(value),
            "ssl.keystore.type" => self.tls.keystore_type = non_empty(value),
            "ssl.key.password" => self.tls.key_password = Some(value.to_string()),
            "ssl.endpoint.identification.algorithm" => {
                self.tls.check_hostname = match value.trim().to_ascii_lowercase().as_str() {
                    "https" => true,
                    "" | "none" => false,
                    other => {
                        return Err(Error::Config(format!(
                    "ssl.endpoint.identification.algorithm must be https or empty, not {other:?}"
                )))
                    }
                }
            }
            // Kafka's: JKS/PKCS12 stores have passwords, PEM ones do not; accepted and unused
            // so that a Kafka client.properties with a PEM store loads as it is.
            "ssl.truststore.password" | "ssl.keystore.password" => {}
            "sasl.mechanism" | "sasl.mechanisms" => {
                self.sasl_mechanism = Some(Mechanism::from_name(value)?)
            }
            "sasl.jaas.config" => {
                crate::jaas::parse(value)
                    .map_err(|e| Error::Config(format!("sasl.jaas.config: {e}")))?;
                self.jaas_config = non_empty(value);
            }
            "sasl.username" => self.sasl_username = Some(value.to_string()),
            "sasl.password" => self.sasl_password = Some(value.to_string()),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks the settings together and loads the TLS material: what every connection of the
    /// client uses. Errors are [`Error::Config`] naming the setting at fault.
    pub fn load(&self) -> Result<Security> {
        let tls = if self.protocol.uses_tls() {
            Some(self.tls.build().map_err(|e| {
                Error::Config(format!("security.protocol={}: {e}", self.protocol.name()))
            })?)
        } else {
            None
        };
        let sasl = if self.protocol.uses_sasl() {
            Some(self.login()?)
        } else {
            None
        };
        Ok(Security { tls, sasl })
    }

    /// The SASL credentials: `sasl.username` / `sasl.password`, else the JAAS config's
    /// `username` / `password` options (its login module must fit the mechanism).
    fn login(&self) -> Result<SaslLogin> {
        let proto = self.protocol.name();
        let mechanism = self.sasl_mechanism.ok_or_else(|| {
            Error::Config(format!(
                "security.protocol={proto} needs sasl.mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; Kafka's default GSSAPI is not supported)"
            ))
        })?;
        let (mut user, mut password) = (None, None);
        if let Some(text) = &self.jaas_config {
            let entry = crate::jaas::parse(text)
                .map_err(|e| Error::Config(format!("sasl.jaas.config: {e}")))?;
            let class = entry.module.rsplit('.').next().unwrap_or(&entry.module);
            let wanted = match mechanism {
                Mechanism::Plain => "PlainLoginModule",
                Mechanism::Scram(_) => "ScramLoginModule",
            };
            if class != wanted {
                return Err(Error::Config(format!(
                    "sasl.jaas.config: sasl.mechanism={} takes org.apache.kafka.common.security.{}.{wanted}, not {}",
                    mechanism.name(),
                    if mechanism == Mechanism::Plain { "plain" } else { "scram" },
                    entry.module
                )));
            }
            user = entry.option("username").map(str::to_string);
            password = entry.option("password").map(str::to_string);
        }
        if let Some(u) = &self.sasl_username {
            user = Some(u.clone());
        }
        if let Some(p) = &self.sasl_password {
            password = Some(p.clone());
        }
        let (Some(username), Some(password)) = (user.filter(|u| !u.is_empty()), password) else {
            return Err(Error::Config(format!(
                "security.protocol={proto} with sasl.mechanism={} needs a user name and password: sasl.jaas.config with username=\"...\" password=\"...\", or sasl.username and sasl.password",
                mechanism.name()
            )));
        };
        // Fails now (not at connect time) on credentials the mechanism cannot carry.
        crate::sasl::SaslClient::new(mechanism.name(), &username, &password)?;
        Ok(SaslLogin {
            mechanism,
            username,
            password,
        })
    }
}

/// SASL credentials for one mechanism.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslLogin {
    /// The mechanism.
    pub mechanism: Mechanism,
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for SaslLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslLogin")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl SaslLogin {
    /// A new exchange with these credentials.
    pub fn client(&self) -> Result<crate::sasl::SaslClient> {
        crate::sasl::SaslClient::new(self.mechanism.name(), &self.username, &self.password)
    }
}

/// What a connection needs to be secured: TLS (when the protocol uses it) and SASL credentials
/// (when it authenticates).
#[derive(Clone, Debug, Default)]
pub struct Security {
    /// TLS, for SSL and SASL_SSL.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// SASL, for SASL_PLAINTEXT and SASL_SSL.
    pub sasl: Option<SaslLogin>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<SecuritySettings> {
        let mut s = SecuritySettings::default();
        for (k, v) in pairs {
            assert!(s.set(k, v)?, "{k} is a security setting");
        }
        Ok(s)
    }

    #[test]
    fn protocols_and_mechanisms_by_name() {
        let s = settings(&[("security.protocol", "sasl_ssl")]).unwrap();
        assert_eq!(s.protocol, SecurityProtocol::SaslSsl);
        for (k, v) in [
            ("security.protocol", "TLS"),
            ("sasl.mechanism", "GSSAPI"),
            ("sasl.mechanism", "OAUTHBEARER"),
            ("ssl.endpoint.identification.algorithm", "dns"),
            ("sasl.jaas.config", "x.Y required username=\"a\""),
        ] {
            let e = settings(&[(k, v)]).unwrap_err();
            assert!(matches!(e, Error::Config(_)), "{k}={v}: {e}");
        }
        assert!(!SecuritySettings::default().set("linger.ms", "1").unwrap());
    }

    #[test]
    fn credentials_from_jaas_or_shorthand() {
        let jaas = r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="a-pw";"#;
        let s = settings(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "SCRAM-SHA-256"),
            ("sasl.jaas.config", jaas),
        ])
        .unwrap();
        let login = s.load().unwrap().sasl.unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("alice", "a-pw")
        );
        assert!(
            !format!("{s:?} {login:?}").contains("a-pw"),
            "passwords stay out of Debug"
        );
        // librdkafka's shorthand wins.
        let mut s2 = s.clone();
        s2.set("sasl.username", "bob").unwrap();
        s2.set("sasl.password", "b-pw").unwrap();
        assert_eq!(s2.load().unwrap().sasl.unwrap().username, "bob");
        // A PLAIN mechanism with a SCRAM login module, no mechanism, no credentials.
        let mut s3 = s.clone();
        s3.set("sasl.mechanism", "PLAIN").unwrap();
        assert!(s3
            .load()
            .unwrap_err()
            .to_string()
            .contains("PlainLoginModule"));
        let s4 = settings(&[("security.protocol", "SASL_PLAINTEXT")]).unwrap();
        assert!(s4
            .load()
            .unwrap_err()
            .to_string()
            .contains("sasl.mechanism"));
        let s5 = settings(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "PLAIN"),
        ])
        .unwrap();
        assert!(s5
            .load()
            .unwrap_err()
            .to_string()
            .contains("user name and password"));
        // PLAINTEXT needs nothing.
        let plain = SecuritySettings::default().load().unwrap();
        assert!(plain.tls.is_none() && plain.sasl.is_none());
    }

    #[test]
    fn tls_needs_a_pem_truststore() {
        let s = settings(&[("security.protocol", "SSL")]).unwrap();
        assert!(s
            .load()
            .unwrap_err()
            .to_string()
            .contains("ssl.truststore.location"));
        let s = settings(&[
            ("security.protocol", "SSL"),
            ("ssl.truststore.location", "/x.jks"),
            ("ssl.truststore.type", "JKS"),
        ])
        .unwrap();
        assert!(s
            .load()
            .unwrap_err()
            .to_string()
            .contains("ssl.truststore.type=PEM"));
        let s = settings(&[
            ("security.protocol", "SSL"),
            ("ssl.truststore.location", "/no/such/file.pem"),
        ])
        .unwrap();
        assert!(s
            .load()
            .unwrap_err()
            .to_string()
            .contains("/no/such/file.pem"));
    }
}
