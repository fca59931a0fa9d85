//! Fuzz target: the TLS path of an SSL listener never panics on any input. The first byte picks
//! what the rest is: the bytes a client sends, fed to a server connection made from the broker's
//! own listener config (PEM keystore and trust store, `ssl.client.auth=requested`, so client
//! certificates are asked for and checked); a client certificate (DER) turned into a principal
//! as a connection's would be (subject as RFC 2253, then `ssl.principal.mapping.rules`); or
//! mapping-rules text parsed and applied.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use runnel_broker::security::tls::principal::{subject_rfc2253, PrincipalMapper};
use runnel_broker::security::tls::ListenerTls;
use runnel_config::BrokerConfig;
use rustls::pki_types::CertificateDer;

/// A self-signed P-256 certificate and its key, made for this target (`openssl req -x509`).
const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBwTCCAWegAwIBAgIUGw/LCwSfz/z0Ez680QrTKpTDjccwCgYIKoZIzj0EAwIw
KjESMBAGA1UEAwwJbG9jYWxob3N0MRQwEgYDVQQKDAtydW5uZWwtZnV6ejAgFw0y
NjEyMDIxMTIzMDNaGA8yMTI2MTEwODExMjMwM1owKjESMBAGA1UEAwwJbG9jYWxo
b3N0MRQwEgYDVQQKDAtydW5uZWwtZnV6ejBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABLfNjavkMZieZ2sZl18omOq7l0mfoLZFgT/MhWfDFqs8/gUXdJeIRoZq5x6+
V8aQtLIP2ff9A/D7UVCZVNt7jvCjaTBnMB0GA1UdDgQWBBT6jcvetCNznMlTQwFF
uIabMcdSzjAfBgNVHSMEGDAWgBT6jcvetCNznMlTQwFFuIabMcdSzjAPBgNVHRMB
Af8EBTADAQH/MBQGA1UdEQQNMAuCCWxvY2FsaG9zdDAKBggqhkjOPQQDAgNIADBF
AiAcu+TU08F7up9H2mLbXZpzVShxHtOHQ7dN7Eo5ljxaDgIhAPiyn9DEHloM1IhO
RYlqnSE5GqkouWowy6Tk4UbXlNky
-----END CERTIFICATE-----";
const KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgqKh2RXXdJqkwa9tr
zn7S0CiSl6rZps+0o64K48ZBxRmhRANCAAS3zY2r5DGYnmdrGZdfKJjqu5dJn6C2
RYE/zIVnwxarPP4FF3SXiEaGaucevlfGkLSyD9n3/QPw+1FQmVTbe47w
-----END PRIVATE KEY-----";

/// Mapping rules with each kind of rule: a pattern with groups, a case change, and DEFAULT.
const RULES: &str = "RULE:^CN=([a-zA-Z0-9.]*),O=(.*)$/$1@$2/L,RULE:^CN=(.*?),.*$/$1/U,DEFAULT";

fn listener() -> &'static ListenerTls {
    static L: OnceLock<ListenerTls> = OnceLock::new();
    L.get_or_init(|| {
        let o: Vec<(String, String)> = [
            ("listeners", "SSL://127.0.0.1:9093"),
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.certificate.chain", CERT),
            ("ssl.keystore.key", KEY),
            ("ssl.truststore.type", "PEM"),
            ("ssl.truststore.certificates", CERT),
            ("ssl.client.auth", "requested"),
            ("ssl.principal.mapping.rules", RULES),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let cfg = BrokerConfig::load(None, &[], &o).expect("config").config;
        ListenerTls::from_config(&cfg, "SSL", "SSL").expect("listener")
    })
}

fn mapper() -> &'static PrincipalMapper {
    static M: OnceLock<PrincipalMapper> = OnceLock::new();
    M.get_or_init(|| PrincipalMapper::parse(RULES).expect("rules"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            let l = listener();
            let Ok(mut conn) = rustls::ServerConnection::new(Arc::clone(&l.server_config())) else {
                return;
            };
            let mut input = rest;
            while !input.is_empty() {
                match conn.read_tls(&mut input) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if conn.process_new_packets().is_err() {
                    break;
                }
                let mut sink = Vec::new();
                while conn.wants_write() {
                    if conn.write_tls(&mut sink).is_err() {
                        break;
                    }
                }
            }
            if !conn.is_handshaking() {
                let _ = l.principal(conn.peer_certificates());
            }
        }
        1 => {
            let cert = [CertificateDer::from(rest.to_vec())];
            let _ = listener().principal(Some(&cert));
            if let Ok(subject) = subject_rfc2253(rest) {
                let _ = mapper().name(&subject);
            }
        }
        _ => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            if let Ok(m) = PrincipalMapper::parse(text) {
                let _ = m.name("CN=alice,OU=apps,O=acme,C=SE");
                let _ = m.name(text);
            }
        }
    }
});
