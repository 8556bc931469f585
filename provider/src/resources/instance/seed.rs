//! The cloud-init NoCloud seed of an instance: the user's documents plus a part of ours that
//! installs the SSH host key Terraform generated and the authorized keys.

use cloud_init_seed::{meta_data, Seed};
use kvm_bootstrap::hostkey::HostKey;
use serde_json::json;

use super::spec::CloudInitSpec;

/// MIME boundary between the user's part and ours; long and odd enough not to occur in either.
const BOUNDARY: &str = "==kvm-instance-seed-7f3c9a1e5b==";

/// Builds the seed for `instance` (its UUID is the cloud-init instance id, so a recreated
/// instance runs cloud-init again).
pub fn build(spec: &CloudInitSpec, instance: &str, uuid: &str, host_key: &HostKey) -> Seed {
    let ours = our_cloud_config(spec, host_key);
    let user_data = match spec.user_data.as_deref().filter(|u| !u.trim().is_empty()) {
        None => ours,
        Some(theirs) => multipart(theirs, &ours),
    };
    let hostname = spec.hostname.clone().unwrap_or_else(|| default_hostname(instance));
    Seed {
        user_data,
        meta_data: spec.meta_data.clone().unwrap_or_else(|| meta_data(uuid, &hostname)),
        network_config: spec.network_config.clone(),
    }
}

/// The hostname an instance gets by default: its name, with every character a hostname may not
/// have (RFC 1123: letters, digits, `-`, `.`) replaced by `-`, since libvirt names may contain
/// `_` and the guest would refuse them.
pub fn default_hostname(instance: &str) -> String {
    instance.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' }).collect()
}

/// Our `#cloud-config`. JSON is valid YAML, and serde_json escapes every string correctly.
fn our_cloud_config(spec: &CloudInitSpec, host_key: &HostKey) -> String {
    let mut doc = json!({
        // The user's settings win; lists (authorized keys) are appended to theirs.
        "merge_how": [
            {"name": "list", "settings": ["append"]},
            {"name": "dict", "settings": ["no_replace", "recurse_list"]},
        ],
        "ssh_keys": {
            "ed25519_private": host_key.to_openssh("kvm_instance"),
            "ed25519_public": host_key.public_line("kvm_instance"),
        },
        // Only the pinned key: no other host key types for sshd to offer instead. cloud-init
        // generates none when ssh_keys is given; this says so too, for images whose cloud-init
        // does (an empty list would be simpler, but cloud-init 22.4's schema refuses it and logs
        // "Invalid cloud-config provided" on every boot).
        "ssh_genkeytypes": ["ed25519"],
        "ssh_deletekeys": true,
    });
    if !spec.ssh_authorized_keys.is_empty() {
        doc["ssh_authorized_keys"] = json!(spec.ssh_authorized_keys);
    }
    format!("#cloud-config\n{}\n", serde_json::to_string_pretty(&doc).unwrap_or_default())
}

/// The MIME content type cloud-init expects for a user-data part, from its first line.
fn content_type(part: &str) -> &'static str {
    let first = part.lines().next().unwrap_or_default().trim();
    let prefixes: [(&str, &str); 6] = [
        ("#cloud-config", "text/cloud-config"),
        ("#!", "text/x-shellscript"),
        ("#include", "text/x-include-url"),
        ("#cloud-boothook", "text/cloud-boothook"),
        ("## template: jinja", "text/jinja2"),
        ("#part-handler", "text/part-handler"),
    ];
    prefixes.iter().find(|(p, _)| first.starts_with(p)).map(|(_, t)| *t).unwrap_or("text/x-not-multipart")
}

