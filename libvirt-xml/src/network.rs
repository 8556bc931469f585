//! Virtual networks: `<network>` documents (`virsh net-define`, `net-dumpxml`) and the `<host>`
//! and `<range>` fragments that `virNetworkUpdate` takes.

use serde::{Deserialize, Serialize};

use crate::{Document, Fragment};

/// A virtual network definition.
///
/// Leaving `forward` unset gives an isolated network. On define libvirt adds `uuid`, `mac` and
/// `bridge` (name `virbrN`, `stp='on'`, `delay='0'`), except in `bridge` mode; while a NAT
/// network is active it also adds a port range to `forward.nat`. `net-dumpxml --inactive`
/// leaves the port range out.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename = "network")]
pub struct Network {
    /// Unique name of the network on the host.
    pub name: String,
    /// UUID; libvirt generates one when it is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// How traffic leaves the network; `None` means isolated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<Forward>,
    /// Host bridge the network uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<Bridge>,
    /// MTU of the bridge and guest interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<Mtu>,
    /// MAC address of the bridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    /// DNS domain handed out by DHCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<NetDomain>,
    /// The built-in DNS server's settings and records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    /// Addresses of the host on the network, with their DHCP settings; libvirt rejects them in
    /// `bridge` mode.
    #[serde(rename = "ip", default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<Ip>,
    /// Static routes the host adds for the network (to subnets behind a guest).
    #[serde(rename = "route", default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
}

/// A static route: `<route family='ipv6' address='…' prefix='…' gateway='…'/>`; the host sends
/// traffic for the subnet to the gateway, a guest on the network.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Route {
    /// `ipv6` for an IPv6 route; absent for IPv4.
    #[serde(rename = "@family", default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// The destination subnet's network address.
    #[serde(rename = "@address")]
    pub address: String,
    /// The destination subnet's prefix length.
    #[serde(rename = "@prefix", default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<u8>,
    /// Where the traffic goes: an address on the network.
    #[serde(rename = "@gateway")]
    pub gateway: String,
}

impl Document for Network {
    const ROOT: &'static str = "network";
}

/// The `<forward>` element.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Forward {
    /// `nat`, `route`, `open`, `bridge`, ...; libvirt stores an absent mode as `nat`.
    #[serde(rename = "@mode", default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Host interface traffic is restricted to.
    #[serde(rename = "@dev", default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// NAT address and port ranges; libvirt fills in the port range while the network runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat: Option<Nat>,
}

/// The `<nat>` element inside `<forward mode='nat'>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Nat {
    /// Source addresses to masquerade to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<AddressRange>,
    /// Source ports to masquerade to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortRange>,
}

/// A `start`/`end` pair of addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AddressRange {
    /// First address.
    #[serde(rename = "@start")]
    pub start: String,
    /// Last address.
    #[serde(rename = "@end")]
    pub end: String,
}

/// A `start`/`end` pair of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PortRange {
    /// First port.
    #[serde(rename = "@start")]
    pub start: u16,
    /// Last port.
    #[serde(rename = "@end")]
    pub end: u16,
}

/// The `<bridge>` element.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Bridge {
    /// Bridge device name; libvirt picks `virbrN` when absent (except in `bridge` mode, where
    /// it names the existing host bridge).
    #[serde(rename = "@name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Spanning tree, `on` or `off`; libvirt rejects it in `bridge` mode.
    #[serde(rename = "@stp", default, skip_serializing_if = "Option::is_none")]
    pub stp: Option<String>,
    /// Forward delay in seconds, as text; libvirt rejects it in `bridge` mode.
    #[serde(rename = "@delay", default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
}

/// The `<mtu>` element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Mtu {
    /// MTU in bytes.
    #[serde(rename = "@size")]
    pub size: u32,
}

/// The `<mac>` element.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Mac {
    /// MAC address, e.g. `52:54:00:12:34:56`.
    #[serde(rename = "@address")]
    pub address: String,
}

