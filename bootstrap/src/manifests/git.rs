//! Git repository URLs and credentials shared by the Argo CD and Flux objects.

use std::fmt;

use super::ManifestError;

/// Credentials for a private Git repository. `Debug` never shows the private key or password.
#[derive(Clone, PartialEq, Eq)]
pub enum GitCredentials {
    /// SSH deploy key; the URL must be `ssh://…` (or, for Argo CD only, scp-like `git@host:path`).
    Ssh {
        /// The private key, PEM or OpenSSH format (`-----BEGIN OPENSSH PRIVATE KEY-----`), unencrypted.
        private_key: String,
        /// The public key line (`ssh-ed25519 AAAA… comment`); Flux keeps it as `identity.pub`.
        public_key: String,
        /// `known_hosts` lines for the Git server, so the host key is pinned rather than trusted on
        /// first use (Flux `known_hosts`; Argo CD's `argocd-ssh-known-hosts-cm`).
        known_hosts: String,
    },
    /// HTTPS with a user name and password or access token; the URL must be `https://…` (or
    /// `http://…`).
    Https {
        /// User name (for token authentication any non-empty name the server accepts, e.g. `git`).
        username: String,
        /// Password or access token.
        password: String,
    },
}

impl fmt::Debug for GitCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GitCredentials::Ssh { public_key, known_hosts, .. } => f
                .debug_struct("Ssh")
                .field("private_key", &"<redacted>")
                .field("public_key", public_key)
                .field("known_hosts", known_hosts)
                .finish(),
            GitCredentials::Https { username, .. } => {
                f.debug_struct("Https").field("username", username).field("password", &"<redacted>").finish()
            }
        }
    }
}

/// How a repository URL addresses its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrlKind {
    /// `http://` or `https://`.
    Http,
    /// `ssh://`.
    Ssh,
    /// scp-like `[user@]host:path`, which Argo CD accepts and Flux does not.
    ScpLike,
}

/// Classifies a repository URL, refusing what no reconciler could clone and URLs that embed a
/// password (they would end up in objects that are not Secrets, and in Git).
pub(crate) fn classify_url(url: &str) -> Result<UrlKind, ManifestError> {
    let err = |reason: &str| ManifestError::InvalidUrl { url: url.to_string(), reason: reason.to_string() };
    if url.is_empty() {
        return Err(err("must not be empty"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err("must not contain whitespace or control characters"));
    }
    let (kind, rest) = if let Some(rest) = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")) {
        (UrlKind::Http, rest)
    } else if let Some(rest) = url.strip_prefix("ssh://") {
        (UrlKind::Ssh, rest)
    } else if url.contains("://") {
        return Err(err("only https://, http:// and ssh:// URLs (or scp-like git@host:path) are supported"));
    } else {
        let Some((authority, path)) = url.split_once(':') else {
            return Err(err("expected https://…, ssh://… or scp-like git@host:org/repo.git"));
        };
        let host = authority.rsplit('@').next().unwrap_or_default();
        if host.is_empty() || path.is_empty() || authority.starts_with('/') {
            return Err(err("expected scp-like [user@]host:path, e.g. git@git.example.com:org/repo.git"));
        }
        return Ok(UrlKind::ScpLike);
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => (Some(userinfo), host),
        None => (None, authority),
    };
    if host.is_empty() {
        return Err(err("has no host"));
    }
    if let Some(userinfo) = userinfo.filter(|u| u.contains(':')) {
        // Report the URL without the password: error messages end up in logs.
        return Err(ManifestError::InvalidUrl {
            url: url.replacen(userinfo, "<redacted>", 1),
            reason: "must not embed a password: pass it as credentials, which go into a Secret".into(),
        });
    }
    Ok(kind)
}

impl GitCredentials {
    /// Checks that the credentials are complete and fit the URL's kind.
    pub(crate) fn check(&self, url: &str, kind: UrlKind) -> Result<(), ManifestError> {
        let bad = |s: &str| Err(ManifestError::InvalidCredentials(s.to_string()));
        match self {
            GitCredentials::Ssh { private_key, public_key, known_hosts } => {
                if !(private_key.contains("-----BEGIN ") && private_key.contains("PRIVATE KEY-----")) {
                    return bad(
                        "the SSH private key must be a PEM or OpenSSH private key (-----BEGIN … PRIVATE KEY-----)",
                    );
                }
                if public_key.trim().is_empty() || public_key.trim().contains('\n') {
                    return bad("the SSH public key must be one line, e.g. \"ssh-ed25519 AAAA… comment\"");
                }
                if known_hosts.trim().is_empty() {
                    return bad(
                        "known_hosts must hold the Git server's host key, so it is pinned rather than trusted blindly",
                    );
                }
                if kind == UrlKind::Http {
                    return Err(ManifestError::InvalidUrl {
                        url: url.to_string(),
                        reason: "SSH credentials need an ssh:// URL".into(),
                    });
                }
            }
            GitCredentials::Https { username, password } => {
                if username.is_empty() || password.is_empty() {
                    return bad("HTTPS credentials need a non-empty username and password (or token)");
                }
                if kind != UrlKind::Http {
                    return Err(ManifestError::InvalidUrl {
                        url: url.to_string(),
                        reason: "username/password credentials need an https:// URL".into(),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_kinds() {
        assert_eq!(classify_url("https://git.example.com/org/repo.git").unwrap(), UrlKind::Http);
        assert_eq!(classify_url("http://10.0.0.1:3000/org/repo.git").unwrap(), UrlKind::Http);
        assert_eq!(classify_url("ssh://git@git.example.com:2222/org/repo.git").unwrap(), UrlKind::Ssh);
        assert_eq!(classify_url("git@github.com:org/repo.git").unwrap(), UrlKind::ScpLike);
        for bad in ["", "ftp://x/y", "https:///x", "https://u:p@host/x", "git@host:", "repo", "https://a b/c"] {
            assert!(matches!(classify_url(bad), Err(ManifestError::InvalidUrl { .. })), "{bad:?}");
        }
        let e = classify_url("https://u:pa55word@host/x").unwrap_err().to_string();
        assert!(!e.contains("pa55word"), "{e}");
        // A user name alone is fine.
        classify_url("https://oauth2@host/x").unwrap();
    }

    #[test]
    fn debug_redacts() {
        let c = GitCredentials::Https { username: "git".into(), password: "tok-3141592653".into() };
        let d = format!("{c:?}");
        assert!(!d.contains("3141592653") && d.contains("git"), "{d}");
    }
}
