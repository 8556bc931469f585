//! The `kvm_network` object as Rust types: attribute names and defaults are written here once.

use crate::model::{Field, SetOf};

/// `mode` when not configured.
pub(super) const DEFAULT_MODE: &str = "nat";
/// `autostart` when not configured.
pub(super) const AUTOSTART: bool = true;
/// `dhcp.enabled` when not configured.
pub(super) const DHCP_ENABLED: bool = true;

crate::model! {
    /// A `kvm_network` configuration, plan or state (`NetworkPlan`: the same while planning).
    pub(super) struct NetworkModel / NetworkPlan {
        /// The network's UUID.
        pub(super) id: Field<String>,
        pub(super) name: String,
        pub(super) mode: Option<String>,
        pub(super) cidr: Option<String>,
        pub(super) bridge: Field<String>,
        pub(super) domain: Option<String>,
        pub(super) mtu: Option<i64>,
        pub(super) autostart: Option<bool>,
        pub(super) active: Field<bool>,
        pub(super) gateway: Field<String>,
        /// At most one block.
        pub(super) dhcp: Vec<DhcpModel>,
        pub(super) host: SetOf<HostModel>,
        pub(super) dns_host: SetOf<DnsHostModel>,
        /// At most one block.
        pub(super) ipv6: Vec<Ipv6Model>,
        pub(super) ipv6_gateway: Field<String>,
        pub(super) route: SetOf<RouteModel>,
        pub(super) dns_forwarders: Option<Vec<String>>,
    }
}

crate::model! {
    /// The `ipv6` block: the network's IPv6 subnet, its DHCPv6 range and static DHCPv6 hosts.
    pub(super) struct Ipv6Model / Ipv6Plan {
        pub(super) cidr: String,
        pub(super) dhcp_start: Option<String>,
        pub(super) dhcp_end: Option<String>,
        pub(super) host: SetOf<Ipv6HostModel>,
    }
}

crate::model! {
    /// A `host` block of `ipv6`: a static DHCPv6 host, matched by the name the guest sends.
    pub(super) struct Ipv6HostModel / Ipv6HostPlan {
        pub(super) name: String,
        pub(super) ip: String,
    }
}

crate::model! {
    /// A `route` block: a subnet the host reaches through a guest on the network.
    pub(super) struct RouteModel / RoutePlan {
        pub(super) cidr: String,
        pub(super) gateway: String,
    }
}

crate::model! {
    /// The `dhcp` block.
    pub(super) struct DhcpModel / DhcpPlan {
        pub(super) enabled: Option<bool>,
        pub(super) start: Option<String>,
        pub(super) end: Option<String>,
    }
}

crate::model! {
    /// A `host` block: a static DHCP host entry.
    pub(super) struct HostModel / HostPlan {
        pub(super) mac: Option<String>,
        pub(super) ip: String,
        pub(super) name: Option<String>,
    }
}

crate::model! {
    /// A `dns_host` block.
    pub(super) struct DnsHostModel / DnsHostPlan {
        pub(super) ip: String,
        pub(super) hostnames: Vec<String>,
    }
}

impl NetworkModel {
    /// The forwarding mode.
    pub(super) fn mode(&self) -> &str {
        self.mode.as_deref().unwrap_or(DEFAULT_MODE)
    }

    /// Whether the network starts with the host.
    pub(super) fn autostart(&self) -> bool {
        self.autostart.unwrap_or(AUTOSTART)
    }

    /// The `dhcp` block, if given.
    pub(super) fn dhcp(&self) -> Option<&DhcpModel> {
        self.dhcp.first()
    }

    /// The `ipv6` block, if given.
    pub(super) fn ipv6(&self) -> Option<&Ipv6Model> {
        self.ipv6.first()
    }
}

impl DhcpModel {
    /// Whether DHCP is served.
    pub(super) fn enabled(&self) -> bool {
        self.enabled.unwrap_or(DHCP_ENABLED)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Network;
    use super::*;
    use crate::schema::Block;

    #[test]
    fn the_models_match_the_schema() {
        let network = Network::new();
        let block = &network.schema.block;
        crate::model::check::<NetworkModel>(block).unwrap();
        let nested = |name: &str| -> &Block { &block.blocks.iter().find(|b| b.name == name).unwrap().block };
        crate::model::check::<DhcpModel>(nested("dhcp")).unwrap();
        crate::model::check::<HostModel>(nested("host")).unwrap();
        crate::model::check::<DnsHostModel>(nested("dns_host")).unwrap();
        crate::model::check::<RouteModel>(nested("route")).unwrap();
        crate::model::check::<Ipv6Model>(nested("ipv6")).unwrap();
        let v6_host = &nested("ipv6").blocks.iter().find(|b| b.name == "host").unwrap().block;
        crate::model::check::<Ipv6HostModel>(v6_host).unwrap();
    }
}
