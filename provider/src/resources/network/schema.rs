//! The `kvm_network` schema: attributes, blocks and their single-value rules.

use tf_cty::{Type, Value};

use super::spec::parse_cidr;
use super::Network;
use crate::libvirt::name_validator;
use crate::schema::{int_range, one_of, Attribute, Block, NestedBlock, Nesting, Schema};

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
