//! Typed libvirt XML documents.
//!
//! Every document libvirt exchanges as XML (domains, storage pools, volumes, networks, host and
//! domain capabilities) has a Rust struct here. Documents are built from and parsed into those structs
//! with serde and quick-xml, never assembled from string templates, so what the provider sends is
//! always well-formed and escaped.
//!
//! Parsing is tolerant: libvirt adds elements and attributes on readback (timestamps, NAT port
//! ranges, CPU features, ...) and newer libvirt versions add more, so anything not modelled is
//! ignored rather than rejected. Serialising omits every field that is `None` or an empty list,
//! leaving libvirt to choose its defaults.
//!
//! ```
//! use libvirt_xml::pool::{PoolTarget, StoragePool};
//! use libvirt_xml::Document;
//!
//! let pool = StoragePool {
//!     pool_type: "dir".into(),
//!     name: "images".into(),
//!     target: Some(PoolTarget { path: "/var/lib/libvirt/images".into(), permissions: None }),
//!     ..Default::default()
//! };
//! let xml = pool.to_xml()?;
//! assert_eq!(StoragePool::from_xml(&xml)?, pool);
//! # Ok::<(), libvirt_xml::Error>(())
//! ```

#![warn(missing_docs)]

pub mod capabilities;
pub mod cpu;
pub mod domain;
pub mod domcaps;
pub mod network;
pub mod pool;
pub mod size;
pub mod volume;

mod yes_no;

use quick_xml::events::Event;
use quick_xml::Reader;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use size::Capacity;

/// An empty element whose presence is the information, like `<lazy_refcounts/>` in a volume or
/// `<acpi/>` and `<readonly/>` in a domain.
///
/// Attributes some libvirt versions put on such elements (e.g. `<apic eoi='on'/>`) are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Flag {}

/// Everything that can go wrong turning structs into libvirt XML and back.
///
/// Messages from quick-xml are kept as text so that its error types do not leak into this
/// crate's public API: a quick-xml upgrade must not be a breaking change for the provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text was not well-formed XML, or did not have the shape of the expected document.
    #[error("cannot parse libvirt <{element}> XML: {message}")]
    Parse {
        /// Root element of the document that was being parsed, e.g. `pool`.
        element: &'static str,
        /// What the parser reported.
        message: String,
    },
    /// The XML was well-formed but its root element is not the one the caller asked for, e.g. a
    /// network definition handed to [`pool::StoragePool::from_xml`](Document::from_xml).
    #[error("expected a libvirt <{expected}> document but the root element is <{found}>")]
    WrongRoot {
        /// Root element the caller asked for.
        expected: &'static str,
        /// Root element found in the text.
        found: String,
    },
    /// A struct could not be written as XML (for example a name that is not a valid XML name).
    #[error("cannot serialise libvirt <{element}> XML: {message}")]
    Serialize {
        /// Root element of the document that was being written.
        element: &'static str,
        /// What the serialiser reported.
        message: String,
    },
    /// A size carried a unit libvirt would not accept either.
    #[error("unknown size unit '{unit}'")]
    UnknownUnit {
        /// The unit as written in the XML.
        unit: String,
    },
    /// A size does not fit in 64 bits once converted to bytes.
    #[error("size {value} {unit} does not fit in 64 bits of bytes")]
    SizeOverflow {
        /// The number as written in the XML.
        value: u64,
        /// The unit as written in the XML.
        unit: String,
    },
}

/// A complete libvirt XML document: the text passed to `virStoragePoolDefineXML`,
/// `virNetworkDefineXML` and friends, or returned by their `GetXMLDesc` counterparts.
///
/// Implementors only name their root element; writing and parsing are shared by every document
/// so that they all behave alike (indentation, omission of unset fields, root check, error text).
pub trait Document: Serialize + DeserializeOwned {
    /// Name of the root element, e.g. `pool`.
    const ROOT: &'static str;

    /// Writes the document as XML.
    fn to_xml(&self) -> Result<String, Error> {
        write_element(self, Self::ROOT)
    }

    /// Parses a document, ignoring elements and attributes that are not modelled.
    fn from_xml(xml: &str) -> Result<Self, Error> {
        read_element(xml, Self::ROOT)
    }
}

/// A piece of a larger document that libvirt also takes on its own, such as the `<host>`
/// elements `virNetworkUpdate` adds to or removes from a running network.
///
/// Kept apart from [`Document`] because a fragment is not something libvirt can define by
/// itself, and because several fragments share one element name (`<host>` means a DHCP
/// reservation in one place and a DNS record in another).
pub trait Fragment: Serialize + DeserializeOwned {
    /// Name of the fragment's element, e.g. `host`.
    const ELEMENT: &'static str;

