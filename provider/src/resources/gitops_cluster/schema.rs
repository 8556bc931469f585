//! The `kvm_gitops_cluster` schema.

use tf_cty::{Type, Value};

use crate::schema::{int_range, non_empty, one_of, Attribute, Block, NestedBlock, Nesting, Schema, Validator};
use crate::units;

use super::model::*;

/// Reconciler kinds.
pub const RECONCILERS: &[&str] = &["argocd", "flux"];

pub fn schema() -> Schema {
    let block = Block::new(
        "A k3s cluster bootstrapped over SSH on machines you already have (usually `kvm_instance`s), with the \
         Sealed Secrets controller holding the given sealing keys (key renewal off) and a reconciler (Argo CD by \
         default, or Flux) pulling the desired state from Git. The cluster CAs and join token come from a \
         `kvm_cluster_pki`, so the kubeconfig is known at plan time and a recreated cluster keeps its CA. \
         Every step is idempotent: a re-apply changes only what drifted, and the apply ends when the reconciler \
         reports the repository in sync.",
    )
    .attribute(Attribute::computed("id", Type::String).describe("The cluster name."))
    .attribute(
        Attribute::required("name", Type::String)
            .force_new()
            .validate(cluster_name())
            .describe("Cluster name: the kubeconfig's cluster, context and user name. Must equal the `kvm_cluster_pki`'s `cluster_name`."),
    )
    .attribute(
        Attribute::required("pki", Type::String)
            .sensitive()
            .describe("The cluster PKI bundle: `kvm_cluster_pki.NAME.bundle`. Placed on the first server before k3s first starts. A running cluster cannot change its CAs: a new PKI replaces the cluster."),
    )
    .attribute(
        Attribute::required("token", Type::String)
            .sensitive()
            .describe("Join token: `kvm_cluster_pki.NAME.token`. Written to a 0600 file on each node, never on a command line. A new token replaces the cluster."),
    )
    .attribute(
        Attribute::required("sealing_keys", Type::list(Type::object([("private_key_pem", Type::String), ("certificate_pem", Type::String)])))
            .sensitive()
            .describe("Sealing keys for the Sealed Secrets controller, e.g. `[kvm_sealing_key.main]` (objects with `private_key_pem` and `certificate_pem`). The newest seals; all unseal."),
    )
    .attribute(
        Attribute::optional("keep_on_destroy", Type::Bool)
            .default_value(Value::Bool(false))
            .describe("Leave k3s installed on the nodes when the resource is destroyed (default false: run the k3s uninstall script on every node)."),
    )
    .attribute(Attribute::computed("kubeconfig", Type::String).sensitive().describe("Admin kubeconfig (server `https://<api address>:6443`); known at plan time when the PKI and API address are."))
    .attribute(Attribute::computed("api_server_url", Type::String).describe("`https://<api address>:6443`."))
    .attribute(Attribute::computed("cluster_ca_certificate", Type::String).describe("The API server's CA certificate, PEM."))
    .attribute(Attribute::computed("sync_status", Type::String).describe("What the reconciler last reported for the root Application or Kustomization, with the revision it is at."))
    .attribute(Attribute::computed("healthy", Type::Bool).describe("Whether the last apply or refresh found what the bootstrap set up in place: every node's k3s active and the root Application / Kustomization present. A refresh that finds it false plans an update, which re-runs the bootstrap. How the applications from Git are doing is in `sync_status`, not here."))
    .block(NestedBlock::new("server", Nesting::List, node_block("A server (control plane, embedded etcd). The first one starts the cluster; use 1, 3 or 5.")).items(1, 0))
    .block(NestedBlock::new("agent", Nesting::List, node_block("An agent (worker).")))
    .block(NestedBlock::new("k3s", Nesting::Single, k3s_block()))
    .block(NestedBlock::new("sealed_secrets", Nesting::Single, manifest_block("The Sealed Secrets controller's install manifest (upstream `controller.yaml`); default: the pinned release URL, fetched by the node.")))
    .block(NestedBlock::new("reconciler", Nesting::Single, reconciler_block()))
    .block(NestedBlock::new("repository", Nesting::Single, repository_block()))
    .block(NestedBlock::new("snapshots", Nesting::Single, snapshots_block()))
    .block(NestedBlock::new("timeouts", Nesting::Single, timeouts_block()));
    Schema::new(0, block)
}

