//! `scripts/release.sh`: the provider installs like any other, with the run's Terraform.
//!
//! * `--install` puts the package into the implied local mirror of a fresh user (a temporary
//!   HOME, no CLI configuration at all), and `terraform init` + `plan` of `examples/sealing` work
//!   in a network namespace without routes: nothing was looked up on the network. The same init
//!   without the install fails there trying to reach the registry, which shows the namespace is
//!   really offline.
//! * The release directory served over HTTPS on loopback (a throwaway CA that Terraform trusts
//!   through `SSL_CERT_FILE`) is a provider network mirror: `terraform init` with only a
//!   `network_mirror` block installs from it, the lock file's `h1:` is the one the release
//!   published, and a lock file holding the `zh:` hash from the release's SHA256SUMS installs
//!   while a wrong one is refused.
//!
//! The test packs the already built provider (`release.sh --binary`, from [`provider_bin`]), so
//! it never starts a release build.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use acceptance_tests::http::FileServer;
use acceptance_tests::{provider_bin, terraform_bin, terraform_version, PROVIDER_VERSION};
use base64::Engine as _;
use sha2::{Digest, Sha256};

const ADDRESS: &str = "registry.terraform.io/kvm/kvm";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A network namespace with only a loopback interface (no routes anywhere); deleted on drop.
struct Offline(String);

impl Offline {
    fn new(tag: &str) -> Offline {
        let name = format!("relnoroute-{}-{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ok(Command::new("ip").args(["netns", "add", &name]).output(), "ip netns add");
        ok(Command::new("ip").args(["netns", "exec", &name, "ip", "link", "set", "lo", "up"]).output(), "lo up");
        Offline(name)
    }

    /// `terraform <args>` in `dir`, inside this namespace, with exactly the environment `env`
    /// (plus PATH and CHECKPOINT_DISABLE=1): nothing of the caller's Terraform settings leaks in.
    fn terraform(&self, dir: &Path, env: &[(&str, &Path)], args: &[&str]) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0])
            .arg(terraform_bin())
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run terraform")
    }
}

impl Drop for Offline {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

#[track_caller]
fn ok(out: std::io::Result<Output>, what: &str) -> Output {
    let out = out.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what} failed:\n{}", text(&out));
    out
}

