//! Seeds shared by the integration tests.

#![allow(dead_code)] // each test binary uses a different subset

use cloud_init_seed::{meta_data, Seed};

/// A typical seed: a cloud-config, meta-data and a netplan-style network config.
pub fn typical() -> Seed {
    Seed {
        user_data: "#cloud-config\nhostname: web1\nusers:\n  - name: admin\n    ssh_authorized_keys: [\"ssh-ed25519 AAAA test\"]\n"
            .into(),
        meta_data: meta_data("web1-0001", "web1"),
        network_config: Some("version: 2\nethernets:\n  eth0:\n    dhcp4: true\n".into()),
    }
}

/// `lines` distinct numbered lines: any cluster out of place or missing changes the text.
pub fn numbered_lines(prefix: &str, lines: usize) -> String {
    (0..lines).map(|i| format!("{prefix} line {i:07} {}\n", "abcdefghij".repeat(i % 7))).collect()
}

/// A seed whose files span many clusters (~1.2 MiB together, so a 2 MiB image of 1 KiB clusters).
pub fn long() -> Seed {
    Seed {
        user_data: format!("#cloud-config\nwrite_files:\n{}", numbered_lines("# user", 20_000)),
        meta_data: meta_data("long-0001", "long"),
        network_config: Some(format!("version: 2\n{}", numbered_lines("# net", 3_000))),
    }
}

/// A seed at the size limit, which needs a FAT16 image (17 MiB).
pub fn fat16() -> Seed {
    let meta_data = meta_data("big-0001", "big");
    let mut user_data = numbered_lines("# big", 360_000);
    user_data.truncate(cloud_init_seed::MAX_CONTENT_BYTES - meta_data.len());
    Seed { user_data, meta_data, network_config: None }
}

/// The files a seed should show, as (name, content).
pub fn expected_files(seed: &Seed) -> Vec<(&'static str, String)> {
    let mut files = vec![("user-data", seed.user_data.clone()), ("meta-data", seed.meta_data.clone())];
    if let Some(n) = seed.network_config.as_ref().filter(|n| !n.trim().is_empty()) {
        files.push(("network-config", n.clone()));
    }
    files
}
