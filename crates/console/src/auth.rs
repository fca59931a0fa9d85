//! Who may use the console: the users file (`name:role:hash`, PBKDF2-SHA256 hashes made by
//! `runnel console hash-password`), the cluster's own SASL credentials passed through, or nobody
//! (authentication off); the sessions that a login opens (an HttpOnly cookie, an expiry, a CSRF
//! token for every change).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine;
use parking_lot::Mutex;
use rand::RngCore;
use runnel_client::Admin;

/// PBKDF2 rounds of a new hash (OWASP's figure for PBKDF2-HMAC-SHA256).
const ROUNDS: u32 = 600_000;

/// Sessions open at most.
const MAX_SESSIONS: usize = 10_000;

/// The session cookie's name.
pub const COOKIE: &str = "runnel_console_session";

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Read and change.
    Admin,
    /// Read only: the change forms are absent and their endpoints refuse.
    ReadOnly,
}

impl Role {
    /// The role's name, as the users file spells it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ReadOnly => "read-only",
        }
    }

    fn parse(text: &str) -> Option<Role> {
        match text {
            "admin" => Some(Role::Admin),
            "read-only" | "readonly" | "viewer" => Some(Role::ReadOnly),
            _ => None,
        }
    }
}

/// How logins are checked.
#[derive(Clone, Debug)]
pub enum AuthMode {
    /// No login: everyone is an admin (the default, on 127.0.0.1).
    None,
    /// Users from a file.
    File(Vec<User>),
    /// The login's name and password are the cluster's SASL credentials; `admins` are admins,
    /// the others read-only.
    Sasl {
        /// Users with the admin role.
        admins: Vec<String>,
    },
}

/// A user of the users file.
#[derive(Clone, Debug)]
pub struct User {
    /// The login name.
    pub name: String,
    /// The role.
    pub role: Role,
    /// `pbkdf2-sha256$ROUNDS$SALT$HASH` (base64 without padding).
    pub hash: String,
}

/// Reads a users file: one `name:role:hash` per line, `#` comments and blank lines skipped.
pub fn load_users(path: &Path) -> anyhow::Result<Vec<User>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the users file {}: {e}", path.display()))?;
    parse_users(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn parse_users(text: &str) -> anyhow::Result<Vec<User>> {
    let mut users = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, ':');
        let (Some(name), Some(role), Some(hash)) = (parts.next(), parts.next(), parts.next())
        else {
            anyhow::bail!("line {}: expected name:role:hash", n + 1);
        };
        let role = Role::parse(role).ok_or_else(|| {
            anyhow::anyhow!("line {}: role {role:?} is not admin or read-only", n + 1)
        })?;
        if !hash.starts_with("pbkdf2-sha256$") {
            anyhow::bail!(
                "line {}: the hash is not one of `runnel console hash-password`",
                n + 1
            );
        }
        users.push(User {
            name: name.to_string(),
            role,
            hash: hash.to_string(),
        });
    }
    if users.is_empty() {
        anyhow::bail!("no users");
    }
    Ok(users)
}

fn derive(password: &str, salt: &[u8], rounds: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt, rounds, &mut out);
    out
}

/// A new hash of `password` for the users file.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let key = derive(password, &salt, ROUNDS);
    format!(
        "pbkdf2-sha256${ROUNDS}${}${}",
        B64.encode(salt),
        B64.encode(key)
    )
}

/// A hash that matches no password anyone types, checked for unknown users so that they take as
/// long as known ones.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&token()))
}

/// Whether `password` matches `hash` (compared in constant time).
pub fn verify_password(password: &str, hash: &str) -> bool {
    let parts: Vec<&str> = hash.split('$').collect();
    let [_, rounds, salt, key] = parts.as_slice() else {
        return false;
    };
    let (Ok(rounds), Ok(salt), Ok(key)) =
        (rounds.parse::<u32>(), B64.decode(salt), B64.decode(key))
    else {
        return false;
    };
    let got = derive(password, &salt, rounds.max(1));
    key.len() == got.len()
        && key
            .iter()
            .zip(got.iter())
            .fold(0u8, |d, (a, b)| d | (a ^ b))
            == 0
}

/// A logged-in user's session.
#[derive(Clone)]
pub struct Session {
    /// The user's name.
    pub user: String,
    /// The role.
    pub role: Role,
    /// The token every change must carry (a hidden form field).
    pub csrf: String,
    /// The session's own cluster connection (SASL pass-through), else the console's shared one.
    pub admin: Option<Arc<Admin>>,
    expires: Instant,
}

/// The open sessions.
pub struct Sessions {
    timeout: Duration,
    open: Mutex<HashMap<String, Session>>,
}

/// A random token (32 bytes, base64).
pub fn token() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl Sessions {
    /// No sessions; each lasts `timeout` from its last use.
    pub fn new(timeout: Duration) -> Sessions {
        Sessions {
            timeout,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Opens a session; returns its cookie value.
    pub fn open(&self, user: &str, role: Role, admin: Option<Arc<Admin>>) -> String {
        let id = token();
        let mut open = self.open.lock();
        let now = Instant::now();
        open.retain(|_, s| s.expires > now);
        // Logins that never log out (scripts logging in for each request) would pile up for a
        // whole timeout: past the cap the one closest to its end goes.
        if open.len() >= MAX_SESSIONS {
            if let Some(k) = open
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            {
                open.remove(&k);
            }
        }
        open.insert(
            id.clone(),
            Session {
                user: user.to_string(),
                role,
                csrf: token(),
                admin,
                expires: now + self.timeout,
            },
        );
        id
    }

    /// The live session of a cookie value, its expiry pushed back.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut open = self.open.lock();
        let now = Instant::now();
        match open.get_mut(id) {
            Some(s) if s.expires > now => {
                s.expires = now + self.timeout;
                Some(s.clone())
            }
            Some(_) => {
                open.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends a session.
    pub fn close(&self, id: &str) {
        self.open.lock().remove(id);
    }
}

/// The value of cookie `name` in a Cookie header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_wrong_passwords_do_not() {
        let h = hash_password("s3cret");
        assert!(h.starts_with("pbkdf2-sha256$600000$"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("s3cret ", &h));
        assert!(!verify_password("s3cret", "pbkdf2-sha256$1$AAAA"));
        assert_ne!(h, hash_password("s3cret"), "salted");
    }

    #[test]
    fn users_file_lines_and_errors() {
        let h = hash_password("x");
        let users = parse_users(&format!(
            "# comment\n\nalice:admin:{h}\nbob:read-only:{h}\n"
        ))
        .unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[1].role, Role::ReadOnly);
        assert!(parse_users("alice:root:pbkdf2-sha256$1$a$b").is_err());
        assert!(parse_users("alice:admin").is_err());
        assert!(parse_users("alice:admin:plaintext").is_err());
        assert!(parse_users("# nobody\n").is_err());
    }

    #[test]
    fn sessions_expire_and_close() {
        let s = Sessions::new(Duration::from_millis(50));
        let id = s.open("alice", Role::Admin, None);
        assert_eq!(s.get(&id).unwrap().user, "alice");
        std::thread::sleep(Duration::from_millis(80));
        assert!(s.get(&id).is_none());
        let id = s.open("bob", Role::ReadOnly, None);
        s.close(&id);
        assert!(s.get(&id).is_none());
        assert_eq!(
            cookie("a=1; runnel_console_session=xyz", COOKIE),
            Some("xyz")
        );
    }
}
