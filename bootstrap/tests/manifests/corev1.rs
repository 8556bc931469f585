//! core/v1 shapes (no CRD exists for them): the YAML parsed back has exactly the expected fields,
//! and the Secret helpers put what the controllers read where they read it.

use kvm_bootstrap::manifests::argocd;
use kvm_bootstrap::manifests::flux;
use kvm_bootstrap::manifests::{
    sealing_key_secret, ConfigMap, Manifest, ManifestError, Namespace, Secret, SecretType, SEALING_KEY_NAME_PREFIX,
};
use kvm_sealing::SealingKey;
use serde_json::{json, Value};

use crate::common::*;

/// The top-level keys core/v1 allows for each kind we render.
fn assert_core_shape(v: &Value) {
    let allowed: &[&str] = match v["kind"].as_str().unwrap() {
        "Namespace" => &["apiVersion", "kind", "metadata"],
        "Secret" => &["apiVersion", "kind", "metadata", "type", "data"],
        "ConfigMap" => &["apiVersion", "kind", "metadata", "data"],
        other => panic!("not a core kind: {other}"),
    };
    assert_eq!(v["apiVersion"], "v1");
    for key in v.as_object().unwrap().keys() {
        assert!(allowed.contains(&key.as_str()), "{key} is not a field of {}", v["kind"]);
    }
    for key in v["metadata"].as_object().unwrap().keys() {
        assert!(["name", "namespace", "labels", "annotations"].contains(&key.as_str()), "metadata.{key}");
    }
    for map in ["labels", "annotations"] {
        if let Some(m) = v["metadata"].get(map) {
            assert!(m.as_object().unwrap().values().all(Value::is_string), "{map} values are strings");
        }
    }
    if let Some(data) = v.get("data") {
        assert!(data.as_object().unwrap().values().all(Value::is_string), "data values are strings");
    }
}

#[test]
fn core_objects_have_the_core_v1_shape() {
    let mut seen = 0;
    for object in all_objects() {
        if object.api_version() == "v1" {
            assert_core_shape(&parsed(&object));
            seen += 1;
        }
    }
    assert_eq!(seen, 11);
}

#[test]
fn namespace_and_configmap() {
    let ns = Namespace::new("payments").unwrap().with_label("team", "a").unwrap();
    assert_eq!(
        parsed(&ns),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "payments", "labels": {"team": "a"}}})
    );
    assert!(ns.metadata().namespace().is_none(), "cluster-scoped");

    // YAML 1.1 words stay strings.
    let cm =
        ConfigMap::new("payments", "settings").unwrap().with_data("on", "yes").unwrap().with_data("n", "0x10").unwrap();
    assert_eq!(parsed(&cm)["data"], json!({"on": "yes", "n": "0x10"}));
    assert!(cm.to_yaml().contains("\"on\": \"yes\""), "{}", cm.to_yaml());
}

#[test]
fn secrets_base64_their_values() {
    let binary = vec![0u8, 1, 2, 0xff, b'\n'];
    let s = Secret::opaque("payments", "db")
        .unwrap()
        .with_data("password", "pw-0123")
        .unwrap()
        .with_data("blob", binary.clone())
        .unwrap()
        .with_annotation("example.com/rotated", "2026-01-01")
        .unwrap();
    let v = parsed(&s);
    assert_eq!(v["type"], "Opaque");
    assert_eq!(
        v["metadata"],
        json!({"name": "db", "namespace": "payments", "annotations": {"example.com/rotated": "2026-01-01"}})
    );
    assert_eq!(decoded(&v, "password"), b"pw-0123");
    assert_eq!(decoded(&v, "blob"), binary);
    assert!(v.get("stringData").is_none());
    assert_eq!(s.get("blob"), Some(binary.as_slice()));

    let tls = Secret::tls("payments", "web-tls", "CERT PEM", "KEY PEM").unwrap();
    assert_eq!(tls.secret_type(), SecretType::Tls);
    let v = parsed(&tls);
    assert_eq!(v["type"], "kubernetes.io/tls");
    assert_eq!(decoded(&v, "tls.crt"), b"CERT PEM");
    assert_eq!(decoded(&v, "tls.key"), b"KEY PEM");

    // An empty Secret has no data map at all.
    assert!(parsed(&Secret::opaque("a", "b").unwrap()).get("data").is_none());
}

