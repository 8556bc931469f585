//! Argo CD and Flux objects validate against the real CRDs' openAPIV3Schema (shared/crds), with
//! no field the CRD does not declare, and their YAML reads back to the same document.

use kvm_bootstrap::manifests::flux::{GitRef, GitRepository, Kustomization};
use kvm_bootstrap::manifests::Manifest;
use serde_json::{json, Value};

use crate::common::*;

/// Fields not declared where the schema lists `properties` (and does not preserve unknown
/// fields): the API server would silently prune them, so a misspelt field would be lost.
fn undeclared_fields(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    match (value, schema.get("properties").and_then(Value::as_object)) {
        (Value::Object(obj), Some(props)) => {
            let open = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
            for (k, v) in obj {
                match props.get(k) {
                    Some(sub) => undeclared_fields(sub, v, &format!("{path}.{k}"), out),
                    None if open => {}
                    None => out.push(format!("{path}.{k}")),
                }
            }
        }
        (Value::Array(items), _) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    undeclared_fields(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// Validates each object's YAML (parsed back) against the CRD; returns the parsed documents.
fn check_against_crd(file: &str, objects: &[&dyn Manifest], broken: Value) -> Vec<Value> {
    let api_version = objects[0].api_version();
    let schema = crate::crd_schema::crd_json_schema(file, api_version);
    let validator = jsonschema::validator_for(&schema).expect("CRD schema compiles as JSON Schema");
    // The checker really checks.
    assert!(!validator.is_valid(&broken), "{file}: a broken object passed");
    let mut docs = Vec::new();
    for object in objects {
        let yaml = object.to_yaml();
        let v: Value = serde_norway::from_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert_eq!(v, object.to_value(), "YAML reads back to the same document:\n{yaml}");
        assert_eq!(v["apiVersion"], api_version);
        assert_eq!(v["kind"], object.kind());
        let errors: Vec<String> = validator.iter_errors(&v).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{file}: {errors:?}\n{yaml}");
        let mut undeclared = Vec::new();
        undeclared_fields(&schema, &v, "", &mut undeclared);
        assert!(undeclared.is_empty(), "{file}: fields the CRD does not declare: {undeclared:?}\n{yaml}");
        docs.push(v);
    }
    docs
}

#[test]
fn argocd_applications_validate_against_the_crd() {
    let apps = applications();
    let objects: Vec<&dyn Manifest> = apps.iter().map(|a| a as &dyn Manifest).collect();
    let broken = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "x"},
        "spec": {"destination": {"server": 1}}});
    let docs = check_against_crd("argoproj.io_applications.yaml", &objects, broken);

    let root = &docs[0];
    assert_eq!(root["metadata"], json!({"name": "root", "namespace": "argocd"}));
    assert_eq!(
        root["spec"],
        json!({
            "project": "default",
            "source": {"repoURL": "git@git.example.com:org/gitops.git", "targetRevision": "main", "path": "clusters/lab/apps"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "argocd"},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}, "syncOptions": ["CreateNamespace=true"]},
        })
    );
    let full = &docs[1];
    assert_eq!(full["metadata"]["finalizers"], json!(["resources-finalizer.argocd.argoproj.io"]));
    assert_eq!(full["spec"]["source"]["directory"], json!({"recurse": true}));
    assert_eq!(full["spec"]["project"], "platform");
    assert_eq!(full["spec"]["syncPolicy"]["syncOptions"], json!(["CreateNamespace=true", "ServerSideApply=true"]));
    assert_eq!(full["metadata"]["labels"]["app.kubernetes.io/part-of"], "bootstrap");
}

#[test]
fn argocd_application_refuses_bad_input() {
    use kvm_bootstrap::manifests::argocd::Application;
    use kvm_bootstrap::manifests::ManifestError;
    let new = |url: &str, rev: &str, path: &str, dest: &str| Application::new("argocd", "root", url, rev, path, dest);
    let url = "https://git.example.com/org/gitops.git";
    assert!(matches!(new("", "main", ".", "argocd"), Err(ManifestError::InvalidUrl { .. })));
    assert!(matches!(new(url, "", ".", "argocd"), Err(ManifestError::InvalidField { .. })));
    assert!(matches!(new(url, "main", "/abs", "argocd"), Err(ManifestError::InvalidField { .. })));
    assert!(matches!(new(url, "main", ".", "Argo.CD"), Err(ManifestError::InvalidName { .. })));
    let app = new(url, "main", ".", "argocd").unwrap();
    assert!(app.clone().with_sync_option("CreateNamespace").is_err());
    assert!(app.clone().with_sync_option("Prune Last=true").is_err());
    assert_eq!(app.with_sync_option("CreateNamespace=true").unwrap().sync_options(), ["CreateNamespace=true"]);
}

#[test]
fn flux_git_repositories_validate_against_the_crd() {
    let repos = git_repositories();
    let objects: Vec<&dyn Manifest> = repos.iter().map(|r| r as &dyn Manifest).collect();
    // The CRD's own URL pattern refuses scp-like addresses.
    let broken = json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": "x"}, "spec": {"url": "git@github.com:org/repo.git", "interval": "1m"}});
    let docs = check_against_crd("source.toolkit.fluxcd.io_gitrepositories.yaml", &objects, broken);
    assert_eq!(
        docs[0]["spec"],
        json!({"url": "ssh://git@git.example.com/org/gitops.git", "ref": {"branch": "main"}, "interval": "1m0s",
               "secretRef": {"name": "flux-system"}})
    );
    assert_eq!(docs[1]["spec"]["ref"], json!({"tag": "v1.2.0"}));
    assert_eq!(docs[1]["spec"]["interval"], "30s");
    assert!(docs[1]["spec"].get("secretRef").is_none());
    assert_eq!(docs[2]["spec"]["ref"], json!({"commit": "0123456789abcdef0123456789abcdef01234567"}));
}

#[test]
fn flux_kustomizations_validate_against_the_crd() {
    let ks = kustomizations();
    let objects: Vec<&dyn Manifest> = ks.iter().map(|k| k as &dyn Manifest).collect();
    // prune is required by the CRD.
    let broken = json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "x"}, "spec": {"interval": "10m", "sourceRef": {"kind": "GitRepository", "name": "x"}}});
    let docs = check_against_crd("kustomize.toolkit.fluxcd.io_kustomizations.yaml", &objects, broken);
    assert_eq!(
        docs[0]["spec"],
        json!({"sourceRef": {"kind": "GitRepository", "name": "flux-system"}, "path": "./clusters/lab",
               "prune": true, "interval": "10m0s"})
    );
    // A source in another namespace is named with its namespace.
    assert_eq!(
        docs[1]["spec"]["sourceRef"],
        json!({"kind": "GitRepository", "name": "flux-system", "namespace": "flux-system"})
    );
    assert_eq!(docs[1]["spec"]["interval"], "5m");
}

#[test]
fn flux_durations_that_the_crd_refuses_are_refused_early() {
    let repo = GitRepository::new("flux-system", "x", "https://h/r.git", GitRef::Branch("main".into())).unwrap();
    for bad in ["1d", "10", "1m 0s"] {
        assert!(repo.clone().with_interval(bad).is_err(), "{bad}");
        assert!(Kustomization::new("flux-system", "x", &repo, ".").unwrap().with_interval(bad).is_err(), "{bad}");
    }
}