fn text(out: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Runs `scripts/release.sh --binary <provider> --out <out> <extra>` with HOME = `home`.
fn release(out: &Path, home: &Path, extra: &[&str]) -> String {
    let run = ok(
        Command::new("bash")
            .arg(repo().join("scripts/release.sh"))
            .arg("--binary")
            .arg(provider_bin())
            .arg("--out")
            .arg(out)
            .args(extra)
            .env("HOME", home)
            .env_remove("TF_CLI_CONFIG_FILE")
            .output(),
        "scripts/release.sh",
    );
    text(&run)
}

/// The provider's directory in a release or mirror.
fn provider_dir(root: &Path) -> PathBuf {
    root.join(ADDRESS)
}

fn zip_name() -> String {
    format!("terraform-provider-kvm_{PROVIDER_VERSION}_linux_amd64.zip")
}

/// `terraform-provider-kvm_<version>_SHA256SUMS` as file name → sha256 hex.
fn sha256sums(release: &Path) -> BTreeMap<String, String> {
    let path = provider_dir(release).join(format!("terraform-provider-kvm_{PROVIDER_VERSION}_SHA256SUMS"));
    fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| {
            let (sum, name) = l.split_once("  ").unwrap_or_else(|| panic!("malformed SHA256SUMS line {l:?}"));
            (name.to_string(), sum.to_string())
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The `h1:` hash Terraform computes for the unpacked package: Go's dirhash Hash1 over its one
/// file, the binary under its release name.
fn expected_h1() -> String {
    let binary = fs::read(provider_bin()).expect("read the provider binary");
    let summary = format!("{}  terraform-provider-kvm_v{PROVIDER_VERSION}\n", sha256_hex(&binary));
    format!("h1:{}", base64::engine::general_purpose::STANDARD.encode(Sha256::digest(summary.as_bytes())))
}

/// The `hashes` of kvm/kvm in a working directory's .terraform.lock.hcl, and its version.
fn locked(dir: &Path) -> (String, Vec<String>) {
    let lock = fs::read_to_string(dir.join(".terraform.lock.hcl")).expect("init wrote .terraform.lock.hcl");
    let block = lock
        .split(&format!("provider \"{ADDRESS}\" {{"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {ADDRESS} in the lock file:\n{lock}"));
    let block = &block[..block.find("\n}").expect("end of the provider block")];
    let version = block
        .lines()
        .find_map(|l| {
            l.trim().strip_prefix("version").map(|v| v.trim().trim_start_matches('=').trim().trim_matches('"'))
        })
        .expect("version in the lock")
        .to_string();
    let hashes = block
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("\"h1:") || l.starts_with("\"zh:"))
        .map(|l| l.trim_end_matches(',').trim_matches('"').to_string())
        .collect();
    (version, hashes)
}

/// A fresh copy of examples/sealing.
fn sealing_example(into: &Path) -> PathBuf {
    let dir = into.join("sealing");
    fs::create_dir_all(&dir).unwrap();
    for entry in fs::read_dir(repo().join("examples/sealing")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "tf") {
            fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

#[test]
fn release_layout_is_a_network_mirror_with_sha256sums() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("dist");
    release(&out, tmp.path(), &[]);
    let dir = provider_dir(&out);

    let index: serde_json::Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index, serde_json::json!({ "versions": { PROVIDER_VERSION: {} } }));
    let meta: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join(format!("{PROVIDER_VERSION}.json"))).unwrap()).unwrap();
    let archive = &meta["archives"]["linux_amd64"];
    assert_eq!(archive["url"], zip_name(), "{meta}");

    let zip = fs::read(dir.join(zip_name())).unwrap();
    let sums = sha256sums(&out);
    assert_eq!(sums[&zip_name()], sha256_hex(&zip), "SHA256SUMS holds the zip's sha256");
    let manifest_name = format!("terraform-provider-kvm_{PROVIDER_VERSION}_manifest.json");
    let manifest: serde_json::Value = serde_json::from_slice(&fs::read(dir.join(&manifest_name)).unwrap()).unwrap();
    assert_eq!(manifest["metadata"]["protocol_versions"], serde_json::json!(["6.0"]));
    assert_eq!(sums[&manifest_name], sha256_hex(&fs::read(dir.join(&manifest_name)).unwrap()));
    let hashes: Vec<&str> = archive["hashes"].as_array().unwrap().iter().map(|h| h.as_str().unwrap()).collect();
    assert_eq!(hashes, [expected_h1(), format!("zh:{}", sums[&zip_name()])], "{meta}");

    // Reproducible: the same binary packs into the same bytes.
    let again = tmp.path().join("again");
    release(&again, tmp.path(), &[]);
    assert_eq!(sha256sums(&again), sums, "a second pack of the same binary differs");
}

#[test]
fn install_into_implied_local_mirror_then_init_offline_without_cli_config() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let log = release(&tmp.path().join("dist"), &home, &["--install"]);
    let installed = home.join(".terraform.d/plugins").join(ADDRESS).join(zip_name());
    assert_eq!(
        fs::read(&installed).unwrap_or_else(|e| panic!("{}: {e}\n{log}", installed.display())),
        fs::read(provider_dir(&tmp.path().join("dist")).join(zip_name())).unwrap(),
        "the installed package is the release's zip"
    );

    let offline = Offline::new("install");
    let work = sealing_example(tmp.path());
    // A fresh user: HOME with nothing but the install, no TF_CLI_CONFIG_FILE, no ~/.terraformrc;
    // the system-wide XDG data directories pointed at an empty one so only HOME's mirror counts.
    let no_xdg = tmp.path().join("no-xdg");
    fs::create_dir_all(&no_xdg).unwrap();
    let env = [("HOME", home.as_path()), ("XDG_DATA_DIRS", no_xdg.as_path())];
    let init = offline.terraform(&work, &env, &["init", "-input=false", "-no-color"]);
    assert!(init.status.success(), "init from the implied local mirror failed:\n{}", text(&init));
    let (version, hashes) = locked(&work);
    assert_eq!(version, PROVIDER_VERSION);
    assert_eq!(hashes, [expected_h1()], "lock file of an install from the implied local mirror");
    eprintln!("[release] Terraform {} implied local mirror: lock hashes {hashes:?}", terraform_version());

    let plan = offline.terraform(&work, &env, &["plan", "-detailed-exitcode", "-input=false", "-no-color"]);
    assert_eq!(plan.status.code(), Some(2), "plan of examples/sealing:\n{}", text(&plan));
    assert!(String::from_utf8_lossy(&plan.stdout).contains("Plan: 2 to add"), "{}", text(&plan));

    // Control: the same user without the install goes to the registry, and cannot reach it here.
    let bare_home = tmp.path().join("bare-home");
    fs::create_dir_all(&bare_home).unwrap();
    let bare = sealing_example(&tmp.path().join("bare"));
    let env = [("HOME", bare_home.as_path()), ("XDG_DATA_DIRS", no_xdg.as_path())];
    let init = offline.terraform(&bare, &env, &["init", "-input=false", "-no-color"]);
    assert!(!init.status.success(), "init without the install succeeded offline?\n{}", text(&init));
    assert!(text(&init).contains("registry.terraform.io"), "expected a failed registry lookup:\n{}", text(&init));
}

#[test]
fn release_directory_served_over_https_is_a_network_mirror() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("dist");
    release(&out, tmp.path(), &[]);
    let sums = sha256sums(&out);
    let zh = format!("zh:{}", sums[&zip_name()]);

    // A throwaway CA and a certificate for 127.0.0.1 (an IP SAN: Terraform connects by IP).
    let tls = tmp.path().join("tls");
    fs::create_dir_all(&tls).unwrap();
    let openssl = |args: &str| ok(Command::new("openssl").args(args.split(' ')).current_dir(&tls).output(), "openssl");
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    openssl(&format!(
        "req -x509 {ec} -keyout ca.key -out ca.pem -days 1 -subj /CN=release-test-ca \
         -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign"
    ));
    openssl(&format!("req {ec} -keyout server.key -out server.csr -subj /CN=127.0.0.1"));
    fs::write(tls.join("ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
        .unwrap();
    openssl("x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1 -extfile ext");

    let offline = Offline::new("mirror");
    let server = FileServer::start_https_in(&offline.0, &out, &tls.join("server.pem"), &tls.join("server.key"));
    let cli_config = |name: &str, url: &str| {
        let path = tmp.path().join(name);
        fs::write(&path, format!("provider_installation {{\n  network_mirror {{\n    url = \"{url}\"\n  }}\n}}\n"))
            .unwrap();
        path
    };
    let rc = cli_config("terraformrc", &server.url(""));
    let home = tmp.path().join("home");
    let no_cert_dir = tmp.path().join("no-cert-dir");
    fs::create_dir_all(&home).unwrap();
    fs::create_dir_all(&no_cert_dir).unwrap();
    let ca = tls.join("ca.pem");
    // Go reads its trusted roots from SSL_CERT_FILE / SSL_CERT_DIR on Linux: only the test CA.
    let env = [
        ("HOME", home.as_path()),
        ("TF_CLI_CONFIG_FILE", rc.as_path()),
        ("SSL_CERT_FILE", ca.as_path()),
        ("SSL_CERT_DIR", no_cert_dir.as_path()),
    ];
    let init = |work: &Path| offline.terraform(work, &env, &["init", "-input=false", "-no-color"]);

    // 0. Why HTTPS: Terraform refuses a network mirror at an http: URL.
    let plain_rc = cli_config("plain-terraformrc", &server.url("").replacen("https:", "http:", 1));
    let work = sealing_example(&tmp.path().join("plain"));
    let run = offline.terraform(
        &work,
        &[("HOME", home.as_path()), ("TF_CLI_CONFIG_FILE", plain_rc.as_path())],
        &["init", "-input=false", "-no-color"],
    );
    assert!(!run.status.success(), "init accepted an http: network mirror:\n{}", text(&run));
    assert!(text(&run).contains("must be at an https: URL"), "expected the https requirement:\n{}", text(&run));

    // 1. No lock file yet: installed from the mirror, checked against the mirror's hashes.
    let work = sealing_example(&tmp.path().join("a"));
    let run = init(&work);
    assert!(run.status.success(), "init from the network mirror failed:\n{}", text(&run));
    assert!(text(&run).contains("verified checksum"), "{}", text(&run));
    let (version, hashes) = locked(&work);
    assert_eq!(version, PROVIDER_VERSION);
    // Terraform records a mirror's zh: hashes only when the package is signed (as the registry's
    // are); a network mirror's are not, so the lock holds the h1: it computed, which the release
    // published next to the zh: in <version>.json.
    assert_eq!(hashes, [expected_h1()], "lock file of an install from the network mirror");
    eprintln!("[release] Terraform {} network mirror: lock hashes {hashes:?}; SHA256SUMS {zh}", terraform_version());

    // 2. A lock file written from SHA256SUMS (what a team commits): the download matches it, and
    //    Terraform adds its h1: next to it.
    let work = sealing_example(&tmp.path().join("b"));
    let lock = |hash: &str| {
        format!("provider \"{ADDRESS}\" {{\n  version     = \"{PROVIDER_VERSION}\"\n  constraints = \"{PROVIDER_VERSION}\"\n  hashes = [\n    \"{hash}\",\n  ]\n}}\n")
    };
    fs::write(work.join(".terraform.lock.hcl"), lock(&zh)).unwrap();
    let run = init(&work);
    assert!(run.status.success(), "init with the SHA256SUMS hash locked failed:\n{}", text(&run));
    let (_, hashes) = locked(&work);
    assert_eq!(hashes, [expected_h1(), zh.clone()], "lock file after init with a zh: from SHA256SUMS");

    // 3. A lock file with another zh: refuses the package.
    let work = sealing_example(&tmp.path().join("c"));
    let wrong = format!("zh:{}", "0".repeat(64));
    fs::write(work.join(".terraform.lock.hcl"), lock(&wrong)).unwrap();
    let run = init(&work);
    assert!(!run.status.success(), "init accepted a package that does not match the lock:\n{}", text(&run));
    assert!(text(&run).contains("doesn't match any of the checksums"), "{}", text(&run));
}
