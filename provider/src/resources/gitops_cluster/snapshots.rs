//! The `snapshots` block: k3s' etcd snapshot settings (schedule, retention, directory, S3 target)
//! and the snapshot to restore on create, with the checks only a configuration or a plan can
//! answer.

use kvm_bootstrap::k3s::config::{ConfigError, EtcdS3, EtcdSnapshots};
use tf_cty::{Path, Value};

use super::model::*;
use super::source::{either, Secret};
use super::spec::err;
use crate::diag::Diagnostic;
use crate::model::Model;

/// The `snapshots` block: k3s' snapshot settings and the snapshot to restore. The S3 secret key
/// comes from `secret_key` or its write-only twin; where neither is there (a plan, a state, a
/// refresh: the write-only one is only in the configuration) the credentials are left out,
/// which status and uninstall do not need. That a configuration gives both halves is checked in
/// [`check_config`].
pub(super) fn of(v: Option<&SnapshotsModel>) -> Result<(Option<EtcdSnapshots>, Option<String>), Diagnostic> {
    let Some(v) = v else { return Ok((None, None)) };
    let restore = v.restore.clone();
    let s3 = match &v.s3 {
        Some(b) => {
            let secret_key = either(
                Secret { stored: &b.secret_key, write_only: &b.secret_key_wo, version: b.secret_key_wo_version },
                &snapshots_s3_path(),
                "secret_key",
            )?;
            Some(EtcdS3 {
                endpoint: b.endpoint.clone(),
                bucket: b.bucket.clone(),
                folder: b.folder.clone(),
                region: b.region.clone(),
                access_key: b.access_key.clone().filter(|_| secret_key.is_some()),
                secret_key,
                endpoint_ca_pem: b.endpoint_ca.clone(),
                skip_ssl_verify: b.skip_ssl_verify.unwrap_or(false),
                insecure: b.insecure.unwrap_or(false),
            })
        }
        None => None,
    };
    let snapshots = EtcdSnapshots {
        schedule_cron: v.schedule.clone(),
        retention: v.retention.map(|n| n.clamp(0, u32::MAX as i64) as u32),
        dir: v.dir.clone(),
        s3,
    };
    // Each rule has one home: rendering checks the settings; its error is blamed on the attribute.
    let mut probe = kvm_bootstrap::k3s::config::K3sConfig::server(true);
    probe.etcd_snapshots = Some(snapshots.clone());
    if let Err(e) = probe.render() {
        let path = match &e {
            ConfigError::InvalidSnapshot { key, .. } | ConfigError::InvalidPath { key, .. } => snapshot_path(key),
            _ => Path::attr("snapshots"),
        };
        return Err(err(path, "Invalid snapshot setting", e.to_string()));
    }
    if let Some(name) = &restore {
        kvm_bootstrap::engine::check_restore(name, Some(&snapshots)).map_err(|e| {
            err(Path::attr("snapshots").join_attr("restore"), "Invalid snapshot to restore", e.to_string())
        })?;
    }
    Ok((Some(snapshots), restore))
}

fn snapshots_s3_path() -> Path {
    Path::attr("snapshots").join_attr("s3")
}

/// The attribute behind a k3s snapshot setting.
fn snapshot_path(key: &str) -> Path {
    let top = |name: &str| Path::attr("snapshots").join_attr(name);
    let s3 = |name: &str| snapshots_s3_path().join_attr(name);
    match key {
        "etcd-snapshot-schedule-cron" => top("schedule"),
        "etcd-snapshot-retention" => top("retention"),
        "etcd-snapshot-dir" => top("dir"),
        "cluster-reset-restore-path" => top("restore"),
        "etcd-s3-bucket" => s3("bucket"),
        "etcd-s3-endpoint" => s3("endpoint"),
        "etcd-s3-endpoint-ca" => s3("endpoint_ca"),
        "etcd-s3-folder" => s3("folder"),
        "etcd-s3-region" => s3("region"),
        "etcd-s3-access-key" => s3("access_key"),
        "etcd-s3-secret-key" => s3("secret_key_wo"),
        "etcd-s3-skip-ssl-verify" => s3("skip_ssl_verify"),
        _ => Path::attr("snapshots"),
    }
}

/// Checks only a configuration can answer (it alone holds write-only values): an S3 access key
/// needs a secret key, in `secret_key` or `secret_key_wo`.
pub fn check_config(config: &Value) -> Result<(), Diagnostic> {
    let Ok(config) = ClusterPlan::from_value(config) else { return Ok(()) };
    let Some(s3) = config.snapshots.known().and_then(|s| s.s3.known()) else {
        return Ok(());
    };
    let secret_given = !s3.secret_key.is_null() || !s3.secret_key_wo.is_null();
    if !s3.access_key.is_null() && !secret_given {
        return Err(err(
            snapshots_s3_path().join_attr("secret_key_wo"),
            "Incomplete S3 credentials",
            "An access_key needs its secret key: set secret_key_wo (Terraform 1.11 and later) or secret_key.",
        ));
    }
    if s3.access_key.is_null() && secret_given {
        return Err(err(
            snapshots_s3_path().join_attr("access_key"),
            "Incomplete S3 credentials",
            "A secret key needs its access_key.",
        ));
    }
    Ok(())
}

/// On create, a restore needs the PKI (and token) of the cluster the snapshot was taken of: a
/// `pki` still unknown at plan time comes from a `kvm_cluster_pki` created in the same apply,
/// i.e. new CAs and a new token, which the snapshot cannot be restored into.
pub fn check_restore_on_create(planned: &ClusterPlan) -> Result<(), Diagnostic> {
    let Some(restore) = planned.snapshots.known().map(|s| &s.restore).filter(|r| !r.is_null()) else {
        return Ok(());
    };
    if planned.pki.known().is_none() || planned.token.known().is_none() {
        let what = restore.known().map(|n| format!(" {n:?}")).unwrap_or_default();
        return Err(err(
            Path::attr("snapshots").join_attr("restore"),
            "Restore needs the kept PKI",
            format!(
                "The snapshot{what} can only be restored into the cluster it was taken of (same CAs, and the same \
                 token, which decrypts its bootstrap data), but pki and token are not known at plan time: the \
                 kvm_cluster_pki is created in this apply, with new ones. Keep the kvm_cluster_pki of that cluster \
                 through the rebuild (kvm-gitops drill keeps it; `terraform import` brings back one whose CAs were \
                 saved), or remove snapshots.restore to start a new cluster."
            ),
        ));
    }
    Ok(())
}
