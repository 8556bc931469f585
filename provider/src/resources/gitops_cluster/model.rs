//! The `kvm_gitops_cluster` object as Rust types, and its defaults: attribute names and default
//! values are written here once.

use std::collections::BTreeMap;

use crate::model::Field;

/// Default wait for each stage of create and update (guests under TCG are slow; Argo CD pulls
/// images).
pub const DEFAULT_CREATE_TIMEOUT: &str = "30m";
/// Default for delete (the uninstall script on every node).
pub const DEFAULT_DELETE_TIMEOUT: &str = "10m";
/// `server.port` / `agent.port` when not configured.
pub const DEFAULT_SSH_PORT: i64 = 22;
/// `server.user` / `agent.user` when not configured.
pub const DEFAULT_SSH_USER: &str = "root";
/// `reconciler.kind` when not configured.
pub const DEFAULT_RECONCILER: &str = "argocd";
/// `repository.revision` when not configured.
pub const DEFAULT_REVISION: &str = "main";
/// `repository.path` when not configured.
pub const DEFAULT_REPOSITORY_PATH: &str = ".";
/// `repository.name` when not configured.
pub const DEFAULT_ROOT_NAME: &str = "root";
/// `k3s.channel` when neither it nor `version` is configured.
pub const DEFAULT_CHANNEL: &str = "stable";

crate::model! {
    /// A `kvm_gitops_cluster` configuration, plan or state (`ClusterPlan`: the same while planning).
    /// An imported state has only `id`, `name`, `keep_on_destroy` and `healthy`.
    #[derive(Default)]
    pub struct ClusterModel / ClusterPlan {
        /// The cluster name.
        pub id: Field<String>,
        pub name: String,
        pub pki: Option<String>,
        pub token: Option<String>,
        pub sealing_keys: Option<Vec<SealingKeyModel>>,
        pub keep_on_destroy: Option<bool>,
        pub kubeconfig: Field<String>,
        pub api_server_url: Field<String>,
        pub cluster_ca_certificate: Field<String>,
        pub sync_status: Field<String>,
        pub healthy: Field<bool>,
        pub server: Vec<NodeModel>,
        pub agent: Vec<NodeModel>,
        pub k3s: Option<K3sModel>,
        pub sealed_secrets: Option<ManifestModel>,
        pub reconciler: Option<ReconcilerModel>,
        pub repository: Option<RepositoryModel>,
        pub snapshots: Option<SnapshotsModel>,
        pub timeouts: Option<TimeoutsModel>,
    }
}

crate::model! {
    /// An element of `sealing_keys` (a `kvm_sealing_key` passed whole).
    pub struct SealingKeyModel / SealingKeyPlan {
        pub private_key_pem: String,
        pub certificate_pem: String,
    }
}

crate::model! {
    /// A `server` or `agent` block.
    pub struct NodeModel / NodePlan {
        pub host: String,
        pub port: Option<i64>,
        pub user: Option<String>,
        pub private_key: String,
        pub host_key: Option<String>,
        pub insecure_ignore_host_key: Option<bool>,
        pub node_name: Option<String>,
        pub node_ip: Option<String>,
        pub labels: Option<BTreeMap<String, String>>,
        pub taints: Option<Vec<String>>,
    }
}

crate::model! {
    /// The `k3s` block.
    #[derive(Default)]
    pub struct K3sModel / K3sPlan {
        pub version: Option<String>,
        pub channel: Option<String>,
        pub install_script_sha256: Option<String>,
        pub airgap_binary: Option<String>,
        pub airgap_images: Option<String>,
        pub airgap_extra_images: Option<Vec<String>>,
        pub airgap_install_script: Option<String>,
        pub api_address: Option<String>,
        pub tls_san: Option<Vec<String>>,
        pub disable: Option<Vec<String>>,
        pub data_dir: Option<String>,
        pub secrets_encryption: Option<bool>,
        pub flannel_backend: Option<String>,
    }
}

