//! The `kvm_network` schema: attributes, blocks and their single-value rules.

use tf_cty::{Type, Value};

use super::spec::{parse_any_ip, parse_cidr, parse_cidr6};
use super::Network;
use crate::libvirt::name_validator;
use crate::schema::{each, int_range, one_of, Attribute, Block, NestedBlock, Nesting, Schema};

impl Network {
    /// The resource with its schema.
    pub fn new() -> Self {
        let block = Block::new(
            "A libvirt virtual network: `nat` (guests reach out through the host), `route`, `isolated` (guests \
             and host only) or `bridge` (guests join an existing host bridge); IPv4, or dual-stack with an `ipv6` \
             block. Static DHCP hosts and DNS hosts change in place without restarting the network; changes of \
             `domain`, `mtu`, `ipv6`, `route` and `dns_forwarders` restart it.",
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
        .attribute(
            Attribute::computed("ipv6_gateway", Type::String)
                .describe("The host's IPv6 address on the network (first address of `ipv6.cidr`); null without an `ipv6` block."),
        )
        .attribute(
            Attribute::optional("dns_forwarders", Type::list(Type::String))
                .describe("Upstream DNS servers (IPv4 or IPv6 addresses) for names the network does not know; by default the host's resolvers. Changing them restarts the network.")
                .validate(each(|v: &Value| v.as_str().map_or(Ok(()), |s| parse_any_ip(s).map(drop)))),
        )
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
        ))
        .block(
            NestedBlock::new(
                "ipv6",
                Nesting::List,
                Block::new(
                    "IPv6 beside IPv4 (dual-stack). The host takes the subnet's first address and sends router \
                     advertisements: guests configure addresses themselves (SLAAC). With `dhcp_start`/`dhcp_end`, \
                     addresses come from DHCPv6 instead (the guest must run a DHCPv6 client). Changing the block \
                     restarts the network.",
                )
                .attribute(
                    Attribute::required("cidr", Type::String)
                        .describe("IPv6 subnet, a /64 (SLAAC needs one), e.g. `fd00:17:3::/64`.")
                        .validate(|v: &Value| v.as_str().map(|s| parse_cidr6(s).map(drop)).unwrap_or(Ok(()))),
                )
                .attribute(Attribute::optional("dhcp_start", Type::String).describe("First address DHCPv6 hands out; with `dhcp_end`."))
                .attribute(Attribute::optional("dhcp_end", Type::String).describe("Last address DHCPv6 hands out; with `dhcp_start`."))
                .block(NestedBlock::new(
                    "host",
                    Nesting::Set,
                    Block::new("A static DHCPv6 host: the guest that sends this host name gets this address. Needs the DHCPv6 range.")
                        .attribute(Attribute::required("name", Type::String).describe("Host name the guest's DHCPv6 client sends."))
                        .attribute(Attribute::required("ip", Type::String).describe("IPv6 address inside `cidr`.")),
                )),
            )
            .items(0, 1),
        )
        .block(NestedBlock::new(
            "route",
            Nesting::Set,
            Block::new("A static route on the host: traffic for `cidr` goes to `gateway`, a guest on this network. Changing routes restarts the network.")
                .attribute(Attribute::required("cidr", Type::String).describe("Destination subnet, IPv4 or IPv6, e.g. `10.99.0.0/16`."))
                .attribute(Attribute::required("gateway", Type::String).describe("A guest's address on this network, of the same family as `cidr`.")),
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