fn node_block(description: &str) -> Block {
    Block::new(description)
        .attribute(Attribute::required("host", Type::String).validate(non_empty()).describe("SSH address (name or IP), e.g. `kvm_instance.NAME.ip_address`."))
        .attribute(Attribute::optional("port", Type::Number).default_value(Value::from(DEFAULT_SSH_PORT)).validate(int_range(1, 65535)).describe("SSH port (default 22)."))
        .attribute(Attribute::optional("user", Type::String).default_value(Value::string(DEFAULT_SSH_USER)).validate(non_empty()).describe("SSH user; anyone but `root` runs commands through `sudo -n`."))
        .attribute(Attribute::required("private_key", Type::String).sensitive().validate(non_empty()).describe("The SSH private key (OpenSSH or PEM text). Stored in the state (sensitive) but never written to a file on the Terraform host."))
        .attribute(Attribute::optional("host_key", Type::String).describe("The host's pinned public key: `kvm_instance.NAME.known_hosts` or `ssh_host_public_key`, or any `known_hosts` line."))
        .attribute(Attribute::optional("insecure_ignore_host_key", Type::Bool).default_value(Value::Bool(false)).describe("Accept any host key (trust on first use). Only for throw-away labs: anyone on the path can impersonate the host."))
        .attribute(Attribute::optional("node_name", Type::String).describe("Kubernetes node name (default: the hostname)."))
        .attribute(Attribute::optional("node_ip", Type::String).describe("Address the node advertises to the cluster."))
        .attribute(Attribute::optional("labels", Type::map(Type::String)).describe("Node labels applied at registration."))
        .attribute(Attribute::optional("taints", Type::list(Type::String)).describe("Taints applied at registration, `key=value:Effect`."))
}

fn k3s_block() -> Block {
    Block::new("k3s settings shared by every node.")
        .attribute(Attribute::optional("version", Type::String).describe("Release to install online, e.g. `v1.33.5+k3s1` (reproducible; recommended)."))
        .attribute(Attribute::optional("channel", Type::String).describe("Release channel to install online when no `version` is given (default `stable`)."))
        .attribute(Attribute::optional("install_script_sha256", Type::String).describe("Expected SHA-256 of the online install script, checked on the node before it runs."))
        .attribute(Attribute::optional("airgap_binary", Type::String).describe("Air-gapped install: path of the k3s binary on the Terraform host (with `airgap_images` and `airgap_install_script`)."))
        .attribute(Attribute::optional("airgap_images", Type::String).describe("Path of `k3s-airgap-images-<arch>.tar[.gz|.zst]` on the Terraform host."))
        .attribute(Attribute::optional("airgap_extra_images", Type::list(Type::String)).describe("More image archives (`.tar`, `.tar.gz`, `.tar.zst`) on the Terraform host, uploaded next to k3s' own: the images of the Sealed Secrets controller and the reconciler, which an air-gapped node cannot pull."))
        .attribute(Attribute::optional("airgap_install_script", Type::String).describe("Path of k3s's `install.sh` on the Terraform host."))
        .attribute(Attribute::optional("api_address", Type::String).describe("Address in the kubeconfig and for joining nodes; default: the first server's `node_ip`, else its `host`."))
        .attribute(Attribute::optional("tls_san", Type::list(Type::String)).describe("Extra names and addresses for the API server certificate."))
        .attribute(Attribute::optional("disable", Type::list(Type::String)).describe("Packaged components not to deploy, e.g. `[\"traefik\"]`."))
        .attribute(Attribute::optional("data_dir", Type::String).describe("k3s data directory (default `/var/lib/rancher/k3s`)."))
        .attribute(Attribute::optional("secrets_encryption", Type::Bool).describe("Encrypt Secrets at rest."))
        .attribute(Attribute::optional("flannel_backend", Type::String).describe("flannel backend (`vxlan`, `wireguard-native`, `host-gw`, `none`)."))
}

fn manifest_attrs(block: Block) -> Block {
    block
        .attribute(
            Attribute::optional("manifest_url", Type::String)
                .describe("https URL of the install manifest, fetched by the node."),
        )
        .attribute(
            Attribute::optional("manifest_sha256", Type::String)
                .describe("Expected SHA-256 of `manifest_url`'s content."),
        )
        .attribute(
            Attribute::optional("manifest_file", Type::String)
                .describe("Path of the install manifest on the Terraform host, uploaded over SSH (air-gapped)."),
        )
}

fn manifest_block(description: &str) -> Block {
    manifest_attrs(Block::new(description))
}

