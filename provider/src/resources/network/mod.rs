//! `kvm_network`: a libvirt virtual network (NAT, routed, isolated, or an existing host bridge).
//!
//! Laid out as `kvm_instance` is: [`schema`] (attributes and their single-value rules), [`spec`]
//! (reading and checking a configuration: subnet, DHCP range, hosts), [`build`] (the libvirt
//! document), [`state`] (what the host reports, written back into the state), [`ops`] (host calls:
//! read a network, the in-place updates); this file is the resource's life cycle.

mod build;
mod ops;
mod schema;
mod spec;
mod state;

use std::collections::BTreeSet;

use async_trait::async_trait;
use libvirt_xml::network::Network as NetDoc;
use libvirt_xml::Document;
use tf_cty::{Path, Value};
use virt::sys;

use super::{empty_object, set_attr, Attrs, Context, Outcome, Resource};
use crate::diag::{Diagnostic, Diagnostics};
use crate::libvirt::{Found, HostError};
use crate::schema::Schema;
use build::network_doc;
use ops::{fragment_changes, lookup, observe};
use spec::{dhcp_range, parse_cidr, parse_ip};
use state::{fill, managed_hosts, Hosts};

/// The `kvm_network` resource.
pub struct Network {
    schema: Schema,
}

impl Default for Network {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Resource for Network {
    fn type_name(&self) -> &'static str {
        "kvm_network"
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        let mut diags = Diagnostics::new();
        let Ok(attrs) = Attrs::of(config) else { return diags };
        let Some(mode) = attrs.opt_str("mode").or(if attrs.get("mode").is_null() { Some("nat") } else { None }) else {
            return diags;
        };
        if mode == "bridge" {
            if attrs.get("bridge").is_null() {
                diags.push(Diagnostic::attribute_error(
                    Path::attr("bridge"),
                    "Missing bridge",
                    "mode = \"bridge\" joins an existing host bridge: name it with `bridge`, e.g. bridge = \"br0\".",
                ));
            }
            for attr in ["cidr", "domain"] {
                if !attrs.get(attr).is_null() {
                    diags.push(Diagnostic::attribute_error(
                        Path::attr(attr),
                        "Not used in bridge mode",
                        format!("In bridge mode the host's own network serves addresses; remove `{attr}`."),
                    ));
                }
            }
            for block in ["dhcp", "host", "dns_host"] {
                if matches!(attrs.get(block), Value::List(v) | Value::Set(v) if !v.is_empty()) {
                    diags.push(Diagnostic::attribute_error(
                        Path::attr(block),
                        "Not used in bridge mode",
                        format!("In bridge mode the host's own network serves addresses; remove the `{block}` blocks."),
                    ));
                }
            }
            return diags;
        }
        let cidr = match attrs.get("cidr") {
            Value::Null => {
                diags.push(Diagnostic::attribute_error(
                    Path::attr("cidr"),
                    "Missing cidr",
                    format!("A {mode} network needs a subnet, e.g. cidr = \"10.17.3.0/24\"."),
                ));
                return diags;
            }
            Value::String(s) => match parse_cidr(s) {
                Ok(c) => c,
                Err(_) => return diags, // reported by the attribute validator
            },
            _ => return diags,
        };
        if !attrs.get("dhcp").is_wholly_known() {
            return diags;
        }
        let range = match dhcp_range(&attrs, cidr) {
            Ok(r) => r,
            Err(d) => {
                diags.push(d);
                return diags;
            }
        };
        if let Value::Set(items) = attrs.get("host") {
            let mut macs = BTreeSet::new();
            let mut ips = BTreeSet::new();
            for item in items.iter().filter(|i| i.is_wholly_known()) {
                let Ok(h) = Attrs::of(item) else { continue };
                let Some(ip) = h.opt_str("ip") else { continue };
                let problem = match parse_ip(ip) {
                    Err(e) => Some(e),
                    Ok(addr)
                        if !cidr.contains(addr)
                            || addr == cidr.gateway()
                            || u32::from(addr) == cidr.network
                            || u32::from(addr) == cidr.broadcast() =>
                    {
                        Some(format!("{ip} is not a guest address of {cidr}."))
                    }
                    Ok(_) if !ips.insert(ip.to_string()) => Some(format!("{ip} is given to more than one host.")),
                    Ok(_) => None,
                };
                if let Some(p) = problem {
                    diags.push(Diagnostic::attribute_error(Path::attr("host"), "Invalid DHCP host", p));
                }
                if let Some(m) = h.opt_str("mac") {
                    if !macs.insert(m.to_lowercase()) {
                        diags.push(Diagnostic::attribute_error(
                            Path::attr("host"),
                            "Invalid DHCP host",
                            format!("MAC {m} is listed twice; each MAC gets one address."),
                        ));
                    }
                } else if h.get("name").is_null() {
                    diags.push(Diagnostic::attribute_error(
                        Path::attr("host"),
                        "Invalid DHCP host",
                        format!("the entry for {ip} needs a `mac` or a `name` to match guests by."),
                    ));
                }
            }
            if range.is_none() && !items.is_empty() {
                diags.push(Diagnostic::attribute_error(Path::attr("host"), "DHCP is off", "Static DHCP hosts need DHCP: remove `enabled = false` from the dhcp block, or remove the host blocks."));
            }
        }
        if let Value::Set(items) = attrs.get("dns_host") {
            for item in items.iter().filter(|i| i.is_wholly_known()) {
                let Ok(h) = Attrs::of(item) else { continue };
                if let Some(Err(e)) = h.opt_str("ip").map(parse_ip) {
                    diags.push(Diagnostic::attribute_error(Path::attr("dns_host"), "Invalid DNS host", e));
                }
                if matches!(h.get("hostnames"), Value::List(n) if n.is_empty()) {
                    diags.push(Diagnostic::attribute_error(
                        Path::attr("dns_host"),
                        "Invalid DNS host",
                        "give at least one name in `hostnames`.",
                    ));
                }
            }
        }
        diags
    }

