//! The libvirt document of a new volume.

use libvirt_xml::pool::Format as XmlFormat;
use libvirt_xml::volume::{BackingStore, StorageVolume, VolumeTarget};
use libvirt_xml::{Capacity, Document};

use crate::diag::Diagnostic;

/// What a new volume is on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout<'a> {
    /// A file in a directory pool, in an image format (`qcow2`, `raw`); thin: it takes no space
    /// until written.
    File { format: &'a str },
    /// A logical volume: a raw block device, allocated in full. (libvirt makes an LV whose
    /// allocation is below its capacity an LVM snapshot that is invalidated once written past
    /// its allocation, so thin is not an option.)
    LogicalVolume,
}

/// A new volume's XML.
pub(super) fn volume_xml(
    name: &str,
    capacity: u64,
    layout: Layout<'_>,
    backing: Option<BackingStore>,
) -> Result<String, Diagnostic> {
    let (allocation, format) = match layout {
        Layout::File { format } => (0, Some(XmlFormat { format_type: format.to_string() })),
        // libvirt's LVM backend takes no volume format.
        Layout::LogicalVolume => (capacity, None),
    };
    let doc = StorageVolume {
        name: name.to_string(),
        capacity: Some(Capacity::from_bytes(capacity)),
        allocation: Some(Capacity::from_bytes(allocation)),
        target: Some(VolumeTarget { format, ..Default::default() }),
        backing_store: backing,
        ..Default::default()
    };
    doc.to_xml().map_err(|e| Diagnostic::error("Internal error", format!("cannot build the volume's XML: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_thin_and_has_a_format() {
        let doc = StorageVolume::from_xml(&volume_xml("a", 1 << 30, Layout::File { format: "qcow2" }, None).unwrap())
            .unwrap();
        assert_eq!(doc.allocation.unwrap().bytes().unwrap(), 0);
        assert_eq!(doc.target.unwrap().format.unwrap().format_type, "qcow2");
    }

    #[test]
    fn a_logical_volume_is_allocated_in_full_without_a_format() {
        let doc = StorageVolume::from_xml(&volume_xml("a", 1 << 30, Layout::LogicalVolume, None).unwrap()).unwrap();
        assert_eq!(doc.allocation.unwrap().bytes().unwrap(), 1 << 30);
        assert_eq!(doc.target.and_then(|t| t.format), None);
    }
}