fn reconciler_block() -> Block {
    manifest_attrs(Block::new("The reconciler that pulls from Git; default Argo CD at the pinned release URL."))
        .attribute(
            Attribute::optional("kind", Type::String)
                .default_value(Value::string(DEFAULT_RECONCILER))
                .validate(one_of(RECONCILERS))
                .describe("`argocd` (default) or `flux`."),
        )
}

fn repository_block() -> Block {
    Block::new("The Git repository the cluster pulls its desired state from: the root Application (Argo CD: automated prune and self-heal) or GitRepository + Kustomization (Flux).")
        .attribute(Attribute::required("url", Type::String).validate(non_empty()).describe("Clone URL: `https://…`, `ssh://…`, or scp-like `git@host:path` (Argo CD only)."))
        .attribute(Attribute::optional("revision", Type::String).default_value(Value::string(DEFAULT_REVISION)).describe("Branch, tag or full commit (default `main`)."))
        .attribute(Attribute::optional("path", Type::String).default_value(Value::string(DEFAULT_REPOSITORY_PATH)).describe("Directory of the root manifests in the repository (default `.`)."))
        .attribute(Attribute::optional("name", Type::String).default_value(Value::string(DEFAULT_ROOT_NAME)).describe("Name of the root Application / GitRepository + Kustomization (default `root`)."))
        .attribute(Attribute::optional("ssh_private_key_wo", Type::String).write_only().sensitive().describe("SSH deploy key (unencrypted OpenSSH or PEM), write-only (Terraform 1.11 and later): delivered to the cluster, never stored in the state or a plan. Needs `ssh_public_key` and `known_hosts`; set `ssh_private_key_wo_version` with it."))
        .attribute(Attribute::optional("ssh_private_key_wo_version", Type::Number).describe("Version of `ssh_private_key_wo`, kept in the state: a change re-delivers the key (an update re-running the bootstrap). A change of the key alone plans nothing."))
        .attribute(Attribute::optional("ssh_private_key", Type::String).sensitive().prefer_write_only("ssh_private_key_wo").describe("SSH deploy key (unencrypted OpenSSH or PEM), stored in the state (sensitive); with Terraform 1.11 and later prefer `ssh_private_key_wo`. Needs `ssh_public_key` and `known_hosts`."))
        .attribute(Attribute::optional("ssh_public_key", Type::String).describe("The deploy key's public line."))
        .attribute(Attribute::optional("known_hosts", Type::String).describe("`known_hosts` lines of the Git server, so its key is pinned."))
        .attribute(Attribute::optional("username", Type::String).describe("HTTPS user name (with `password_wo` or `password`)."))
        .attribute(Attribute::optional("password_wo", Type::String).write_only().sensitive().describe("HTTPS password or access token, write-only (Terraform 1.11 and later): delivered to the cluster, never stored in the state or a plan. Set `password_wo_version` with it."))
        .attribute(Attribute::optional("password_wo_version", Type::Number).describe("Version of `password_wo`, kept in the state: a change re-delivers the password (an update re-running the bootstrap). A change of the password alone plans nothing."))
        .attribute(Attribute::optional("password", Type::String).sensitive().prefer_write_only("password_wo").describe("HTTPS password or access token, stored in the state (sensitive); with Terraform 1.11 and later prefer `password_wo`."))
}

fn snapshots_block() -> Block {
    Block::new("etcd snapshots, rendered into every server's k3s configuration, and a snapshot to restore when the cluster is created. With this block even a single server runs embedded etcd (`cluster-init`): k3s' SQLite datastore has no snapshots. Without it k3s' defaults apply to clusters that already run etcd (3 or 5 servers).")
        .attribute(Attribute::optional("schedule", Type::String).validate(cron()).describe("`etcd-snapshot-schedule-cron`: five cron fields (minute hour day-of-month month day-of-week), e.g. `0 */6 * * *`, or `@hourly`/`@daily`/...; k3s' default is `0 */12 * * *`."))
        .attribute(Attribute::optional("retention", Type::Number).validate(int_range(1, 10_000)).describe("`etcd-snapshot-retention`: how many scheduled snapshots to keep (k3s' default 5)."))
        .attribute(Attribute::optional("dir", Type::String).describe("`etcd-snapshot-dir`: local directory of the snapshots on each server (default `<data-dir>/server/db/snapshots`). Local snapshots go with the machine: for a rebuild, use `s3`."))
        .attribute(Attribute::optional("restore", Type::String).describe("Restore this snapshot when the cluster is created, before the reconciler starts: its name in the `s3` target (as `k3s etcd-snapshot list` shows it), or the absolute path of a snapshot file on the first server. k3s' cluster reset runs on the first server between the install and the first start; a server that already has a datastore is never reset. Needs the PKI and token of the cluster the snapshot was taken of (a `kvm_cluster_pki` kept through the rebuild, as `kvm-gitops drill` keeps it): refused at plan time when the PKI is being created in the same plan."))
        .block(NestedBlock::new("s3", Nesting::Single, s3_block()))
}

