//! `kvm-gitops seal`, run as the built binary: what it writes unseals (via the library) to the
//! input, in every scope, in YAML and JSON, and validates against the real SealedSecret CRD; bad
//! input gives one clear line and a non-zero exit, never a panic or a secret value.

use kvm_testkit::crd_schema;
use kvm_testkit::testdata;
use testdata::testdata;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use kvm_sealing::{SealedSecret, SealingKey};
use serde_json::{json, Value};

const MARKER: &str = "MARKER-s3cr3t-4c1d";

fn cert() -> PathBuf {
    testdata("sealed-secrets/sealing-cert.pem")
}

fn key() -> SealingKey {
    let read = testdata::read_testdata;
    SealingKey::from_pem(&read("sealed-secrets/sealing-key.pem"), &read("sealed-secrets/sealing-cert.pem")).unwrap()
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn seal(args: &[&str], stdin: &[u8]) -> Out {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvm-gitops"))
        .arg("seal")
        .args(args)
        .env_remove("SEALED_SECRETS_CERT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kvm-gitops");
    // A child that refuses early may close stdin before reading it all.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// The plaintexts of the shared vectors (empty, binary, unicode, 70,000 bytes, ...) plus a marker.
fn vector_values() -> BTreeMap<String, Vec<u8>> {
    let vectors: Value =
        serde_json::from_str(&std::fs::read_to_string(testdata("sealed-secrets/vectors.json")).unwrap()).unwrap();
    let mut values: BTreeMap<String, Vec<u8>> = vectors["vectors"][0]["plaintext_base64"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), BASE64.decode(v.as_str().unwrap()).unwrap()))
        .collect();
    values.insert("marker".to_string(), MARKER.as_bytes().to_vec());
    values
}

/// A Secret with `data` (base64) for every vector value and a `stringData` entry.
fn secret_json(namespace: Option<&str>) -> Value {
    let data: serde_json::Map<String, Value> =
        vector_values().iter().map(|(k, v)| (k.clone(), Value::from(BASE64.encode(v)))).collect();
    let mut metadata = json!({
        "name": "db-credentials",
        "labels": {"app.kubernetes.io/name": "payments"},
        "annotations": {
            "example.com/owner": "team-a",
            "kubectl.kubernetes.io/last-applied-configuration": format!("{{\"stringData\":{{\"user\":\"{MARKER}\"}}}}"),
        },
        "creationTimestamp": null,
    });
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "kubernetes.io/basic-auth",
        "data": data,
        "stringData": {"user": "app"},
    })
}

fn expected_values() -> BTreeMap<String, Vec<u8>> {
    let mut v = vector_values();
    v.insert("user".to_string(), b"app".to_vec());
    v
}

fn secret_yaml(namespace: Option<&str>) -> String {
    serde_norway::to_string(&secret_json(namespace)).unwrap()
}

