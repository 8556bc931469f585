//! Multi-document streams split back into the right objects, in apply order.

use kvm_bootstrap::manifests::{to_yaml_stream, ApplyPhase, Manifest, Object};
use serde::Deserialize;
use serde_json::Value;

use crate::common::all_objects;

/// Splits a YAML stream into its documents, as kubectl or k3s's deploy controller would.
fn split(stream: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(stream).map(|doc| Value::deserialize(doc).unwrap()).collect()
}

#[test]
fn stream_splits_into_the_objects_in_apply_order() {
    // Given deliberately out of order: sync objects first, namespaces last.
    let mut objects = all_objects();
    objects.reverse();
    let stream = to_yaml_stream(&objects);
    assert!(stream.starts_with("---\n"));
    assert_eq!(stream.matches("\n---\n").count() + 1, objects.len());

    let docs = split(&stream);
    assert_eq!(docs.len(), objects.len());

    // Expected: stable sort by phase.
    let mut expected: Vec<&Object> = objects.iter().collect();
    expected.sort_by_key(|o| o.apply_phase());
    for (doc, object) in docs.iter().zip(&expected) {
        assert_eq!(doc, &object.to_value());
    }
    let phases: Vec<ApplyPhase> = expected.iter().map(|o| o.apply_phase()).collect();
    assert!(phases.windows(2).all(|w| w[0] <= w[1]));

    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    let first = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    let last = |k: &str| kinds.iter().rposition(|x| *x == k).unwrap();
    assert!(last("Namespace") < first("Secret"));
    assert!(last("Secret") < first("GitRepository") && last("ConfigMap") < first("GitRepository"));
    assert!(last("GitRepository") < first("Kustomization") && last("GitRepository") < first("Application"));
    // Within a phase the given order is kept: "payments" came before "argocd" after the reverse.
    let ns: Vec<&str> =
        docs.iter().filter(|d| d["kind"] == "Namespace").map(|d| d["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(ns, ["payments", "argocd"]);
}

#[test]
fn empty_and_single_streams() {
    assert_eq!(to_yaml_stream(&[]), "");
    let one = &all_objects()[..1];
    let stream = to_yaml_stream(one);
    assert_eq!(stream, format!("---\n{}", one[0].to_yaml()));
    assert_eq!(split(&stream), [one[0].to_value()]);
}

#[test]
fn trait_accessors_agree_with_the_rendered_object() {
    for object in all_objects() {
        let v = object.to_value();
        assert_eq!(v["apiVersion"], object.api_version());
        assert_eq!(v["kind"], object.kind());
        assert_eq!(v["metadata"]["name"], object.metadata().name());
        assert_eq!(v["metadata"]["namespace"].as_str(), object.metadata().namespace());
        // Rendering is deterministic.
        assert_eq!(object.to_yaml(), object.clone().to_yaml());
    }
}

#[test]
fn root_application_renders_exactly() {
    let app = crate::common::applications().remove(0);
    assert_eq!(
        app.to_yaml(),
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: root\n  namespace: argocd\nspec:\n  \
         destination:\n    namespace: argocd\n    server: \"https://kubernetes.default.svc\"\n  project: default\n  \
         source:\n    path: clusters/lab/apps\n    repoURL: \"git@git.example.com:org/gitops.git\"\n    \
         targetRevision: main\n  syncPolicy:\n    automated:\n      prune: true\n      selfHeal: true\n    \
         syncOptions:\n    - CreateNamespace=true\n"
    );
}
