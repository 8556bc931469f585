//! `kvm_instance`'s checks across attributes of a configuration (each attribute's own rules are
//! its validators in `schema`). The configuration may hold unknown values, which are skipped.

use tf_cty::{Path, Value};

use super::model::*;
use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{Field, Model};

/// A string while planning, if known.
fn text(f: &Field<String>) -> Option<&str> {
    f.known().map(String::as_str)
}

/// Checks that span attributes; `config` may hold unknown values, which are skipped.
pub fn validate(config: &Value) -> Diagnostics {
    let mut diags = Diagnostics::new();
    let Ok(c) = InstancePlan::from_value(config) else { return diags };
    let set = |f: &Field<String>| !f.is_null();

    if set(&c.cpu_model) {
        if let Some(mode) = text(&c.cpu_mode).filter(|m| *m != "custom") {
            diags.push(Diagnostic::attribute_error(
                Path::attr("cpu_model"),
                "CPU model with another mode",
                format!(
                    "cpu_model names a CPU for cpu_mode = \"custom\", but cpu_mode is {mode:?}; remove one of them."
                ),
            ));
        }
    } else if text(&c.cpu_mode) == Some("custom") {
        diags.push(Diagnostic::attribute_error(
            Path::attr("cpu_mode"),
            "Missing CPU model",
            "cpu_mode = \"custom\" needs cpu_model, e.g. cpu_model = \"Skylake-Server\".",
        ));
    }
    for (attr, value) in [("initrd", &c.initrd), ("cmdline", &c.cmdline)] {
        if set(value) && c.kernel.is_null() {
            diags.push(Diagnostic::attribute_error(
                Path::attr(attr),
                "Direct kernel boot without a kernel",
                format!("`{attr}` is used with direct kernel boot; set `kernel` too, or remove `{attr}`."),
            ));
        }
    }
    if c.secure_boot.known() == Some(&true) {
        if let Some(firmware) = text(&c.firmware).filter(|f| *f != "uefi") {
            diags.push(Diagnostic::attribute_error(
                Path::attr("secure_boot"),
                "Secure Boot without UEFI",
                format!("Secure Boot is a UEFI feature, but firmware is {firmware:?}; set firmware = \"uefi\"."),
            ));
        }
        if set(&c.kernel) {
            diags.push(Diagnostic::attribute_warning(
                Path::attr("kernel"),
                "Direct kernel boot under Secure Boot",
                "Under Secure Boot the firmware checks a directly booted kernel against the enrolled (Microsoft) keys; \
                 distribution kernels are signed with their own key and are meant to boot through shim. Boot from \
                 the disk instead, through its signed shim and boot loader, unless the kernel is signed for these keys.",
            ));
        }
    }
    let shares: &[Field<FilesystemPlan>] = c.filesystem.known().map_or(&[], Vec::as_slice);
    let mut tags = Vec::new();
    for (i, f) in shares.iter().enumerate() {
        let Some(tag) = f.known().and_then(|f| text(&f.target)) else { continue };
        if tags.contains(&tag) {
            diags.push(Diagnostic::attribute_error(
                Path::attr("filesystem").join_index(i as i64).join_attr("target"),
                "Mount tag used twice",
                format!("Another filesystem of this instance has the tag {tag:?}; the guest mounts by tag, so give each its own."),
            ));
        }
        tags.push(tag);
    }
    let disks: &[Field<DiskPlan>] = c.disk.known().map_or(&[], Vec::as_slice);
    let mut sources = Vec::new();
    for (i, d) in disks.iter().enumerate() {
        let Field::Known(d) = d else { continue };
        let path = |name: &str| Path::attr("disk").join_index(i as i64).join_attr(name);
        let (volume, nvme) = (&d.volume, &d.nvme_pci_address);
        if set(volume) == set(nvme) && *volume != Field::Unknown && *nvme != Field::Unknown {
            diags.push(disk_source_error(path("volume")));
        }
        if set(volume) && d.pool.is_null() {
            diags.push(missing_pool(path("pool")));
        }
        if set(&d.pool) && set(nvme) {
            diags.push(Diagnostic::attribute_error(
                path("pool"),
                "Pool with an NVMe namespace",
                "`pool` belongs to `volume`; remove it from a passed-through NVMe disk.",
            ));
        }
        if !d.nvme_namespace.is_null() && !set(nvme) {
            diags.push(Diagnostic::attribute_error(
                path("nvme_namespace"),
                "Namespace without a controller",
                "`nvme_namespace` selects a namespace of `nvme_pci_address`; set that too, or remove it.",
            ));
        }
        if let Some(address) = text(nvme) {
            if libvirt_xml::domain::PciAddress::from_bdf(address).is_none() {
                diags.push(Diagnostic::attribute_error(
                    path("nvme_pci_address"),
                    "Invalid PCI address",
                    format!(
                        "{address:?} is not a PCI address; write it as `lspci -D` prints it, e.g. \"0000:01:00.0\"."
                    ),
                ));
            }
        }
        if text(&d.io) == Some("native") && matches!(text(&d.cache), Some(c) if c != "none" && c != "directsync") {
            diags.push(Diagnostic::attribute_error(
                path("io"),
                "io = \"native\" needs O_DIRECT",
                format!(
                    "Linux native AIO only works without the host page cache: with cache = {:?} use io = \"io_uring\" or \"threads\", or set cache = \"none\".",
                    text(&d.cache).unwrap_or_default()
                ),
            ));
        }
        if !d.queues.is_null() && matches!(text(&d.bus), Some(b) if b != "virtio") {
            diags.push(Diagnostic::attribute_error(
                path("queues"),
                "Queues on a non-virtio disk",
                "Only virtio disks have queues; remove `queues` or use bus = \"virtio\".",
            ));
        }
        let key = match (text(&d.pool), text(volume), text(nvme)) {
            (Some(p), Some(v), _) => Some(format!("volume {p}/{v}")),
            (_, _, Some(n)) => Some(format!(
                "NVMe {n} namespace {}",
                d.nvme_namespace.known().copied().unwrap_or(DEFAULT_NVME_NAMESPACE)
            )),
            _ => None,
        };
        if let Some(key) = key {
            if sources.contains(&key) {
                diags.push(Diagnostic::attribute_error(
                    path("volume"),
                    "Disk used twice",
                    format!("{key} is attached more than once."),
                ));
            }
            sources.push(key);
        }
    }
    let mut macs: Vec<&str> = Vec::new();
    let mut ips: Vec<&str> = Vec::new();
    let nics: &[Field<NicPlan>] = c.network_interface.known().map_or(&[], Vec::as_slice);
    for (i, n) in nics.iter().enumerate() {
        let Field::Known(n) = n else { continue };
        let path = |name: &str| Path::attr("network_interface").join_index(i as i64).join_attr(name);
        let (network, bridge) = (&n.network, &n.bridge);
        if set(network) == set(bridge) && *network != Field::Unknown && *bridge != Field::Unknown {
            diags.push(Diagnostic::attribute_error(
                path("network"),
                "One interface source",
                "Give an interface either `network` (a libvirt network) or `bridge` (a host bridge), not both.",
            ));
        }
        if set(&n.ip) && set(bridge) {
            diags.push(Diagnostic::attribute_error(
                path("ip"),
                "Fixed address on a bridge",
                "A fixed `ip` is reserved in a libvirt network's DHCP; on a host bridge, configure it in the guest (cloud_init.network_config).",
            ));
        }
        if let Some(mac) = text(&n.mac) {
            if macs.contains(&mac) {
                diags.push(Diagnostic::attribute_error(
                    path("mac"),
                    "Duplicate MAC address",
                    format!("{mac} is used by another interface of this instance."),
                ));
            }
            macs.push(mac);
        }
        if let Some(ip) = text(&n.ip) {
            if ips.contains(&ip) {
                diags.push(Diagnostic::attribute_error(
                    path("ip"),
                    "Duplicate address",
                    format!("{ip} is given to another interface of this instance."),
                ));
            }
            ips.push(ip);
        }
    }
    let first_cloud_init = c.cloud_init.known().and_then(|items| items.first());
    let has_cloud_init = first_cloud_init.is_some();
    let wait_for = text(&c.wait_for);
    if wait_for == Some("ssh") && !has_cloud_init && c.cloud_init != Field::Unknown {
        diags.push(Diagnostic::attribute_error(
            Path::attr("wait_for"),
            "SSH readiness needs cloud_init",
            "wait_for = \"ssh\" checks the host key Terraform generates and delivers through cloud-init; add a cloud_init block, or use wait_for = \"ip\".",
        ));
    }
    if matches!(wait_for, Some("ip" | "ssh")) && c.network_interface.known().is_some_and(Vec::is_empty) {
        diags.push(Diagnostic::attribute_error(
            Path::attr("wait_for"),
            "Nothing to wait for",
            "wait_for waits for an address on the first network_interface, but there is none; add one or set wait_for = \"none\".",
        ));
    }
    let first_cloud_init = first_cloud_init.and_then(Field::known);
    if let Some(hostname) = first_cloud_init.and_then(|ci| text(&ci.hostname)) {
        if let Err(e) = kvm_validate::dns_name(hostname) {
            diags.push(Diagnostic::attribute_error(
                Path::attr("cloud_init").join_index(0).join_attr("hostname"),
                "Invalid hostname",
                format!("{e}. A hostname has letters, digits and '-' in labels of at most 63 characters, separated by dots."),
            ));
        }
    }
    graphics(&c, &mut diags);
    if has_cloud_init {
        let root_is_nvme = disks.first().and_then(Field::known).is_some_and(|d| set(&d.nvme_pci_address));
        let pool_set = first_cloud_init.is_some_and(|ci| set(&ci.pool));
        if root_is_nvme && !pool_set {
            diags.push(Diagnostic::attribute_error(
                Path::attr("cloud_init").join_index(0).join_attr("pool"),
                "No pool for the seed",
                "The seed volume goes to the root disk's pool, but the root disk is a passed-through NVMe namespace; name a pool here.",
            ));
        }
    }
    diags
}

