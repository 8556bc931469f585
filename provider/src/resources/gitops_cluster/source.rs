//! Where a cluster's desired state comes from: the install manifests of Sealed Secrets and the
//! reconciler (a URL or a file), and the Git repository with its credentials, each secret from a
//! stored attribute or its write-only twin.

use std::path::PathBuf;

use kvm_bootstrap::engine::{ManifestSource, RepositorySpec};
use kvm_bootstrap::manifests::GitCredentials;
use tf_cty::Path;

use super::model::*;
use super::spec::err;
use crate::diag::Diagnostic;

/// The three settings of where an install manifest comes from (`sealed_secrets`, `reconciler`).
pub struct ManifestFields<'a> {
    url: &'a Option<String>,
    sha256: &'a Option<String>,
    file: &'a Option<String>,
}

impl ManifestModel {
    pub(super) fn source(&self) -> ManifestFields<'_> {
        ManifestFields { url: &self.manifest_url, sha256: &self.manifest_sha256, file: &self.manifest_file }
    }
}

impl ReconcilerModel {
    pub(super) fn source(&self) -> ManifestFields<'_> {
        ManifestFields { url: &self.manifest_url, sha256: &self.manifest_sha256, file: &self.manifest_file }
    }
}

pub(super) fn manifest(m: &ManifestFields<'_>, block: &str) -> Result<Option<ManifestSource>, Diagnostic> {
    let at = |name: &str| Path::attr(block).join_attr(name);
    match (m.url.clone(), m.file.clone()) {
        (Some(_), Some(_)) => Err(err(
            at("manifest_file"),
            "Two manifest sources",
            "Give either manifest_url or manifest_file, not both.",
        )),
        (Some(url), None) => Ok(Some(ManifestSource::Url { url, sha256: m.sha256.clone() })),
        (None, Some(file)) => {
            if !std::path::Path::new(&file).is_file() {
                return Err(err(
                    at("manifest_file"),
                    "Manifest missing",
                    format!("{file:?} is not a file on the Terraform host."),
                ));
            }
            Ok(Some(ManifestSource::File(PathBuf::from(file))))
        }
        (None, None) => Ok(None),
    }
}

pub(super) fn repository(
    v: Option<&RepositoryModel>,
) -> Result<(Option<RepositorySpec>, Option<GitCredentials>), Diagnostic> {
    let Some(v) = v else { return Ok((None, None)) };
    let at = |name: &str| Path::attr("repository").join_attr(name);
    let repo = RepositorySpec {
        url: v.url.clone(),
        revision: v.revision.clone().unwrap_or_else(|| DEFAULT_REVISION.into()),
        path: v.path.clone().unwrap_or_else(|| DEFAULT_REPOSITORY_PATH.into()),
        name: v.name.clone().unwrap_or_else(|| DEFAULT_ROOT_NAME.into()),
    };
    // Each secret comes from its stored attribute or its write-only twin (present only in the
    // configuration, and in what create and update get; a plan or state has it null).
    let block = Path::attr("repository");
    let ssh_private_key = either(
        Secret { stored: &v.ssh_private_key, write_only: &v.ssh_private_key_wo, version: v.ssh_private_key_wo_version },
        &block,
        "ssh_private_key",
    )?;
    let password = either(
        Secret { stored: &v.password, write_only: &v.password_wo, version: v.password_wo_version },
        &block,
        "password",
    )?;
    let git = match (ssh_private_key, password) {
        (Some(_), Some(_)) => {
            return Err(err(
                at("password"),
                "Two kinds of Git credentials",
                "Give either ssh_private_key (or ssh_private_key_wo) or username and password (or password_wo).",
            ))
        }
        (Some(private_key), None) => {
            let (Some(public_key), Some(known_hosts)) = (v.ssh_public_key.clone(), v.known_hosts.clone()) else {
                return Err(err(
                    at("known_hosts"),
                    "Incomplete SSH credentials",
                    "An SSH deploy key needs ssh_public_key and known_hosts (the Git server's key, pinned).",
                ));
            };
            Some(GitCredentials::Ssh { private_key, public_key, known_hosts })
        }
        (None, Some(password)) => {
            let Some(username) = v.username.clone() else {
                return Err(err(
                    at("username"),
                    "Incomplete HTTPS credentials",
                    "A password or token needs a username (any name for a token, e.g. \"git\").",
                ));
            };
            Some(GitCredentials::Https { username, password })
        }
        (None, None) => None,
    };
    Ok((Some(repo), git))
}

/// A secret that comes from a stored attribute or its write-only twin, with the twin's version.
pub(super) struct Secret<'a> {
    pub stored: &'a Option<String>,
    pub write_only: &'a Option<String>,
    pub version: Option<i64>,
}

/// The value of `name` or of its write-only twin `<name>_wo` (at most one may be set), and a
/// `<name>_wo_version` only next to the write-only one.
pub(super) fn either(s: Secret<'_>, block: &Path, name: &str) -> Result<Option<String>, Diagnostic> {
    let at = |name: &str| block.clone().join_attr(name);
    let wo = format!("{name}_wo");
    let version = format!("{name}_wo_version");
    if s.stored.is_some() && s.write_only.is_some() {
        return Err(err(
            at(&wo),
            "Conflicting credentials",
            format!("Give either {wo} (write-only) or {name}, not both."),
        ));
    }
    if s.version.is_some() && s.write_only.is_none() && s.stored.is_some() {
        return Err(err(
            at(&version),
            "Version without a write-only value",
            format!("{version} versions {wo}; use {wo} instead of {name}, or remove the version."),
        ));
    }
    Ok(s.stored.clone().or_else(|| s.write_only.clone()))
}
