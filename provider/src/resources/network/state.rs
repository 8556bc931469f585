//! What the host reports about a network, as the state.

use std::net::{Ipv4Addr, Ipv6Addr};

use libvirt_xml::network::{DhcpHost, Ip, Route};

use super::model::{DhcpModel, DnsHostModel, HostModel, Ipv6HostModel, Ipv6Model, NetworkModel, RouteModel};
use super::ops::Observed;
use super::spec::{gateway6, Cidr, Cidr6, NetworkSubnet};
use crate::model::{Field, SetOf};

pub(super) fn prefix_of(ip: &Ip) -> Option<u8> {
    ip.prefix.or_else(|| {
        ip.netmask.as_deref().and_then(|m| m.parse::<Ipv4Addr>().ok()).map(|m| u32::from(m).count_ones() as u8)
    })
}

/// The (MAC, IP) pairs of the `host` blocks of `network`: the entries it manages.
pub(super) fn managed_hosts(network: &NetworkModel) -> Vec<(Option<String>, String)> {
    network.host.0.iter().map(|h| (h.mac.as_deref().map(str::to_lowercase), h.ip.clone())).collect()
}

/// The state of the network the host reports. With a `prior` state (read, create, update), the
/// state shows only the static DHCP hosts the prior one has: entries others add (a
/// `kvm_instance` reserving its fixed address) are theirs, not drift of the network; and it keeps
/// the user's way of writing the `dhcp` block when that means what the host has. Without (import),
/// it shows everything.
pub(super) fn state(observed: &Observed, prior: Option<&NetworkModel>) -> NetworkModel {
    let doc = &observed.doc;
    let mode = doc
        .forward
        .as_ref()
        .map(|f| f.mode.clone().unwrap_or_else(|| "nat".into()))
        .unwrap_or_else(|| "isolated".into());
    let ip = doc.ips.iter().find(|ip| ip.family.as_deref().unwrap_or("ipv4") == "ipv4");
    let cidr = ip.and_then(|ip| {
        let addr: Ipv4Addr = ip.address.parse().ok()?;
        let prefix = prefix_of(ip)?;
        Some((Cidr::containing(addr, prefix), addr))
    });
    let dhcp = ip.and_then(|ip| ip.dhcp.as_ref());
    let configured = prior.map_or(&[][..], |p| &p.dhcp[..]);
    let observed_range = dhcp.and_then(|d| d.ranges.first()).map(|r| (r.start.clone(), r.end.clone()));
    let dhcp_blocks = match (&observed_range, cidr) {
        (Some((start, end)), Some((c, _))) => {
            let (ds, de) = c.default_range();
            let default = *start == ds.to_string() && *end == de.to_string();
            if configured.is_empty() && default {
                Vec::new()
            } else {
                let first = configured.first();
                let (cs, ce) = (first.and_then(|d| d.start.as_ref()), first.and_then(|d| d.end.as_ref()));
                vec![DhcpModel {
                    enabled: Some(true),
                    start: (cs.is_some() || *start != ds.to_string()).then(|| start.clone()),
                    end: (ce.is_some() || *end != de.to_string()).then(|| end.clone()),
                }]
            }
        }
        (None, Some(_)) => vec![DhcpModel { enabled: Some(false), start: None, end: None }],
        _ => Vec::new(),
    };
    let managed = prior.map(managed_hosts);
    let is_managed = |h: &DhcpHost| {
        managed.as_ref().is_none_or(|m| m.contains(&(h.mac.as_deref().map(str::to_lowercase), h.ip.clone())))
    };
    let hosts = dhcp.map(|d| d.hosts.clone()).unwrap_or_default().into_iter().filter(is_managed);
    let dns_hosts = doc.dns.as_ref().map(|d| d.hosts.clone()).unwrap_or_default().into_iter();
    let v6 = doc.ips.iter().find(|ip| ip.family.as_deref() == Some("ipv6")).and_then(ipv6_block);
    // Addresses are configured in canonical form (the rule is kvm_validate's), the form libvirt
    // writes: what the host reports compares equal as text.
    let routes: Vec<RouteModel> = doc.routes.iter().map(route).collect();
    let forwarders: Vec<String> = doc
        .dns
        .iter()
        .flat_map(|d| &d.forwarders)
        .filter(|f| f.domain.is_none())
        .filter_map(|f| f.addr.clone())
        .collect();
    NetworkModel {
        id: Field::from_option(doc.uuid.clone()),
        name: doc.name.clone(),
        mode: Some(mode),
        cidr: cidr.map(|(c, _)| c.to_string()),
        bridge: Field::from_option(doc.bridge.as_ref().and_then(|b| b.name.clone())),
        domain: doc.domain.as_ref().map(|d| d.name.clone()),
        mtu: doc.mtu.as_ref().map(|m| i64::from(m.size)),
        autostart: Some(observed.autostart),
        active: Field::Known(observed.active),
        gateway: Field::from_option(cidr.map(|(_, gw)| gw.to_string())),
        dhcp: dhcp_blocks,
        host: SetOf(
            hosts.map(|h| HostModel { mac: h.mac.map(|m| m.to_lowercase()), ip: h.ip, name: h.name }).collect(),
        ),
        dns_host: SetOf(dns_hosts.map(|h| DnsHostModel { ip: h.ip, hostnames: h.hostnames }).collect()),
        ipv6_gateway: Field::from_option(v6.as_ref().map(|(_, gw)| gw.to_string())),
        ipv6: v6.map(|(block, _)| block).into_iter().collect(),
        route: SetOf(routes),
        // An empty list and none mean the same: keep the configuration's way of writing it.
        dns_forwarders: match (forwarders.is_empty(), prior.and_then(|p| p.dns_forwarders.as_ref())) {
            (true, Some(configured)) if configured.is_empty() => Some(Vec::new()),
            (true, _) => None,
            (false, _) => Some(forwarders),
        },
    }
}

/// The `ipv6` block of the host's IPv6 `<ip>`, and the host's address on it.
fn ipv6_block(ip: &Ip) -> Option<(Ipv6Model, Ipv6Addr)> {
    let addr: Ipv6Addr = ip.address.parse().ok()?;
    let cidr = Cidr6::containing(addr, ip.prefix?);
    let range = ip.dhcp.as_ref().and_then(|d| d.ranges.first());
    let hosts = ip.dhcp.iter().flat_map(|d| &d.hosts);
    let block = Ipv6Model {
        cidr: cidr.to_string(),
        dhcp_start: range.map(|r| r.start.clone()),
        dhcp_end: range.map(|r| r.end.clone()),
        host: SetOf(hosts.filter_map(|h| Some(Ipv6HostModel { name: h.name.clone()?, ip: h.ip.clone() })).collect()),
    };
    Some((block, gateway6(cidr)))
}

/// A `route` block of a `<route>`.
fn route(r: &Route) -> RouteModel {
    let cidr = match r.prefix {
        Some(prefix) => format!("{}/{prefix}", r.address),
        None => r.address.clone(),
    };
    RouteModel { cidr, gateway: r.gateway.clone() }
}
