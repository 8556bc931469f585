//! The libvirt host: one lazily opened, shared connection per provider instance, and the
//! per-pool locks that keep parallel volume operations from racing.
//!
//! Every libvirt call blocks (the C library does its own I/O), so calls run on tokio's
//! blocking pool; resources see only async functions.

mod error;
mod host;
pub mod leases;
pub mod upload;

pub use error::{Found, HostError};
pub use host::{default_uri, Host};

use tf_cty::Value;

/// Checks the shape of a libvirt URI (`driver[+transport]://[user@][host][:port]/path[?params]`)
/// at plan time, so a typo is reported with the attribute path instead of as a failed connect.
pub fn uri_validator() -> impl crate::schema::Validator {
    |v: &Value| {
        let Some(uri) = v.as_str() else { return Err("expected a string".to_string()) };
        let Some((scheme, rest)) = uri.split_once("://") else {
            return Err(format!("{uri:?} is not a libvirt URI; expected for example \"qemu:///system\"."));
        };
        let driver = scheme.split('+').next().unwrap_or_default();
        if !matches!(driver, "qemu" | "test") {
            return Err(format!(
                "driver {driver:?} is not supported; this provider manages QEMU/KVM hosts (qemu://...)."
            ));
        }
        if let Some(transport) = scheme.split_once('+').map(|(_, t)| t) {
            if !matches!(transport, "ssh" | "libssh" | "libssh2" | "tls" | "tcp" | "unix" | "ext") {
                return Err(format!("unknown libvirt transport {transport:?} in {uri:?}."));
            }
        }
        if !rest.contains('/') {
            return Err(format!("{uri:?} has no path; use /system (or /session) after the host."));
        }
        Ok(())
    }
}

/// Checks a pool, volume or network name: libvirt uses names as file names (volumes in a
/// directory pool, dnsmasq's files for a network), so `/` and other surprises are refused at
/// plan time rather than by the host at apply time.
pub fn name_validator() -> impl crate::schema::Validator {
    |v: &Value| {
        let Some(name) = v.as_str() else { return Err("expected a string".to_string()) };
        check_name(name)
    }
}

/// See [`name_validator`].
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 {
        return Err(format!("{name:?} must be 1 to 128 characters long."));
    }
    if name.starts_with(['.', '-']) {
        return Err(format!("{name:?} must not start with '.' or '-'."));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))) {
        return Err(format!(
            "{name:?} contains {bad:?}; use letters, digits, '.', '_', '-' and '+' (libvirt uses names as file names)."
        ));
    }
    Ok(())
}
