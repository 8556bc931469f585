//! Reading a `kvm_network` configuration: the subnet, the DHCP range and the host entries,
//! checked against each other (diagnostics name the attribute).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libvirt_xml::network::{Dhcp, DhcpHost, DhcpRange, DnsHost, Forwarder, Ip, Route};
use tf_cty::Path;

use super::model::{DhcpModel, Ipv6Model, NetworkModel, RouteModel};
use crate::diag::Diagnostic;

/// A subnet (the shared rule of what one is: `kvm_validate`).
pub(super) use kvm_validate::Ipv4Net as Cidr;
/// An IPv6 subnet.
pub(super) use kvm_validate::Ipv6Net as Cidr6;

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

/// An `ipv6.cidr`: a /64, the only size whose router advertisements let guests configure
/// themselves (SLAAC).
pub(super) fn parse_cidr6(text: &str) -> Result<Cidr6, String> {
    let cidr = kvm_validate::ipv6_subnet(text).map_err(|e| format!("{e}."))?;
    if cidr.prefix != 64 {
        return Err(format!(
            "{text:?} is a /{}: the network's IPv6 subnet must be a /64 (guests configure their addresses from \
             the host's router advertisements, SLAAC, only on a /64), e.g. \"{}/64\".",
            cidr.prefix,
            std::net::Ipv6Addr::from(cidr.network)
        ));
    }
    Ok(cidr)
}

pub(super) fn parse_ip6(text: &str) -> Result<Ipv6Addr, String> {
    kvm_validate::ipv6_address(text).map_err(|e| format!("{e}."))
}

/// An address of either family (DNS forwarders, route gateways); IPv6 in canonical form.
pub(super) fn parse_any_ip(text: &str) -> Result<IpAddr, String> {
    match text.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => parse_ip6(text).map(IpAddr::V6),
        Ok(ip) => Ok(ip),
        Err(_) => Err(format!("{text:?} is not an IPv4 or IPv6 address.")),
    }
}

/// What a network's host address is on its IPv6 subnet: the first address.
pub(super) fn gateway6(cidr: Cidr6) -> Ipv6Addr {
    cidr.nth(1)
}

/// The `<ip family='ipv6'>` of an `ipv6` block: the host's address, and DHCPv6 when the block
/// has a range (else SLAAC only). Every rule of the block is checked here; diagnostics name the
/// attribute.
pub(super) fn ipv6_ip(v6: &Ipv6Model) -> Result<Ip, Diagnostic> {
    let path = |a: &str| Path::attr("ipv6").join_index(0).join_attr(a);
    let cidr =
        parse_cidr6(&v6.cidr).map_err(|e| Diagnostic::attribute_error(path("cidr"), "Invalid IPv6 subnet", e))?;
    let gateway = gateway6(cidr);
    let usable = |ip: Ipv6Addr| cidr.contains(ip) && ip != gateway && u128::from(ip) != cidr.network;
    let address = |attr: &str, text: &str| -> Result<Ipv6Addr, Diagnostic> {
        let ip = parse_ip6(text).map_err(|e| Diagnostic::attribute_error(path(attr), "Invalid IPv6 address", e))?;
        if !usable(ip) {
            return Err(Diagnostic::attribute_error(
                path(attr),
                "Invalid IPv6 address",
                format!("{ip} is not a guest address of {cidr} (the host has {gateway})."),
            ));
        }
        Ok(ip)
    };
    let range = match (&v6.dhcp_start, &v6.dhcp_end) {
        (None, None) => None,
        (Some(start), Some(end)) => {
            let (s, e) = (address("dhcp_start", start)?, address("dhcp_end", end)?);
            if s > e {
                return Err(Diagnostic::attribute_error(
                    path("dhcp_start"),
                    "Invalid DHCPv6 range",
                    format!("the range starts at {s}, after its end {e}."),
                ));
            }
            Some(DhcpRange { start: s.to_string(), end: e.to_string() })
        }
        (Some(_), None) | (None, Some(_)) => {
            let missing = if v6.dhcp_start.is_none() { "dhcp_start" } else { "dhcp_end" };
            return Err(Diagnostic::attribute_error(
                path(missing),
                "Incomplete DHCPv6 range",
                "give both dhcp_start and dhcp_end for DHCPv6, or neither for SLAAC only.",
            ));
        }
    };
    let (mut names, mut ips) = (BTreeSet::new(), BTreeSet::new());
    let mut hosts = Vec::new();
    for h in &v6.host.0 {
        let ip = address("host", &h.ip)?;
        let problem = if !ips.insert(ip) {
            Some(format!("{ip} is given to more than one host."))
        } else if !names.insert(h.name.clone()) {
            Some(format!("the name {:?} is listed twice; each name gets one address.", h.name))
        } else if range.is_none() {
            Some("static DHCPv6 hosts need DHCPv6: give dhcp_start and dhcp_end.".to_string())
        } else {
            None
        };
        if let Some(p) = problem {
            return Err(Diagnostic::attribute_error(path("host"), "Invalid DHCPv6 host", p));
        }
        hosts.push(DhcpHost { mac: None, name: Some(h.name.clone()), ip: ip.to_string() });
    }
    let dhcp = range.map(|r| Dhcp { ranges: vec![r], hosts });
    Ok(Ip { family: Some("ipv6".into()), address: gateway.to_string(), prefix: Some(64), dhcp, ..Default::default() })
}

