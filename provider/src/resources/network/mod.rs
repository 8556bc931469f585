//! `kvm_network`: a libvirt virtual network (NAT, routed, isolated, or an existing host bridge).
//!
//! Laid out as `kvm_instance` is: [`model`] (the object as Rust types), [`schema`] (attributes and
//! their single-value rules), [`spec`]
//! (reading and checking a configuration: subnet, DHCP range, hosts), [`build`] (the libvirt
//! document), [`state`] (what the host reports, written back into the state), [`ops`] (host calls:
//! read a network, the in-place updates); this file is the resource's life cycle.

mod build;
mod model;
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

use super::{Context, Outcome, Resource};
use crate::diag::{Diagnostic, Diagnostics};
use crate::libvirt::{Found, HostError};
use crate::model::{resolved, Field, Model, SetOf};
use crate::schema::Schema;
use build::network_doc;
use model::{DhcpModel, HostModel, Ipv6Model, NetworkModel, NetworkPlan, RouteModel, DEFAULT_MODE, DHCP_ENABLED};
use ops::{fragment_changes, lookup, observe};
use spec::{dhcp_range, gateway6, ipv6_ip, parse_cidr, parse_cidr6, parse_ip, routes, NetworkSubnet};
use state::{managed_hosts, state};

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
        let Ok(config) = NetworkPlan::from_value(config) else { return diags };
        let mode = match &config.mode {
            Field::Known(mode) => mode.as_str(),
            Field::Null => DEFAULT_MODE,
            Field::Unknown => return diags,
        };
        let blocks = |n: Option<usize>| n.is_some_and(|n| n > 0);
        if mode == "bridge" {
            if config.bridge.is_null() {
                diags.push(Diagnostic::attribute_error(
                    Path::attr("bridge"),
                    "Missing bridge",
                    "mode = \"bridge\" joins an existing host bridge: name it with `bridge`, e.g. bridge = \"br0\".",
                ));
            }
            let forwarders = if config.dns_forwarders.is_null() { Field::Null } else { Field::Unknown };
            for (attr, value) in [("cidr", &config.cidr), ("domain", &config.domain), ("dns_forwarders", &forwarders)] {
                if !value.is_null() {
                    diags.push(Diagnostic::attribute_error(
                        Path::attr(attr),
                        "Not used in bridge mode",
                        format!("In bridge mode the host's own network serves addresses; remove `{attr}`."),
                    ));
                }
            }
            let counts = [
                ("dhcp", config.dhcp.known().map(Vec::len)),
                ("host", config.host.known().map(|s| s.0.len())),
                ("dns_host", config.dns_host.known().map(|s| s.0.len())),
                ("ipv6", config.ipv6.known().map(Vec::len)),
                ("route", config.route.known().map(|s| s.0.len())),
            ];
            for (block, count) in counts {
                if blocks(count) {
                    diags.push(Diagnostic::attribute_error(
                        Path::attr(block),
                        "Not used in bridge mode",
                        format!("In bridge mode the host's own network serves addresses; remove the `{block}` blocks."),
                    ));
                }
            }
            return diags;
        }
        let cidr = match &config.cidr {
            Field::Null => {
                diags.push(Diagnostic::attribute_error(
                    Path::attr("cidr"),
                    "Missing cidr",
                    format!("A {mode} network needs a subnet, e.g. cidr = \"10.17.3.0/24\"."),
                ));
                return diags;
            }
            Field::Known(s) => match parse_cidr(s) {
                Ok(c) => c,
                Err(_) => return diags, // reported by the attribute validator
            },
            Field::Unknown => return diags,
        };
        let Some(dhcp) = resolved::<Vec<DhcpModel>>(&config.dhcp) else { return diags };
        let range = match dhcp_range(dhcp.first(), cidr) {
            Ok(r) => r,
            Err(d) => {
                diags.push(d);
                return diags;
            }
        };
        if let Field::Known(items) = &config.host {
            let mut macs = BTreeSet::new();
            let mut ips = BTreeSet::new();
            for h in items.0.iter().filter_map(resolved::<HostModel>) {
                let ip = &h.ip;
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
                if let Some(m) = &h.mac {
                    if !macs.insert(m.to_lowercase()) {
                        diags.push(Diagnostic::attribute_error(
                            Path::attr("host"),
                            "Invalid DHCP host",
                            format!("MAC {m} is listed twice; each MAC gets one address."),
                        ));
                    }
                } else if h.name.is_none() {
                    diags.push(Diagnostic::attribute_error(
                        Path::attr("host"),
                        "Invalid DHCP host",
                        format!("the entry for {ip} needs a `mac` or a `name` to match guests by."),
                    ));
                }
            }
            if range.is_none() && !items.0.is_empty() {
                diags.push(Diagnostic::attribute_error(Path::attr("host"), "DHCP is off", "Static DHCP hosts need DHCP: remove `enabled = false` from the dhcp block, or remove the host blocks."));
            }
        }
        // IPv6 and routes: the rules live with the document they make (spec), checked here as soon
        // as the blocks are known.
        let v6 = resolved::<Vec<Ipv6Model>>(&config.ipv6);
        if let Some(Some(block)) = v6.as_ref().map(|b| b.first()) {
            if let Err(d) = ipv6_ip(block) {
                diags.push(d);
            }
        }
        if let (Some(routes_given), Some(v6)) = (resolved::<SetOf<RouteModel>>(&config.route), v6) {
            let cidr6 = v6.first().and_then(|b| parse_cidr6(&b.cidr).ok());
            if let Err(d) = routes(&routes_given.0, Some(cidr), cidr6) {
                diags.push(d);
            }
        }
        if let Field::Known(items) = &config.dns_host {
            for h in items.0.iter().filter_map(resolved::<model::DnsHostModel>) {
                if let Err(e) = parse_ip(&h.ip) {
                    diags.push(Diagnostic::attribute_error(Path::attr("dns_host"), "Invalid DNS host", e));
                }
                if h.hostnames.is_empty() {
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
        if planned.is_null() {
            return diags;
        }
        let (config, mut plan) = match (NetworkPlan::from_value(config), NetworkPlan::from_value(planned)) {
            (Ok(config), Ok(plan)) => (config, plan),
            (Err(e), _) | (_, Err(e)) => return e.into(),
        };
        // The gateway follows from the CIDR: known at plan time, so guests can use it.
        match &config.cidr {
            Field::Known(s) => {
                if let Ok(c) = parse_cidr(s) {
                    plan.gateway = Field::Known(c.gateway().to_string());
                }
            }
            Field::Null if config.mode != Field::Unknown => plan.gateway = Field::Null,
            _ => {}
        }
        match resolved::<Vec<Ipv6Model>>(&config.ipv6) {
            Some(blocks) => {
                plan.ipv6_gateway = match blocks.first().map(|b| parse_cidr6(&b.cidr)) {
                    Some(Ok(c)) => Field::Known(gateway6(c).to_string()),
                    Some(Err(_)) => Field::Unknown,
                    None => Field::Null,
                }
            }
            None => plan.ipv6_gateway = Field::Unknown,
        }
        if let Ok(prior) = NetworkPlan::from_value(prior) {
            // A network is meant to run: one stopped outside Terraform plans an update that starts it.
            plan.active = Field::Known(true);
            let mut restart = Vec::new();
            if prior.domain != plan.domain {
                restart.push("domain");
            }
            if prior.mtu != plan.mtu {
                restart.push("mtu");
            }
            if prior.ipv6 != plan.ipv6 {
                restart.push("ipv6");
            }
            if prior.route != plan.route {
                restart.push("route");
            }
            if prior.dns_forwarders != plan.dns_forwarders {
                restart.push("dns_forwarders");
            }
            if !restart.is_empty() {
                diags.push(Diagnostic::warning(
                    "Network will restart",
                    format!(
                        "Changing {} of network {:?} restarts it: running guests on it lose connectivity until their interfaces are reattached (or they restart).",
                        join_and(&restart),
                        config.name.known().map(String::as_str).unwrap_or_default()
                    ),
                ));
            }
        }
        *planned = plan.to_value();
        diags
    }

    fn replace_when(&self, prior: &Value, planned: &Value) -> Vec<Path> {
        // dnsmasq's DHCP service cannot be switched on or off by virNetworkUpdate.
        let enabled = |v: &Value| {
            let dhcp = NetworkPlan::from_value(v).ok().and_then(|n| n.dhcp.known().and_then(|d| d.first().cloned()));
            match dhcp {
                Some(Field::Known(d)) => d.enabled.known().copied().unwrap_or(DHCP_ENABLED),
                _ => DHCP_ENABLED,
            }
        };
        if enabled(prior) != enabled(planned) {
            vec![Path::attr("dhcp")]
        } else {
            Vec::new()
        }
    }

    async fn create(&self, ctx: &Context, planned: &Value) -> Outcome<Value> {
        let plan = NetworkModel::from_value(planned)?;
        let doc = network_doc(&plan)?;
        let xml = doc.to_xml().map_err(|e| Diagnostic::error("Internal error", e.to_string()))?;
        let name = doc.name.clone();
        let autostart = plan.autostart();
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
        Ok(state(&observed, Some(&plan)).to_value())
    }

    async fn read(&self, ctx: &Context, current: &Value) -> Outcome<Option<Value>> {
        let current = NetworkModel::from_value(current)?;
        let Some(observed) = lookup(ctx, &current.name).await? else {
            tracing::warn!(network = %current.name, "network is gone from the host");
            return Ok(None);
        };
        Ok(Some(state(&observed, Some(&current)).to_value()))
    }

    async fn update(&self, ctx: &Context, prior: &Value, planned: &Value) -> Outcome<Value> {
        let before = NetworkModel::from_value(prior)?;
        let after = NetworkModel::from_value(planned)?;
        let name = after.name.clone();
        let mut new_doc = network_doc(&after)?;
        // Redefining an existing network must name its UUID, or libvirt sees a second network.
        new_doc.uuid = before.id.known().cloned();
        let restart = (&before.domain, before.mtu, &before.ipv6, &before.route, &before.dns_forwarders)
            != (&after.domain, after.mtu, &after.ipv6, &after.route, &after.dns_forwarders);
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
        let managed_before = managed_hosts(&before);
        let autostart = after.autostart();
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
        Ok(state(&observed, Some(&after)).to_value())
    }

    async fn delete(&self, ctx: &Context, prior: &Value) -> Outcome<()> {
        let name = NetworkModel::from_value(prior)?.name;
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
        Ok(state(&observed, None).to_value())
    }
}

/// "a", "a and b", "a, b and c".
fn join_and(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{empty_object, set_attr};

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
