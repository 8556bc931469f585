//! `kvm-gitops reseal` and `kvm-gitops verify`, run as the built binary on a temporary GitOps
//! tree of 200+ SealedSecrets in nested YAML (multi-document, with comments and other manifests)
//! and JSON files: the re-seal changes only the ciphertexts of the re-sealed documents, the
//! result unseals (here and in the independent Python checker) to the planted values with the
//! new key only, a second run is a no-op, and verify's exit codes follow good and broken trees.

use kvm_testkit::python_checker;
use kvm_testkit::testdata;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use kvm_sealing::tree::ScannedFile;
use kvm_sealing::{seal_secret, KeyOptions, Scope, SealingKey, SecretSpec};
use serde_json::{json, Value};

fn old_key() -> &'static SealingKey {
    static KEY: OnceLock<SealingKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let read = testdata::read_testdata;
        SealingKey::from_pem(&read("sealed-secrets/sealing-key.pem"), &read("sealed-secrets/sealing-cert.pem")).unwrap()
    })
}

fn new_key() -> &'static SealingKey {
    static KEY: OnceLock<SealingKey> = OnceLock::new();
    KEY.get_or_init(|| SealingKey::generate(&KeyOptions::default()).unwrap())
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Out {
    let output = Command::new(env!("CARGO_BIN_EXE_kvm-gitops")).args(args).output().expect("kvm-gitops runs");
    Out {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Key material written like Terraform users would keep it: 0600 files.
struct KeyFiles {
    _dir: tempfile::TempDir,
    old_key: String,
    new_key: String,
    new_cert: String,
    state: String,
}

fn key_files() -> KeyFiles {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p.display().to_string()
    };
    // A state file as `terraform state pull` prints it, holding only the old key.
    let state = json!({"version": 4, "terraform_version": "1.11.4", "resources": [{
        "mode": "managed", "type": "kvm_sealing_key", "name": "old", "provider": "provider[\"registry.terraform.io/kvm/kvm\"]",
        "instances": [{"attributes": {
            "private_key_pem": old_key().private_key_pem(),
            "certificate_pem": old_key().certificate_pem(),
            "fingerprint": old_key().certificate().fingerprint(),
        }}]
    }]});
    KeyFiles {
        old_key: write("old.key", old_key().private_key_pem()),
        new_key: write("new.key", new_key().private_key_pem()),
        new_cert: write("new.pem", new_key().certificate_pem()),
        state: write("terraform.tfstate", &state.to_string()),
        _dir: dir,
    }
}

/// The value planted in secret number `i`, data key `k`.
fn value(i: usize, k: &str) -> Vec<u8> {
    format!("MARKER-{i}-{k}-s3cr3t").into_bytes()
}

fn sealed(key: &SealingKey, i: usize) -> kvm_sealing::SealedSecret {
    let scope = Scope::ALL[i % 3];
    let name = format!("secret-{i}");
    let namespace = format!("team-{}", i % 7);
    let values =
        BTreeMap::from([("password".to_string(), value(i, "password")), ("user".to_string(), value(i, "user"))]);
    let labels = BTreeMap::from([("app".to_string(), name.clone())]);
    let annotations = BTreeMap::from([("example.com/owner".to_string(), "on".to_string())]);
    seal_secret(
        key.certificate(),
        &SecretSpec {
            namespace: &namespace,
            name: &name,
            scope,
            secret_type: "Opaque",
            values: &values,
            labels: &labels,
            annotations: &annotations,
        },
    )
    .unwrap()
}

/// Builds the tree: returns the number of SealedSecrets. Layout: `apps/<n>/` with YAML files of
/// 1 to 6 documents mixing SealedSecrets, ConfigMaps, comments and `...` markers; JSON files;
/// a JSON `List`; a Helm template that is not YAML; a kustomization.
fn build_tree(root: &Path, key: &SealingKey, count: usize) -> usize {
    let mut i = 0;
    let mut file = 0;
    while i < count {
        let dir = root.join(format!("apps/group-{}/sub-{}", file % 5, file % 3));
        std::fs::create_dir_all(&dir).unwrap();
        match file % 4 {
            0 | 1 => {
                let docs = 1 + file % 6;
                let mut text = format!("# file {file}: hand-written header comment\n");
                for d in 0..docs {
                    if d > 0 {
                        text.push_str("---\n");
                    }
                    if d % 2 == 1 {
                        text.push_str(&format!(
                            "apiVersion: v1\nkind: ConfigMap   # keep my spacing\nmetadata:\n    name: cm-{file}-{d}\ndata:\n    enabled: \"yes\"\n"
                        ));
                        continue;
                    }
                    if i >= count {
                        break;
                    }
                    text.push_str(&format!("# secret {i} comment\n{}", sealed(key, i).to_yaml()));
                    i += 1;
                }
                text.push_str("...\n# trailing comment after the end marker\n");
                std::fs::write(dir.join(format!("secrets-{file}.yaml")), text).unwrap();
            }
            2 => {
                let text = format!("{}\n", sealed(key, i).to_json());
                i += 1;
                std::fs::write(dir.join(format!("sealed-{file}.json")), text).unwrap();
            }
            _ => {
                let mut items = Vec::new();
                for _ in 0..3 {
                    if i < count {
                        items.push(serde_json::to_value(sealed(key, i)).unwrap());
                        i += 1;
                    }
                }
                let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
                std::fs::write(dir.join(format!("list-{file}.yml")), serde_json::to_string_pretty(&list).unwrap())
                    .unwrap();
            }
        }
        file += 1;
    }
    std::fs::write(root.join("apps/kustomization.yaml"), "resources:\n  - group-0\n").unwrap();
    std::fs::write(root.join("apps/chart-template.yaml"), "{{- if .Values.enabled }}\nkind: ConfigMap\n{{- end }}\n")
        .unwrap();
    std::fs::write(root.join("README.md"), "not a manifest\n").unwrap();
    i
}

fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out)
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, &mut out);
    out
}

