//! Sends struct-built documents to a real libvirtd through `virsh` and checks that it accepts
//! them and reads them back as sent.
//!
//! Ignored by default because they need a libvirtd. Run them with the virsh command line in
//! `LIBVIRT_XML_VIRSH`, e.g.
//!
//! ```text
//! LIBVIRT_XML_VIRSH="ip netns exec kvmtest virsh -c qemu:///system" \
//!     cargo test -p libvirt-xml --test live_virsh -- --ignored
//! ```
//!
//! Every object created is named `xmlfix-live-*` and removed again, also when a check fails.

mod common;

use std::process::Command;

use libvirt_xml::network::{DhcpHost, DnsHost, Network};
use libvirt_xml::pool::StoragePool;
use libvirt_xml::volume::{Format, StorageVolume};
use libvirt_xml::{Document, Fragment};

const POOL: &str = "xmlfix-live-pool";
const POOL_DIR: &str = "/var/lib/libvirt/xmlfix-live-pool";
const NETWORK: &str = "xmlfix-live-nat";

/// Runs virsh with `args`, returning stdout, or the failure as text.
fn virsh(args: &[&str]) -> Result<String, String> {
    let command_line = std::env::var("LIBVIRT_XML_VIRSH").map_err(|_| "LIBVIRT_XML_VIRSH is not set".to_owned())?;
    let mut words = command_line.split_whitespace();
    let program = words.next().ok_or("LIBVIRT_XML_VIRSH is empty")?;
    let output = Command::new(program).args(words).args(args).output().map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!("virsh {args:?}: {}", String::from_utf8_lossy(&output.stderr).trim()))
    }
}

/// Like [`virsh`] but panics on failure, for steps the test depends on.
fn must(args: &[&str]) -> String {
    virsh(args).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `must(args + [file])` with `xml` in a temporary file, for virsh commands that only
/// take files.
fn must_with_file(args: &[&str], name: &str, xml: &str) -> String {
    let path = std::env::temp_dir().join(format!("{name}.xml"));
    std::fs::write(&path, xml).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    let mut args = args.to_vec();
    args.push(path.to_str().expect("utf-8 temp path"));
    let result = virsh(&args);
    let _ = std::fs::remove_file(&path);
    result.unwrap_or_else(|e| panic!("{e}"))
}

/// Runs cleanup commands when dropped, so a failed assertion does not leave objects behind.
struct Cleanup(Vec<Vec<&'static str>>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for args in &self.0 {
            // Errors are expected here: not every step got as far as creating its object.
            let _ = virsh(args);
        }
    }
}

#[test]
#[ignore = "needs libvirtd; set LIBVIRT_XML_VIRSH"]
fn pool_and_volumes_are_accepted() {
    let _cleanup = Cleanup(vec![
        vec!["vol-delete", "--pool", POOL, "xmlfix-live-overlay.qcow2"],
        vec!["vol-delete", "--pool", POOL, "xmlfix-live-base.qcow2"],
        vec!["vol-delete", "--pool", POOL, "xmlfix-live-raw.img"],
        vec!["pool-destroy", POOL],
        vec!["pool-delete", POOL],
        vec!["pool-undefine", POOL],
    ]);

    let pool = common::dir_pool(POOL, POOL_DIR);
    must_with_file(&["pool-define"], POOL, &pool.to_xml().expect("pool xml"));
    must(&["pool-build", POOL]);
    must(&["pool-start", POOL]);
    let back = StoragePool::from_xml(&must(&["pool-dumpxml", POOL])).expect("pool readback");
    assert_eq!(back.target, pool.target);
    assert!(back.capacity.is_some() && back.uuid.is_some());

    let raw = common::blank_volume("xmlfix-live-raw.img", "raw", 1 << 20);
    let base = common::blank_volume("xmlfix-live-base.qcow2", "qcow2", 8 << 20);
    let base_path = format!("{POOL_DIR}/xmlfix-live-base.qcow2");
    let overlay = common::overlay_volume("xmlfix-live-overlay.qcow2", &base_path, 8 << 20);
    for vol in [&raw, &base, &overlay] {
        must_with_file(&["vol-create", POOL], &vol.name, &vol.to_xml().expect("volume xml"));
        let back = StorageVolume::from_xml(&must(&["vol-dumpxml", "--pool", POOL, &vol.name])).expect("readback");
        assert_eq!(back.name, vol.name);
        assert_eq!(back.capacity.as_ref().map(|c| c.bytes()), vol.capacity.as_ref().map(|c| c.bytes()));
        let format = back.target.as_ref().and_then(|t| t.format.clone());
        assert_eq!(format, vol.target.as_ref().and_then(|t| t.format.clone()));
        assert_eq!(back.target.and_then(|t| t.path), Some(format!("{POOL_DIR}/{}", vol.name)));
        let backing = back.backing_store.map(|b| (b.path, b.format));
        assert_eq!(backing, vol.backing_store.clone().map(|b| (b.path, b.format)));
    }
    let back = StorageVolume::from_xml(&must(&["vol-dumpxml", "--pool", POOL, &overlay.name])).expect("readback");
    assert_eq!(back.backing_store.and_then(|b| b.format), Some(Format::new("qcow2")));
}