/// The `graphics` block: an IP address to listen on (none with a socket), a password VNC can use,
/// and a warning for a display reachable from the network.
fn graphics(c: &InstancePlan, diags: &mut Diagnostics) {
    let Some(g) = c.graphics.known().and_then(|items| items.first()).and_then(Field::known) else { return };
    let path = |name: &str| Path::attr("graphics").join_index(0).join_attr(name);
    let socket = text(&g.listen_type) == Some("socket");
    if let Some(address) = text(&g.listen_address) {
        if socket {
            diags.push(Diagnostic::attribute_error(
                path("listen_address"),
                "Address with a socket",
                "listen_address is for listen_type = \"address\"; remove it, or listen on the address.",
            ));
        } else {
            match address.parse::<std::net::IpAddr>() {
                Err(_) => diags.push(super::spec::invalid_listen_address(address)),
                Ok(ip) if !ip.is_loopback() => diags.push(Diagnostic::attribute_warning(
                    path("listen_address"),
                    "Display reachable from the network",
                    format!(
                        "The graphical console listens on {ip}, not only on this host: anyone who reaches it sees \
                         the screen{}. VNC and SPICE here are not encrypted; prefer 127.0.0.1 and an SSH tunnel.",
                        if g.password_wo.is_null() { " and types on the keyboard" } else { " with the password" }
                    ),
                )),
                Ok(_) => {}
            }
        }
    }
    if let (Some("vnc"), Some(password)) = (text(&g.graphics_type), text(&g.password_wo)) {
        if password.chars().count() > super::schema::VNC_PASSWORD_MAX {
            diags.push(Diagnostic::attribute_error(
                path("password_wo"),
                "VNC password too long",
                format!(
                    "VNC uses at most {} characters of a password (its authentication is DES with an 8-byte key); \
                     a longer one would be cut silently. Use 8 characters or fewer, or type = \"spice\".",
                    super::schema::VNC_PASSWORD_MAX
                ),
            ));
        }
    }
    if text(&g.password_wo).is_some_and(str::is_empty) {
        diags.push(Diagnostic::attribute_error(
            path("password_wo"),
            "Empty password",
            "An empty password_wo is no password; remove the attribute instead.",
        ));
    }
}