#[test]
fn yaml_and_json_in_and_out_unseal_to_the_input() {
    let inputs = [("yaml", secret_yaml(Some("payments"))), ("json", secret_json(Some("payments")).to_string())];
    for (in_format, input) in &inputs {
        for out_format in ["yaml", "json"] {
            let cert = cert();
            let out = seal(&["--cert", cert.to_str().unwrap(), "-o", out_format], input.as_bytes());
            assert_eq!(out.code, 0, "{in_format} -> {out_format}: {}", out.stderr);
            assert!(out.stderr.is_empty(), "nothing on stderr on success: {}", out.stderr);
            assert!(!out.stdout.contains(MARKER), "plaintext in the output");
            if out_format == "json" {
                serde_json::from_str::<Value>(&out.stdout).expect("-o json prints JSON");
            } else {
                assert!(out.stdout.starts_with("apiVersion: bitnami.com/v1alpha1\n"), "{}", &out.stdout[..80]);
            }
            let sealed = SealedSecret::from_yaml(&out.stdout).unwrap();
            assert_eq!(sealed.unseal(&key()).unwrap(), expected_values(), "{in_format} -> {out_format}");
            let template = sealed.spec.template.as_ref().unwrap();
            let tm = template.metadata.as_ref().unwrap();
            assert_eq!(template.secret_type.as_deref(), Some("kubernetes.io/basic-auth"));
            assert_eq!(tm.labels["app.kubernetes.io/name"], "payments");
            assert_eq!(tm.annotations["example.com/owner"], "team-a");
            assert!(!tm.annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
            assert_eq!(sealed.metadata.namespace.as_deref(), Some("payments"));
        }
    }
}

#[test]
fn default_output_is_json_like_kubeseal_and_env_cert_works() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvm-gitops"))
        .args(["seal"])
        .env("SEALED_SECRETS_CERT", cert())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(secret_yaml(Some("payments")).as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON by default");
    assert_eq!(v["kind"], "SealedSecret");
}

#[test]
fn scopes_bind_to_name_and_namespace_as_the_controller() {
    let input = secret_yaml(Some("payments"));
    let cert = cert();
    let sealed_in = |scope: &str| {
        let out = seal(&["--cert", cert.to_str().unwrap(), "--scope", scope, "-o", "yaml"], input.as_bytes());
        assert_eq!(out.code, 0, "{scope}: {}", out.stderr);
        SealedSecret::from_yaml(&out.stdout).unwrap()
    };
    let renamed = |s: &SealedSecret, name: &str, namespace: &str| {
        let mut s = s.clone();
        s.metadata.name = name.to_string();
        s.metadata.namespace = Some(namespace.to_string());
        s
    };

    let strict = sealed_in("strict");
    assert_eq!(strict.unseal(&key()).unwrap(), expected_values());
    let e = renamed(&strict, "other-name", "payments").unseal(&key()).unwrap_err();
    assert!(e.to_string().contains("cannot unseal"), "{e}");
    renamed(&strict, "db-credentials", "other-ns").unseal(&key()).unwrap_err();

    let namespace_wide = sealed_in("namespace-wide");
    assert_eq!(namespace_wide.metadata.annotations["sealedsecrets.bitnami.com/namespace-wide"], "true");
    assert_eq!(renamed(&namespace_wide, "other-name", "payments").unseal(&key()).unwrap(), expected_values());
    renamed(&namespace_wide, "other-name", "other-ns").unseal(&key()).unwrap_err();

    let cluster_wide = sealed_in("cluster-wide");
    assert_eq!(cluster_wide.metadata.annotations["sealedsecrets.bitnami.com/cluster-wide"], "true");
    assert_eq!(renamed(&cluster_wide, "other-name", "other-ns").unseal(&key()).unwrap(), expected_values());
}

#[test]
fn name_and_namespace_flags_override_and_complete_the_input() {
    let cert = cert();
    let out = seal(
        &["--cert", cert.to_str().unwrap(), "-n", "billing", "--name", "renamed", "-o", "yaml"],
        secret_yaml(None).as_bytes(),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let sealed = SealedSecret::from_yaml(&out.stdout).unwrap();
    assert_eq!(sealed.metadata.name, "renamed");
    assert_eq!(sealed.metadata.namespace.as_deref(), Some("billing"));
    assert_eq!(sealed.unseal(&key()).unwrap(), expected_values());

    // Cluster-wide needs no namespace: none is written, and it still unseals.
    let out = seal(&["--cert", cert.to_str().unwrap(), "--scope", "cluster-wide"], secret_yaml(None).as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let sealed = SealedSecret::from_yaml(&out.stdout).unwrap();
    assert_eq!(sealed.metadata.namespace, None);
    assert_eq!(sealed.spec.template.as_ref().unwrap().metadata.as_ref().unwrap().namespace, None);
    assert_eq!(sealed.unseal(&key()).unwrap(), expected_values());
}

#[test]
fn output_validates_against_the_sealedsecret_crd() {
    let schema = crd_schema::crd_json_schema("bitnami.com_sealedsecrets.yaml", "bitnami.com/v1alpha1");
    let validator = jsonschema::validator_for(&schema).unwrap();
    let cert = cert();
    for scope in ["strict", "namespace-wide", "cluster-wide"] {
        for format in ["yaml", "json"] {
            let namespace = if scope == "cluster-wide" { None } else { Some("payments") };
            let out = seal(
                &["--cert", cert.to_str().unwrap(), "--scope", scope, "-o", format],
                secret_yaml(namespace).as_bytes(),
            );
            assert_eq!(out.code, 0, "{}", out.stderr);
            let v: Value = serde_norway::from_str(&out.stdout).unwrap();
            let errors: Vec<String> =
                validator.iter_errors(&v).map(|e| format!("{e} at {}", e.instance_path())).collect();
            assert!(errors.is_empty(), "{scope} {format}: {errors:?}");
        }
    }
}

#[test]
fn writes_a_file_atomically_with_mode_0644() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("sealed.yaml");
    let input = dir.path().join("secret.json");
    std::fs::write(&input, secret_json(Some("payments")).to_string()).unwrap();
    let cert = cert();
    let out = seal(
        &[
            "--cert",
            cert.to_str().unwrap(),
            "-f",
            input.to_str().unwrap(),
            "-w",
            target.to_str().unwrap(),
            "-o",
            "yaml",
        ],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.is_empty());
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o644);
    let sealed = SealedSecret::from_yaml(&std::fs::read_to_string(&target).unwrap()).unwrap();
    assert_eq!(sealed.unseal(&key()).unwrap(), expected_values());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "no temporary file left");
}

