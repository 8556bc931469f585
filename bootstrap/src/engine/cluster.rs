//! Cluster steps, run on the first server once k3s is up, in the order that keeps DR safe:
//! sealing keys → Sealed Secrets controller (key renewal off) → reconciler → repository
//! credentials and root objects. Each step waits for the previous one to be ready.

use std::time::Duration;

use serde_json::json;

use super::kubectl::Kubectl;
use super::node::STATE_DIR;
use super::spec::{ManifestSource, ReconcilerSettings, SEALED_SECRETS_CONTROLLER, SEALED_SECRETS_NAMESPACE};
use super::EngineError;
use crate::k3s::{MODE_PUBLIC, MODE_SECRET};
use crate::manifests::offline::{pull_only_if_missing, OfflineError};
use crate::manifests::{to_yaml_stream, Manifest, Object};
use crate::readiness::{self, ProbeError, ReadinessError, Reconciler, Stage, Verdict};
use crate::shell::quote;
use crate::ssh::{Session, SshError};

/// Where rendered and fetched manifests live on the first server (0700: some hold keys).
pub(crate) const MANIFEST_DIR: &str = "/var/lib/kvm-bootstrap/manifests";
/// Pause between readiness polls: short enough to notice readiness soon, long enough not to
/// load a small API server with JSON requests.
const POLL: Duration = Duration::from_secs(3);

/// What a readiness probe can run into.
#[derive(Debug, thiserror::Error)]
pub enum CheckFailure {
    /// Running kubectl over SSH failed.
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// kubectl printed something that cannot be judged.
    #[error(transparent)]
    Readiness(#[from] ReadinessError),
}

type Probe = Result<Verdict, ProbeError<CheckFailure>>;

/// kubectl failing (the API server restarting after a config change, not serving yet) is worth
/// another poll; so are connection problems. Unreadable output is not.
// A failed command is worth retrying while k3s comes up (the API server refuses connections for
// a while), but not when the shell could not find or run it (126, 127): that will not change by
// waiting, and retrying would only hide the cause until the timeout.
fn classify(e: SshError) -> ProbeError<CheckFailure> {
    let retry = match &e {
        SshError::Command { status, .. } => !matches!(status, 126 | 127),
        other => other.is_retryable(),
    };
    if retry {
        ProbeError::Transient(e.into())
    } else {
        ProbeError::Permanent(e.into())
    }
}

fn judged(v: Result<Verdict, ReadinessError>) -> Probe {
    v.map_err(|e| ProbeError::Permanent(e.into()))
}

/// Waits for `stage`, polling `probe`.
pub(crate) fn wait(stage: Stage, timeout: Duration, probe: impl FnMut() -> Probe) -> Result<String, EngineError> {
    readiness::wait_until(stage, timeout, POLL, probe).map_err(|e| EngineError::Wait(Box::new(e)))
}

/// k3s is usable: every expected node Ready and the default service account created (pods can
/// be admitted only then).
pub(crate) fn wait_cluster(k: &Kubectl, expected_nodes: usize, timeout: Duration) -> Result<(), EngineError> {
    wait(Stage::Nodes, timeout, || nodes_verdict(k, expected_nodes))?;
    wait(Stage::ServiceAccount, timeout, || {
        let json = k.get_json(Some("default"), &["serviceaccount", "default"]).map_err(classify)?;
        judged(readiness::kube::service_account(json.as_deref(), "default", "default"))
    })?;
    Ok(())
}

/// Writes `objects` as one YAML stream (0600: it may hold keys) and applies it server-side.
/// Returns whether the file changed (the objects are applied either way: the cluster may have
/// been recreated under an unchanged file).
pub(crate) fn apply_objects(k: &Kubectl, file: &str, objects: &[Object]) -> Result<bool, EngineError> {
    let path = format!("{MANIFEST_DIR}/{file}");
    let changed =
        k.session().write_file(&path, to_yaml_stream(objects).as_bytes(), MODE_SECRET, Some(("root", "root")))?;
    k.apply(file.trim_end_matches(".yaml"), &path, None, false)?;
    Ok(changed)
}

/// Value of the key label on key Secrets that are no longer in the spec: the controller loads
/// only `active` keys, so a retired key neither opens nor seals anything, yet stays in the
/// cluster for whoever needs it back (relabel it `active`, or put it in the spec again).
pub const RETIRED_KEY_LABEL_VALUE: &str = "retired";
/// Marks a controller restart that is owed: written before restarting, removed after, so that a
/// run that failed in between restarts on the next run even though the keys no longer change.
const RESTART_PENDING: &str = "/var/lib/kvm-bootstrap/sealed-secrets-restart-pending";

/// The sealing key Secrets, before the controller: it loads keys only at start. Key Secrets the
/// spec no longer lists are relabelled [`RETIRED_KEY_LABEL_VALUE`] (the controller would go on
/// opening with them and, if one is the newest, sealing with it). When the keys changed under a
/// running controller, it is restarted to load them.
pub(crate) fn apply_sealing_keys(k: &Kubectl, objects: &[Object]) -> Result<bool, EngineError> {
    let mut changed = apply_objects(k, "sealing-keys.yaml", objects)?;
    let wanted: std::collections::BTreeSet<&str> = objects.iter().map(|o| o.metadata().name()).collect();
    let selector = format!("{}=active", kvm_sealing::KEY_SECRET_LABEL);
    let active = k.get_json(Some(SEALED_SECRETS_NAMESPACE), &["secrets", "-l", &selector])?;
    for name in secret_names(active.as_deref()) {
        if !wanted.contains(name.as_str()) {
            tracing::warn!(secret = %name, "sealing key not in the spec: relabelled retired, so the controller no longer loads it");
            k.label(
                SEALED_SECRETS_NAMESPACE,
                &format!("secret/{name}"),
                &format!("{}={RETIRED_KEY_LABEL_VALUE}", kvm_sealing::KEY_SECRET_LABEL),
            )?;
            changed = true;
        }
    }
    let session = k.session();
    let owed = session.exec(&format!("[ -e {} ]", quote(RESTART_PENDING)))?.success();
    if (changed || owed) && controller_exists(k)? {
        tracing::info!("sealing keys changed: restarting the Sealed Secrets controller to load them");
        session.write_file(RESTART_PENDING, b"", MODE_PUBLIC, Some(("root", "root")))?;
        k.restart_deployment(SEALED_SECRETS_NAMESPACE, SEALED_SECRETS_CONTROLLER)?;
        session.exec_checked(&format!("rm -f {}", quote(RESTART_PENDING)), "clearing the restart marker")?;
        changed = true;
    }
    Ok(changed)
}

// Names of the objects in a `kubectl get -o json` answer (a List, or one object).
fn secret_names(json: Option<&str>) -> Vec<String> {
    let Some(value) = json.and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok()) else {
        return Vec::new();
    };
    let items = match value.get("items").and_then(|i| i.as_array()) {
        Some(items) => items.clone(),
        None => vec![value],
    };
    items.iter().filter_map(|i| i.pointer("/metadata/name")?.as_str().map(str::to_string)).collect()
}