#[test]
fn sealing_key_secret_round_trips_its_pems() {
    let (key, cert) = sealing_pems();
    let name = format!("{SEALING_KEY_NAME_PREFIX}-restored");
    let secret = sealing_key_secret("kube-system", &name, &key, &cert).unwrap();
    let v = parsed(&secret);
    assert_eq!(v["type"], "kubernetes.io/tls");
    assert_eq!(v["metadata"]["name"], name.as_str());
    assert_eq!(v["metadata"]["namespace"], "kube-system");
    assert_eq!(v["metadata"]["labels"], json!({"sealedsecrets.bitnami.com/sealed-secrets-key": "active"}));
    let key_back = String::from_utf8(decoded(&v, "tls.key")).unwrap();
    let cert_back = String::from_utf8(decoded(&v, "tls.crt")).unwrap();
    assert_eq!(key_back, key);
    assert_eq!(cert_back, cert);
    assert_eq!(v["data"].as_object().unwrap().len(), 2);
    // What the controller would read is the same usable key.
    let restored = SealingKey::from_pem(&key_back, &cert_back).unwrap();
    assert_eq!(
        restored.certificate().fingerprint(),
        SealingKey::from_pem(&key, &cert).unwrap().certificate().fingerprint()
    );

    // Swapped or garbage PEMs are refused before they could reach the controller.
    for (k, c) in [(cert.as_str(), key.as_str()), ("junk", cert.as_str()), (key.as_str(), "junk")] {
        let e = sealing_key_secret("kube-system", &name, k, c).unwrap_err();
        assert!(matches!(e, ManifestError::SealingKey(_)), "{e}");
    }
    assert!(matches!(
        sealing_key_secret("Kube-System", &name, &key, &cert),
        Err(ManifestError::InvalidName { field: "metadata.namespace", .. })
    ));
}

