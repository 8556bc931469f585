//! Documents built from structs, shared by the fixture tests (which compare them with what
//! libvirt printed for the same definitions) and the live tests (which send them to libvirt).

#![allow(dead_code)] // each test crate uses a different subset

use libvirt_xml::network::{
    Dhcp, DhcpHost, DhcpRange, Dns, DnsHost, Forward, Forwarder, Ip, Mtu, NetDomain, Network, Route,
};
use libvirt_xml::pool::{Permissions, PoolTarget, StoragePool};
use libvirt_xml::volume::{BackingStore, Format, StorageVolume, VolumeTarget};
use libvirt_xml::Capacity;

/// A `dir` pool at `path`.
pub fn dir_pool(name: &str, path: &str) -> StoragePool {
    StoragePool {
        pool_type: "dir".into(),
        name: name.into(),
        target: Some(PoolTarget {
            path: path.into(),
            permissions: Some(Permissions {
                mode: Some("0755".into()),
                owner: Some("0".into()),
                group: Some("0".into()),
                label: None,
            }),
        }),
        ..Default::default()
    }
}

/// A blank volume of `format` (`raw`, `qcow2`).
pub fn blank_volume(name: &str, format: &str, bytes: u64) -> StorageVolume {
    StorageVolume {
        name: name.into(),
        capacity: Some(Capacity::from_bytes(bytes)),
        target: Some(VolumeTarget { format: Some(Format::new(format)), ..Default::default() }),
        ..Default::default()
    }
}

/// A qcow2 overlay on the qcow2 image at `backing_path`.
pub fn overlay_volume(name: &str, backing_path: &str, bytes: u64) -> StorageVolume {
    StorageVolume {
        backing_store: Some(BackingStore {
            path: backing_path.into(),
            format: Some(Format::new("qcow2")),
            permissions: None,
        }),
        ..blank_volume(name, "qcow2", bytes)
    }
}

/// The NAT network the `network-nat-*.xml` fixtures were captured from: DHCP range and host,
/// DNS host, domain, MTU, and a second (IPv6) address.
pub fn nat_network(name: &str) -> Network {
    Network {
        name: name.into(),
        forward: Some(Forward { mode: Some("nat".into()), ..Default::default() }),
        mtu: Some(Mtu { size: 1400 }),
        domain: Some(NetDomain { name: "xmlfix.test".into(), local_only: Some("yes".into()) }),
        dns: Some(Dns {
            enable: Some("yes".into()),
            forwarders: vec![
                Forwarder { addr: Some("10.231.7.53".into()), domain: None },
                Forwarder { addr: Some("fd00:231:7::53".into()), domain: Some("corp.test".into()) },
            ],
            hosts: vec![DnsHost { ip: "10.231.7.50".into(), hostnames: vec!["web".into(), "www".into()] }],
        }),
        ips: vec![
            Ip {
                address: "10.231.7.1".into(),
                prefix: Some(24),
                dhcp: Some(Dhcp {
                    ranges: vec![DhcpRange { start: "10.231.7.100".into(), end: "10.231.7.199".into() }],
                    hosts: vec![DhcpHost {
                        mac: Some("52:54:00:aa:bb:cc".into()),
                        name: Some("vm1".into()),
                        ip: "10.231.7.10".into(),
                    }],
                }),
                ..Default::default()
            },
            Ip {
                family: Some("ipv6".into()),
                address: "fd00:231:7::1".into(),
                prefix: Some(64),
                dhcp: Some(Dhcp {
                    ranges: vec![DhcpRange { start: "fd00:231:7::100".into(), end: "fd00:231:7::1ff".into() }],
                    hosts: vec![DhcpHost { mac: None, name: Some("vm1".into()), ip: "fd00:231:7::10".into() }],
                }),
                ..Default::default()
            },
        ],
        routes: vec![
            Route { family: None, address: "10.99.0.0".into(), prefix: Some(16), gateway: "10.231.7.10".into() },
            Route {
                family: Some("ipv6".into()),
                address: "fd00:99::".into(),
                prefix: Some(64),
                gateway: "fd00:231:7::10".into(),
            },
        ],
        ..Default::default()
    }
}

/// `network` without what libvirt generates on define (UUID, bridge MAC and bridge name) and
/// what it adds while the network runs (the NAT port range), so that a readback can be compared
/// with the definition it came from.
pub fn without_generated(mut network: Network) -> Network {
    network.uuid = None;
    network.mac = None;
    network.bridge = None;
    if let Some(forward) = network.forward.as_mut() {
        forward.nat = None;
    }
    network
}
