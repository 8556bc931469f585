//! Typed libvirt XML documents.