fn controller_exists(k: &Kubectl) -> Result<bool, SshError> {
    Ok(k.get_json(Some(SEALED_SECRETS_NAMESPACE), &["deployment", SEALED_SECRETS_CONTROLLER])?.is_some())
}

/// The Sealed Secrets controller from its upstream manifest, through a kustomization that sets
/// `SEALED_SECRETS_KEY_RENEW_PERIOD=0`: with renewal on, a restored key older than the period
/// (30 days by default) makes the controller generate a new key at once, and everything sealed
/// afterwards is sealed with a key no backup holds.
pub(crate) fn install_sealed_secrets(
    k: &Kubectl,
    source: &ManifestSource,
    offline: bool,
    timeout: Duration,
) -> Result<bool, EngineError> {
    let dir = format!("{MANIFEST_DIR}/sealed-secrets");
    let session = k.session();
    session.exec_checked(&format!("mkdir -p {}", quote(&dir)), "creating the manifest directory")?;
    let mut changed = place_manifest(session, source, &format!("{dir}/controller.yaml"), offline)?;
    let kustomization = kvm_sealing::yaml::to_yaml(&sealed_secrets_kustomization());
    changed |= session.write_file(
        &format!("{dir}/kustomization.yaml"),
        kustomization.as_bytes(),
        MODE_PUBLIC,
        Some(("root", "root")),
    )?;
    k.apply("sealed-secrets", &dir, None, true)?;
    wait(Stage::SealedSecretsCrd, timeout, || {
        let json = k.get_json(None, &["crd", "sealedsecrets.bitnami.com"]).map_err(classify)?;
        judged(readiness::kube::crds(json.as_deref().map(as_list).as_deref(), &["sealedsecrets.bitnami.com"]))
    })?;
    wait(Stage::SealedSecretsController, timeout, || {
        let json =
            k.get_json(Some(SEALED_SECRETS_NAMESPACE), &["deployment", SEALED_SECRETS_CONTROLLER]).map_err(classify)?;
        judged(readiness::kube::deployments(
            json.as_deref().map(as_list).as_deref(),
            SEALED_SECRETS_NAMESPACE,
            &[SEALED_SECRETS_CONTROLLER],
        ))
    })?;
    Ok(changed)
}

