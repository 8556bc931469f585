//! `kvm_network`: a libvirt virtual network (NAT, routed, isolated, or an existing host bridge).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use async_trait::async_trait;
use libvirt_xml::network::{
    Bridge, Dhcp, DhcpHost, DhcpRange, Dns, DnsHost, Forward, Ip, Mtu, NetDomain, Network as NetDoc,
};
use libvirt_xml::{Document, Fragment};
use tf_cty::{Path, Type, Value};
use virt::sys;

use super::{empty_object, int, set_attr, Attrs, Context, Outcome, Resource};
use crate::diag::{Diagnostic, Diagnostics};
use crate::libvirt::{name_validator, Found, HostError};
use crate::schema::{int_range, one_of, Attribute, Block, NestedBlock, Nesting, Schema};

/// The `kvm_network` resource.
pub struct Network {
    schema: Schema,
}

impl Default for Network {
    fn default() -> Self {
        Self::new()
    }
}

impl Network {
    /// The resource with its schema.
    pub fn new() -> Self {
        let block = Block::new(
            "A libvirt virtual network: `nat` (guests reach out through the host), `route`, `isolated` (guests \
             and host only) or `bridge` (guests join an existing host bridge). Static DHCP hosts and DNS hosts \
             change in place without restarting the network; `domain` and `mtu` changes restart it.",
        )
        .attribute(Attribute::computed("id", Type::String).describe("The network's UUID."))
        .attribute(Attribute::required("name", Type::String).describe("Network name.").force_new().validate(name_validator()))
        .attribute(
            Attribute::optional("mode", Type::String)
                .describe("`nat` (default), `route`, `isolated` or `bridge`.")
                .default_value(Value::string("nat"))
                .force_new()
                .validate(one_of(&["nat", "route", "isolated", "bridge"])),
        )
        .attribute(
            Attribute::optional("cidr", Type::String)
                .describe("IPv4 subnet, e.g. `10.17.3.0/24`; the host takes its first address. Required except in `bridge` mode.")
                .force_new()
                .validate(|v: &Value| v.as_str().map(|s| parse_cidr(s).map(drop)).unwrap_or(Ok(()))),
        )
        .attribute(
            Attribute::optional_computed("bridge", Type::String)
                .describe("Bridge device: in `bridge` mode the existing host bridge to join (required); otherwise libvirt picks one (`virbrN`) unless given.")
                .force_new(),
        )
        .attribute(Attribute::optional("domain", Type::String).describe("DNS domain served to guests, e.g. `lab.test`; changing it restarts the network."))
        .attribute(
            Attribute::optional("mtu", Type::Number)
                .describe("MTU of the bridge; changing it restarts the network.")
                .validate(int_range(68, 65535)),
        )
        .attribute(
            Attribute::optional("autostart", Type::Bool)
                .describe("Start the network when libvirtd starts. Default `true`.")
                .default_value(Value::Bool(true)),
        )
        .attribute(
            Attribute::computed("active", Type::Bool)
                .describe("Whether the network is running. A network stopped outside Terraform is started by the next apply."),
        )
        .attribute(Attribute::computed("gateway", Type::String).describe("The host's address on the network (first address of `cidr`)."))
        .block(
            NestedBlock::new(
                "dhcp",
                Nesting::List,
                Block::new("DHCP service. Default: on, handing out every address after the gateway.")
                    .attribute(Attribute::optional("enabled", Type::Bool).describe("Serve DHCP. Default `true`.").default_value(Value::Bool(true)))
                    .attribute(Attribute::optional("start", Type::String).describe("First address handed out."))
                    .attribute(Attribute::optional("end", Type::String).describe("Last address handed out.")),
            )
            .items(0, 1),
        )
        .block(NestedBlock::new(
            "host",
            Nesting::Set,
            Block::new("A static DHCP host entry; changed in place.")
                .attribute(Attribute::optional("mac", Type::String).describe("MAC address, e.g. `52:54:00:12:34:56`.").validate(mac))
                .attribute(Attribute::required("ip", Type::String).describe("IPv4 address inside `cidr`."))
                .attribute(Attribute::optional("name", Type::String).describe("Host name given to the guest.")),
        ))
        .block(NestedBlock::new(
            "dns_host",
            Nesting::Set,
            Block::new("A DNS record served by the network; changed in place.")
                .attribute(Attribute::required("ip", Type::String).describe("Address."))
                .attribute(Attribute::required("hostnames", Type::list(Type::String)).describe("Names for the address.")),
        ));
        Network { schema: Schema::new(0, block) }
    }
}