crate::model! {
    /// The `sealed_secrets` block: where the controller's install manifest comes from.
    pub struct ManifestModel / ManifestPlan {
        pub manifest_url: Option<String>,
        pub manifest_sha256: Option<String>,
        pub manifest_file: Option<String>,
    }
}

crate::model! {
    /// The `reconciler` block: its kind and where its install manifest comes from.
    pub struct ReconcilerModel / ReconcilerPlan {
        pub manifest_url: Option<String>,
        pub manifest_sha256: Option<String>,
        pub manifest_file: Option<String>,
        pub kind: Option<String>,
    }
}

crate::model! {
    /// The `repository` block.
    pub struct RepositoryModel / RepositoryPlan {
        pub url: String,
        pub revision: Option<String>,
        pub path: Option<String>,
        pub name: Option<String>,
        pub ssh_private_key_wo: Option<String>,
        pub ssh_private_key_wo_version: Option<i64>,
        pub ssh_private_key: Option<String>,
        pub ssh_public_key: Option<String>,
        pub known_hosts: Option<String>,
        pub username: Option<String>,
        pub password_wo: Option<String>,
        pub password_wo_version: Option<i64>,
        pub password: Option<String>,
    }
}

crate::model! {
    /// The `snapshots` block.
    pub struct SnapshotsModel / SnapshotsPlan {
        pub schedule: Option<String>,
        pub retention: Option<i64>,
        pub dir: Option<String>,
        pub restore: Option<String>,
        pub s3: Option<S3Model>,
    }
}

crate::model! {
    /// The `snapshots.s3` block.
    pub struct S3Model / S3Plan {
        pub bucket: String,
        pub endpoint: Option<String>,
        pub folder: Option<String>,
        pub region: Option<String>,
        pub access_key: Option<String>,
        pub secret_key_wo: Option<String>,
        pub secret_key_wo_version: Option<i64>,
        pub secret_key: Option<String>,
        pub endpoint_ca: Option<String>,
        pub skip_ssl_verify: Option<bool>,
        pub insecure: Option<bool>,
    }
}

crate::model! {
    /// The `timeouts` block.
    pub struct TimeoutsModel / TimeoutsPlan {
        pub create: Option<String>,
        pub update: Option<String>,
        pub delete: Option<String>,
    }
}

impl ClusterPlan {
    /// The settings whose change means a re-bootstrap: everything but what the provider computes
    /// and the local-only `keep_on_destroy` and `timeouts`.
    pub fn settings(&self) -> ClusterPlan {
        ClusterPlan {
            id: Field::Null,
            keep_on_destroy: Field::Null,
            kubeconfig: Field::Null,
            api_server_url: Field::Null,
            cluster_ca_certificate: Field::Null,
            sync_status: Field::Null,
            healthy: Field::Null,
            timeouts: Field::Null,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Block;

    fn nested<'a>(block: &'a Block, name: &str) -> &'a Block {
        &block.blocks.iter().find(|n| n.name == name).unwrap().block
    }

    #[test]
    fn the_models_match_the_schema() {
        let schema = super::super::schema::schema();
        let block = &schema.block;
        crate::model::check::<ClusterModel>(block).unwrap();
        crate::model::check::<NodeModel>(nested(block, "server")).unwrap();
        crate::model::check::<NodeModel>(nested(block, "agent")).unwrap();
        crate::model::check::<K3sModel>(nested(block, "k3s")).unwrap();
        crate::model::check::<ManifestModel>(nested(block, "sealed_secrets")).unwrap();
        crate::model::check::<ReconcilerModel>(nested(block, "reconciler")).unwrap();
        crate::model::check::<RepositoryModel>(nested(block, "repository")).unwrap();
        let snapshots = nested(block, "snapshots");
        crate::model::check::<SnapshotsModel>(snapshots).unwrap();
        crate::model::check::<S3Model>(nested(snapshots, "s3")).unwrap();
        crate::model::check::<TimeoutsModel>(nested(block, "timeouts")).unwrap();
    }
}
