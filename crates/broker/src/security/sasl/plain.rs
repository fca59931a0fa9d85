//! SASL/PLAIN (RFC 4616) as Kafka's PlainSaslServer: one message
//! `[authzid] NUL authcid NUL password`, checked against the `user_<name>="<password>"` options
//! of the listener's PlainLoginModule JAAS entry. Messages are Kafka's.

use std::collections::BTreeMap;

use super::AuthError;

/// Checks one PLAIN message; the authenticated user name on success.
pub fn authenticate(users: &BTreeMap<String, String>, token: &[u8]) -> Result<String, AuthError> {
    let text = std::str::from_utf8(token)
        .map_err(|_| AuthError::shown("Invalid SASL/PLAIN response: not UTF-8"))?;
    let parts: Vec<&str> = text.split('\u{0}').collect();
    if parts.len() != 3 {
        return Err(AuthError::shown(format!(
            "Invalid SASL/PLAIN response: expected 3 tokens, got {}",
            parts.len()
        )));
    }
    let (authzid, username, password) = (parts[0], parts[1], parts[2]);
    if username.is_empty() {
        return Err(AuthError::shown(
            "Authentication failed: username not specified",
        ));
    }
    if password.is_empty() {
        return Err(AuthError::shown(
            "Authentication failed: password not specified",
        ));
    }
    let ok = users
        .get(username)
        .is_some_and(|p| constant_time_eq(p.as_bytes(), password.as_bytes()));
    if !ok {
        return Err(AuthError::shown(
            "Authentication failed: Invalid username or password",
        ));
    }
    if !authzid.is_empty() && authzid != username {
        return Err(AuthError::shown(
            "Authentication failed: Client requested an authorization id that is different from username",
        ));
    }
    Ok(username.to_string())
}

/// The client's PLAIN message (inter-broker connections).
pub fn client_message(username: &str, password: &str) -> Vec<u8> {
    format!("\u{0}{username}\u{0}{password}").into_bytes()
}

/// Compares without stopping at the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> BTreeMap<String, String> {
        [("alice".to_string(), "alice-pw".to_string())].into()
    }

    #[test]
    fn accepts_the_right_password_only() {
        assert_eq!(
            authenticate(&users(), b"\0alice\0alice-pw").unwrap(),
            "alice"
        );
        assert_eq!(
            authenticate(&users(), b"alice\0alice\0alice-pw").unwrap(),
            "alice"
        );
        let msg = |t: &[u8]| authenticate(&users(), t).unwrap_err().message;
        assert_eq!(
            msg(b"\0alice\0nope"),
            "Authentication failed: Invalid username or password"
        );
        assert_eq!(
            msg(b"\0bob\0alice-pw"),
            "Authentication failed: Invalid username or password"
        );
        assert!(msg(b"bob\0alice\0alice-pw").contains("authorization id"));
        assert!(msg(b"\0alice").contains("expected 3 tokens, got 2"));
        assert!(msg(b"").contains("expected 3 tokens, got 1"));
        assert!(msg(b"\0\0x").contains("username not specified"));
        assert!(msg(b"\0alice\0").contains("password not specified"));
        assert!(msg(b"\0a\0b\0c").contains("got 4"));
        assert!(msg(&[0, 0xff, 0, 1]).contains("UTF-8"));
        assert_eq!(client_message("alice", "alice-pw"), b"\0alice\0alice-pw");
    }
}