    async fn modify_plan(&self, _ctx: &Context, prior: &Value, config: &Value, planned: &mut Value) -> Diagnostics {
        let mut diags = Diagnostics::new();
        let Ok(attrs) = Attrs::of(config) else { return diags };
        // The gateway follows from the CIDR: known at plan time, so guests can use it.
        match attrs.get("cidr") {
            Value::String(s) => {
                if let Ok(c) = parse_cidr(s) {
                    set_attr(planned, "gateway", Value::string(c.gateway().to_string()));
                }
            }
            Value::Null if !attrs.get("mode").is_unknown() => set_attr(planned, "gateway", Value::Null),
            _ => {}
        }
        if !prior.is_null() {
            // A network is meant to run: one stopped outside Terraform plans an update that starts it.
            set_attr(planned, "active", Value::Bool(true));
            let restart: Vec<&str> =
                ["domain", "mtu"].into_iter().filter(|a| prior.get_attr(a) != planned.get_attr(a)).collect();
            if !restart.is_empty() {
                diags.push(Diagnostic::warning(
                    "Network will restart",
                    format!(
                        "Changing {} of network {:?} restarts it: running guests on it lose connectivity until their interfaces are reattached (or they restart).",
                        restart.join(" and "),
                        attrs.opt_str("name").unwrap_or_default()
                    ),
                ));
            }
        }
        diags
    }

    fn replace_when(&self, prior: &Value, planned: &Value) -> Vec<Path> {
        // dnsmasq's DHCP service cannot be switched on or off by virNetworkUpdate.
        let enabled = |v: &Value| match v.get_attr("dhcp") {
            Some(Value::List(items)) => {
                items.first().and_then(|b| b.get_attr("enabled")).and_then(Value::as_bool).unwrap_or(true)
            }
            _ => true,
        };
        if enabled(prior) != enabled(planned) {
            vec![Path::attr("dhcp")]
        } else {
            Vec::new()
        }
    }

