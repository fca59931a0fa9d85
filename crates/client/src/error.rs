//! The client's error type: Kafka error codes by their Kafka names, connection failures,
//! timeouts and misuse, each with a message that says what went wrong.

use runnel_protocol::ResponseError;

/// A client result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A broker answered with a Kafka error code.
    #[error("{}", kafka_display(*.code, .message.as_deref(), .context))]
    Kafka {
        /// The Kafka error code.
        code: i16,
        /// The broker's error message, when it sent one.
        message: Option<String>,
        /// What the client was doing (e.g. "create topic orders").
        context: String,
    },
    /// No broker could be reached, or a connection failed.
    #[error("cannot reach {addr}: {reason}")]
    Connect {
        /// The address tried.
        addr: String,
        /// Why it failed.
        reason: String,
    },
    /// The broker refused this client's credentials (SASL), or the TLS handshake failed (an
    /// untrusted or unverifiable certificate, a client certificate refused). Not retried.
    #[error("{0}")]
    Authentication(String),
    /// A connection broke while a request was in flight.
    #[error("connection to {0} was closed while a request was in flight")]
    Disconnected(String),
    /// The broker does not serve a version of an API that this client speaks.
    #[error("broker {broker} does not support {api} in a version this client speaks")]
    UnsupportedVersion {
        /// The broker's address.
        broker: String,
        /// The API's name.
        api: &'static str,
    },
    /// An operation took longer than allowed.
    #[error("timed out after {ms} ms: {what}")]
    Timeout {
        /// The bound that elapsed.
        ms: u64,
        /// What was being waited for.
        what: String,
    },
    /// A response could not be decoded, or made no sense.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// An invalid setting or argument.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A setting name this role does not know (a tool passing a shared profile may skip it).
    #[error("unknown setting {0:?}")]
    UnknownSetting(String),
    /// A topic, partition or group that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The producer or consumer was closed.
    #[error("the client is closed")]
    Closed,
}

impl Error {
    /// An error for a non-zero Kafka error code.
    pub fn kafka(code: i16, message: Option<String>, context: impl Into<String>) -> Error {
        Error::Kafka {
            code,
            message: message.filter(|m| !m.is_empty()),
            context: context.into(),
        }
    }

    /// `Ok(())` for code 0, else the Kafka error.
    pub fn check(
        code: i16,
        message: Option<String>,
        context: impl FnOnce() -> String,
    ) -> Result<()> {
        if code == 0 {
            Ok(())
        } else {
            Err(Error::kafka(code, message, context()))
        }
    }

    /// The Kafka error code, if this is a Kafka error.
    pub fn code(&self) -> Option<i16> {
        match self {
            Error::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether retrying the same operation may succeed (Kafka's retriable codes, lost
    /// connections and timeouts).
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Kafka { code, .. } => {
                ResponseError::try_from_code(*code).is_some_and(|e| e.is_retriable())
            }
            Error::Connect { .. } | Error::Disconnected(_) | Error::Timeout { .. } => true,
            _ => false,
        }
    }
}

/// Kafka's name for an error code, e.g. `UNKNOWN_TOPIC_OR_PARTITION`.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(ResponseError::Unknown(_)) | None => format!("UNKNOWN_ERROR_CODE_{code}"),
        Some(e) => {
            let camel = format!("{e:?}");
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, ch) in camel.chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(ch.to_ascii_uppercase());
            }
            out
        }
    }
}

fn kafka_display(code: i16, message: Option<&str>, context: &str) -> String {
    let mut s = String::new();
    if !context.is_empty() {
        s.push_str(context);
        s.push_str(": ");
    }
    s.push_str(&error_name(code));
    s.push_str(&format!(" ({code})"));
    if let Some(m) = message {
        s.push_str(": ");
        s.push_str(m);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        let e = Error::kafka(
            36,
            Some("Topic 'a' already exists.".into()),
            "create topic a",
        );
        assert_eq!(
            e.to_string(),
            "create topic a: TOPIC_ALREADY_EXISTS (36): Topic 'a' already exists."
        );
        assert!(Error::kafka(6, None, "").is_retriable());
        assert!(!Error::kafka(36, None, "").is_retriable());
    }
}
