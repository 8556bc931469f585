//! Upstream install manifests made to start without a registry.
//!
//! Argo CD's `install.yaml` sets `imagePullPolicy: Always` on every container, so on an
//! air-gapped node whose images were imported into containerd beforehand the pods still try the
//! registry and sit in `ImagePullBackOff` (k3s-io/k3s#2760). Before such a manifest is applied,
//! every container and init container of every pod template gets `IfNotPresent`: the imported
//! image is used, and a missing one still fails visibly.

use serde::Deserialize;
use serde_json::Value;

/// Why a manifest could not be rewritten.
#[derive(Debug, thiserror::Error)]
#[error("manifest {what}: {reason}")]
pub struct OfflineError {
    /// Which manifest.
    pub what: String,
    /// What could not be read or written.
    pub reason: String,
}

/// Rewrites every pod template in the YAML stream `text` to `imagePullPolicy: IfNotPresent`.
/// Returns the new stream and how many containers changed. Documents are re-serialised (the
/// manifest is only applied, never shown), with their content unchanged otherwise.
pub fn pull_only_if_missing(what: &str, text: &str) -> Result<(String, usize), OfflineError> {
    let err = |reason: String| OfflineError { what: what.to_string(), reason };
    let mut out = String::with_capacity(text.len());
    let mut changed = 0;
    for document in serde_norway::Deserializer::from_str(text) {
        let mut value = Value::deserialize(document).map_err(|e| err(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        changed += rewrite_object(&mut value);
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(&value).map_err(|e| err(e.to_string()))?);
    }
    Ok((out, changed))
}

// One object, or a `List` of them.
fn rewrite_object(object: &mut Value) -> usize {
    if let Some(items) = object.get_mut("items").and_then(Value::as_array_mut) {
        return items.iter_mut().map(rewrite_object).sum();
    }
    let pod_spec = match object.get("kind").and_then(Value::as_str) {
        Some("Pod") => object.get_mut("spec"),
        Some("CronJob") => object.pointer_mut("/spec/jobTemplate/spec/template/spec"),
        Some("Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" | "ReplicationController") => {
            object.pointer_mut("/spec/template/spec")
        }
        _ => None,
    };
    let Some(pod_spec) = pod_spec else { return 0 };
    let mut changed = 0;
    for list in ["containers", "initContainers"] {
        for container in pod_spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(c) = container.as_object_mut() {
                if c.get("imagePullPolicy").and_then(Value::as_str) != Some("IfNotPresent") {
                    c.insert("imagePullPolicy".into(), Value::String("IfNotPresent".into()));
                    changed += 1;
                }
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "\
apiVersion: v1
kind: ServiceAccount
metadata: {name: argocd-server}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: argocd-server}
spec:
  template:
    spec:
      initContainers:
      - {name: copyutil, image: 'quay.io/argoproj/argocd:v3.2.6', imagePullPolicy: Always}
      containers:
      - {name: argocd-server, image: 'quay.io/argoproj/argocd:v3.2.6', imagePullPolicy: Always}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: argocd-application-controller}
spec:
  template:
    spec:
      containers:
      - {name: c, image: 'quay.io/argoproj/argocd:v3.2.6'}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: j}
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers:
          - {name: j, image: 'busybox:1.36', imagePullPolicy: IfNotPresent}
";

    #[test]
    fn every_container_of_every_pod_template_pulls_only_if_missing() {
        let (out, changed) = pull_only_if_missing("test", STREAM).unwrap();
        assert_eq!(changed, 3, "two Always and one unset; the CronJob's was already IfNotPresent");
        assert!(!out.contains("Always"), "{out}");
        let docs: Vec<Value> =
            serde_norway::Deserializer::from_str(&out).map(|d| Value::deserialize(d).unwrap()).collect();
        assert_eq!(docs.len(), 4);
        assert_eq!(docs[0]["kind"], "ServiceAccount");
        assert_eq!(docs[1]["spec"]["template"]["spec"]["initContainers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(docs[1]["spec"]["template"]["spec"]["containers"][0]["image"], "quay.io/argoproj/argocd:v3.2.6");
        assert_eq!(docs[2]["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
        // Idempotent: a second pass changes nothing.
        assert_eq!(pull_only_if_missing("test", &out).unwrap().1, 0);
    }

    #[test]
    fn a_broken_manifest_is_an_error_naming_it() {
        let e = pull_only_if_missing("argocd-install.yaml", "kind: [unclosed").unwrap_err();
        assert!(e.to_string().starts_with("manifest argocd-install.yaml:"), "{e}");
    }
}
