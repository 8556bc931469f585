//! Behaviour only modern Terraform has, through the real binary: `import` blocks with
//! `plan -generate-config-out` for every resource type (the generated configuration applies and
//! then plans clean), `moved` blocks between addresses and into a module, `check` blocks and
//! postconditions reading the provider's attributes, and `terraform test` on `examples/sealing`.
//!
//! Every test asks [`terraform_at_least`] first: under `scripts/test.sh` they run in the
//! current-Terraform half of the matrix and print a `SKIPPED: …` line in the 1.0.3 half (the
//! `terraform test` one still applies the example there, to show that 1.0.3 ignores the suite).
//!
//! No guest boots here: the imported domain is defined but not running, and every other object
//! is a pool, a volume, a network or pure computation.

use std::path::Path;

use acceptance_tests::libvirt::{self, assert_nothing_leaked, virsh_ok, TestPrefix};
use acceptance_tests::{sealed_secrets_testdata, terraform_at_least, Run, Workspace, REQUIRED_PROVIDERS};

/// The provider block for the test libvirtd, plus `body`.
fn config(body: &str) -> String {
    format!("{REQUIRED_PROVIDERS}\nprovider \"kvm\" {{\n  uri = \"{}\"\n}}\n{body}", libvirt::URI)
}

/// A /24 per test and process, apart from the other test files' ranges (10.100-149, the labs' 10.120-133).
fn subnet(offset: u32) -> String {
    format!("10.{}.{}", 180 + offset, std::process::id() % 250)
}

/// `terraform plan -generate-config-out=generated.tf` (with -detailed-exitcode); returns the run
/// and the generated file.
fn plan_generating_config(ws: &Workspace) -> (Run, String) {
    let run = ws.run(&["plan", "-detailed-exitcode", "-input=false", "-no-color", "-generate-config-out=generated.tf"]);
    let generated = std::fs::read_to_string(ws.path().join("generated.tf"))
        .unwrap_or_else(|e| panic!("no generated.tf ({e}):\n{}", run.all()));
    // Kept in the test log: what Terraform generated is the point of the test.
    eprintln!("generated.tf:\n{generated}");
    (run, generated)
}