    async fn create(&self, ctx: &Context, planned: &Value) -> Outcome<Value> {
        let attrs = Attrs::of(planned)?;
        let doc = network_doc(&attrs)?;
        let xml = doc.to_xml().map_err(|e| Diagnostic::error("Internal error", e.to_string()))?;
        let name = doc.name.clone();
        let autostart = attrs.opt_bool("autostart").unwrap_or(true);
        tracing::info!(network = %name, "creating network");
        let host = ctx.host()?;
        let _guard = host.lock_networks().await;
        let observed = host
            .call(move |conn| {
                let net = conn
                    .define_network_xml(&xml)
                    .map_err(|e| HostError::call(format!("define network {name:?}"), e))?;
                let started = (|| {
                    net.create().map_err(|e| HostError::call(format!("start network {name:?}"), e))?;
                    net.set_autostart(autostart)
                        .map_err(|e| HostError::call(format!("set autostart of {name:?}"), e))?;
                    observe(&net, &name)
                })();
                if started.is_err() {
                    // Nothing half-made stays on the host.
                    let _ = net.destroy();
                    let _ = net.undefine();
                }
                started
            })
            .await
            .map_err(|e| e.diagnostic("Cannot create network"))?;
        let mut state = planned.clone();
        fill(&mut state, &observed, Hosts::Managed);
        Ok(state)
    }

    async fn read(&self, ctx: &Context, current: &Value) -> Outcome<Option<Value>> {
        let attrs = Attrs::of(current)?;
        let Some(observed) = lookup(ctx, attrs.str("name")?).await? else {
            tracing::warn!(network = attrs.opt_str("name").unwrap_or_default(), "network is gone from the host");
            return Ok(None);
        };
        let mut state = current.clone();
        fill(&mut state, &observed, Hosts::Managed);
        Ok(Some(state))
    }

    async fn update(&self, ctx: &Context, prior: &Value, planned: &Value) -> Outcome<Value> {
        let before = Attrs::of(prior)?;
        let after = Attrs::of(planned)?;
        let name = after.str("name")?.to_string();
        let mut new_doc = network_doc(&after)?;
        // Redefining an existing network must name its UUID, or libvirt sees a second network.
        new_doc.uuid = before.opt_str("id").map(str::to_string);
        let restart = ["domain", "mtu"].iter().any(|a| before.get(a) != after.get(a));
        let mut changes = Vec::new();
        if !restart {
            let old_doc = network_doc(&before)?;
            let dhcp_of = |d: &NetDoc| d.ips.first().and_then(|ip| ip.dhcp.clone());
            let (old_dhcp, new_dhcp) = (dhcp_of(&old_doc), dhcp_of(&new_doc));
            if old_dhcp.is_some() != new_dhcp.is_some() {
                return Err(Diagnostic::attribute_error(
                    Path::attr("dhcp"),
                    "Cannot switch DHCP in place",
                    "Turning DHCP on or off needs the network recreated; taint it (terraform taint) or recreate it.",
                )
                .into());
            }
            let (old_dhcp, new_dhcp) = (old_dhcp.unwrap_or_default(), new_dhcp.unwrap_or_default());
            changes.extend(fragment_changes(
                &old_dhcp.ranges,
                &new_dhcp.ranges,
                sys::VIR_NETWORK_SECTION_IP_DHCP_RANGE,
                "DHCP range",
            )?);
            changes.extend(fragment_changes(
                &old_dhcp.hosts,
                &new_dhcp.hosts,
                sys::VIR_NETWORK_SECTION_IP_DHCP_HOST,
                "DHCP host",
            )?);
            let dns_of = |d: &NetDoc| d.dns.clone().map(|d| d.hosts).unwrap_or_default();
            changes.extend(fragment_changes(
                &dns_of(&old_doc),
                &dns_of(&new_doc),
                sys::VIR_NETWORK_SECTION_DNS_HOST,
                "DNS host",
            )?);
        }
        let managed_before = managed_hosts(prior);
        let autostart = after.opt_bool("autostart").unwrap_or(true);
        let n = name.clone();
        let observed = ctx
            .host()?
            .call(move |conn| {
                let net = conn
                    .lookup_network_by_name(&n)
                    .map_err(|e| HostError::call(format!("look up network {n:?}"), e))?;
                let active = net.is_active().unwrap_or(false);
                if restart {
                    tracing::info!(network = %n, "redefining and restarting network");
                    // Entries others added (instances' fixed addresses) survive the redefinition.
                    let mut doc = new_doc.clone();
                    let current = observe(&net, &n)?.doc;
                    let foreign = current
                        .ips
                        .first()
                        .and_then(|ip| ip.dhcp.as_ref())
                        .map(|d| d.hosts.clone())
                        .unwrap_or_default();
                    if let Some(dhcp) = doc.ips.first_mut().and_then(|ip| ip.dhcp.as_mut()) {
                        for h in foreign {
                            let key = (h.mac.as_deref().map(str::to_lowercase), h.ip.clone());
                            if !managed_before.contains(&key) && !dhcp.hosts.contains(&h) {
                                dhcp.hosts.push(h);
                            }
                        }
                    }
                    let xml = doc.to_xml().map_err(|e| HostError::Other(e.to_string()))?;
                    let net = conn
                        .define_network_xml(&xml)
                        .map_err(|e| HostError::call(format!("redefine network {n:?}"), e))?;
                    if active {
                        net.destroy().map_err(|e| HostError::call(format!("stop network {n:?}"), e))?;
                    }
                    net.create().map_err(|e| HostError::call(format!("start network {n:?}"), e))?;
                } else {
                    // Live and persistent at once, without restarting dnsmasq's clients.
                    let flags = sys::VIR_NETWORK_UPDATE_AFFECT_CONFIG
                        | if active { sys::VIR_NETWORK_UPDATE_AFFECT_LIVE } else { 0 };
                    for change in &changes {
                        tracing::info!(network = %n, "{}", change.what);
                        net.update(change.command, change.section, -1, &change.xml, flags)
                            .map_err(|e| HostError::call(format!("{} on network {n:?}", change.what), e))?;
                    }
                    if !active {
                        net.create().map_err(|e| HostError::call(format!("start network {n:?}"), e))?;
                    }
                }
                net.set_autostart(autostart).map_err(|e| HostError::call(format!("set autostart of {n:?}"), e))?;
                observe(&net, &n)
            })
            .await
            .map_err(|e| e.diagnostic("Cannot update network"))?;
        let mut state = planned.clone();
        fill(&mut state, &observed, Hosts::Managed);
        Ok(state)
    }

