//! Web UI sessions: random tokens in an `HttpOnly; SameSite=Strict` cookie, kept in memory with
//! an idle and an absolute expiry, each with its own CSRF token for the forms that change
//! something. Restarting the server signs everyone out, which is the point of keeping them in
//! memory: nothing about a session is ever written to disk.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cookie's name.
pub const COOKIE: &str = "kvm_ui_session";

/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(30 * 60);

/// A session ends this long after sign-in, used or not.
pub const ABSOLUTE: Duration = Duration::from_secs(8 * 3600);

/// Sessions kept at most; signing in beyond it drops the oldest. Only users with a valid password
/// can make one, so this bounds what a signed-in script could cost.
pub const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// User name (the user table is consulted on every request for the grants).
    pub user: String,
    /// The token forms must carry back (`csrf` field).
    pub csrf: String,
    created: Instant,
    used: Instant,
}

/// Every session of this process.
#[derive(Debug, Default)]
pub struct Sessions {
    by_token: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session for `user`; returns its token (the cookie value).
    pub fn start(&self, user: &str) -> String {
        let token = random_token();
        let now = Instant::now();
        let session = Session { user: user.to_string(), csrf: random_token(), created: now, used: now };
        let mut map = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| live(s, now));
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.used).map(|(k, _)| k.clone()) {
                map.remove(&oldest);
            }
        }
        map.insert(token.clone(), session);
        token
    }

    /// The live session of `token`, its idle clock restarted; `None` if unknown or expired.
    pub fn touch(&self, token: &str) -> Option<Session> {
        let now = Instant::now();
        let mut map = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(token) {
            Some(s) if live(s, now) => {
                s.used = now;
                Some(s.clone())
            }
            Some(_) => {
                map.remove(token);
                None
            }
            None => None,
        }
    }

    /// Ends a session.
    pub fn end(&self, token: &str) {
        self.by_token.lock().unwrap_or_else(|e| e.into_inner()).remove(token);
    }
}

fn live(s: &Session, now: Instant) -> bool {
    now.duration_since(s.used) < IDLE && now.duration_since(s.created) < ABSOLUTE
}

// 256 bits from the system's generator, hex.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // The generator failing means the system has no randomness: no session can be safe then.
    aws_lc_rs::rand::fill(&mut bytes).expect("system randomness");
    hex::encode(bytes)
}

/// The session token in a `Cookie` header, if any.
pub fn token_from_cookies(header: &str) -> Option<&str> {
    header.split(';').map(str::trim).find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == COOKIE && !v.is_empty()).then_some(v)
    })
}

/// The `Set-Cookie` value that carries `token` (`Secure` when the server speaks TLS).
pub fn set_cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={token}; Path=/ui/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", ABSOLUTE.as_secs())
}

/// The `Set-Cookie` value that removes the cookie.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/ui/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// Compares a submitted CSRF token with the session's without an early exit.
pub fn csrf_matches(session: &Session, submitted: &str) -> bool {
    let (a, b) = (session.csrf.as_bytes(), submitted.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_start_touch_end() {
        let s = Sessions::default();
        let t = s.start("admin");
        assert_eq!(t.len(), 64);
        let session = s.touch(&t).unwrap();
        assert_eq!(session.user, "admin");
        assert!(csrf_matches(&session, &session.csrf.clone()));
        assert!(!csrf_matches(&session, "nope"));
        s.end(&t);
        assert!(s.touch(&t).is_none());
        assert!(s.touch("unknown").is_none());
    }

    #[test]
    fn cookies() {
        assert_eq!(token_from_cookies("a=b; kvm_ui_session=abc; c=d"), Some("abc"));
        assert_eq!(token_from_cookies("kvm_ui_session="), None);
        assert_eq!(token_from_cookies("x=1"), None);
        let c = set_cookie("t", true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/ui/"));
        assert!(c.ends_with("; Secure"));
        assert!(!set_cookie("t", false).contains("Secure"));
    }
}