/// The `<domain>` element: the DNS domain of the network.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NetDomain {
    /// Domain name, e.g. `vm.test`.
    #[serde(rename = "@name")]
    pub name: String,
    /// `yes` to answer queries for the domain locally only, never forwarding them.
    #[serde(rename = "@localOnly", default, skip_serializing_if = "Option::is_none")]
    pub local_only: Option<String>,
}

/// The `<dns>` element.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Dns {
    /// `yes` or `no`: whether the network runs a DNS server.
    #[serde(rename = "@enable", default, skip_serializing_if = "Option::is_none")]
    pub enable: Option<String>,
    /// Upstream servers for names the network does not know (libvirt writes them before the
    /// records).
    #[serde(rename = "forwarder", default, skip_serializing_if = "Vec::is_empty")]
    pub forwarders: Vec<Forwarder>,
    /// Static host records.
    #[serde(rename = "host", default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<DnsHost>,
}

/// An upstream DNS server: `<forwarder addr='…'/>`, for one domain only when `domain` is set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Forwarder {
    /// The server's address.
    #[serde(rename = "@addr", default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// The domain whose names go to this server.
    #[serde(rename = "@domain", default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// A DNS host record: `<host ip='...'><hostname>...</hostname></host>`.
///
/// Also a [`Fragment`] for `virNetworkUpdate` with the `dns-host` section.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DnsHost {
    /// Address the names resolve to.
    #[serde(rename = "@ip")]
    pub ip: String,
    /// Names for the address; libvirt rejects a record with none.
    #[serde(rename = "hostname", default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
}

impl Fragment for DnsHost {
    const ELEMENT: &'static str = "host";
}

/// An `<ip>` element: one address of the host on the network.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ip {
    /// `ipv4` (the default) or `ipv6`.
    #[serde(rename = "@family", default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// The host's address on the network.
    #[serde(rename = "@address")]
    pub address: String,
    /// Prefix length; libvirt rejects an address with both this and `netmask`.
    #[serde(rename = "@prefix", default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<u8>,
    /// Dotted netmask (IPv4 only); alternative to `prefix`.
    #[serde(rename = "@netmask", default, skip_serializing_if = "Option::is_none")]
    pub netmask: Option<String>,
    /// DHCP service on this address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<Dhcp>,
}

/// The `<dhcp>` element.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Dhcp {
    /// Address pools; libvirt rejects a range not entirely inside the address's subnet.
    #[serde(rename = "range", default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<DhcpRange>,
    /// Static reservations.
    #[serde(rename = "host", default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<DhcpHost>,
}

/// A DHCP address pool: `<range start='...' end='...'/>`.
///
/// Also a [`Fragment`] for `virNetworkUpdate` with the `ip-dhcp-range` section.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DhcpRange {
    /// First address handed out.
    #[serde(rename = "@start")]
    pub start: String,
    /// Last address handed out.
    #[serde(rename = "@end")]
    pub end: String,
}

impl Fragment for DhcpRange {
    const ELEMENT: &'static str = "range";
}

/// A static DHCP reservation: `<host mac='...' name='...' ip='...'/>`.
///
/// Also a [`Fragment`] for `virNetworkUpdate` with the `ip-dhcp-host` section.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DhcpHost {
    /// Client MAC address (IPv4 reservations are keyed by it).
    #[serde(rename = "@mac", default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Host name given to the client.
    #[serde(rename = "@name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Address reserved for the client.
    #[serde(rename = "@ip")]
    pub ip: String,
}