#[test]
fn raw_mode_seals_one_value() {
    let cert = cert();
    let out = seal(
        &["--cert", cert.to_str().unwrap(), "--raw", "--namespace", "payments", "--name", "db-credentials"],
        MARKER.as_bytes(),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let sealed: SealedSecret = serde_json::from_value(json!({
        "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "db-credentials", "namespace": "payments"},
        "spec": {"encryptedData": {"password": out.stdout}},
    }))
    .unwrap();
    assert_eq!(sealed.unseal(&key()).unwrap()["password"], MARKER.as_bytes());

    let out = seal(&["--cert", cert.to_str().unwrap(), "--raw", "--namespace", "payments"], b"x");
    assert_eq!(out.code, 2, "strict raw sealing needs --name: {}", out.stderr);
    assert!(out.stderr.contains("--name"), "{}", out.stderr);
}

/// An RSA certificate for the test key that expired in 2001.
fn expired_cert(dir: &Path) -> PathBuf {
    let key_pem = std::fs::read_to_string(testdata("sealed-secrets/sealing-key.pem")).unwrap();
    let b64: String = key_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let pkcs1 = BASE64.decode(b64).unwrap();
    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let n = body.len();
        let mut out = vec![tag];
        match n {
            0..=127 => out.push(n as u8),
            128..=255 => out.extend([0x81, n as u8]),
            _ => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(body);
        out
    }
    // PKCS#8 PrivateKeyInfo { version 0, rsaEncryption, OCTET STRING pkcs1 } for rcgen.
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend([0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00]);
    body.extend(tlv(0x04, &pkcs1));
    let pkcs8 = tlv(0x30, &body);
    let signer = rcgen::KeyPair::try_from(pkcs8.as_slice()).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    let der = params.self_signed(&signer).unwrap().der().to_vec();
    let pem = pem::encode(&pem::Pem::new("CERTIFICATE", der));
    let path = dir.join("expired.pem");
    std::fs::write(&path, pem).unwrap();
    path
}

/// One line on stderr, starting `kvm-gitops: error:`, no panic, no secret.
#[track_caller]
fn assert_clear_error(out: &Out, code: i32, want: &str) {
    assert_eq!(out.code, code, "stderr: {}", out.stderr);
    assert!(out.stdout.is_empty(), "nothing on stdout on failure: {}", out.stdout);
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "one line: {}", out.stderr);
    assert!(out.stderr.starts_with("kvm-gitops: error: "), "{}", out.stderr);
    assert!(out.stderr.contains(want), "want {want:?} in: {}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(!out.stderr.contains(MARKER) && !out.stderr.contains("hunter2"), "secret in: {}", out.stderr);
}

#[test]
fn expired_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let expired = expired_cert(dir.path());
    let out = seal(&["--cert", expired.to_str().unwrap()], secret_yaml(Some("payments")).as_bytes());
    assert_clear_error(&out, 1, "expired at 2001-01-01T00:00:00Z");
    assert!(out.stderr.contains("renew"), "{}", out.stderr);
}