#[test]
fn argocd_repository_secrets() {
    let ssh = argocd::repository_secret("argocd", "gitops", "git@git.example.com:org/gitops.git", &ssh_credentials())
        .unwrap();
    let v = parsed(&ssh);
    assert_eq!(v["metadata"]["labels"], json!({"argocd.argoproj.io/secret-type": "repository"}));
    assert_eq!(v["type"], "Opaque");
    let keys: Vec<&String> = v["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["sshPrivateKey", "type", "url"]);
    assert_eq!(decoded(&v, "type"), b"git");
    assert_eq!(decoded(&v, "url"), b"git@git.example.com:org/gitops.git");
    assert_eq!(decoded(&v, "sshPrivateKey"), SSH_PRIVATE_KEY.as_bytes());

    let https =
        argocd::repository_secret("argocd", "gitops", "https://git.example.com/org/gitops.git", &https_credentials())
            .unwrap();
    let v = parsed(&https);
    let keys: Vec<&String> = v["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["password", "type", "url", "username"]);
    assert_eq!(decoded(&v, "username"), b"git");
    assert_eq!(decoded(&v, "password"), TOKEN.as_bytes());

    // Credentials must suit the URL.
    for (url, creds) in [
        ("https://git.example.com/org/gitops.git", ssh_credentials()),
        ("ssh://git@git.example.com/org/gitops.git", https_credentials()),
        ("git@git.example.com:org/gitops.git", https_credentials()),
    ] {
        let e = argocd::repository_secret("argocd", "x", url, &creds).unwrap_err();
        assert!(matches!(e, ManifestError::InvalidUrl { .. }), "{url}: {e}");
    }
    let no_hosts = kvm_bootstrap::manifests::GitCredentials::Ssh {
        private_key: SSH_PRIVATE_KEY.into(),
        public_key: SSH_PUBLIC_KEY.into(),
        known_hosts: " \n".into(),
    };
    let e = argocd::repository_secret("argocd", "x", "ssh://git@h/r.git", &no_hosts).unwrap_err();
    assert!(matches!(e, ManifestError::InvalidCredentials(_)), "{e}");
}

#[test]
fn argocd_known_hosts_config_map() {
    let objects =
        argocd::repository_objects("argocd", "gitops", "ssh://git@git.example.com/org/gitops.git", &ssh_credentials())
            .unwrap();
    assert_eq!(objects.iter().map(|o| o.kind()).collect::<Vec<_>>(), ["Secret", "ConfigMap"]);
    let v = parsed(&objects[1]);
    assert_eq!(v["metadata"]["name"], "argocd-ssh-known-hosts-cm");
    assert_eq!(v["metadata"]["namespace"], "argocd");
    assert_eq!(v["metadata"]["labels"]["app.kubernetes.io/part-of"], "argocd");
    assert_eq!(v["data"], json!({"ssh_known_hosts": KNOWN_HOSTS}));
    let https =
        argocd::repository_objects("argocd", "gitops", "https://git.example.com/org/gitops.git", &https_credentials())
            .unwrap();
    assert_eq!(https.len(), 1, "HTTPS needs no known hosts");
}

#[test]
fn flux_auth_secrets() {
    let url = "ssh://git@git.example.com/org/gitops.git";
    let v = parsed(&flux::auth_secret("flux-system", "flux-system", url, &ssh_credentials()).unwrap());
    let keys: Vec<&String> = v["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["identity", "identity.pub", "known_hosts"]);
    assert_eq!(decoded(&v, "identity"), SSH_PRIVATE_KEY.as_bytes());
    assert_eq!(decoded(&v, "identity.pub"), SSH_PUBLIC_KEY.as_bytes());
    assert_eq!(decoded(&v, "known_hosts"), KNOWN_HOSTS.as_bytes());
    assert!(v["metadata"].get("labels").is_none());

    let v = parsed(
        &flux::auth_secret("flux-system", "https", "https://git.example.com/org/gitops.git", &https_credentials())
            .unwrap(),
    );
    let keys: Vec<&String> = v["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["password", "username"]);
    assert_eq!(decoded(&v, "password"), TOKEN.as_bytes());

    // Flux refuses scp-like URLs; say what to write instead.
    let e = flux::auth_secret("flux-system", "x", "git@git.example.com:org/gitops.git", &ssh_credentials())
        .unwrap_err()
        .to_string();
    assert!(e.contains("ssh://git@git.example.com/org/gitops.git"), "{e}");
}

#[test]
fn debug_output_holds_no_secret_material() {
    use base64::Engine as _;
    let (key, _) = sealing_pems();
    // A distinctive line of the RSA key body.
    let key_line = key.lines().nth(5).unwrap().to_string();
    let secrets = [SSH_PRIVATE_KEY.lines().nth(1).unwrap(), TOKEN, "pw-0123", key_line.as_str()];
    let dumps = [
        format!("{:?}", all_objects()),
        format!("{:#?}", all_objects()),
        format!("{:?}", ssh_credentials()),
        format!("{:?}", https_credentials()),
    ];
    for dump in &dumps {
        for secret in secrets {
            assert!(!dump.contains(secret), "Debug shows {secret:?}");
            let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
            assert!(!dump.contains(&b64[..b64.len().min(16)]), "Debug shows base64 of {secret:?}");
        }
        assert!(dump.contains("redacted"), "{dump}");
    }
    // Names stay visible, so Debug is still useful.
    assert!(dumps[0].contains("gitops-repo") && dumps[0].contains("sshPrivateKey"));
}
