//! The `kvm_instance` object as Rust types, and its defaults: attribute names and default values
//! are written here once (the schema declares the defaults from these constants, and [`Spec`]
//! reads them for values a state older than a default lacks).
//!
//! [`Spec`]: super::spec::Spec

use crate::model::Field;

/// `vcpu` when not configured.
pub const DEFAULT_VCPU: i64 = 1;
/// `memory` when not configured.
pub const DEFAULT_MEMORY: &str = "1GiB";
/// `machine` when not configured.
pub const DEFAULT_MACHINE: &str = "q35";
/// `accelerator` when not configured.
pub const DEFAULT_ACCELERATOR: &str = "kvm";
/// `firmware` when not configured.
pub const DEFAULT_FIRMWARE: &str = "bios";
/// `running` when not configured.
pub const DEFAULT_RUNNING: bool = true;
/// `autostart` when not configured.
pub const DEFAULT_AUTOSTART: bool = true;
/// `wait_for` when not configured.
pub const DEFAULT_WAIT_FOR: &str = "ip";
/// `shutdown_timeout` when not configured.
pub const DEFAULT_SHUTDOWN_TIMEOUT: &str = "60s";
/// Default create/update wait: guests under TCG need minutes to boot.
pub const DEFAULT_CREATE_TIMEOUT: &str = "10m";
/// Default delete wait, including the graceful shutdown.
pub const DEFAULT_DELETE_TIMEOUT: &str = "5m";
/// `disk.bus` when not configured.
pub const DEFAULT_BUS: &str = "virtio";
/// `disk.cache` when not configured: no host page cache, as NVMe-backed pools want.
pub const DEFAULT_CACHE: &str = "none";
/// `disk.io` when not configured on a new disk: QEMU's thread pool, the lowest fsync p99 of the
/// modes measured on copy-on-write qcow2 volumes (`acceptance-tests/bench/instance-disk-vs-host.sh`,
/// docs "Disk performance"). A disk made under the earlier default (`native`) keeps it.
pub const DEFAULT_IO: &str = "threads";
/// `disk.discard` when not configured.
pub const DEFAULT_DISCARD: &str = "unmap";
/// `disk.iothread` when not configured.
pub const DEFAULT_IOTHREAD: bool = true;
/// `disk.read_only` when not configured.
pub const DEFAULT_READ_ONLY: bool = false;
/// `disk.nvme_namespace` when not configured.
pub const DEFAULT_NVME_NAMESPACE: i64 = 1;
/// `graphics.listen_type` when not configured.
pub const DEFAULT_LISTEN_TYPE: &str = "address";
/// `graphics.listen_address` when not configured: this host only.
pub const DEFAULT_LISTEN_ADDRESS: &str = "127.0.0.1";
/// `network_interface.model` when not configured.
pub const DEFAULT_NIC_MODEL: &str = "virtio";

crate::model! {
    /// A `kvm_instance` configuration, plan or state (`InstancePlan`: the same while planning).
    #[derive(Default)]
    pub struct InstanceModel / InstancePlan {
        /// The domain's UUID.
        pub id: Field<String>,
        pub name: String,
        pub vcpu: Option<i64>,
        pub memory: Option<String>,
        pub cpu_mode: Field<String>,
        pub cpu_model: Option<String>,
        pub machine: Option<String>,
        pub accelerator: Option<String>,
        pub firmware: Option<String>,
        pub secure_boot: Option<bool>,
        pub kernel: Option<String>,
        pub initrd: Option<String>,
        pub cmdline: Option<String>,
        pub running: Option<bool>,
        pub autostart: Option<bool>,
        pub wait_for: Option<String>,
        pub shutdown_timeout: Option<String>,
        pub ip_address: Field<String>,
        pub ipv6_address: Field<String>,
        pub ssh_host_public_key: Field<String>,
        pub ssh_host_private_key: Field<String>,
        pub known_hosts: Field<String>,
        pub console_log: Field<String>,
        pub nvram: Field<String>,
        pub disk: Vec<DiskModel>,
        pub network_interface: Vec<NicModel>,
        /// At most one block.
        pub cloud_init: Vec<CloudInitModel>,
        /// At most one block.
        pub graphics: Vec<GraphicsModel>,
        /// At most one block.
        pub tpm: Vec<TpmModel>,
        pub filesystem: Vec<FilesystemModel>,
        pub timeouts: Option<TimeoutsModel>,
    }
}

crate::model! {
    /// A `disk` block.
    #[derive(Default)]
    pub struct DiskModel / DiskPlan {
        pub volume: Option<String>,
        pub pool: Option<String>,
        pub nvme_pci_address: Option<String>,
        pub nvme_namespace: Option<i64>,
        pub bus: Option<String>,
        pub cache: Option<String>,
        pub io: Option<String>,
        pub discard: Option<String>,
        pub iothread: Option<bool>,
        pub queues: Field<i64>,
        pub read_only: Option<bool>,
        pub serial: Option<String>,
        /// Target device in the domain (`vda`), assigned by the provider.
        pub device: Field<String>,
    }
}