/// The `<route>`s of the `route` blocks: each destination a subnet of either family, its gateway
/// an address of the same family inside the network's subnet of that family (`v4`, `v6`).
pub(super) fn routes(routes: &[RouteModel], v4: Option<Cidr>, v6: Option<Cidr6>) -> Result<Vec<Route>, Diagnostic> {
    let invalid = |e: String| Diagnostic::attribute_error(Path::attr("route"), "Invalid route", e);
    let mut out = Vec::new();
    for r in routes {
        let gateway = parse_any_ip(&r.gateway).map_err(invalid)?;
        // Per family: the destination as libvirt writes it, whether the gateway is on the
        // network's subnet of that family (None: the gateway is of the other family), and that
        // subnet in words.
        let (family, address, prefix, on_network, subnet) = if r.cidr.contains(':') {
            let dest = kvm_validate::ipv6_subnet(&r.cidr).map_err(|e| invalid(format!("{e}.")))?;
            let on = match gateway {
                IpAddr::V6(gw) => Some(v6.is_some_and(|net| net.contains(gw))),
                IpAddr::V4(_) => None,
            };
            let subnet = v6.map_or("the network's ipv6.cidr (there is no ipv6 block)".to_string(), |n| n.to_string());
            (Some("ipv6".to_string()), Ipv6Addr::from(dest.network).to_string(), dest.prefix, on, subnet)
        } else {
            let dest = kvm_validate::ipv4_subnet(&r.cidr).map_err(|e| invalid(format!("{e}.")))?;
            let on = match gateway {
                IpAddr::V4(gw) => Some(v4.is_some_and(|net| net.contains(gw))),
                IpAddr::V6(_) => None,
            };
            let subnet = v4.map_or("the network's cidr".to_string(), |n| n.to_string());
            (None, Ipv4Addr::from(dest.network).to_string(), dest.prefix, on, subnet)
        };
        let (have, want) = if family.is_some() { ("IPv4", "IPv6") } else { ("IPv6", "IPv4") };
        match on_network {
            None => {
                return Err(invalid(format!(
                    "{gateway} is an {have} address; the route to {} needs an {want} gateway.",
                    r.cidr
                )))
            }
            Some(false) => {
                return Err(invalid(format!(
                    "the gateway {gateway} is not on the network: it must be a guest's address inside {subnet}."
                )))
            }
            Some(true) => {}
        }
        let route = Route { family, address, prefix: Some(prefix), gateway: gateway.to_string() };
        out.push(route);
    }
    Ok(out)
}

/// The `<forwarder>`s of `dns_forwarders`.
pub(super) fn forwarders(network: &NetworkModel) -> Vec<Forwarder> {
    let list = network.dns_forwarders.as_deref().unwrap_or_default();
    list.iter().map(|a| Forwarder { addr: Some(a.clone()), domain: None }).collect()
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