/// The kustomization around upstream controller.yaml: a strategic-merge patch adding the
/// environment variables the controller reads for `--key-renew-period` (0: it never makes a key
/// of its own, which no Terraform state would hold) and `--key-order-priority`.
///
/// The controller seals with its "most recent" key: the one whose ordering time is latest
/// (pkg/controller/keyregistry.go, `mostRecentKey`). That time is the certificate's NotBefore by
/// default (`CertNotBefore`, since v0.26) or the key Secret's creationTimestamp
/// (`SecretCreationTimestamp`). It is pinned to `CertNotBefore` here: a rebuilt cluster creates
/// all key Secrets in the same second, so creation timestamps would tie and the choice would
/// depend on list order, while a kvm_sealing_key's NotBefore is when Terraform created it, so
/// the key added last is the one sealed with, on a first install and after every rebuild.
fn sealed_secrets_kustomization() -> serde_json::Value {
    let patch = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": SEALED_SECRETS_CONTROLLER, "namespace": SEALED_SECRETS_NAMESPACE},
        "spec": {"template": {"spec": {"containers": [{
            "name": SEALED_SECRETS_CONTROLLER,
            "env": [
                {"name": "SEALED_SECRETS_KEY_RENEW_PERIOD", "value": "0"},
                {"name": "SEALED_SECRETS_KEY_ORDER_PRIORITY", "value": "CertNotBefore"},
            ],
        }]}}},
    });
    json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["controller.yaml"],
        "patches": [{"patch": kvm_sealing::yaml::to_yaml(&patch)}],
    })
}

/// The kustomization around a reconciler's upstream `install.yaml`: into `namespace` (upstream
/// leaves namespaced objects without one), with each override as a strategic-merge patch.
fn install_kustomization(namespace: &str, overrides: &[&Object]) -> serde_json::Value {
    let patches: Vec<serde_json::Value> =
        overrides.iter().map(|o| json!({ "patch": kvm_sealing::yaml::to_yaml(&o.to_value()) })).collect();
    let mut k = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "resources": ["install.yaml"],
    });
    if !patches.is_empty() {
        k["patches"] = serde_json::Value::Array(patches);
    }
    k
}

/// The reconciler from its upstream manifest, applied server-side (Argo CD's CRDs exceed the
/// annotation limit of client-side apply), into its namespace, through a kustomization. Objects
/// the engine also sets (`overrides`: Argo CD's `argocd-ssh-known-hosts-cm` with the pinned host
/// keys) are patched into the install, so that re-applying it does not reset them to upstream's
/// values before the engine's own apply puts them back.
pub(crate) fn install_reconciler(
    k: &Kubectl,
    settings: &ReconcilerSettings,
    overrides: &[&Object],
    offline: bool,
    timeout: Duration,
) -> Result<bool, EngineError> {
    let kind = settings.kind;
    let ns = kind.namespace();
    let session = k.session();
    let dir = format!("{MANIFEST_DIR}/{}", kind.as_str());
    session.exec_checked(&format!("mkdir -p {}", quote(&dir)), "creating the manifest directory")?;
    let namespace = crate::manifests::Namespace::new(ns).map_err(super::spec::SpecError::from)?;
    let mut changed = apply_objects(k, &format!("{}-namespace.yaml", kind.as_str()), &[namespace.into()])?;
    changed |= place_manifest(session, &settings.manifest, &format!("{dir}/install.yaml"), offline)?;
    let kustomization = kvm_sealing::yaml::to_yaml(&install_kustomization(ns, overrides));
    changed |= session.write_file(
        &format!("{dir}/kustomization.yaml"),
        kustomization.as_bytes(),
        MODE_SECRET,
        Some(("root", "root")),
    )?;
    k.apply(&format!("{}-install", kind.as_str()), &dir, None, true)?;
    wait(Stage::ReconcilerCrds(kind), timeout, || {
        let mut args = vec!["crd"];
        args.extend(kind.crds());
        let json = k.get_json(None, &args).map_err(classify)?;
        judged(readiness::kube::crds(json.as_deref().map(as_list).as_deref(), kind.crds()))
    })?;
    wait(Stage::ReconcilerControllers(kind), timeout, || {
        // Argo CD's application controller is a StatefulSet; missing names are left out
        // (--ignore-not-found) and reported by the verdict.
        let mut args = vec!["deployment,statefulset"];
        args.extend(kind.deployments());
        let json = k.get_json(Some(ns), &args).map_err(classify)?;
        judged(readiness::kube::deployments(json.as_deref().map(as_list).as_deref(), ns, kind.deployments()))
    })?;
    Ok(changed)
}

