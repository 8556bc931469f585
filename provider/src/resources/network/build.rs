//! The libvirt network document of a `kvm_network` configuration.

use libvirt_xml::network::{Bridge, Dhcp, DhcpRange, Dns, Forward, Ip, Mtu, NetDomain, Network as NetDoc};
use tf_cty::Path;

use super::model::NetworkModel;
use super::spec::{dhcp_range, dns_hosts, forwarders, hosts, ipv6_ip, parse_cidr, parse_cidr6, routes, NetworkSubnet};
use crate::diag::Diagnostic;

/// The network as configured, as a typed document.
pub(super) fn network_doc(network: &NetworkModel) -> Result<NetDoc, Diagnostic> {
    let mode = network.mode();
    let mut doc = NetDoc {
        name: network.name.clone(),
        // The schema keeps the MTU within 68..=65535.
        mtu: network.mtu.map(|size| Mtu { size: size as u32 }),
        domain: network.domain.clone().map(|name| NetDomain { name, local_only: Some("yes".into()) }),
        bridge: network.bridge.known().map(|name| Bridge { name: Some(name.clone()), ..Default::default() }),
        ..Default::default()
    };
    if mode == "bridge" {
        doc.forward = Some(Forward { mode: Some("bridge".into()), ..Default::default() });
        return Ok(doc);
    }
    if mode != "isolated" {
        doc.forward = Some(Forward { mode: Some(mode.to_string()), ..Default::default() });
    }
    let cidr = parse_cidr(network.cidr.as_deref().unwrap_or_default())
        .map_err(|e| Diagnostic::attribute_error(Path::attr("cidr"), "Invalid CIDR", e))?;
    let range = dhcp_range(network.dhcp(), cidr)?;
    let dhcp = range.map(|(start, end)| Dhcp {
        ranges: vec![DhcpRange { start: start.to_string(), end: end.to_string() }],
        hosts: hosts(network),
    });
    doc.ips = vec![Ip { address: cidr.gateway().to_string(), prefix: Some(cidr.prefix), dhcp, ..Default::default() }];
    let v6 = network.ipv6().map(ipv6_ip).transpose()?;
    let cidr6 = network.ipv6().and_then(|v6| parse_cidr6(&v6.cidr).ok());
    doc.ips.extend(v6);
    doc.routes = routes(&network.route.0, Some(cidr), cidr6)?;
    let (records, forwarders) = (dns_hosts(network), forwarders(network));
    if !records.is_empty() || !forwarders.is_empty() {
        doc.dns = Some(Dns { hosts: records, forwarders, ..Default::default() });
    }
    Ok(doc)
}
