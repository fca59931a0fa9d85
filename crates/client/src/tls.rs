//! TLS material for Kafka's `ssl.*` client settings (PEM only): reading certificates and keys
//! (inline or from files, encrypted PKCS#8 keys opened with `ssl.key.password`), the server
//! certificate verifier that skips the host name check when
//! `ssl.endpoint.identification.algorithm` is empty, and the rustls client config built from
//! them. The broker reads its own keystores with the same helpers.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Where PEM text comes from: given inline, or a file.
#[derive(Clone, PartialEq, Eq)]
pub enum PemSource {
    /// The PEM text itself (`ssl.truststore.certificates`, `ssl.keystore.key`, ...).
    Inline(String),
    /// A file holding it (`ssl.truststore.location`, ...).
    File(PathBuf),
}

impl std::fmt::Debug for PemSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PemSource::Inline(_) => f.write_str("Inline(..)"),
            PemSource::File(p) => write!(f, "File({})", p.display()),
        }
    }
}

impl PemSource {
    /// The PEM text; `what` names it in the error.
    pub fn read(&self, what: &str) -> Result<String, String> {
        match self {
            PemSource::Inline(t) => Ok(t.clone()),
            PemSource::File(p) => std::fs::read_to_string(p)
                .map_err(|e| format!("reading the {what} {}: {e}", p.display())),
        }
    }
}

/// Kafka accepts PEM given inline on one line (in a properties file the line breaks are often
/// lost or written as spaces): the base64 between the markers is re-wrapped.
pub fn normalize_pem(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(b) = rest.find("-----BEGIN ") {
        let after_begin = &rest[b + 11..];
        let Some(end_label) = after_begin.find("-----") else {
            break;
        };
        let label = &after_begin[..end_label];
        let body_start = b + 11 + end_label + 5;
        let end_marker = format!("-----END {label}-----");
        let Some(e) = rest[body_start..].find(&end_marker) else {
            break;
        };
        let body: String = rest[body_start..body_start + e]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        out.push_str(&format!("-----BEGIN {label}-----\n"));
        for chunk in body.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push('\n');
        }
        out.push_str(&end_marker);
        out.push('\n');
        rest = &rest[body_start + e + end_marker.len()..];
    }
    out
}

/// The certificates of a PEM text (at least one).
pub fn certs_of(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(normalize_pem(pem).as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what}: bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no certificate found"));
    }
    Ok(certs)
}

/// The private key of a PEM text: PKCS#8, PKCS#1 or SEC1, or encrypted PKCS#8 with a password.
pub fn key_of(
    pem: &str,
    password: Option<&str>,
    what: &str,
) -> Result<PrivateKeyDer<'static>, String> {
    let pem = normalize_pem(pem);
    const ENC_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    const ENC_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";
    if let Some(b) = pem.find(ENC_BEGIN) {
        let Some(password) = password else {
            return Err(format!(
                "{what}: the private key is encrypted: give its password in ssl.key.password"
            ));
        };
        let e = pem[b..]
            .find(ENC_END)
            .ok_or(format!("{what}: unterminated encrypted key"))?;
        let block = &pem[b..b + e + ENC_END.len()];
        let (_, doc) = pkcs8::der::SecretDocument::from_pem(block)
            .map_err(|e| format!("{what}: bad encrypted key: {e}"))?;
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes())
            .map_err(|e| format!("{what}: bad encrypted key: {e}"))?;
        let plain = info.decrypt(password).map_err(|e| {
            format!("{what}: cannot decrypt the private key with ssl.key.password: {e}")
        })?;
        return Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()));
    }
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| format!("{what}: no private key found ({e})"))
}

/// A trust store of the certificates of a PEM text.
pub fn root_store(pem: &str, what: &str) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    for c in certs_of(pem, what)? {
        store
            .add(c)
            .map_err(|e| format!("{what}: unusable certificate: {e}"))?;
    }
    Ok(store)
}

/// A server certificate verifier that checks the chain but not the host name
/// (`ssl.endpoint.identification.algorithm` empty).
#[derive(Debug)]
pub struct NoHostnameCheck(pub Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for NoHostnameCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A client's TLS settings (`ssl.*`), as given; [`TlsSettings::build`] loads them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// `ssl.truststore.location` / `ssl.truststore.certificates` (or librdkafka's
    /// `ssl.ca.location`).
    pub truststore: Option<PemSource>,
    /// `ssl.truststore.type` (PEM only).
    pub truststore_type: Option<String>,
    /// The client certificate chain: `ssl.keystore.location` (chain and key in one file),
    /// `ssl.keystore.certificate.chain` or librdkafka's `ssl.certificate.location`.
    pub keystore: Option<PemSource>,
    /// The key when it is apart from the chain: `ssl.keystore.key` or `ssl.key.location`.
    pub key: Option<PemSource>,
    /// `ssl.keystore.type` (PEM only).
    pub keystore_type: Option<String>,
    /// `ssl.key.password`: opens an encrypted PKCS#8 key.
    pub key_password: Option<String>,
    /// `ssl.endpoint.identification.algorithm`: `https` (default) checks the host name; empty
    /// does not (the chain is still checked).
    pub check_hostname: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            truststore: None,
            truststore_type: None,
            keystore: None,
            key: None,
            keystore_type: None,
            key_password: None,
            check_hostname: true,
        }
    }
}

fn pem_only(kind: &str, key: &str, t: &Option<String>) -> Result<(), String> {
    match t.as_deref().map(str::trim) {
        None | Some("") => Ok(()),
        Some(t) if t.eq_ignore_ascii_case("PEM") => Ok(()),
        Some(t) => Err(format!(
            "{key}={t}: {t} {kind} are not read by Runnel's client: give PEM and set {key}=PEM (convert a JKS or PKCS12 store with keytool -importkeystore and openssl pkcs12)"
        )),
    }
}

impl TlsSettings {
    /// Loads the files and builds the rustls client config; errors name the setting at fault.
    pub fn build(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        pem_only("trust stores", "ssl.truststore.type", &self.truststore_type)?;
        pem_only("keystores", "ssl.keystore.type", &self.keystore_type)?;
        let Some(ts) = &self.truststore else {
            return Err("TLS needs a trust store to check the broker's certificate (no system trust roots are built into Runnel's client): set ssl.truststore.location to a PEM file of CA certificates, or ssl.truststore.certificates to the PEM text".into());
        };
        let roots = Arc::new(root_store(&ts.read("trust store")?, "ssl.truststore")?);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let builder = if self.check_hostname {
            builder.with_root_certificates(roots)
        } else {
            let inner =
                rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| format!("ssl.truststore: {e}"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoHostnameCheck(inner)))
        };
        let cfg = match (&self.keystore, &self.key) {
            (None, None) => builder.with_no_client_auth(),
            (None, Some(_)) => {
                return Err(
                    "ssl.keystore.key is given without ssl.keystore.certificate.chain".into(),
                )
            }
            (Some(chain), key) => {
                let chain_text = chain.read("keystore")?;
                let key_text = match key {
                    Some(k) => k.read("keystore key")?,
                    None => chain_text.clone(),
                };
                let chain = certs_of(&chain_text, "ssl.keystore")?;
                let key = key_of(&key_text, self.key_password.as_deref(), "ssl.keystore")?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    format!("ssl.keystore: the key does not fit the certificate: {e}")
                })?
            }
        };
        Ok(Arc::new(cfg))
    }
}