#[test]
fn missing_namespace_is_refused_unless_cluster_wide() {
    let cert = cert();
    for scope in ["strict", "namespace-wide"] {
        let out = seal(&["--cert", cert.to_str().unwrap(), "--scope", scope], secret_yaml(None).as_bytes());
        assert_clear_error(&out, 1, "has no namespace");
        assert!(out.stderr.contains("--namespace"), "{}", out.stderr);
    }
}

#[test]
fn bad_input_gives_one_clear_line() {
    let cert = cert();
    let c = cert.to_str().unwrap();
    let cases: Vec<(Vec<&str>, Vec<u8>, i32, &str)> = vec![
        (vec!["--cert", c], b"this: [is: not yaml".to_vec(), 1, "not valid YAML"),
        (vec!["--cert", c], b"{\"apiVersion\": \"v1\", \"data\": {\"a\": \"hunter2\"".to_vec(), 1, "not valid JSON"),
        (vec!["--cert", c], b"".to_vec(), 1, "empty"),
        (vec!["--cert", c], vec![0xff, 0xfe, 0x00, 0x41], 1, "not UTF-8"),
        (
            vec!["--cert", c],
            b"apiVersion: v1\nkind: ConfigMap\ndata: {a: hunter2}\n".to_vec(),
            1,
            "not a Kubernetes Secret",
        ),
        (
            vec!["--cert", c],
            b"apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: b}\ndata: {password: 'hunter2!'}\n".to_vec(),
            1,
            "not standard base64",
        ),
        (
            vec!["--cert", c],
            b"apiVersion: v1\nkind: Secret\nmetadata: {namespace: b}\nstringData: {a: x}\n".to_vec(),
            1,
            "no metadata.name",
        ),
        (
            vec!["--cert", c],
            b"apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: b}\n".to_vec(),
            1,
            "--allow-empty-data",
        ),
        (
            vec!["--cert", c],
            b"apiVersion: v1\nkind: Secret\nmetadata: {name: Bad_Name, namespace: b}\nstringData: {a: hunter2}\n"
                .to_vec(),
            1,
            "not a valid Kubernetes name",
        ),
        (vec![], b"".to_vec(), 2, "--cert"),
        (vec!["--cert", "/nonexistent/cert.pem"], b"".to_vec(), 1, "cannot read the certificate /nonexistent/cert.pem"),
        (vec!["--cert", "Cargo.toml"], b"".to_vec(), 1, "--cert Cargo.toml"),
        (vec!["--cert", "https://example.com/cert.pem"], b"".to_vec(), 2, "download it first"),
    ];
    for (args, stdin, code, want) in cases {
        let out = seal(&args, &stdin);
        assert_clear_error(&out, code, want);
    }
    // --allow-empty-data makes the empty Secret fine.
    let out = seal(
        &["--cert", c, "--allow-empty-data"],
        b"apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: b}\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    // clap rejects an unknown scope with exit 2.
    let out = seal(&["--cert", c, "--scope", "global"], b"");
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("strict"), "{}", out.stderr);
}
