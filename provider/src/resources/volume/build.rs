//! The libvirt document of a new volume.

use libvirt_xml::pool::Format as XmlFormat;
use libvirt_xml::volume::{BackingStore, StorageVolume, VolumeTarget};
use libvirt_xml::{Capacity, Document};

use crate::diag::Diagnostic;

/// A new volume's XML.
pub(super) fn volume_xml(
    name: &str,
    capacity: u64,
    format: &str,
    backing: Option<BackingStore>,
) -> Result<String, Diagnostic> {
    let doc = StorageVolume {
        name: name.to_string(),
        capacity: Some(Capacity::from_bytes(capacity)),
        // Thin: a blank volume takes no space until written.
        allocation: Some(Capacity::from_bytes(0)),
        target: Some(VolumeTarget {
            format: Some(XmlFormat { format_type: format.to_string() }),
            ..Default::default()
        }),
        backing_store: backing,
        ..Default::default()
    };
    doc.to_xml().map_err(|e| Diagnostic::error("Internal error", format!("cannot build the volume's XML: {e}")))
}