pub(super) fn missing_pool(path: Path) -> Diagnostic {
    Diagnostic::attribute_error(path, "Missing pool", "A disk from a volume names its pool: pool = kvm_pool.NAME.name.")
}

pub(super) fn disk_source_error(path: Path) -> Diagnostic {
    Diagnostic::attribute_error(
        path,
        "One disk source",
        "Give a disk either `volume` (with `pool`) or `nvme_pci_address`, and not both.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summaries(graphics: &[(&str, &str)]) -> Vec<String> {
        let block = Value::object_from(graphics.iter().map(|(k, v)| (*k, Value::string(*v))));
        let config = Value::object_from([("name", Value::string("x")), ("graphics", Value::List(vec![block]))]);
        validate(&config).0.into_iter().map(|d| d.summary).collect()
    }

    #[test]
    fn secure_boot_needs_uefi_and_warns_about_direct_kernel_boot() {
        let check = |attrs: &[(&str, Value)]| -> Vec<(String, String)> {
            let config = Value::object_from(attrs.iter().cloned().chain([("name", Value::string("x"))]));
            validate(&config).0.into_iter().map(|d| (d.summary, d.attribute.unwrap().to_string())).collect()
        };
        let (on, uefi) = (("secure_boot", Value::Bool(true)), ("firmware", Value::string("uefi")));
        assert!(check(&[on.clone(), uefi.clone()]).is_empty());
        assert!(check(&[("secure_boot", Value::Bool(false)), ("firmware", Value::string("bios"))]).is_empty());
        assert_eq!(
            check(&[on.clone(), ("firmware", Value::string("bios"))]),
            [("Secure Boot without UEFI".to_string(), "secure_boot".to_string())]
        );
        assert_eq!(
            check(&[on, uefi, ("kernel", Value::string("/boot/vmlinuz"))]),
            [("Direct kernel boot under Secure Boot".to_string(), "kernel".to_string())]
        );
    }

    #[test]
    fn mount_tags_are_unique() {
        let share =
            |tag: &str| Value::object_from([("source", Value::string("/srv/share")), ("target", Value::string(tag))]);
        let check = |shares: Vec<Value>| -> Vec<(String, String)> {
            let config = Value::object_from([("name", Value::string("x")), ("filesystem", Value::List(shares))]);
            validate(&config).0.into_iter().map(|d| (d.summary, d.attribute.unwrap().to_string())).collect()
        };
        assert!(check(vec![share("a"), share("b")]).is_empty());
        assert_eq!(
            check(vec![share("a"), share("b"), share("a")]),
            [("Mount tag used twice".to_string(), "filesystem[2].target".to_string())]
        );
    }

    #[test]
    fn graphics_listen_on_an_ip_with_a_password_vnc_can_use() {
        assert!(summaries(&[("type", "vnc"), ("listen_address", "127.0.0.1"), ("password_wo", "12345678")]).is_empty());
        assert!(summaries(&[("type", "spice"), ("listen_address", "::1"), ("password_wo", "a long spice password")])
            .is_empty());
        assert_eq!(summaries(&[("type", "vnc"), ("listen_address", "localhost")]), ["Invalid listen address"]);
        assert_eq!(summaries(&[("type", "vnc"), ("password_wo", "123456789")]), ["VNC password too long"]);
        assert_eq!(summaries(&[("type", "vnc"), ("password_wo", "")]), ["Empty password"]);
        assert_eq!(
            summaries(&[("type", "vnc"), ("listen_type", "socket"), ("listen_address", "127.0.0.1")]),
            ["Address with a socket"]
        );
        assert_eq!(
            summaries(&[("type", "vnc"), ("listen_address", "0.0.0.0")]),
            ["Display reachable from the network"]
        );
    }
}