fn secrets_of(files: &[ScannedFile]) -> Vec<kvm_sealing::SealedSecret> {
    files.iter().flat_map(|f| f.secrets.iter().map(|s| s.sealed.clone())).collect()
}

fn scan(root: &Path) -> Vec<ScannedFile> {
    kvm_sealing::tree::scan_tree(&[root.to_path_buf()]).unwrap()
}

/// Checks that `after` differs from `before` only inside the spans of SealedSecret documents,
/// and there only on lines that hold a ciphertext.
fn assert_diff_limited_to_sealed_documents(path: &Path, before: &[u8], after: &[u8]) {
    let (b, a) = (std::str::from_utf8(before).unwrap(), std::str::from_utf8(after).unwrap());
    let fb = scan_file_text(path, b);
    let fa = scan_file_text(path, a);
    assert_eq!(fb.documents.len(), fa.documents.len(), "{}", path.display());
    // The bytes between documents (markers, comments) are identical.
    let gaps = |f: &ScannedFile, t: &str| {
        let mut at = 0;
        let mut out = Vec::new();
        for d in &f.documents {
            out.push(t[at..d.span.start].to_string());
            at = d.span.end;
        }
        out.push(t[at..].to_string());
        out
    };
    assert_eq!(gaps(&fb, b), gaps(&fa, a), "{}: text outside the documents changed", path.display());
    let sealed_docs: Vec<usize> = fb.secrets.iter().map(|s| s.document_index).collect();
    for (i, (db, da)) in fb.documents.iter().zip(&fa.documents).enumerate() {
        let (tb, ta) = (&b[db.span.clone()], &a[da.span.clone()]);
        if !sealed_docs.contains(&i) {
            assert_eq!(tb, ta, "{}: document {} is no SealedSecret but changed", path.display(), i + 1);
            continue;
        }
        let (lb, la): (Vec<_>, Vec<_>) = (tb.lines().collect(), ta.lines().collect());
        assert_eq!(lb.len(), la.len(), "{}: document {} changed shape", path.display(), i + 1);
        for (x, y) in lb.iter().zip(&la) {
            if x != y {
                let key = x.trim_start().trim_start_matches('"');
                assert!(
                    key.starts_with("password") || key.starts_with("user"),
                    "{}: a line other than a ciphertext changed: {x:?}",
                    path.display()
                );
            }
        }
    }
}

fn scan_file_text(path: &Path, text: &str) -> ScannedFile {
    let format = kvm_sealing::tree::FileFormat::of(path).unwrap();
    kvm_sealing::tree::scan_text(path, format, text.to_string())
}