/// The user's user-data and ours as one MIME multipart document.
fn multipart(theirs: &str, ours: &str) -> String {
    let mut out = format!("Content-Type: multipart/mixed; boundary=\"{BOUNDARY}\"\nMIME-Version: 1.0\n\n");
    let is_mime = theirs.lines().next().is_some_and(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("content-type:") || l.starts_with("mime-version:")
    });
    out.push_str(&format!("--{BOUNDARY}\n"));
    if is_mime {
        // Already a MIME entity (usually a multipart of its own): its headers are the part's.
        out.push_str(theirs);
    } else {
        out.push_str(&format!(
            "Content-Type: {}; charset=\"utf-8\"\nMIME-Version: 1.0\nContent-Disposition: attachment; filename=\"user-data\"\n\n{theirs}",
            content_type(theirs)
        ));
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!(
        "--{BOUNDARY}\nContent-Type: text/cloud-config; charset=\"utf-8\"\nMIME-Version: 1.0\nContent-Disposition: attachment; filename=\"kvm-instance.cfg\"\n\n{ours}"
    ));
    out.push_str(&format!("--{BOUNDARY}--\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> HostKey {
        HostKey::generate().unwrap()
    }

    #[test]
    fn without_user_data_the_seed_is_our_cloud_config() {
        let k = key();
        let spec = CloudInitSpec { ssh_authorized_keys: vec!["ssh-ed25519 AAAA me".into()], ..Default::default() };
        let seed = build(&spec, "web-1", "uuid-1", &k);
        assert!(seed.user_data.starts_with("#cloud-config\n"));
        let doc: serde_json::Value =
            serde_json::from_str(seed.user_data.trim_start_matches("#cloud-config\n")).unwrap();
        assert_eq!(doc["ssh_keys"]["ed25519_public"], k.public_line("kvm_instance"));
        assert_eq!(HostKey::from_openssh(doc["ssh_keys"]["ed25519_private"].as_str().unwrap()).unwrap(), k);
        assert_eq!(doc["ssh_authorized_keys"][0], "ssh-ed25519 AAAA me");
        // cloud-init 22.4's schema (Debian 12) wants a non-empty list here, or every boot warns.
        assert_eq!(doc["ssh_genkeytypes"], json!(["ed25519"]));
        assert_eq!(seed.meta_data, "instance-id: \"uuid-1\"\nlocal-hostname: \"web-1\"\n");
        assert_eq!(seed.network_config, None);
    }

    #[test]
    fn user_data_becomes_the_first_mime_part_with_its_type() {
        let spec = CloudInitSpec {
            user_data: Some("#!/bin/sh\necho hi\n".into()),
            hostname: Some("h".into()),
            network_config: Some("version: 2\n".into()),
            ..Default::default()
        };
        let seed = build(&spec, "web-1", "u", &key());
        let parts: Vec<&str> = seed.user_data.split(&format!("--{BOUNDARY}")).collect();
        assert_eq!(parts.len(), 4, "preamble, two parts, epilogue: {}", seed.user_data);
        assert!(parts[1].contains("Content-Type: text/x-shellscript"));
        assert!(parts[1].ends_with("echo hi\n"));
        assert!(parts[2].contains("Content-Type: text/cloud-config"));
        assert_eq!(parts[3], "--\n");
        assert!(seed.meta_data.contains("local-hostname: \"h\""));
        assert_eq!(seed.network_config.as_deref(), Some("version: 2\n"));
        // What cloud-init does with it: Python's email parser must see two parts.
        assert_eq!(content_type("#cloud-config\na: 1"), "text/cloud-config");
        assert_eq!(content_type("plain"), "text/x-not-multipart");
    }

    #[test]
    fn hostnames() {
        assert_eq!(default_hostname("web_1"), "web-1");
        assert_eq!(default_hostname("db-2.lab"), "db-2.lab");
        // What it makes of any instance name is a hostname the guest accepts.
        for name in ["web_1", "db-2.lab", "a_b_c"] {
            kvm_validate::dns_name(&default_hostname(name)).unwrap();
        }
    }

    #[test]
    fn mime_user_data_is_nested_as_is() {
        let theirs = "Content-Type: multipart/mixed; boundary=\"x\"\nMIME-Version: 1.0\n\n--x\nContent-Type: text/cloud-config\n\n#cloud-config\n--x--\n";
        let seed = build(&CloudInitSpec { user_data: Some(theirs.into()), ..Default::default() }, "a", "u", &key());
        assert!(seed
            .user_data
            .contains(&format!("--{BOUNDARY}\n{theirs}--{BOUNDARY}\nContent-Type: text/cloud-config")));
    }
}