impl Fragment for DhcpHost {
    const ELEMENT: &'static str = "host";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nat_network() -> Network {
        Network {
            name: "lab".into(),
            forward: Some(Forward { mode: Some("nat".into()), ..Default::default() }),
            mtu: Some(Mtu { size: 1400 }),
            domain: Some(NetDomain { name: "lab.test".into(), local_only: Some("yes".into()) }),
            dns: Some(Dns {
                enable: Some("yes".into()),
                forwarders: vec![],
                hosts: vec![DnsHost { ip: "10.0.0.50".into(), hostnames: vec!["web".into(), "www".into()] }],
            }),
            ips: vec![Ip {
                address: "10.0.0.1".into(),
                prefix: Some(24),
                dhcp: Some(Dhcp {
                    ranges: vec![DhcpRange { start: "10.0.0.100".into(), end: "10.0.0.199".into() }],
                    hosts: vec![DhcpHost {
                        mac: Some("52:54:00:aa:bb:cc".into()),
                        name: Some("vm1".into()),
                        ip: "10.0.0.10".into(),
                    }],
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn nat_network_serialises() {
        let xml = nat_network().to_xml().unwrap();
        assert_eq!(
            xml,
            r#"<network>
  <name>lab</name>
  <forward mode="nat"/>
  <mtu size="1400"/>
  <domain name="lab.test" localOnly="yes"/>
  <dns enable="yes">
    <host ip="10.0.0.50">
      <hostname>web</hostname>
      <hostname>www</hostname>
    </host>
  </dns>
  <ip address="10.0.0.1" prefix="24">
    <dhcp>
      <range start="10.0.0.100" end="10.0.0.199"/>
      <host mac="52:54:00:aa:bb:cc" name="vm1" ip="10.0.0.10"/>
    </dhcp>
  </ip>
</network>"#
        );
        assert_eq!(Network::from_xml(&xml).unwrap(), nat_network());
    }

    #[test]
    fn bridge_network_serialises() {
        let net = Network {
            name: "host-bridge".into(),
            forward: Some(Forward { mode: Some("bridge".into()), ..Default::default() }),
            bridge: Some(Bridge { name: Some("br0".into()), ..Default::default() }),
            ..Default::default()
        };
        let xml = net.to_xml().unwrap();
        assert_eq!(
            xml,
            r#"<network>
  <name>host-bridge</name>
  <forward mode="bridge"/>
  <bridge name="br0"/>
</network>"#
        );
        assert_eq!(Network::from_xml(&xml).unwrap(), net);
    }

    #[test]
    fn dhcp_host_fragment() {
        let host = DhcpHost { mac: Some("52:54:00:00:00:01".into()), name: None, ip: "10.0.0.5".into() };
        let xml = host.to_xml().unwrap();
        assert_eq!(xml, r#"<host mac="52:54:00:00:00:01" ip="10.0.0.5"/>"#);
        assert_eq!(DhcpHost::from_xml(&xml).unwrap(), host);
    }

    #[test]
    fn dns_host_fragment() {
        let host = DnsHost { ip: "10.0.0.50".into(), hostnames: vec!["a".into(), "b".into()] };
        let xml = host.to_xml().unwrap();
        assert_eq!(
            xml,
            r#"<host ip="10.0.0.50">
  <hostname>a</hostname>
  <hostname>b</hostname>
</host>"#
        );
        assert_eq!(DnsHost::from_xml(&xml).unwrap(), host);
    }

    #[test]
    fn dhcp_range_fragment() {
        let range = DhcpRange { start: "10.0.0.100".into(), end: "10.0.0.120".into() };
        let xml = range.to_xml().unwrap();
        assert_eq!(xml, r#"<range start="10.0.0.100" end="10.0.0.120"/>"#);
        assert_eq!(DhcpRange::from_xml(&xml).unwrap(), range);
    }

    #[test]
    fn fragment_root_is_checked() {
        assert!(DhcpHost::from_xml("<range start='a' end='b'/>").is_err());
    }

    #[test]
    fn interleaved_dns_records_are_all_kept() {
        // libvirt groups records by kind, but hand-written XML may interleave them; the
        // hosts after a <txt> must not be lost or rejected as a duplicate field.
        let xml = "<network><name>n</name><dns>\
            <host ip='10.0.0.1'><hostname>a</hostname></host>\
            <txt name='t' value='v'/>\
            <host ip='10.0.0.2'><hostname>b</hostname></host>\
            </dns></network>";
        let net = Network::from_xml(xml).unwrap();
        let ips: Vec<_> = net.dns.unwrap().hosts.into_iter().map(|h| h.ip).collect();
        assert_eq!(ips, ["10.0.0.1", "10.0.0.2"]);
    }
}