fn s3_block() -> Block {
    Block::new("An S3-compatible target (`etcd-s3`): every snapshot is uploaded there too, so it outlives the machines.")
        .attribute(Attribute::required("bucket", Type::String).validate(bucket()).describe("`etcd-s3-bucket`: 3 to 63 lowercase letters, digits, `.` and `-`."))
        .attribute(Attribute::optional("endpoint", Type::String).validate(endpoint()).describe("`etcd-s3-endpoint`: `HOST[:PORT]` without scheme (k3s uses https, or http with `insecure`); k3s' default `s3.amazonaws.com`."))
        .attribute(Attribute::optional("folder", Type::String).describe("`etcd-s3-folder`: a prefix inside the bucket, e.g. `clusters/prod`."))
        .attribute(Attribute::optional("region", Type::String).describe("`etcd-s3-region` (k3s' default `us-east-1`)."))
        .attribute(Attribute::optional("access_key", Type::String).describe("`etcd-s3-access-key`, with a secret key. Placed with the secret key in a 0600 drop-in (`/etc/rancher/k3s/config.yaml.d/`), not in config.yaml."))
        .attribute(Attribute::optional("secret_key_wo", Type::String).write_only().sensitive().describe("`etcd-s3-secret-key`, write-only (Terraform 1.11 and later): written to a 0600 file on the servers, never to a command line, a log, the state or a plan. Set `secret_key_wo_version` with it."))
        .attribute(Attribute::optional("secret_key_wo_version", Type::Number).describe("Version of `secret_key_wo`, kept in the state: a change re-delivers the key (an update re-running the bootstrap). A change of the key alone plans nothing."))
        .attribute(Attribute::optional("secret_key", Type::String).sensitive().prefer_write_only("secret_key_wo").describe("`etcd-s3-secret-key`, stored in the state (sensitive); with Terraform 1.11 and later prefer `secret_key_wo`."))
        .attribute(Attribute::optional("endpoint_ca", Type::String).describe("PEM certificate(s) of a custom CA for the endpoint, placed at `/etc/rancher/k3s/etcd-s3-ca.pem` (`etcd-s3-endpoint-ca`)."))
        .attribute(Attribute::optional("skip_ssl_verify", Type::Bool).describe("`etcd-s3-skip-ssl-verify`: do not check the endpoint's certificate (labs only; prefer `endpoint_ca`)."))
        .attribute(Attribute::optional("insecure", Type::Bool).describe("`etcd-s3-insecure`: plain http (labs only)."))
}

/// k3s' snapshot schedule, checked at plan by the rule the bootstrap renders with.
fn cron() -> impl Validator {
    |v: &Value| match v.as_str() {
        Some(s) => kvm_validate::cron_schedule(s).map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

fn bucket() -> impl Validator {
    |v: &Value| match v.as_str() {
        Some(s) => kvm_validate::s3_bucket_name(s).map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

fn endpoint() -> impl Validator {
    |v: &Value| match v.as_str() {
        Some(s) => kvm_validate::s3_endpoint(s).map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

fn timeouts_block() -> Block {
    Block::new("How long operations may wait.")
        .attribute(Attribute::optional("create", Type::String).validate(units::duration()).describe(
            "Limit for each waiting stage of a create: nodes Ready, controllers Available, root in sync (default 30m).",
        ))
        .attribute(
            Attribute::optional("update", Type::String)
                .validate(units::duration())
                .describe("The same for an update (default 30m)."),
        )
        .attribute(
            Attribute::optional("delete", Type::String)
                .validate(units::duration())
                .describe("Limit for reaching each node and uninstalling (default 10m)."),
        )
}

/// Cluster names as k3s and the PKI take them (lowercase letters, digits, `-`), checked at plan.
pub fn cluster_name() -> impl Validator {
    |v: &Value| match v.as_str() {
        Some(name) => kvm_bootstrap::k3s::pki::check_cluster_name(name).map_err(|e| e.to_string()),
        None => Ok(()),
    }
}