#[test]
fn reseal_200_secrets_then_verify() {
    let keys = key_files();
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    let count = build_tree(root, old_key(), 210);
    let secret_file = std::fs::read_dir(root.join("apps/group-2/sub-2")).unwrap().next().unwrap().unwrap().path();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let before = snapshot(root);
    let root_s = root.display().to_string();

    // Before: verify passes with the old key, fails with --require-newest.
    let v = run(&["verify", "--key", &keys.old_key, &root_s]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    let v = run(&["verify", "--state", &keys.state, "--require-newest", &keys.new_cert, "--json", &root_s]);
    assert_eq!(v.code, 1, "{}", v.stderr);
    let report: Value = serde_json::from_str(&v.stdout).unwrap();
    assert_eq!(report["failed"], count);

    // Dry run writes nothing.
    let dry = run(&["reseal", "--state", &keys.state, "--cert", &keys.new_cert, "--dry-run", &root_s]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(snapshot(root), before);

    let started = Instant::now();
    let r = run(&["reseal", "--key", &keys.old_key, "--cert", &keys.new_cert, &root_s]);
    let elapsed = started.elapsed();
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    println!(
        "reseal of {count} SealedSecrets (2 values each) in {} files: {:.2?} wall clock, binary says: {}",
        before.len(),
        elapsed,
        r.stderr.trim()
    );
    assert_eq!(r.stdout.lines().count(), count + 1, "a header and one row per secret");
    assert!(r.stdout.starts_with("FILE"));
    assert_eq!(r.stdout.matches("  resealed").count(), count);
    let old_fp = &old_key().certificate().fingerprint()[..16];
    let new_fp = &new_key().certificate().fingerprint()[..16];
    assert!(r.stdout.lines().skip(1).all(|l| l.contains(old_fp) && l.contains(new_fp)));
    assert!(!r.stdout.contains("MARKER") && !r.stderr.contains("MARKER"), "values never printed");

    // Byte diff: files without SealedSecrets identical; in the others only ciphertext lines changed.
    let after = snapshot(root);
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>(), "no file added or removed");
    let mut changed_files = 0;
    let mut changed_lines = 0;
    for (path, b) in &before {
        let a = &after[path];
        let has_secrets = std::str::from_utf8(b).is_ok_and(|t| t.contains("SealedSecret"));
        if !has_secrets {
            assert_eq!(a, b, "{} changed", path.display());
            continue;
        }
        assert_ne!(a, b, "{} not re-sealed", path.display());
        changed_files += 1;
        changed_lines += std::str::from_utf8(a)
            .unwrap()
            .lines()
            .zip(std::str::from_utf8(b).unwrap().lines())
            .filter(|(x, y)| x != y)
            .count();
        assert_diff_limited_to_sealed_documents(path, b, a);
    }
    println!(
        "byte diff: {changed_files} files changed, {changed_lines} lines changed (= 2 ciphertexts x {count} secrets)"
    );
    assert_eq!(changed_lines, 2 * count);
    assert_eq!(std::fs::metadata(&secret_file).unwrap().permissions().mode() & 0o777, 0o640, "mode kept");

    // The result opens with the new key only, to the planted values; metadata unchanged.
    let files = scan(root);
    let secrets = secrets_of(&files);
    assert_eq!(secrets.len(), count);
    let mut items = Vec::new();
    let mut expected = Vec::new();
    for s in &secrets {
        let i: usize = s.metadata.name.trim_start_matches("secret-").parse().unwrap();
        let values = s.unseal(new_key()).unwrap();
        assert_eq!(values["password"], value(i, "password"));
        assert!(s.unseal(old_key()).is_err());
        assert_eq!(s.scope(), Scope::ALL[i % 3]);
        let label = String::from_utf8(s.label().unwrap()).unwrap();
        for k in ["password", "user"] {
            items.push(json!({"sealed": s.spec.encrypted_data[k], "label": label}));
            expected.push(value(i, k));
        }
    }
    // The independent checker agrees.
    if let Some(answer) =
        python_checker::python(&json!({"op": "unseal", "key_pem": new_key().private_key_pem(), "items": items}))
    {
        use base64::Engine as _;
        let results = answer["results"].as_array().unwrap();
        assert_eq!(results.len(), expected.len());
        for (r, want) in results.iter().zip(&expected) {
            assert_eq!(r["ok"], true, "{r}");
            let got = base64::engine::general_purpose::STANDARD.decode(r["plaintext"].as_str().unwrap()).unwrap();
            assert_eq!(&got, want);
        }
        println!("python cryptography unsealed all {} re-sealed values", results.len());
    }

    // A second run changes nothing.
    let again = run(&["reseal", "--key", &keys.old_key, "--key", &keys.new_key, "--cert", &keys.new_cert, &root_s]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stdout.matches("  current").count(), count);
    assert_eq!(snapshot(root), after);

    // Verify: good with the new key and --require-newest; bad with only the old key.
    let v = run(&["verify", "--key", &keys.new_key, "--require-newest", &keys.new_cert, "--json", &root_s]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    let report: Value = serde_json::from_str(&v.stdout).unwrap();
    assert_eq!((report["ok"].clone(), report["count"].clone()), (json!(true), json!(count)));
    let v = run(&["verify", "--key", &keys.old_key, &root_s]);
    assert_eq!(v.code, 1);
    assert_eq!(v.stdout.matches("FAILED").count(), count);
}

#[test]
fn verify_and_reseal_on_broken_trees() {
    let keys = key_files();
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    let count = build_tree(root, old_key(), 12);
    let root_s = root.display().to_string();

    // A secret sealed to a key not given (the new key, while only the old one is passed).
    let stranger = root.join("apps/stranger.yaml");
    std::fs::write(&stranger, sealed(new_key(), 999).to_yaml()).unwrap();
    let v = run(&["verify", "--key", &keys.old_key, "--json", &root_s]);
    assert_eq!(v.code, 1, "{}", v.stderr);
    let report: Value = serde_json::from_str(&v.stdout).unwrap();
    assert_eq!(report["count"], count + 1);
    let failures: Vec<&Value> =
        report["secrets"].as_array().unwrap().iter().filter(|s| !s["failure"].is_null()).collect();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["name"], "secret-999");
    assert!(failures[0]["failure"].as_str().unwrap().contains("none of the 1 given keys"), "{}", failures[0]);

    // Reseal refuses, lists it, and writes nothing.
    let before = snapshot(root);
    let r = run(&["reseal", "--key", &keys.old_key, "--cert", &keys.new_cert, &root_s]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.lines().any(|l| l.contains("team-") && l.contains("secret-999") && l.contains("FAILED")),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("nothing written"), "{}", r.stderr);
    assert_eq!(snapshot(root), before);
    // With --allow-partial the rest is written, the stranger stays as it was, and the exit is still 1.
    let r = run(&["reseal", "--key", &keys.old_key, "--cert", &keys.new_cert, "--allow-partial", &root_s]);
    assert_eq!(r.code, 1);
    assert_eq!(std::fs::read(&stranger).unwrap(), before[&stranger]);
    assert_eq!(run(&["verify", "--key", &keys.new_key, &root_s]).code, 0);
    std::fs::remove_file(&stranger).unwrap();

    // A corrupted ciphertext: one base64 character in the middle flipped.
    let victim = scan(root).into_iter().find(|f| !f.secrets.is_empty()).unwrap();
    let old = victim.secrets[0].sealed.spec.encrypted_data["password"].clone();
    let mid = old.len() / 2;
    let flipped = if &old[mid..mid + 1] == "A" { "B" } else { "A" };
    let corrupted = format!("{}{}{}", &old[..mid], flipped, &old[mid + 1..]);
    std::fs::write(&victim.path, victim.text.replace(&old, &corrupted)).unwrap();
    let v = run(&["verify", "--key", &keys.new_key, &root_s]);
    assert_eq!(v.code, 1, "{}", v.stdout);
    let failed: Vec<&str> = v.stdout.lines().filter(|l| l.contains("FAILED")).collect();
    assert_eq!(failed.len(), 1, "{}", v.stdout);
    assert!(failed[0].contains("AES-GCM authentication failed") || failed[0].contains("RSA-OAEP"), "{}", failed[0]);

    // A document that mentions SealedSecret but is not YAML fails the check too.
    std::fs::remove_file(&victim.path).unwrap();
    assert_eq!(run(&["verify", "--key", &keys.new_key, &root_s]).code, 0);
    std::fs::write(root.join("apps/broken.yaml"), "kind: SealedSecret\nspec: [\n").unwrap();
    let v = run(&["verify", "--key", &keys.new_key, &root_s]);
    assert_eq!(v.code, 1);
    assert!(v.stderr.contains("broken.yaml document 1: not valid YAML"), "{}", v.stderr);

    // Usage errors: one line, exit 1 or 2, no panic.
    let v = run(&["verify", &root_s]);
    assert_eq!(v.code, 2, "{}", v.stderr);
    assert!(v.stderr.contains("--key FILE"), "{}", v.stderr);
    let v = run(&["verify", "--key", &keys.new_cert, &root_s]);
    assert_eq!(v.code, 1);
    assert!(v.stderr.contains("PRIVATE KEY"), "{}", v.stderr);
    let v = run(&["reseal", "--key", &keys.old_key, "--cert", &keys.old_key, &root_s]);
    assert_eq!(v.code, 1);
    assert!(v.stderr.contains("--cert"), "{}", v.stderr);
}

#[test]
fn keys_from_terraform_output_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.yaml"), sealed(old_key(), 1).to_yaml()).unwrap();
    let outputs = json!({"sealing_key": {"sensitive": true, "type": "string", "value": old_key().private_key_pem()},
                         "other": {"sensitive": false, "type": "string", "value": "x"}});
    let out_file = dir.path().join("outputs.json");
    std::fs::write(&out_file, outputs.to_string()).unwrap();
    let v = run(&["verify", "--state", out_file.to_str().unwrap(), dir.path().to_str().unwrap()]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    std::fs::write(&out_file, json!({"other": {"value": "x"}}).to_string()).unwrap();
    let v = run(&["verify", "--state", out_file.to_str().unwrap(), dir.path().to_str().unwrap()]);
    assert_eq!(v.code, 1);
    assert!(v.stderr.contains("no private key found in the outputs"), "{}", v.stderr);
}
