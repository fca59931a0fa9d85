//! Who is on the other end of a connection: the principal a connection is authenticated as
//! (Kafka's `KafkaPrincipal`, `User:ANONYMOUS` until TLS client certificates or SASL say
//! otherwise) and the per-connection [`Session`] every request of the connection carries to its
//! handler. Authentication, authorization and quotas build on these.

pub mod quota;

pub mod connections;
pub mod tls;

pub mod acl;

pub mod sasl;

pub mod outbound;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// A principal as Kafka names it: a type (`User`) and a name (`ANONYMOUS`, a SASL user name, a
/// TLS subject after `ssl.principal.mapping.rules`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KafkaPrincipal {
    /// The principal type, `User` for every principal Kafka's builders make.
    pub principal_type: String,
    /// The principal name.
    pub name: String,
}

impl KafkaPrincipal {
    /// `User:<name>`.
    pub fn user(name: impl Into<String>) -> KafkaPrincipal {
        KafkaPrincipal {
            principal_type: "User".to_string(),
            name: name.into(),
        }
    }

    /// `User:ANONYMOUS`, the principal of unauthenticated connections (PLAINTEXT listeners,
    /// SSL without a client certificate).
    pub fn anonymous() -> KafkaPrincipal {
        KafkaPrincipal::user("ANONYMOUS")
    }

    /// Parses `Type:name` (the form of `super.users` and ACL principals); None without a colon.
    pub fn parse(s: &str) -> Option<KafkaPrincipal> {
        let (t, n) = s.split_once(':')?;
        (!t.is_empty()).then(|| KafkaPrincipal {
            principal_type: t.to_string(),
            name: n.to_string(),
        })
    }
}

impl fmt::Display for KafkaPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

/// What a connection's requests share: the listener they arrived on, the client's address and
/// the principal the connection is authenticated as.
#[derive(Debug, Clone)]
pub struct Session {
    /// Name of the listener the connection arrived on.
    pub listener: String,
    /// The client's address.
    pub peer: SocketAddr,
    /// The authenticated principal (anonymous until authentication says otherwise).
    pub principal: Arc<KafkaPrincipal>,
}

impl Session {
    /// An unauthenticated connection on `listener` from `peer`.
    pub fn anonymous(listener: &str, peer: SocketAddr) -> Session {
        Session {
            listener: listener.to_string(),
            peer,
            principal: Arc::new(KafkaPrincipal::anonymous()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_print_and_parse_as_kafka_writes_them() {
        let p = KafkaPrincipal::user("alice");
        assert_eq!(p.to_string(), "User:alice");
        assert_eq!(KafkaPrincipal::parse("User:alice"), Some(p));
        assert_eq!(
            KafkaPrincipal::parse("User:CN=a,O=b").map(|p| p.name),
            Some("CN=a,O=b".to_string())
        );
        assert_eq!(KafkaPrincipal::parse("alice"), None);
        assert_eq!(KafkaPrincipal::anonymous().to_string(), "User:ANONYMOUS");
    }
}
