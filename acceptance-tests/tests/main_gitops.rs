//! `bash scripts/main.sh gitops` where there is neither internet nor k3s air-gap artifacts (as in
//! CI): the path that must stop after the machines with one clear line, run for real.
//!
//! main.sh builds the provider and starts the environment, then runs
//! `scripts/gitops-quickstart.sh`; this test runs that same script with the test run's provider,
//! Terraform, namespace and image (`acceptance_tests::quickstart`), under a test-unique name and
//! /24, with one server of 1 GiB under TCG. It checks:
//!
//! * the server VM runs and answers SSH with its pinned host key;
//! * the demo repository is served over Git's smart HTTP on the network's gateway address inside
//!   the namespace: `git ls-remote` lists the demo commit, a clone holds the app and a SealedSecret
//!   that the `kvm_sealing_key` in the state unseals, and the guest itself reaches the server;
//! * the output ends with exactly one `gitops: stopped after the VMs: …` line naming what is
//!   needed, and the exit code is 0;
//! * running it again changes nothing (no Terraform change, same commit, same Git server), also
//!   with `KVM_GITOPS_ONLINE=1`, whose line then says the namespace has no route out;
//! * destroy leaves no domain, volume, pool or network, and no Git server.
//!
//! The path with artifacts (k3s, Argo CD syncing, the Secret unsealed) is
//! `main_gitops_syncs_the_demo_repository` in gitops_e2e.rs, gated by `KVM_GITOPS_ARTIFACTS`.

use std::process::Command;

use acceptance_tests::lab::ssh_ok;
use acceptance_tests::libvirt::{self, netns_command, virsh_ok};
use acceptance_tests::quickstart::GitopsQuickstart;
use kvm_sealing::{SealedSecret, SealingKey};

#[test]
fn gitops_without_internet_or_artifacts_stops_after_the_vms_with_one_line() {
    if !libvirt::require_libvirt() {
        return;
    }
    let mut qs = GitopsQuickstart::new("main-gitops", 11);
    qs.set_env("KVM_GITOPS_SERVER_MEMORY", "1GiB");

    let up = qs.run("up");
    assert_eq!(up.code, 0, "gitops-quickstart.sh up failed");
    let stopped: Vec<&str> = up.stdout.lines().filter(|l| l.contains("stopped after the VMs")).collect();
    assert_eq!(stopped.len(), 1, "one line says why it stopped: {stopped:?}");
    let last = up.stdout.lines().last().unwrap_or_default();
    assert_eq!(last, stopped[0], "the line is the last one");
    assert!(
        last.starts_with("gitops: stopped after the VMs: k3s needs internet (KVM_GITOPS_ONLINE=1")
            && last.contains("air-gap artifacts (KVM_GITOPS_ARTIFACTS=DIR"),
        "{last}"
    );

    // The machine.
    let server = qs.prefix.name("server-1");
    assert_eq!(virsh_ok(&["domstate", &server]).trim(), "running");
    let known_hosts = std::fs::read_to_string(qs.work().join("known_hosts")).unwrap();
    let ip = format!("{}.10", qs.net);
    assert_eq!(ssh_ok(qs.work(), &ip, known_hosts.trim(), "echo up"), "up");

    // The repository, over smart HTTP on the gateway, from inside the namespace.
    let url = qs.repo_url();
    let head = git(&["-C", qs.work().join("repo").to_str().unwrap(), "rev-parse", "HEAD"]);
    let refs = String::from_utf8(
        netns_command("git").args(["ls-remote", &url]).env("GIT_TERMINAL_PROMPT", "0").output().unwrap().stdout,
    )
    .unwrap();
    assert!(refs.contains(&format!("{head}\trefs/heads/main")), "ls-remote {url}:\n{refs}");
    assert!(up.stdout.contains(&format!("demo repository {url}")), "the script names the URL");
    let clone = qs.work().join("clone");
    let out = netns_command("git")
        .args(["-c", "protocol.version=2", "clone", "-q", &url])
        .arg(&clone)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(out.status.success(), "clone: {}", String::from_utf8_lossy(&out.stderr));
    let app = std::fs::read_to_string(clone.join("apps/app.yaml")).unwrap();
    assert!(app.contains("kind: ConfigMap") && app.contains("namespace: demo"), "{app}");
    // Sealed with the kvm_sealing_key Terraform keeps in its state.
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(qs.terraform_dir().join("terraform.tfstate")).unwrap()).unwrap();
    let key = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "kvm_sealing_key")
        .map(|r| &r["instances"][0]["attributes"])
        .expect("kvm_sealing_key in the state");
    let key = SealingKey::from_pem(key["private_key_pem"].as_str().unwrap(), key["certificate_pem"].as_str().unwrap())
        .unwrap();
    let sealed =
        SealedSecret::from_yaml(&std::fs::read_to_string(clone.join("apps/sealed-secret.yaml")).unwrap()).unwrap();
    assert_eq!(sealed.unseal(&key).unwrap()["password"], b"gitops-quickstart-demo");
    // The guest reaches it too (what Argo CD on the node would do first), with the image's python3.
    let fetch = format!(
        "python3 -c \"import urllib.request as u; print(u.urlopen('{url}/info/refs?service=git-upload-pack', timeout=20).read()[:80])\""
    );
    let answer = ssh_ok(qs.work(), &ip, known_hosts.trim(), &fetch);
    assert!(answer.contains("service=git-upload-pack"), "{answer}");

    // Again, this time opting in to the online install: nothing changes, and since the namespace
    // has no route out (the decision reads the routing table, it sends nothing), the line says
    // why the opt-in was not enough.
    let ns = libvirt::netns().unwrap();
    let route = Command::new("ip").args(["-n", &ns, "route", "show", "default"]).output().unwrap();
    let uplink = !String::from_utf8_lossy(&route.stdout).trim().is_empty();
    if !uplink {
        qs.set_env("KVM_GITOPS_ONLINE", "1");
    }
    let pid = qs.server_pid().expect("the Git server's pid file");
    let again = qs.run("up");
    assert_eq!(again.code, 0);
    assert!(again.stdout.contains("0 added, 0 changed, 0 destroyed"), "a second run changes nothing");
    assert_eq!(git(&["-C", qs.work().join("repo").to_str().unwrap(), "rev-parse", "HEAD"]), head);
    assert_eq!(qs.server_pid(), Some(pid), "the same Git server goes on serving");
    let again_last = again.stdout.lines().last().unwrap_or_default();
    if uplink {
        assert_eq!(again_last, last);
    } else {
        assert_eq!(
            again_last,
            last.replace(
                "stopped after the VMs: ",
                &format!(
                    "stopped after the VMs: KVM_GITOPS_ONLINE=1 is set but network namespace {ns} has no default \
                     route, so the NAT network has no uplink; "
                )
            )
        );
    }

    // Destroy: nothing left, the Git server stopped.
    qs.destroy();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "the Git server (pid {pid}) is gone");
    let out = netns_command("git").args(["ls-remote", &url]).env("GIT_TERMINAL_PROMPT", "0").output().unwrap();
    assert!(!out.status.success(), "nothing serves {url} any more");
    let domains = virsh_ok(&["list", "--all", "--name"]);
    assert!(!domains.contains(qs.prefix.as_str()), "{domains}");
    libvirt::assert_nothing_leaked(qs.prefix.as_str());
}

fn git(args: &[&str]) -> String {
    let out = Command::new("git").args(args).output().expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