// The interface's rule (a DHCP host entry names an interface): unicast, lower case as libvirt
// stores it, so the state matches the configuration.
fn mac(v: &Value) -> Result<(), String> {
    let Some(m) = v.as_str() else { return Err("expected a string".into()) };
    kvm_validate::mac_address(m).map(|_| ()).map_err(|e| format!("{e}."))
}

/// A subnet: network address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    network: u32,
    prefix: u8,
}

impl Cidr {
    fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }
    fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.network
    }
    fn gateway(self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1)
    }
    fn broadcast(self) -> u32 {
        self.network | !self.mask()
    }
    /// The default DHCP range: everything after the gateway up to the broadcast address.
    fn default_range(self) -> (Ipv4Addr, Ipv4Addr) {
        (Ipv4Addr::from(self.network + 2), Ipv4Addr::from(self.broadcast() - 1))
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

fn parse_cidr(text: &str) -> Result<Cidr, String> {
    let (addr, prefix) =
        text.split_once('/').ok_or_else(|| format!("{text:?} is not a CIDR; write it like \"10.17.3.0/24\"."))?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| format!("{text:?}: {addr:?} is not an IPv4 address."))?;
    let prefix: u8 =
        prefix.parse().ok().filter(|p| *p <= 32).ok_or_else(|| format!("{text:?}: the prefix must be 0 to 32."))?;
    if prefix > 29 {
        return Err(format!(
            "{text:?} is too small: a network needs room for the host and at least one guest (at most /29)."
        ));
    }
    if prefix < 8 {
        return Err(format!("{text:?} is too large for a libvirt network (at least /8)."));
    }
    let cidr = Cidr { network: u32::from(addr) & if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) }, prefix };
    if cidr.network != u32::from(addr) {
        return Err(format!("{text:?} is not a network address; did you mean \"{cidr}\"?"));
    }
    Ok(cidr)
}

fn parse_ip(text: &str) -> Result<Ipv4Addr, String> {
    text.parse().map_err(|_| format!("{text:?} is not an IPv4 address."))
}

