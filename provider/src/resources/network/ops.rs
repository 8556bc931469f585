//! Host calls of `kvm_network`: reading a network, and the in-place updates (virNetworkUpdate).

use libvirt_xml::network::Network as NetDoc;
use libvirt_xml::{Document, Fragment};
use virt::sys;

use super::super::Context;
use crate::diag::Diagnostic;
use crate::libvirt::{Found, HostError};

/// What the host reports about a network.
pub(super) struct Observed {
    pub(super) doc: NetDoc,
    pub(super) autostart: bool,
    pub(super) active: bool,
}

pub(super) fn observe(net: &virt::network::Network, name: &str) -> Result<Observed, HostError> {
    // The persistent definition is what Terraform manages; live-only changes are lost on restart.
    let xml = net
        .xml_desc(sys::VIR_NETWORK_XML_INACTIVE)
        .map_err(|e| HostError::call(format!("read network {name:?}"), e))?;
    let doc = NetDoc::from_xml(&xml).map_err(|e| HostError::Other(format!("network {name:?}: {e}")))?;
    let autostart = net.autostart().map_err(|e| HostError::call(format!("read autostart of {name:?}"), e))?;
    let active = net.is_active().map_err(|e| HostError::call(format!("read state of {name:?}"), e))?;
    Ok(Observed { doc, autostart, active })
}

pub(super) async fn lookup(ctx: &Context, name: &str) -> Result<Option<Observed>, Diagnostic> {
    let owned = name.to_string();
    let result = ctx
        .host()?
        .call(move |conn| {
            let net = conn
                .lookup_network_by_name(&owned)
                .map_err(|e| HostError::call(format!("look up network {owned:?}"), e))?;
            observe(&net, &owned)
        })
        .await;
    result.found().map_err(|e| e.diagnostic("Cannot read network"))
}

/// One virNetworkUpdate call.
pub(super) struct Change {
    pub(super) command: sys::virNetworkUpdateCommand,
    pub(super) section: sys::virNetworkUpdateSection,
    pub(super) xml: String,
    pub(super) what: String,
}

pub(super) fn fragment_changes<T: Fragment + PartialEq + Clone + std::fmt::Debug>(
    before: &[T],
    after: &[T],
    section: sys::virNetworkUpdateSection,
    kind: &str,
) -> Result<Vec<Change>, Diagnostic> {
    let xml = |t: &T| t.to_xml().map_err(|e| Diagnostic::error("Internal error", e.to_string()));
    let mut changes = Vec::new();
    for old in before.iter().filter(|o| !after.contains(o)) {
        changes.push(Change {
            command: sys::VIR_NETWORK_UPDATE_COMMAND_DELETE,
            section,
            xml: xml(old)?,
            what: format!("remove {kind} {old:?}"),
        });
    }
    for new in after.iter().filter(|n| !before.contains(n)) {
        changes.push(Change {
            command: sys::VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
            section,
            xml: xml(new)?,
            what: format!("add {kind} {new:?}"),
        });
    }
    Ok(changes)
}