#[test]
#[ignore = "needs libvirtd; set LIBVIRT_XML_VIRSH"]
fn network_is_accepted_and_updated() {
    let _cleanup = Cleanup(vec![vec!["net-destroy", NETWORK], vec!["net-undefine", NETWORK]]);

    // Another subnet than the fixture network's, in case both exist at once.
    let mut network = common::nat_network(NETWORK);
    let xml = network.to_xml().expect("network xml").replace("10.231.7.", "10.231.17.").replace(":7::", ":17::");
    network = Network::from_xml(&xml).expect("edited network");
    must_with_file(&["net-define"], NETWORK, &xml);
    let back = Network::from_xml(&must(&["net-dumpxml", "--inactive", NETWORK])).expect("readback");
    assert_eq!(common::without_generated(back), network);

    must(&["net-start", NETWORK]);
    let dhcp_host =
        DhcpHost { mac: Some("52:54:00:aa:bb:dd".into()), name: Some("vm2".into()), ip: "10.231.17.11".into() };
    let dns_host = DnsHost { ip: "10.231.17.51".into(), hostnames: vec!["db".into()] };
    let dhcp_xml = dhcp_host.to_xml().expect("dhcp host xml");
    let dns_xml = dns_host.to_xml().expect("dns host xml");
    must(&["net-update", NETWORK, "add-last", "ip-dhcp-host", &dhcp_xml, "--live", "--config"]);
    must(&["net-update", NETWORK, "add-last", "dns-host", &dns_xml, "--live", "--config"]);
    for flags in [[].as_slice(), ["--inactive"].as_slice()] {
        let mut args = vec!["net-dumpxml", NETWORK];
        args.extend_from_slice(flags);
        let back = Network::from_xml(&must(&args)).expect("readback after update");
        let dhcp = back.ips[0].dhcp.as_ref().expect("dhcp");
        assert_eq!(dhcp.hosts.last(), Some(&dhcp_host), "{flags:?}");
        assert_eq!(back.dns.as_ref().and_then(|d| d.hosts.last()), Some(&dns_host), "{flags:?}");
    }

    must(&["net-update", NETWORK, "delete", "ip-dhcp-host", &dhcp_xml, "--live", "--config"]);
    must(&["net-update", NETWORK, "delete", "dns-host", &dns_xml, "--live", "--config"]);
    let back = Network::from_xml(&must(&["net-dumpxml", NETWORK])).expect("readback after delete");
    assert_eq!(common::without_generated(back), network);
}

#[test]
#[ignore = "needs libvirtd; set LIBVIRT_XML_VIRSH"]
fn other_network_modes_are_accepted() {
    let names = ["xmlfix-live-route", "xmlfix-live-isolated", "xmlfix-live-bridge"];
    let _cleanup = Cleanup(names.iter().map(|n| vec!["net-undefine", *n]).collect());
    let fixtures = [
        include_str!("fixtures/network-route.xml"),
        include_str!("fixtures/network-isolated.xml"),
        include_str!("fixtures/network-bridge.xml"),
    ];
    for (name, fixture) in names.into_iter().zip(fixtures) {
        let readback = Network::from_xml(fixture).expect("fixture");
        let mut network = common::without_generated(readback.clone());
        network.name = name.into();
        if name.ends_with("bridge") {
            // A bridge-mode network names an existing bridge; the others get a generated one.
            network.bridge = readback.bridge;
        }
        must_with_file(&["net-define"], name, &network.to_xml().expect("network xml"));
        let back = Network::from_xml(&must(&["net-dumpxml", "--inactive", name])).expect("readback");
        if name.ends_with("bridge") {
            assert_eq!(back.bridge, network.bridge);
        }
        assert_eq!(common::without_generated(back), common::without_generated(network));
    }
}
