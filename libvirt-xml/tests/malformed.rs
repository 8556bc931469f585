//! Broken input must come back as an `Error`, never as a panic or a silently wrong value.

use libvirt_xml::capabilities::Capabilities;
use libvirt_xml::domain::Domain;
use libvirt_xml::domcaps::DomainCapabilities;
use libvirt_xml::network::{DhcpHost, DnsHost, Network};
use libvirt_xml::pool::StoragePool;
use libvirt_xml::volume::StorageVolume;
use libvirt_xml::{Document, Error, Fragment};

fn parse_error<T: Document + std::fmt::Debug>(xml: &str) -> Error {
    match T::from_xml(xml) {
        Ok(value) => panic!("{xml:?} parsed as {value:?}"),
        Err(e) => e,
    }
}

#[test]
fn malformed_documents_are_errors() {
    let cases = [
        "<pool type='dir'><name>p</name>",
        "<pool type='dir'><name>p</pool>",
        "<pool type='dir'><name>p</name></pool></pool>",
        "<pool type='dir><name>p</name></pool>",
        "<pool type='dir'><name>p</name><capacity unit='bytes'>lots</capacity></pool>",
        "<pool type='dir'><name>p</name><capacity unit='bytes'>-1</capacity></pool>",
        "<pool type='dir'><name>p</name><capacity unit='bytes'>18446744073709551616</capacity></pool>",
        "<pool type='dir'><name>p</name><target/></pool>",
        "<pool><name>p</name></pool>",
        "<pool type='dir'><name>a &bogus; b</name></pool>",
        "<<<>>>",
        "\u{0}",
    ];
    for xml in cases {
        let err = parse_error::<StoragePool>(xml);
        assert!(matches!(err, Error::Parse { element: "pool", .. }), "{xml:?} gave {err:?}");
    }
}

#[test]
fn bad_values_are_errors() {
    parse_error::<Network>("<network><name>n</name><mtu size='big'/></network>");
    parse_error::<Network>("<network><name>n</name><ip address='10.0.0.1' prefix='300'/></network>");
    parse_error::<Network>(
        "<network><name>n</name><forward><nat><port start='1' end='70000'/></nat></forward></network>",
    );
    parse_error::<StorageVolume>("<volume><capacity>1</capacity></volume>");
    parse_error::<Domain>(
        "<domain type='kvm'><name>d</name><memory>1</memory><vcpu>two</vcpu><os><type>hvm</type></os></domain>",
    );
    parse_error::<Domain>(
        "<domain type='kvm'><name>d</name><memory>1</memory><vcpu>1</vcpu><os><type>hvm</type></os>\
         <devices><disk type='file'><source file='/a'/></disk></devices></domain>",
    );
    parse_error::<DomainCapabilities>(
        "<domainCapabilities><domain>kvm</domain><arch>x86_64</arch><os supported='maybe'/></domainCapabilities>",
    );
    parse_error::<Capabilities>(
        "<capabilities><host><cpu><arch>x86_64</arch><topology sockets='x' cores='1' threads='1'/></cpu></host></capabilities>",
    );
    assert!(DhcpHost::from_xml("<host mac='52:54:00:00:00:01'/>").is_err(), "ip is required");
    assert!(DnsHost::from_xml("<host ip='10.0.0.1'").is_err());
}

#[test]
fn wrong_document_kind_is_an_error() {
    let pool = include_str!("fixtures/pool-dir.xml");
    let err = parse_error::<Network>(pool);
    assert_eq!(err, Error::WrongRoot { expected: "network", found: "pool".into() });
    let err = parse_error::<StorageVolume>(pool);
    assert_eq!(err, Error::WrongRoot { expected: "volume", found: "pool".into() });
}

/// Cuts every fixture at many places: each cut before the closing root tag must be an error.
#[test]
fn truncated_fixtures_are_errors() {
    fn check<T: Document + std::fmt::Debug>(xml: &str, root: &str) {
        let close = format!("</{root}>");
        let end = xml.rfind(&close).expect("fixture has a closing root tag");
        let step = (end / 60).max(1);
        let mut cut = 0;
        while cut < end {
            if xml.is_char_boundary(cut) {
                parse_error::<T>(&xml[..cut]);
            }
            cut += step;
        }
    }
    check::<Capabilities>(include_str!("fixtures/capabilities.xml"), "capabilities");
    check::<DomainCapabilities>(include_str!("fixtures/domcaps-kvm.xml"), "domainCapabilities");
    check::<Domain>(include_str!("fixtures/domain-main.xml"), "domain");
    check::<Network>(include_str!("fixtures/network-nat-active.xml"), "network");
    check::<StoragePool>(include_str!("fixtures/pool-dir.xml"), "pool");
    check::<StorageVolume>(include_str!("fixtures/volume-overlay.xml"), "volume");
}