/// The root objects, then the wait until the reconciler reports them in sync.
pub(crate) fn apply_root(
    k: &Kubectl,
    kind: Reconciler,
    name: &str,
    revision: &str,
    objects: &[Object],
    timeout: Duration,
) -> Result<(bool, String), EngineError> {
    let changed = apply_objects(k, "root.yaml", objects)?;
    let summary = wait(Stage::RootSync(kind), timeout, || root_verdict(k, kind, name, revision))?;
    Ok((changed, summary))
}

/// Kubernetes' view of the nodes, once (see [`readiness::kube::nodes`]).
pub(crate) fn nodes_verdict(k: &Kubectl, expected: usize) -> Probe {
    judged(readiness::kube::nodes(k.get_json(None, &["nodes"]).map_err(classify)?.as_deref(), expected))
}

/// The root Application's or Kustomization's state, once.
pub(crate) fn root_verdict(k: &Kubectl, kind: Reconciler, name: &str, revision: &str) -> Probe {
    root_state(k, kind, name, revision).map(|(_, verdict)| verdict)
}

/// Whether the root Application (Argo CD) or Kustomization (Flux) exists, and its verdict, from
/// one fetch of it (plus the GitRepository with Flux).
pub(crate) fn root_state(
    k: &Kubectl,
    kind: Reconciler,
    name: &str,
    revision: &str,
) -> Result<(bool, Verdict), ProbeError<CheckFailure>> {
    let ns = kind.namespace();
    match kind {
        Reconciler::ArgoCd => {
            let json = k.get_json(Some(ns), &["applications.argoproj.io", name]).map_err(classify)?;
            let verdict = judged(readiness::argocd::application(json.as_deref(), ns, name, Some(revision)))?;
            Ok((json.is_some(), verdict))
        }
        Reconciler::Flux => {
            let root = k.get_json(Some(ns), &["kustomizations.kustomize.toolkit.fluxcd.io", name]).map_err(classify)?;
            let present = root.is_some();
            let json = k.get_json(Some(ns), &["gitrepositories.source.toolkit.fluxcd.io", name]).map_err(classify)?;
            match judged(readiness::flux::git_repository(json.as_deref(), ns, name, Some(revision)))? {
                Verdict::Ready { .. } => {}
                other => return Ok((present, other)),
            }
            Ok((present, judged(readiness::flux::kustomization(root.as_deref(), ns, name, Some(revision)))?))
        }
    }
}

/// `kubectl get TYPE NAME -o json` prints the object itself for one name and a List for several;
/// the list parsers take a List.
fn as_list(json: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(v) if v.get("kind").and_then(|k| k.as_str()).is_some_and(|k| !k.ends_with("List")) => {
            json!({"apiVersion": "v1", "kind": "List", "items": [v]}).to_string()
        }
        _ => json.to_string(),
    }
}

/// Puts an install manifest at `path` on the node: fetched there with curl (only when the URL or
/// checksum changed since the last fetch) or uploaded from a local file. Returns whether it
/// changed.
pub(crate) fn place_manifest(
    session: &Session,
    source: &ManifestSource,
    path: &str,
    offline: bool,
) -> Result<bool, EngineError> {
    match source {
        ManifestSource::File(local) if offline => {
            let what = local.display().to_string();
            let text = std::fs::read_to_string(local)
                .map_err(|e| OfflineError { what: what.clone(), reason: e.to_string() })?;
            let (text, changed) = pull_only_if_missing(&what, &text)?;
            tracing::info!(node = %session.addr(), manifest = %what, containers = changed, "imagePullPolicy set to IfNotPresent (air-gapped)");
            Ok(session.write_file(path, text.as_bytes(), MODE_PUBLIC, Some(("root", "root")))?)
        }
        ManifestSource::File(local) => Ok(session.upload_file(local, path, MODE_PUBLIC, Some(("root", "root")))?),
        ManifestSource::Url { url, sha256 } => {
            let stamp_path = format!("{path}.source");
            let stamp = format!("{url} {}\n", sha256.as_deref().unwrap_or("-"));
            let current = session.read_file(&stamp_path)?;
            let present = session.exec(&format!("[ -s {} ]", quote(path)))?.success();
            if present && current.as_deref() == Some(stamp.as_bytes()) {
                return Ok(false);
            }
            let tmp = format!("{path}.download");
            let mut script = format!(
                "set -e\ncurl -fsSL --retry 5 --retry-connrefused -o {tmp} {url}\n",
                tmp = quote(&tmp),
                url = quote(url)
            );
            if let Some(sum) = sha256 {
                script.push_str(&format!(
                    "echo {}  {} | sha256sum -c --quiet -\n",
                    quote(&sum.to_ascii_lowercase()),
                    quote(&tmp)
                ));
            }
            script.push_str(&format!("chmod 0644 {tmp}\nmv -f {tmp} {path}\n", tmp = quote(&tmp), path = quote(path)));
            tracing::info!(node = %session.addr(), %url, "fetching manifest on the node");
            session.exec_checked(
                &script,
                &format!(
                    "fetching {url} (the node needs access to it; for air-gapped nodes give a local file instead)"
                ),
            )?;
            session.write_file(&stamp_path, stamp.as_bytes(), MODE_PUBLIC, Some(("root", "root")))?;
            Ok(true)
        }
    }
}

