//! The libvirt network document of a `kvm_network` configuration.

use libvirt_xml::network::{Bridge, Dhcp, DhcpRange, Dns, Forward, Ip, Mtu, NetDomain, Network as NetDoc};
use tf_cty::Path;

use super::super::Attrs;
use super::spec::{dhcp_range, dns_hosts, hosts, parse_cidr};
use crate::diag::Diagnostic;

/// The network as configured, as a typed document.
pub(super) fn network_doc(attrs: &Attrs<'_>) -> Result<NetDoc, Diagnostic> {
    let mode = attrs.opt_str("mode").unwrap_or("nat");
    let mut doc = NetDoc {
        name: attrs.str("name")?.to_string(),
        mtu: attrs.opt_i64("mtu").map(|size| Mtu { size: size as u32 }),
        domain: attrs
            .opt_str("domain")
            .map(|name| NetDomain { name: name.to_string(), local_only: Some("yes".into()) }),
        bridge: attrs.opt_str("bridge").map(|name| Bridge { name: Some(name.to_string()), ..Default::default() }),
        ..Default::default()
    };
    if mode == "bridge" {
        doc.forward = Some(Forward { mode: Some("bridge".into()), ..Default::default() });
        return Ok(doc);
    }
    if mode != "isolated" {
        doc.forward = Some(Forward { mode: Some(mode.to_string()), ..Default::default() });
    }
    let cidr = parse_cidr(attrs.str("cidr")?)
        .map_err(|e| Diagnostic::attribute_error(Path::attr("cidr"), "Invalid CIDR", e))?;
    let range = dhcp_range(attrs, cidr)?;
    let dhcp = range.map(|(start, end)| Dhcp {
        ranges: vec![DhcpRange { start: start.to_string(), end: end.to_string() }],
        hosts: hosts(attrs).unwrap_or_default(),
    });
    doc.ips = vec![Ip { address: cidr.gateway().to_string(), prefix: Some(cidr.prefix), dhcp, ..Default::default() }];
    let records = dns_hosts(attrs)?;
    if !records.is_empty() {
        doc.dns = Some(Dns { hosts: records, ..Default::default() });
    }
    Ok(doc)
}