    async fn delete(&self, ctx: &Context, prior: &Value) -> Outcome<()> {
        let name = Attrs::of(prior)?.str("name")?.to_string();
        let result = ctx
            .host()?
            .call(move |conn| {
                let net = conn
                    .lookup_network_by_name(&name)
                    .map_err(|e| HostError::call(format!("look up network {name:?}"), e))?;
                if net.is_active().unwrap_or(false) {
                    net.destroy().map_err(|e| HostError::call(format!("stop network {name:?}"), e))?;
                }
                net.undefine().map_err(|e| HostError::call(format!("undefine network {name:?}"), e))
            })
            .await;
        result.found().map(drop).map_err(|e| e.diagnostic("Cannot delete network").into())
    }

    async fn import(&self, ctx: &Context, id: &str) -> Outcome<Value> {
        let Some(observed) = lookup(ctx, id).await? else {
            return Err(Diagnostic::error(
                "Cannot import network",
                format!("No network named {id:?} on {}; the import ID is the network's name.", ctx.host()?.uri()),
            )
            .into());
        };
        let mut state = empty_object(&self.schema.block);
        fill(&mut state, &observed, Hosts::All);
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dhcp_range_must_fit() {
        let net = Network::new();
        let config = |dhcp: Value| {
            let mut v = empty_object(&net.schema.block);
            set_attr(&mut v, "name", Value::string("n"));
            set_attr(&mut v, "mode", Value::string("nat"));
            set_attr(&mut v, "cidr", Value::string("192.168.50.0/29"));
            set_attr(&mut v, "dhcp", dhcp);
            v
        };
        let block = |start: &str, end: &str| {
            Value::List(vec![Value::object_from([
                ("enabled", Value::Bool(true)),
                ("start", Value::string(start)),
                ("end", Value::string(end)),
            ])])
        };
        assert!(net.validate(&config(block("192.168.50.2", "192.168.50.6"))).is_empty());
        let diags = net.validate(&config(block("192.168.50.2", "192.168.50.20")));
        assert!(format!("{diags:?}").contains("192.168.50.20 is not a usable guest address"), "{diags:?}");
        let diags = net.validate(&config(block("192.168.50.5", "192.168.50.3")));
        assert!(format!("{diags:?}").contains("after its end"), "{diags:?}");
    }
}
