//! What the host reports about a network, written into the state.

use std::net::Ipv4Addr;

use libvirt_xml::network::{DhcpHost, Ip};
use tf_cty::Value;

use super::super::{int, set_attr};
use super::ops::Observed;
use super::spec::Cidr;

pub(super) fn prefix_of(ip: &Ip) -> Option<u8> {
    ip.prefix.or_else(|| {
        ip.netmask.as_deref().and_then(|m| m.parse::<Ipv4Addr>().ok()).map(|m| u32::from(m).count_ones() as u8)
    })
}

/// Which static DHCP hosts the state shows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Hosts {
    /// Only those the state already has: entries others add (a `kvm_instance` reserving its fixed
    /// address) are theirs, not drift of the network.
    Managed,
    /// All of them (import).
    All,
}

/// The (MAC, IP) pairs of the `host` set in `state`.
pub(super) fn managed_hosts(state: &Value) -> Vec<(Option<String>, String)> {
    match state.get_attr("host") {
        Some(Value::Set(items)) => items
            .iter()
            .filter_map(|h| {
                let mac = h.get_attr("mac").and_then(Value::as_str).map(str::to_lowercase);
                Some((mac, h.get_attr("ip").and_then(Value::as_str)?.to_string()))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Fills the state from what the host reports.
pub(super) fn fill(state: &mut Value, observed: &Observed, hosts: Hosts) {
    let doc = &observed.doc;
    set_attr(state, "id", doc.uuid.clone().map(Value::string).unwrap_or(Value::Null));
    set_attr(state, "name", Value::string(doc.name.clone()));
    let mode = doc
        .forward
        .as_ref()
        .map(|f| f.mode.clone().unwrap_or_else(|| "nat".into()))
        .unwrap_or_else(|| "isolated".into());
    set_attr(state, "mode", Value::string(mode));
    set_attr(
        state,
        "bridge",
        doc.bridge.as_ref().and_then(|b| b.name.clone()).map(Value::string).unwrap_or(Value::Null),
    );
    set_attr(state, "domain", doc.domain.as_ref().map(|d| Value::string(d.name.clone())).unwrap_or(Value::Null));
    set_attr(state, "mtu", doc.mtu.as_ref().map(|m| int(i64::from(m.size))).unwrap_or(Value::Null));
    set_attr(state, "autostart", Value::Bool(observed.autostart));
    set_attr(state, "active", Value::Bool(observed.active));
    let ip = doc.ips.iter().find(|ip| ip.family.as_deref().unwrap_or("ipv4") == "ipv4");
    let cidr = ip.and_then(|ip| {
        let addr: Ipv4Addr = ip.address.parse().ok()?;
        let prefix = prefix_of(ip)?;
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        Some((Cidr { network: u32::from(addr) & mask, prefix }, addr))
    });
    set_attr(state, "cidr", cidr.map(|(c, _)| Value::string(c.to_string())).unwrap_or(Value::Null));
    set_attr(state, "gateway", cidr.map(|(_, gw)| Value::string(gw.to_string())).unwrap_or(Value::Null));
    let dhcp = ip.and_then(|ip| ip.dhcp.as_ref());
    // Keep the user's way of writing the DHCP block when it means what the host has.
    let configured = state.get_attr("dhcp").cloned();
    let observed_range = dhcp.and_then(|d| d.ranges.first()).map(|r| (r.start.clone(), r.end.clone()));
    let dhcp_value = match (&observed_range, cidr) {
        (Some((start, end)), Some((c, _))) => {
            let (ds, de) = c.default_range();
            let default = *start == ds.to_string() && *end == de.to_string();
            let keep = matches!(&configured, Some(Value::List(items)) if items.is_empty()) && default;
            if keep {
                Value::List(Vec::new())
            } else {
                let (cs, ce) = configured_range(configured.as_ref());
                Value::List(vec![Value::object_from([
                    ("enabled", Value::Bool(true)),
                    (
                        "start",
                        if cs.is_none() && *start == ds.to_string() {
                            Value::Null
                        } else {
                            Value::string(start.clone())
                        },
                    ),
                    (
                        "end",
                        if ce.is_none() && *end == de.to_string() { Value::Null } else { Value::string(end.clone()) },
                    ),
                ])])
            }
        }
        (None, Some(_)) => Value::List(vec![Value::object_from([
            ("enabled", Value::Bool(false)),
            ("start", Value::Null),
            ("end", Value::Null),
        ])]),
        _ => Value::List(Vec::new()),
    };
    set_attr(state, "dhcp", dhcp_value);
    let managed = managed_hosts(state);
    let is_managed = |h: &DhcpHost| {
        hosts == Hosts::All || managed.contains(&(h.mac.as_deref().map(str::to_lowercase), h.ip.clone()))
    };
    let host_values = dhcp.map(|d| d.hosts.clone()).unwrap_or_default().into_iter().filter(is_managed).map(|h| {
        Value::object_from([
            ("mac", h.mac.map(|m| Value::string(m.to_lowercase())).unwrap_or(Value::Null)),
            ("ip", Value::string(h.ip)),
            ("name", h.name.map(Value::string).unwrap_or(Value::Null)),
        ])
    });
    set_attr(state, "host", Value::Set(host_values.collect()));
    let dns_values = doc.dns.as_ref().map(|d| d.hosts.clone()).unwrap_or_default().into_iter().map(|h| {
        Value::object_from([
            ("ip", Value::string(h.ip)),
            ("hostnames", Value::List(h.hostnames.into_iter().map(Value::String).collect())),
        ])
    });
    set_attr(state, "dns_host", Value::Set(dns_values.collect()));
}

pub(super) fn configured_range(dhcp: Option<&Value>) -> (Option<String>, Option<String>) {
    let first = match dhcp {
        Some(Value::List(items)) => items.first(),
        _ => None,
    };
    let get = |name: &str| first.and_then(|b| b.get_attr(name)).and_then(Value::as_str).map(str::to_string);
    (get("start"), get("end"))
}
