//! Host calls of `kvm_pool`: reading a pool.

use libvirt_xml::pool::StoragePool;
use libvirt_xml::Document;
use virt::storage_pool::StoragePool as VirPool;

use super::super::Context;
use crate::diag::Diagnostic;
use crate::libvirt::{Found, HostError};

/// What the host reports about a pool.
pub(super) struct Observed {
    pub(super) doc: StoragePool,
    pub(super) autostart: bool,
    pub(super) active: bool,
}

pub(super) fn observe(pool: &VirPool, name: &str) -> Result<Observed, HostError> {
    let active = pool.is_active().map_err(|e| HostError::call(format!("read state of pool {name:?}"), e))?;
    // A refresh picks up volumes and free space changed behind libvirt's back; it fails while
    // an upload is running, and the figures from before the refresh are then good enough.
    if active {
        let _ = pool.refresh(0);
    }
    let xml = pool.xml_desc(0).map_err(|e| HostError::call(format!("read pool {name:?}"), e))?;
    let doc = StoragePool::from_xml(&xml).map_err(|e| HostError::Other(format!("pool {name:?}: {e}")))?;
    let autostart = pool.autostart().map_err(|e| HostError::call(format!("read pool {name:?} autostart"), e))?;
    Ok(Observed { doc, autostart, active })
}

pub(super) async fn lookup(ctx: &Context, name: &str) -> Result<Option<Observed>, Diagnostic> {
    let host = ctx.host()?;
    let owned = name.to_string();
    let result = host
        .call(move |conn| {
            let pool = conn
                .lookup_storage_pool_by_name(&owned)
                .map_err(|e| HostError::call(format!("look up pool {owned:?}"), e))?;
            observe(&pool, &owned)
        })
        .await;
    result.found().map_err(|e| e.diagnostic("Cannot read storage pool"))
}