/// The DHCP settings of a configuration: `None` when DHCP is off.
fn dhcp_range(attrs: &Attrs<'_>, cidr: Cidr) -> Result<Option<(Ipv4Addr, Ipv4Addr)>, Diagnostic> {
    let block = match attrs.get("dhcp") {
        Value::List(items) => items.first().cloned(),
        _ => None,
    };
    let Some(block) = block else { return Ok(Some(cidr.default_range())) };
    let d = Attrs::of(&block)?;
    if d.opt_bool("enabled") == Some(false) {
        return Ok(None);
    }
    let (default_start, default_end) = cidr.default_range();
    let path = |a: &str| Path::attr("dhcp").join_index(0).join_attr(a);
    let start = d
        .opt_str("start")
        .map(parse_ip)
        .transpose()
        .map_err(|e| Diagnostic::attribute_error(path("start"), "Invalid DHCP range", e))?
        .unwrap_or(default_start);
    let end = d
        .opt_str("end")
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

fn hosts(attrs: &Attrs<'_>) -> Result<Vec<DhcpHost>, Diagnostic> {
    let Value::Set(items) = attrs.get("host") else { return Ok(Vec::new()) };
    items
        .iter()
        .map(|h| {
            let h = Attrs::of(h)?;
            Ok(DhcpHost {
                mac: h.opt_str("mac").map(str::to_lowercase),
                name: h.opt_str("name").map(str::to_string),
                ip: h.str("ip")?.to_string(),
            })
        })
        .collect()
}

fn dns_hosts(attrs: &Attrs<'_>) -> Result<Vec<DnsHost>, Diagnostic> {
    let Value::Set(items) = attrs.get("dns_host") else { return Ok(Vec::new()) };
    items
        .iter()
        .map(|h| {
            let h = Attrs::of(h)?;
            let hostnames = match h.get("hostnames") {
                Value::List(names) => names.iter().filter_map(|n| n.as_str().map(str::to_string)).collect(),
                _ => Vec::new(),
            };
            Ok(DnsHost { ip: h.str("ip")?.to_string(), hostnames })
        })
        .collect()
}

/// The network as configured, as a typed document.
fn network_doc(attrs: &Attrs<'_>) -> Result<NetDoc, Diagnostic> {
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

/// What the host reports about a network.
struct Observed {
    doc: NetDoc,
    autostart: bool,
    active: bool,
}

fn observe(net: &virt::network::Network, name: &str) -> Result<Observed, HostError> {
    // The persistent definition is what Terraform manages; live-only changes are lost on restart.
    let xml = net
        .xml_desc(sys::VIR_NETWORK_XML_INACTIVE)
        .map_err(|e| HostError::call(format!("read network {name:?}"), e))?;
    let doc = NetDoc::from_xml(&xml).map_err(|e| HostError::Other(format!("network {name:?}: {e}")))?;
    let autostart = net.autostart().map_err(|e| HostError::call(format!("read autostart of {name:?}"), e))?;
    let active = net.is_active().map_err(|e| HostError::call(format!("read state of {name:?}"), e))?;
    Ok(Observed { doc, autostart, active })
}

fn prefix_of(ip: &Ip) -> Option<u8> {
    ip.prefix.or_else(|| {
        ip.netmask.as_deref().and_then(|m| m.parse::<Ipv4Addr>().ok()).map(|m| u32::from(m).count_ones() as u8)
    })
}

/// Which static DHCP hosts the state shows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hosts {
    /// Only those the state already has: entries others add (a `kvm_instance` reserving its fixed
    /// address) are theirs, not drift of the network.
    Managed,
    /// All of them (import).
    All,
}

/// The (MAC, IP) pairs of the `host` set in `state`.
fn managed_hosts(state: &Value) -> Vec<(Option<String>, String)> {
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
fn fill(state: &mut Value, observed: &Observed, hosts: Hosts) {
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

fn configured_range(dhcp: Option<&Value>) -> (Option<String>, Option<String>) {
    let first = match dhcp {
        Some(Value::List(items)) => items.first(),
        _ => None,
    };
    let get = |name: &str| first.and_then(|b| b.get_attr(name)).and_then(Value::as_str).map(str::to_string);
    (get("start"), get("end"))
}

async fn lookup(ctx: &Context, name: &str) -> Result<Option<Observed>, Diagnostic> {
    let owned = name.to_string();
    let result = ctx
        .host()?
        .call(move |conn| {
            let net = conn
                .lookup_network_by_name(&owned)
                .map_err(|e| HostError::call(format!("look up network {owned:?}"), e))?;
            observe(&net, &owned)
        })
        .await;
    result.found().map_err(|e| e.diagnostic("Cannot read network"))
}

/// One virNetworkUpdate call.
struct Change {
    command: sys::virNetworkUpdateCommand,
    section: sys::virNetworkUpdateSection,
    xml: String,
    what: String,
}

fn fragment_changes<T: Fragment + PartialEq + Clone + std::fmt::Debug>(
    before: &[T],
    after: &[T],
    section: sys::virNetworkUpdateSection,
    kind: &str,
) -> Result<Vec<Change>, Diagnostic> {
    let xml = |t: &T| t.to_xml().map_err(|e| Diagnostic::error("Internal error", e.to_string()));
    let mut changes = Vec::new();
    for old in before.iter().filter(|o| !after.contains(o)) {
        changes.push(Change {
            command: sys::VIR_NETWORK_UPDATE_COMMAND_DELETE,
            section,
            xml: xml(old)?,
            what: format!("remove {kind} {old:?}"),
        });
    }
    for new in after.iter().filter(|n| !before.contains(n)) {
        changes.push(Change {
            command: sys::VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
            section,
            xml: xml(new)?,
            what: format!("add {kind} {new:?}"),
        });
    }
    Ok(changes)
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
    fn cidr_rules() {
        let c = parse_cidr("10.17.3.0/24").unwrap();
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 17, 3, 1));
        assert_eq!(c.default_range(), (Ipv4Addr::new(10, 17, 3, 2), Ipv4Addr::new(10, 17, 3, 254)));
        assert!(parse_cidr("10.17.3.5/24").unwrap_err().contains("did you mean \"10.17.3.0/24\""));
        assert!(parse_cidr("10.17.3.0/30").unwrap_err().contains("too small"));
        assert!(parse_cidr("10.17.3.0").is_err());
        assert!(parse_cidr("300.1.1.0/24").is_err());
    }

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
