//! What the provider records inside the domain itself (libvirt `<metadata>`), so that delete
//! and import find what belongs to an instance even when Terraform's state does not have it
//! (an interrupted create, an imported instance).

use serde::{Deserialize, Serialize};

use libvirt_xml::Fragment;

/// Namespace URI of our metadata element.
pub const NAMESPACE: &str = "https://github.com/kvm-tools/terraform-provider-kvm/instance/1";
/// Prefix libvirt writes for the namespace.
pub const PREFIX: &str = "kvm";

/// The provider's record of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename = "instance")]
pub struct InstanceMetadata {
    /// The cloud-init seed volume, deleted with the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<VolumeRef>,
    /// The serial console's log file (a volume the provider made), deleted with the instance.
    #[serde(rename = "console-log", default, skip_serializing_if = "Option::is_none")]
    pub console_log: Option<VolumeRef>,
    /// The public SSH host key delivered through the seed.
    #[serde(rename = "host-key", default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    /// DHCP host entries added to networks for fixed addresses, removed with the instance.
    #[serde(rename = "fixed-ip", default, skip_serializing_if = "Vec::is_empty")]
    pub fixed_ips: Vec<FixedIp>,
}

impl Fragment for InstanceMetadata {
    const ELEMENT: &'static str = "instance";
}

/// A volume the provider made for the instance (the seed, the console log).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VolumeRef {
    #[serde(rename = "@pool")]
    pub pool: String,
    #[serde(rename = "@volume")]
    pub volume: String,
}

/// A DHCP host entry the instance added to a network.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FixedIp {
    #[serde(rename = "@network")]
    pub network: String,
    #[serde(rename = "@mac")]
    pub mac: String,
    #[serde(rename = "@ip")]
    pub ip: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_what_libvirt_returns() {
        let m = InstanceMetadata {
            seed: Some(VolumeRef { pool: "p".into(), volume: "a-cidata.img".into() }),
            console_log: Some(VolumeRef { pool: "p".into(), volume: "a-console.log".into() }),
            host_key: Some("ssh-ed25519 AAAAC3Nz".into()),
            fixed_ips: vec![FixedIp { network: "lan".into(), mac: "52:54:00:01:02:03".into(), ip: "10.0.0.5".into() }],
        };
        let xml = m.to_xml().unwrap();
        assert_eq!(InstanceMetadata::from_xml(&xml).unwrap(), m);
        // virDomainGetMetadata hands the element back with its namespace declared.
        let returned = format!(
            "<instance xmlns=\"{NAMESPACE}\"><seed pool=\"p\" volume=\"a-cidata.img\"/>\
             <console-log pool=\"p\" volume=\"a-console.log\"/><host-key>ssh-ed25519 AAAAC3Nz</host-key>\
             <fixed-ip network=\"lan\" mac=\"52:54:00:01:02:03\" ip=\"10.0.0.5\"/></instance>"
        );
        assert_eq!(InstanceMetadata::from_xml(&returned).unwrap(), m);
    }
}
