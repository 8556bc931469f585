//! Storage volumes: `<volume>` documents (`virsh vol-create`, `vol-dumpxml`).

use serde::{Deserialize, Serialize};

use crate::{Capacity, Document};

pub use crate::pool::{Format, Permissions};
pub use crate::Flag;

/// A storage volume definition.
///
/// To create a volume give at least `name`, `capacity` and a target format; libvirt fills in
/// `key`, `allocation`, `physical` and the target path on readback.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename = "volume")]
pub struct StorageVolume {
    /// Volume kind as libvirt reports it, e.g. `file` or `block`; accepted but not needed on
    /// input.
    #[serde(rename = "@type", default, skip_serializing_if = "Option::is_none")]
    pub vol_type: Option<String>,
    /// Name, unique within its pool; for `dir` pools also the file name.
    pub name: String,
    /// Host-wide unique key (the path, for file-based pools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Size seen by the guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Capacity>,
    /// Space allocated on the host; on input, how much to preallocate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation: Option<Capacity>,
    /// Size of the file or device on the host, as reported by libvirt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical: Option<Capacity>,
    /// Path, format and permissions of the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<VolumeTarget>,
    /// Image this volume is an overlay of (copy-on-write).
    #[serde(rename = "backingStore", default, skip_serializing_if = "Option::is_none")]
    pub backing_store: Option<BackingStore>,
}

impl Document for StorageVolume {
    const ROOT: &'static str = "volume";
}

/// The `<target>` of a volume.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VolumeTarget {
    /// Path on the host. libvirt derives it from the pool and the name and silently ignores a
    /// path given on input, so leave it `None` when creating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Image format, e.g. `raw` or `qcow2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// Ownership and mode of the volume file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Permissions>,
    /// qcow2 compatibility level, e.g. `1.1`. libvirt only prints it when `features` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compat: Option<String>,
    /// qcow2 feature flags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<VolumeFeatures>,
}

/// qcow2 feature flags in `<features>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VolumeFeatures {
    /// `<lazy_refcounts/>`: present when lazy refcounting is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lazy_refcounts: Option<Flag>,
}

/// The `<backingStore>` of an overlay volume.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BackingStore {
    /// Path of the backing image, e.g. another volume's `target.path`.
    pub path: String,
    /// Format of the backing image. Always set it: when it is absent libvirt 11.3 does not
    /// probe but records `raw` in the overlay, so a qcow2 base would be read as raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// Ownership and mode of the backing image, as reported by libvirt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Permissions>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_raw_volume() {
        let vol = StorageVolume {
            name: "disk.img".into(),
            capacity: Some(Capacity::from_bytes(1 << 30)),
            target: Some(VolumeTarget { format: Some(Format::new("raw")), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(
            vol.to_xml().unwrap(),
            r#"<volume>
  <name>disk.img</name>
  <capacity unit="bytes">1073741824</capacity>
  <target>
    <format type="raw"/>
  </target>
</volume>"#
        );
    }

    #[test]
    fn qcow2_overlay() {
        let vol = StorageVolume {
            name: "overlay.qcow2".into(),
            capacity: Some(Capacity::from_bytes(10 << 30)),
            target: Some(VolumeTarget { format: Some(Format::new("qcow2")), ..Default::default() }),
            backing_store: Some(BackingStore {
                path: "/var/lib/libvirt/images/base.qcow2".into(),
                format: Some(Format::new("qcow2")),
                permissions: None,
            }),
            ..Default::default()
        };
        let xml = vol.to_xml().unwrap();
        assert_eq!(
            xml,
            r#"<volume>
  <name>overlay.qcow2</name>
  <capacity unit="bytes">10737418240</capacity>
  <target>
    <format type="qcow2"/>
  </target>
  <backingStore>
    <path>/var/lib/libvirt/images/base.qcow2</path>
    <format type="qcow2"/>
  </backingStore>
</volume>"#
        );
        assert_eq!(StorageVolume::from_xml(&xml).unwrap(), vol);
    }

    #[test]
    fn qcow2_features_round_trip() {
        let target = VolumeTarget {
            format: Some(Format::new("qcow2")),
            compat: Some("1.1".into()),
            features: Some(VolumeFeatures { lazy_refcounts: Some(Flag {}) }),
            ..Default::default()
        };
        let vol = StorageVolume { name: "v".into(), target: Some(target), ..Default::default() };
        let xml = vol.to_xml().unwrap();
        assert!(xml.contains("<lazy_refcounts/>"), "{xml}");
        assert_eq!(StorageVolume::from_xml(&xml).unwrap(), vol);
    }

    #[test]
    fn capacity_without_unit_parses() {
        let vol = StorageVolume::from_xml("<volume><name>v</name><capacity>512</capacity></volume>").unwrap();
        assert_eq!(vol.capacity, Some(Capacity { unit: None, value: 512 }));
    }
}
