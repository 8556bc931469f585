//! Reading a `kvm_network` configuration: the subnet, the DHCP range and the host entries,
//! checked against each other (diagnostics name the attribute).

use std::net::Ipv4Addr;

use libvirt_xml::network::{DhcpHost, DnsHost};
use tf_cty::Path;

use super::model::{DhcpModel, NetworkModel};
use crate::diag::Diagnostic;

/// A subnet (the shared rule of what one is: `kvm_validate`).
pub(super) use kvm_validate::Ipv4Net as Cidr;

/// What a libvirt network makes of its subnet.
pub(super) trait NetworkSubnet {
    /// The host's address: the first of the subnet.
    fn gateway(self) -> Ipv4Addr;
    /// The default DHCP range: everything after the gateway up to the broadcast address.
    fn default_range(self) -> (Ipv4Addr, Ipv4Addr);
}

impl NetworkSubnet for Cidr {
    fn gateway(self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1)
    }

    fn default_range(self) -> (Ipv4Addr, Ipv4Addr) {
        (Ipv4Addr::from(self.network + 2), Ipv4Addr::from(self.broadcast() - 1))
    }
}

/// A network's `cidr`: a subnet with room for the host and a guest, and no larger than a
/// libvirt network takes.
pub(super) fn parse_cidr(text: &str) -> Result<Cidr, String> {
    let cidr = kvm_validate::ipv4_subnet(text).map_err(|e| format!("{e}."))?;
    if cidr.prefix > 29 {
        return Err(format!(
            "{text:?} is too small: a network needs room for the host and at least one guest (at most /29)."
        ));
    }
    if cidr.prefix < 8 {
        return Err(format!("{text:?} is too large for a libvirt network (at least /8)."));
    }
    Ok(cidr)
}

pub(super) fn parse_ip(text: &str) -> Result<Ipv4Addr, String> {
    kvm_validate::ipv4_address(text).map_err(|e| format!("{e}."))
}

/// The DHCP range of a configuration's `dhcp` block: `None` when DHCP is off.
pub(super) fn dhcp_range(dhcp: Option<&DhcpModel>, cidr: Cidr) -> Result<Option<(Ipv4Addr, Ipv4Addr)>, Diagnostic> {
    let Some(d) = dhcp else { return Ok(Some(cidr.default_range())) };
    if !d.enabled() {
        return Ok(None);
    }
    let (default_start, default_end) = cidr.default_range();
    let path = |a: &str| Path::attr("dhcp").join_index(0).join_attr(a);
    let start = d
        .start
        .as_deref()
        .map(parse_ip)
        .transpose()
        .map_err(|e| Diagnostic::attribute_error(path("start"), "Invalid DHCP range", e))?
        .unwrap_or(default_start);
    let end = d
        .end
        .as_deref()
        .map(parse_ip)
        .transpose()
        .map_err(|e| Diagnostic::attribute_error(path("end"), "Invalid DHCP range", e))?
        .unwrap_or(default_end);
    let usable = |ip: Ipv4Addr| {
        cidr.contains(ip) && u32::from(ip) > u32::from(cidr.gateway()) && u32::from(ip) < cidr.broadcast()
    };
    for (name, ip) in [("start", start), ("end", end)] {
        if !usable(ip) {
            return Err(Diagnostic::attribute_error(
                path(name),
                "Invalid DHCP range",
                format!(
                    "{ip} is not a usable guest address of {cidr}: the range must lie between {} and {} (the gateway {} and the broadcast address are taken).",
                    default_start, default_end, cidr.gateway()
                ),
            ));
        }
    }
    if u32::from(start) > u32::from(end) {
        return Err(Diagnostic::attribute_error(
            path("start"),
            "Invalid DHCP range",
            format!("the range starts at {start}, after its end {end}."),
        ));
    }
    Ok(Some((start, end)))
}

/// The static DHCP hosts of a configuration, as libvirt writes them (MACs lower case).
pub(super) fn hosts(network: &NetworkModel) -> Vec<DhcpHost> {
    let host = |h: &super::model::HostModel| DhcpHost {
        mac: h.mac.as_deref().map(str::to_lowercase),
        name: h.name.clone(),
        ip: h.ip.clone(),
    };
    network.host.0.iter().map(host).collect()
}

/// The DNS records of a configuration.
pub(super) fn dns_hosts(network: &NetworkModel) -> Vec<DnsHost> {
    network.dns_host.0.iter().map(|h| DnsHost { ip: h.ip.clone(), hostnames: h.hostnames.clone() }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_rules() {
        let c = parse_cidr("10.17.3.0/24").unwrap();
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 17, 3, 1));
        assert_eq!(c.default_range(), (Ipv4Addr::new(10, 17, 3, 2), Ipv4Addr::new(10, 17, 3, 254)));
        assert!(parse_cidr("10.17.3.5/24").unwrap_err().contains("did you mean \"10.17.3.0/24\""));
        assert!(parse_cidr("10.17.3.0/30").unwrap_err().contains("too small"));
        assert!(parse_cidr("10.17.3.0").is_err());
        assert!(parse_cidr("300.1.1.0/24").is_err());
    }
}