/// Makes sure [`MANIFEST_DIR`] exists and only root can read it.
pub(crate) fn prepare_manifest_dir(session: &Session) -> Result<(), SshError> {
    session.exec_checked(
        &format!("mkdir -p {d} && chmod 0700 {s} {d}", d = quote(MANIFEST_DIR), s = quote(STATE_DIR)),
        "creating the manifest directory",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command_failed(status: i32) -> SshError {
        SshError::Command { addr: "n:22".into(), what: "reading nodes".into(), status, stderr: String::new() }
    }

    #[test]
    fn a_command_the_shell_cannot_find_is_not_waited_for() {
        assert!(matches!(classify(command_failed(127)), ProbeError::Permanent(_)), "command not found");
        assert!(matches!(classify(command_failed(126)), ProbeError::Permanent(_)), "not executable");
        // kubectl failing while the API server starts is worth another try.
        assert!(matches!(classify(command_failed(1)), ProbeError::Transient(_)));
    }

    #[test]
    fn the_install_kustomization_carries_the_engines_own_objects_as_patches() {
        let cm: Object = crate::manifests::argocd::known_hosts_config_map("argocd", "git.example.net ssh-ed25519 AAAA")
            .unwrap()
            .into();
        let k = install_kustomization("argocd", &[&cm]);
        assert_eq!(k["namespace"], "argocd");
        assert_eq!(k["resources"], json!(["install.yaml"]));
        let patch: serde_json::Value = serde_norway::from_str(k["patches"][0]["patch"].as_str().unwrap()).unwrap();
        assert_eq!(patch["metadata"]["name"], "argocd-ssh-known-hosts-cm");
        assert_eq!(patch["data"]["ssh_known_hosts"], "git.example.net ssh-ed25519 AAAA");
        assert!(install_kustomization("flux-system", &[]).get("patches").is_none());
    }

    #[test]
    fn names_of_listed_secrets() {
        let list =
            r#"{"kind":"List","items":[{"metadata":{"name":"sealed-secrets-keyabc"}},{"metadata":{"name":"b"}}]}"#;
        assert_eq!(secret_names(Some(list)), vec!["sealed-secrets-keyabc", "b"]);
        assert!(secret_names(None).is_empty());
        assert!(secret_names(Some(r#"{"kind":"List","items":[]}"#)).is_empty());
    }

    #[test]
    fn single_objects_become_lists() {
        let one = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"}}"#;
        let list: serde_json::Value = serde_json::from_str(&as_list(one)).unwrap();
        assert_eq!(list["kind"], "List");
        assert_eq!(list["items"][0]["metadata"]["name"], "x");
        let already = r#"{"apiVersion":"v1","kind":"List","items":[]}"#;
        assert_eq!(as_list(already), already);
    }

    #[test]
    fn the_kustomization_turns_key_renewal_off_in_the_controller_container() {
        let k = sealed_secrets_kustomization();
        assert_eq!(k["resources"], json!(["controller.yaml"]));
        let patch: serde_json::Value = serde_norway::from_str(k["patches"][0]["patch"].as_str().unwrap()).unwrap();
        assert_eq!(patch["metadata"]["name"], SEALED_SECRETS_CONTROLLER);
        let container = &patch["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["name"], SEALED_SECRETS_CONTROLLER);
        assert_eq!(container["env"][0], json!({"name": "SEALED_SECRETS_KEY_RENEW_PERIOD", "value": "0"}));
        assert_eq!(container["env"][1], json!({"name": "SEALED_SECRETS_KEY_ORDER_PRIORITY", "value": "CertNotBefore"}));
    }
}
