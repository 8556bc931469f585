//! Storage pools: `<pool>` documents (`virsh pool-define`, `pool-dumpxml`).

use serde::{Deserialize, Serialize};

use crate::{Capacity, Document};

/// A storage pool definition.
///
/// Only the parts the provider manages are modelled; readback adds `uuid` and the three sizes,
/// which are `None` when building a definition.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename = "pool")]
pub struct StoragePool {
    /// Pool backend, e.g. `dir`, `logical`, `netfs`.
    #[serde(rename = "@type")]
    pub pool_type: String,
    /// Unique name of the pool on the host.
    pub name: String,
    /// UUID; libvirt generates one when it is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Total size, as reported by libvirt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Capacity>,
    /// Space in use, as reported by libvirt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation: Option<Capacity>,
    /// Free space, as reported by libvirt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<Capacity>,
    /// Where the pool's storage comes from; empty for `dir` pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<PoolSource>,
    /// Where the pool's volumes appear on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<PoolTarget>,
}

impl Document for StoragePool {
    const ROOT: &'static str = "pool";
}

/// The `<source>` of a pool: devices, hosts or a directory backing it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PoolSource {
    /// Remote hosts (`netfs`, `iscsi`, `rbd`, ...).
    #[serde(rename = "host", default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<SourceHost>,
    /// Block devices (`logical`, `disk`, `fs`).
    #[serde(rename = "device", default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<SourcePath>,
    /// Directory on the source (`netfs`, `fs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<SourcePath>,
    /// Source name, e.g. a volume group for `logical` pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Source format, e.g. `nfs` for `netfs` pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
}

/// A `<host name='...' port='...'/>` inside a pool source.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SourceHost {
    /// Host name or address.
    #[serde(rename = "@name")]
    pub name: String,
    /// Port, when not the protocol's default.
    #[serde(rename = "@port", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// An element whose only content is a `path` attribute, like `<device path='/dev/sdb'/>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SourcePath {
    /// The path.
    #[serde(rename = "@path")]
    pub path: String,
}

/// The `<target>` of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PoolTarget {
    /// Directory in which the pool's volumes appear.
    pub path: String,
    /// Ownership and mode of that directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Permissions>,
}

/// Ownership and mode of a pool directory or a volume file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Permissions {
    /// Octal mode, e.g. `0755`; kept as text so that it is never mistaken for decimal.
    /// libvirt reads `644` as octal too but prints it back as `0644`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Numeric owner uid, as text; `-1` on input means "the creating user".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Numeric group gid, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// SELinux or AppArmor label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// A `<format type='...'/>` element: a volume's image format or a pool source's format.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Format {
    /// Format name, e.g. `raw`, `qcow2`, `nfs`.
    #[serde(rename = "@type")]
    pub format_type: String,
}

impl Format {
    /// A format element of the given type.
    pub fn new(format_type: impl Into<String>) -> Self {
        Self { format_type: format_type.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_pool() -> StoragePool {
        StoragePool {
            pool_type: "dir".into(),
            name: "images".into(),
            target: Some(PoolTarget {
                path: "/var/lib/libvirt/images".into(),
                permissions: Some(Permissions { mode: Some("0755".into()), ..Default::default() }),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn dir_pool_serialises_without_unset_fields() {
        let xml = dir_pool().to_xml().unwrap();
        assert_eq!(
            xml,
            r#"<pool type="dir">
  <name>images</name>
  <target>
    <path>/var/lib/libvirt/images</path>
    <permissions>
      <mode>0755</mode>
    </permissions>
  </target>
</pool>"#
        );
        assert_eq!(StoragePool::from_xml(&xml).unwrap(), dir_pool());
    }

    #[test]
    fn whitespace_only_source_is_an_empty_source() {
        let xml = "<pool type='dir'><name>p</name><source>\n  </source></pool>";
        let pool = StoragePool::from_xml(xml).unwrap();
        assert_eq!(pool.source, Some(PoolSource::default()));
    }

    #[test]
    fn netfs_source_round_trips() {
        let pool = StoragePool {
            pool_type: "netfs".into(),
            name: "nfs".into(),
            source: Some(PoolSource {
                hosts: vec![SourceHost { name: "nas.example".into(), port: Some(2049) }],
                dir: Some(SourcePath { path: "/export/vm".into() }),
                format: Some(Format::new("nfs")),
                ..Default::default()
            }),
            target: Some(PoolTarget { path: "/mnt/nfs".into(), permissions: None }),
            ..Default::default()
        };
        let xml = pool.to_xml().unwrap();
        assert!(xml.contains(r#"<host name="nas.example" port="2049"/>"#), "{xml}");
        assert_eq!(StoragePool::from_xml(&xml).unwrap(), pool);
    }

    #[test]
    fn text_and_attributes_are_escaped() {
        let mut pool = dir_pool();
        pool.name = "a<b>&'c\"".into();
        pool.pool_type = "d\"ir".into();
        let xml = pool.to_xml().unwrap();
        assert!(xml.starts_with(r#"<pool type="d&quot;ir">"#), "{xml}");
        assert!(xml.contains(r#"<name>a&lt;b&gt;&amp;'c"</name>"#), "{xml}");
        assert_eq!(StoragePool::from_xml(&xml).unwrap(), pool);
    }
}