crate::model! {
    /// A `network_interface` block.
    #[derive(Default)]
    pub struct NicModel / NicPlan {
        pub network: Option<String>,
        pub bridge: Option<String>,
        pub mac: Field<String>,
        pub ip: Option<String>,
        pub model: Option<String>,
        pub addresses: Field<Vec<String>>,
        pub ipv6_addresses: Field<Vec<String>>,
    }
}

crate::model! {
    /// The `cloud_init` block.
    #[derive(Default)]
    pub struct CloudInitModel / CloudInitPlan {
        pub user_data: Option<String>,
        pub meta_data: Option<String>,
        pub hostname: Option<String>,
        pub network_config: Option<String>,
        pub ssh_authorized_keys: Option<Vec<String>>,
        pub pool: Option<String>,
        pub seed_volume: Field<String>,
    }
}

crate::model! {
    /// The `graphics` block.
    #[derive(Default)]
    pub struct GraphicsModel / GraphicsPlan {
        pub graphics_type as "type": Option<String>,
        pub listen_type: Option<String>,
        pub listen_address: Option<String>,
        /// Write-only: in the configuration (and so in create and update), never in a plan or state.
        pub password_wo: Option<String>,
        pub password_wo_version: Option<i64>,
        pub port: Field<i64>,
        pub socket: Field<String>,
    }
}

/// `tpm.model` when not configured: the TPM 2.0 interface.
pub const DEFAULT_TPM_MODEL: &str = "tpm-crb";

crate::model! {
    /// The `tpm` block: a TPM 2.0 emulated by swtpm on the host.
    #[derive(Default)]
    pub struct TpmModel / TpmPlan {
        pub model: Option<String>,
    }
}

crate::model! {
    /// A `filesystem` block: a host directory shared over virtiofs.
    #[derive(Default)]
    pub struct FilesystemModel / FilesystemPlan {
        pub source: String,
        pub target: String,
        pub read_only: Option<bool>,
    }
}

crate::model! {
    /// The `timeouts` block.
    #[derive(Default)]
    pub struct TimeoutsModel / TimeoutsPlan {
        pub create: Option<String>,
        pub update: Option<String>,
        pub delete: Option<String>,
    }
}

impl DiskPlan {
    /// The settings whose change needs the instance restarted that differ between `self` and
    /// `other`, by attribute name.
    pub fn tuning_changes(&self, other: &DiskPlan) -> Vec<&'static str> {
        let changed = [
            ("bus", self.bus != other.bus),
            ("cache", self.cache != other.cache),
            ("io", self.io != other.io),
            ("discard", self.discard != other.discard),
            ("iothread", self.iothread != other.iothread),
            ("queues", self.queues != other.queues),
            ("read_only", self.read_only != other.read_only),
            ("serial", self.serial != other.serial),
        ];
        changed.into_iter().filter(|(_, differs)| *differs).map(|(name, _)| name).collect()
    }
}

impl NicPlan {
    /// The settings of an interface; a change replaces it (detach and attach).
    pub fn settings(&self) -> [&Field<String>; 5] {
        [&self.network, &self.bridge, &self.mac, &self.ip, &self.model]
    }
}

impl GraphicsPlan {
    /// The settings whose change needs the instance restarted (libvirt changes only the password
    /// of a running display), by attribute name.
    pub fn restart_changes(&self, other: &GraphicsPlan) -> Vec<&'static str> {
        let changed = [
            ("type", self.graphics_type != other.graphics_type),
            ("listen_type", self.listen_type != other.listen_type),
            ("listen_address", self.listen_address != other.listen_address),
        ];
        changed.into_iter().filter(|(_, differs)| *differs).map(|(name, _)| name).collect()
    }
}

impl CloudInitPlan {
    /// What the seed is made of: every configurable attribute (`seed_volume` is computed).
    pub fn inputs(&self) -> CloudInitPlan {
        CloudInitPlan { seed_volume: Field::Null, ..self.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Block;

    #[test]
    fn the_models_match_the_schema() {
        let schema = super::super::schema::schema();
        let block = &schema.block;
        let nested = |name: &str| -> &Block { &block.blocks.iter().find(|b| b.name == name).unwrap().block };
        crate::model::check::<InstanceModel>(block).unwrap();
        crate::model::check::<DiskModel>(nested("disk")).unwrap();
        crate::model::check::<NicModel>(nested("network_interface")).unwrap();
        crate::model::check::<CloudInitModel>(nested("cloud_init")).unwrap();
        crate::model::check::<TimeoutsModel>(nested("timeouts")).unwrap();
        crate::model::check::<GraphicsModel>(nested("graphics")).unwrap();
        crate::model::check::<TpmModel>(nested("tpm")).unwrap();
        crate::model::check::<FilesystemModel>(nested("filesystem")).unwrap();
    }
}