    /// Writes the fragment as XML.
    fn to_xml(&self) -> Result<String, Error> {
        write_element(self, Self::ELEMENT)
    }

    /// Parses a fragment, ignoring elements and attributes that are not modelled.
    fn from_xml(xml: &str) -> Result<Self, Error> {
        read_element(xml, Self::ELEMENT)
    }
}

/// Serialises `value` as an element named `root`.
fn write_element<T: Serialize + ?Sized>(value: &T, root: &'static str) -> Result<String, Error> {
    let fail = |e: quick_xml::SeError| Error::Serialize { element: root, message: e.to_string() };
    let mut out = String::new();
    let mut ser = quick_xml::se::Serializer::with_root(&mut out, Some(root)).map_err(fail)?;
    // Indented output costs nothing and makes the XML readable in logs and error messages.
    ser.indent(' ', 2);
    value.serialize(ser).map_err(fail)?;
    Ok(out)
}

/// Parses `xml` as an element named `root`.
fn read_element<T: DeserializeOwned>(xml: &str, root: &'static str) -> Result<T, Error> {
    // serde ignores the root element's name, so a <network> would otherwise be read as a pool
    // with whatever fields happen to match; and it stops reading at the end of the root
    // element, so trailing garbage would go unnoticed. Checking the whole text first catches
    // both, and turns "missing field `name`" into a message that says what was passed.
    let found = check_structure(xml).map_err(|message| Error::Parse { element: root, message })?;
    if found != root {
        return Err(Error::WrongRoot { expected: root, found });
    }
    quick_xml::de::from_str(xml).map_err(|e| Error::Parse { element: root, message: e.to_string() })
}

/// Checks that `xml` is one well-formed element (with optional prolog and trailing comments)
/// and returns its name.
fn check_structure(xml: &str) -> Result<String, String> {
    let mut reader = Reader::from_str(xml);
    let mut root: Option<String> = None;
    let mut depth = 0usize;
    loop {
        let event = reader.read_event().map_err(|e| e.to_string())?;
        let closed = root.is_some() && depth == 0;
        match &event {
            Event::Start(_) | Event::Empty(_) | Event::End(_) | Event::CData(_) | Event::GeneralRef(_) if closed => {
                return Err("content after the end of the root element".to_owned());
            }
            Event::Start(e) | Event::Empty(e) if root.is_none() => {
                root = Some(e.name().as_ref().to_owned());
                depth = usize::from(matches!(event, Event::Start(_)));
            }
            Event::Start(_) => depth += 1,
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Text(t) if depth == 0 && !t.trim().is_empty() => {
                return Err("text outside the root element".to_owned());
            }
            Event::Eof => {
                return match root {
                    Some(name) if depth == 0 => Ok(name),
                    Some(name) => Err(format!("the document ends before </{name}>")),
                    None => Err("the document has no root element".to_owned()),
                };
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::StoragePool;

    #[test]
    fn structure_check_skips_prolog_and_trailing_comments() {
        let xml = "<?xml version='1.0'?>\n<!-- generated -->\n<pool type='dir'><name>a</name></pool>\n<!-- end -->\n";
        assert_eq!(check_structure(xml), Ok("pool".to_owned()));
        assert_eq!(check_structure("<pool/>"), Ok("pool".to_owned()));
    }

    #[test]
    fn structure_check_rejects_extra_content() {
        for xml in ["<pool/><pool/>", "<pool></pool></pool>", "<pool/>text", "<pool><name>", "<pool><a></b></pool>"] {
            assert!(check_structure(xml).is_err(), "{xml:?}");
        }
    }

    #[test]
    fn wrong_root_is_reported() {
        let err = StoragePool::from_xml("<network><name>a</name></network>").unwrap_err();
        assert_eq!(err, Error::WrongRoot { expected: "pool", found: "network".into() });
        assert_eq!(err.to_string(), "expected a libvirt <pool> document but the root element is <network>");
    }

    #[test]
    fn empty_input_is_an_error() {
        for xml in ["", "   \n", "<!-- only a comment -->", "just text"] {
            let err = StoragePool::from_xml(xml).unwrap_err();
            assert!(matches!(err, Error::Parse { element: "pool", .. }), "{xml:?} gave {err:?}");
        }
    }

    #[test]
    fn missing_required_field_names_the_document() {
        let err = StoragePool::from_xml("<pool type='dir'/>").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("cannot parse libvirt <pool> XML:"), "{text}");
        assert!(text.contains("name"), "{text}");
    }
}