/// `generated` with the alignment padding before each `=` taken out (`  name  = x` → `  name = x`),
/// so assertions and hand edits do not depend on the longest attribute name in a block.
fn unaligned(generated: &str) -> String {
    generated
        .lines()
        .map(|line| match line.split_once(" = ") {
            Some((name, value)) if name.starts_with("  ") => format!("{} = {value}", name.trim_end()),
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Terraform's wrapped diagnostics, with the box drawing and line breaks taken out.
fn words(text: &str) -> String {
    text.split_whitespace().filter(|w| *w != "│" && *w != "╷" && *w != "╵").collect::<Vec<_>>().join(" ")
}

fn uuid_of(kind: &str, name: &str) -> String {
    let info = virsh_ok(&[kind, name]);
    info.lines()
        .find_map(|l| l.strip_prefix("UUID:").map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no UUID in {info}"))
}

#[test]
fn import_blocks_generate_applyable_config_for_pool_volume_network_and_instance() {
    if !terraform_at_least(1, 5, "import blocks and plan -generate-config-out") || !libvirt::require_libvirt() {
        return;
    }
    let prefix = TestPrefix::new("modern_import_libvirt");
    let (pool, net, dom) = (prefix.name("pool"), prefix.name("net"), prefix.name("vm"));
    let pool_dir = format!("/var/lib/libvirt/{pool}");
    let ip = subnet(0);
    let scratch = tempfile::tempdir().unwrap();

    // Made with virsh, as objects that exist before Terraform knows them.
    virsh_ok(&["pool-define-as", &pool, "dir", "--target", &pool_dir]);
    virsh_ok(&["pool-build", &pool]);
    virsh_ok(&["pool-start", &pool]);
    virsh_ok(&["pool-autostart", &pool]);
    virsh_ok(&["vol-create-as", &pool, "disk.qcow2", "16M", "--format", "qcow2"]);
    let net_xml = scratch.path().join("net.xml");
    std::fs::write(
        &net_xml,
        format!(
            "<network><name>{net}</name><forward mode='nat'/>\
             <ip address='{ip}.1' netmask='255.255.255.0'><dhcp><range start='{ip}.100' end='{ip}.200'/></dhcp></ip>\
             </network>"
        ),
    )
    .unwrap();
    virsh_ok(&["net-define", net_xml.to_str().unwrap()]);
    virsh_ok(&["net-start", &net]);
    virsh_ok(&["net-autostart", &net]);
    // Defined, never started: no guest boots in this test.
    let dom_xml = scratch.path().join("dom.xml");
    std::fs::write(
        &dom_xml,
        format!(
            "<domain type='qemu'><name>{dom}</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='q35'>hvm</type></os>\
             <devices>\
             <disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>\
             <source pool='{pool}' volume='disk.qcow2'/><target dev='vda' bus='virtio'/></disk>\
             <interface type='network'><source network='{net}'/><model type='virtio'/></interface>\
             </devices></domain>"
        ),
    )
    .unwrap();
    virsh_ok(&["define", dom_xml.to_str().unwrap()]);
    let uuids = [uuid_of("pool-info", &pool), uuid_of("net-info", &net), uuid_of("dominfo", &dom)];

    let ws = Workspace::new(&config(&format!(
        r#"
import {{
  to = kvm_pool.p
  id = "{pool}"
}}
import {{
  to = kvm_volume.v
  id = "{pool}/disk.qcow2"
}}
import {{
  to = kvm_network.n
  id = "{net}"
}}
import {{
  to = kvm_instance.i
  id = "{dom}"
}}
"#
    )));
    ws.init().ok();
    let (plan, generated) = plan_generating_config(&ws);
    assert_eq!(plan.code, 2, "{}", plan.all());
    for resource in ["kvm_pool\" \"p\"", "kvm_volume\" \"v\"", "kvm_network\" \"n\"", "kvm_instance\" \"i\""] {
        assert!(generated.contains(&format!("resource \"{resource}")), "{resource} missing from:\n{generated}");
    }
    assert!(plan.stdout.contains("Plan: 4 to import, 0 to add, 0 to change, 0 to destroy."), "{}", plan.stdout);
    assert!(!plan.stdout.contains("must be replaced"), "{}", plan.stdout);

    // The generated configuration, as generated, applies; the objects are the same ones.
    ws.apply(&[]).ok();
    let plan = ws.plan(&[]);
    assert_eq!(plan.code, 0, "the generated configuration plans clean after the apply:\n{}", plan.all());
    assert_eq!(ws.resource_values("kvm_pool.p")["id"], uuids[0].as_str());
    assert_eq!(ws.resource_values("kvm_network.n")["id"], uuids[1].as_str());
    assert_eq!(ws.resource_values("kvm_instance.i")["id"], uuids[2].as_str());
    assert_eq!(ws.resource_values("kvm_instance.i")["running"], false);
    assert_eq!(virsh_ok(&["domstate", &dom]).trim(), "shut off", "the imported domain was not started");

    // Terraform owns them now: destroy removes them (dependents first: the generated
    // configuration names the pool and volume literally, so Terraform sees no order).
    ws.run(&["destroy", "-auto-approve", "-input=false", "-no-color", "-target=kvm_instance.i"]).ok();
    ws.run(&["destroy", "-auto-approve", "-input=false", "-no-color", "-target=kvm_volume.v"]).ok();
    ws.destroy().ok();
    assert_nothing_leaked(prefix.as_str());
}

/// A SealedSecret manifest sealed to the test vectors' certificate, as a file in `dir`.
fn sealed_manifest(dir: &Path) -> std::path::PathBuf {
    use kvm_sealing::{seal_secret, Scope, SealingCertificate, SecretSpec};
    let cert = std::fs::read_to_string(sealed_secrets_testdata().join("sealing-cert.pem")).unwrap();
    let values = [("password".to_string(), b"imported-7c2e".to_vec())].into_iter().collect();
    let none = Default::default();
    let spec = SecretSpec {
        namespace: "payments",
        name: "db-credentials",
        scope: Scope::NamespaceWide,
        secret_type: "Opaque",
        values: &values,
        labels: &none,
        annotations: &none,
    };
    let sealed = seal_secret(&SealingCertificate::from_pem(&cert).unwrap(), &spec).unwrap();
    let path = dir.join("db-credentials.yaml");
    std::fs::write(&path, sealed.to_yaml()).unwrap();
    path
}

#[test]
fn import_blocks_generate_config_for_sealing_key_sealed_secret_and_cluster_pki() {
    if !terraform_at_least(1, 5, "import blocks and plan -generate-config-out") {
        return;
    }
    let testdata = sealed_secrets_testdata();
    let key = std::fs::read_to_string(testdata.join("sealing-key.pem")).unwrap();
    let cert = std::fs::read_to_string(testdata.join("sealing-cert.pem")).unwrap();
    let ws = Workspace::new("");
    let bundle = ws.write_file("sealing-key-backup.pem", &format!("{key}{cert}"));
    let manifest = sealed_manifest(ws.path());
    // A cluster built with `kvm-gitops install`: its state directory holds the PKI and token.
    let cli_dir = ws.path().join("demo.kvm-gitops");
    let cli_state = kvm_bootstrap::k3s::state_dir::ClusterState::open_or_create(&cli_dir, "demo").unwrap();
    ws.write_main(&format!(
        r#"{REQUIRED_PROVIDERS}
import {{
  to = kvm_sealing_key.k
  id = "{bundle}"
}}
import {{
  to = kvm_sealed_secret.s
  id = "{manifest}"
}}
import {{
  to = kvm_cluster_pki.pki
  id = "{cli_dir}"
}}
"#,
        bundle = bundle.display(),
        manifest = manifest.display(),
        cli_dir = cli_dir.display()
    ));
    ws.init().ok();
    let (plan, generated) = plan_generating_config(&ws);
    // Terraform cannot write what the state does not hold or what is sensitive: the sealed
    // secret's certificate (not in a SealedSecret) and values (sealed, unreadable). The key's
    // private half is sensitive too, but its certificate names it (see kvm_sealing_key.rs).
    assert_eq!(plan.code, 1, "{}", plan.all());
    let errors = words(&plan.stderr);
    assert!(errors.contains("Missing required argument"), "{}", plan.all());
    assert!(!errors.contains("kvm_sealing_key.k") && !errors.contains("kvm_cluster_pki.pki"), "{}", plan.all());
    let generated = unaligned(&generated);
    assert!(generated.contains("  private_key_pem = null # sensitive\n"), "{generated}");
    assert!(generated.contains("  values = null # sensitive\n"), "{generated}");
    assert!(generated.contains("  certificate_pem = null\n"), "{generated}");
    assert!(generated.contains("  scope = \"namespace-wide\"\n"), "{generated}");
    assert!(generated.contains("  cluster_name = \"demo\"\n"), "{generated}");

    // The hand edit the documentation asks for: the certificate and the values.
    let edited = generated
        .replace("  certificate_pem = null\n", "  certificate_pem = kvm_sealing_key.k.certificate_pem\n")
        .replace("  values = null # sensitive\n", "  values = { password = \"imported-7c2e\" }\n");
    ws.write_file("generated.tf", &edited);
    let plan = ws.plan(&[]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    // The key and the PKI import as they are; the secret is sealed afresh, since its values
    // cannot be read back from the ciphertext (docs/resources/sealed_secret.md, Import).
    assert!(plan.stdout.contains("Plan: 3 to import, 1 to add, 0 to change, 1 to destroy."), "{}", plan.stdout);
    assert!(plan.stdout.contains("kvm_sealed_secret.s must be replaced"), "{}", plan.stdout);
    ws.apply(&[]).ok();
    let plan = ws.plan(&[]);
    assert_eq!(plan.code, 0, "the edited generated configuration plans clean after the apply:\n{}", plan.all());

    // The same key and CAs; the new manifest unseals with the imported key.
    let pair = kvm_sealing::SealingKey::from_pem(&key, &cert).unwrap();
    assert_eq!(ws.resource_values("kvm_sealing_key.k")["fingerprint"], pair.certificate().fingerprint().as_str());
    assert_eq!(ws.resource_values("kvm_cluster_pki.pki")["id"], cli_state.pki.server_ca_hash().as_str());
    let manifest = ws.resource_values("kvm_sealed_secret.s")["manifest"].as_str().unwrap().to_string();
    let unsealed = kvm_sealing::SealedSecret::from_yaml(&manifest).unwrap().unseal(&pair).unwrap();
    assert_eq!(unsealed["password"], b"imported-7c2e");
    ws.destroy().ok();
}

#[test]
fn import_block_of_a_gitops_cluster_generates_config_needing_its_nodes() {
    // kvm_gitops_cluster's generated configuration is checked, not applied: import records only
    // the cluster's name, so the configuration needs the PKI, token, sealing keys, servers and
    // repository, and its apply re-runs the bootstrap over SSH, which needs a booted node with
    // k3s installable (see gitops_e2e.rs). That costs a guest boot, so it is left out here.
    if !terraform_at_least(1, 5, "import blocks and plan -generate-config-out") {
        return;
    }
    let ws =
        Workspace::new(&format!("{REQUIRED_PROVIDERS}\nimport {{\n  to = kvm_gitops_cluster.c\n  id = \"demo\"\n}}\n"));
    ws.init().ok();
    let (plan, generated) = plan_generating_config(&ws);
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(generated.contains("resource \"kvm_gitops_cluster\" \"c\""), "{generated}");
    assert!(unaligned(&generated).contains("  name = \"demo\"\n"), "{generated}");
    for sensitive in ["pki", "token", "sealing_keys"] {
        assert!(
            generated.lines().any(|l| l.trim_start().starts_with(sensitive) && l.ends_with("= null # sensitive")),
            "{sensitive} in:\n{generated}"
        );
    }
    let errors = words(&plan.stderr);
    assert!(
        errors.contains("Missing required argument") || errors.contains("Insufficient server blocks"),
        "{}",
        plan.all()
    );
}

/// The module the moved test moves its objects into: a network and a sealing key.
const MODULE: &str = r#"
terraform {
  required_providers {
    kvm = {
      source = "kvm/kvm"
    }
  }
}
variable "name" {
  type = string
}
variable "cidr" {
  type = string
}
resource "kvm_network" "n" {
  name = var.name
  cidr = var.cidr
}
resource "kvm_sealing_key" "k" {}
output "network_id" {
  value = kvm_network.n.id
}
output "fingerprint" {
  value = kvm_sealing_key.k.fingerprint
}
"#;

#[test]
fn moved_blocks_keep_the_network_and_the_sealing_key() {
    if !terraform_at_least(1, 1, "moved blocks") || !libvirt::require_libvirt() {
        return;
    }
    let prefix = TestPrefix::new("modern_moved");
    let name = prefix.name("net");
    let cidr = format!("{}.0/24", subnet(1));
    let network = |label: &str| {
        format!("resource \"kvm_network\" \"{label}\" {{\n  name = \"{name}\"\n  cidr = \"{cidr}\"\n}}\n")
    };
    let ws = Workspace::new(&config(&format!("{}resource \"kvm_sealing_key\" \"a\" {{}}\n", network("a"))));
    ws.init().ok();
    ws.apply(&[]).ok();
    let uuid = uuid_of("net-info", &name);
    let fingerprint = ws.resource_values("kvm_sealing_key.a")["fingerprint"].as_str().unwrap().to_string();
    assert_eq!(ws.resource_values("kvm_network.a")["id"], uuid.as_str());

    // Renamed in the configuration, with moved blocks: the plan moves, creates and destroys nothing.
    let renamed = format!(
        "{}resource \"kvm_sealing_key\" \"b\" {{}}\n\
         moved {{\n  from = kvm_network.a\n  to   = kvm_network.b\n}}\n\
         moved {{\n  from = kvm_sealing_key.a\n  to   = kvm_sealing_key.b\n}}\n",
        network("b")
    );
    ws.write_main(&config(&renamed));
    let plan = ws.plan(&[]);
    assert_ne!(plan.code, 1, "{}", plan.all());
    assert!(plan.stdout.contains("# kvm_network.a has moved to kvm_network.b"), "{}", plan.stdout);
    assert!(plan.stdout.contains("# kvm_sealing_key.a has moved to kvm_sealing_key.b"), "{}", plan.stdout);
    assert!(plan.stdout.contains("0 to add, 0 to change, 0 to destroy"), "{}", plan.stdout);
    ws.apply(&[]).ok();
    assert_eq!(ws.state_list(), vec!["kvm_network.b", "kvm_sealing_key.b"]);
    assert_eq!(uuid_of("net-info", &name), uuid, "the same network");
    assert_eq!(ws.resource_values("kvm_sealing_key.b")["fingerprint"], fingerprint.as_str(), "the same key");
    let plan = ws.plan(&[]);
    assert_eq!(plan.code, 0, "{}", plan.all());

    // Into a module; the earlier moved blocks stay, as they would in a real configuration, and
    // chain with the new ones.
    std::fs::create_dir(ws.path().join("m")).unwrap();
    std::fs::write(ws.path().join("m/main.tf"), MODULE).unwrap();
    ws.write_main(&config(&format!(
        r#"module "m" {{
  source = "./m"
  name   = "{name}"
  cidr   = "{cidr}"
}}
moved {{
  from = kvm_network.a
  to   = kvm_network.b
}}
moved {{
  from = kvm_sealing_key.a
  to   = kvm_sealing_key.b
}}
moved {{
  from = kvm_network.b
  to   = module.m.kvm_network.n
}}
moved {{
  from = kvm_sealing_key.b
  to   = module.m.kvm_sealing_key.k
}}
output "network_id" {{
  value = module.m.network_id
}}
output "fingerprint" {{
  value = module.m.fingerprint
}}
"#
    )));
    ws.init().ok();
    let plan = ws.plan(&[]);
    assert_ne!(plan.code, 1, "{}", plan.all());
    assert!(plan.stdout.contains("# kvm_network.b has moved to module.m.kvm_network.n"), "{}", plan.stdout);
    assert!(plan.stdout.contains("# kvm_sealing_key.b has moved to module.m.kvm_sealing_key.k"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("will be created") && !plan.stdout.contains("will be destroyed"), "{}", plan.stdout);
    ws.apply(&[]).ok();
    assert_eq!(ws.state_list(), vec!["module.m.kvm_network.n", "module.m.kvm_sealing_key.k"]);
    let outputs = ws.outputs();
    assert_eq!(outputs["network_id"]["value"], uuid.as_str(), "the same network, now in the module");
    assert_eq!(outputs["fingerprint"]["value"], fingerprint.as_str(), "the same key, now in the module");
    assert_eq!(uuid_of("net-info", &name), uuid);
    let plan = ws.plan(&[]);
    assert_eq!(plan.code, 0, "{}", plan.all());

    ws.destroy().ok();
    assert_nothing_leaked(prefix.as_str());
}

#[test]
fn check_blocks_warn_and_postconditions_fail_the_apply() {
    if !terraform_at_least(1, 5, "check blocks") || !libvirt::require_libvirt() {
        return;
    }
    let prefix = TestPrefix::new("modern_checks");
    let name = prefix.name("net");
    let ws = Workspace::new(&config(&format!(
        r#"
resource "kvm_network" "x" {{
  name = "{name}"
  cidr = "{net}.0/24"
}}
resource "kvm_sealing_key" "k" {{}}

check "network_has_a_bridge" {{
  assert {{
    condition     = startswith(kvm_network.x.bridge, "virbr") && kvm_network.x.gateway == "{net}.1"
    error_message = "The network has no libvirt bridge or not the expected gateway."
  }}
}}
check "certificate_is_pem" {{
  assert {{
    condition     = startswith(kvm_sealing_key.k.certificate_pem, "-----BEGIN CERTIFICATE-----")
    error_message = "The sealing certificate is not PEM."
  }}
}}
check "certificate_outlives_the_century" {{
  assert {{
    condition     = timecmp(kvm_sealing_key.k.not_after, "2100-01-01T00:00:00Z") > 0
    error_message = "check-marker-3e1f: the sealing certificate expires before 2100."
  }}
}}
"#,
        net = subnet(2)
    )));
    ws.init().ok();
    // A check assertion that fails is a warning: the apply goes through.
    let run = ws.apply(&[]).ok();
    let text = words(&run.all());
    assert!(text.contains("Warning: Check block assertion failed"), "{}", run.all());
    assert!(text.contains("check-marker-3e1f: the sealing certificate expires before 2100."), "{}", run.all());
    assert!(!text.contains("The sealing certificate is not PEM"), "{}", run.all());
    assert!(!text.contains("no libvirt bridge"), "{}", run.all());
    assert!(run.stdout.contains("Apply complete! Resources: 2 added"), "{}", run.stdout);
    // Checks run again at every plan, against the state: same warning, nothing to do.
    let plan = ws.plan(&[]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(words(&plan.all()).contains("check-marker-3e1f"), "{}", plan.all());

    // A postcondition on a computed attribute is checked once the value is known, at apply, and
    // fails it with the configuration's message.
    let postcondition = |days: u32| {
        format!(
            r#"
resource "kvm_sealing_key" "long_lived" {{
  validity_days = {days}
  lifecycle {{
    postcondition {{
      condition     = timecmp(self.not_after, timeadd(plantimestamp(), "{hours}h")) >= 0
      error_message = "postcondition-marker-8a2d: the certificate must stay valid for 20 years."
    }}
  }}
}}
"#,
            hours = 20 * 365 * 24
        )
    };
    std::fs::write(ws.path().join("long_lived.tf"), postcondition(3650)).unwrap();
    let plan = ws.plan(&[]);
    assert_eq!(plan.code, 2, "unknown at plan time, the postcondition waits for the apply:\n{}", plan.all());
    let run = ws.apply(&[]).failed();
    let text = words(&run.all());
    assert!(text.contains("Resource postcondition failed"), "{}", run.all());
    assert!(text.contains("postcondition-marker-8a2d: the certificate must stay valid for 20 years."), "{}", run.all());
    // With a long enough validity it holds (the failed key is replaced).
    std::fs::write(ws.path().join("long_lived.tf"), postcondition(7400)).unwrap();
    let run = ws.apply(&[]).ok();
    assert!(!words(&run.all()).contains("postcondition-marker-8a2d"), "{}", run.all());
    let plan = ws.plan(&[]);
    assert_eq!(plan.code, 0, "{}", plan.all());

    ws.destroy().ok();
    assert_nothing_leaked(prefix.as_str());
}

/// Copies `examples/<name>` (with its `tests/`) into a new workspace.
fn example_workspace(name: &str) -> Workspace {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name);
    let ws = Workspace::new("");
    copy_dir(&src, ws.path());
    ws
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn examples_sealing_passes_its_terraform_test_suite_and_old_terraform_ignores_it() {
    // Every Terraform applies the example with its tests/ directory in place: 1.0.3 reads only
    // the *.tf files, so the suite changes nothing for it.
    let ws = example_workspace("sealing");
    assert!(ws.path().join("tests/sealing.tftest.hcl").exists());
    ws.init().ok();
    ws.run(&["validate", "-no-color"]).ok();
    ws.apply(&[]).ok();
    assert!(ws.outputs()["manifest"]["value"].as_str().unwrap().contains("kind: SealedSecret"));
    assert_eq!(ws.plan(&[]).code, 0);
    ws.destroy().ok();

    if !terraform_at_least(1, 6, "terraform test") {
        return;
    }
    let ws = example_workspace("sealing");
    ws.init().ok();
    let run = ws.run(&["test", "-no-color"]).ok();
    for name in [
        "plan_names_the_secret",
        "apply_seals_with_the_generated_key",
        "namespace_wide_scope",
        "an_unknown_scope_is_refused",
    ] {
        assert!(run.stdout.contains(&format!("run \"{name}\"... pass")), "{name}:\n{}", run.all());
    }
    assert!(run.stdout.contains("Success! 4 passed, 0 failed."), "{}", run.all());
    // The suite left nothing behind: terraform test destroys what its runs applied.
    assert!(!ws.path().join("terraform.tfstate").exists() || ws.state_list().is_empty());
}
