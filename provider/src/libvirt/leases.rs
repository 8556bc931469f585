//! DHCP leases of a libvirt network (`virNetworkGetDHCPLeases`, which the `virt` crate does
//! not wrap). Leases carry their expiry time, which tells a lease the guest just took from one
//! left over from an earlier instance with the same MAC.

use std::ffi::{CStr, CString};

use virt::network::Network;
use virt::sys;

use super::HostError;

/// One lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The leased IPv4 or IPv6 address.
    pub ip: String,
    /// Whether `ip` is IPv4.
    pub ipv4: bool,
    /// When the lease expires (seconds since the epoch); a renewal moves it.
    pub expiry: i64,
}

/// The leases `network` has given to `mac`.
pub fn leases(network: &Network, mac: &str) -> Result<Vec<Lease>, HostError> {
    let mac_c = CString::new(mac).map_err(|_| HostError::Other(format!("invalid MAC {mac:?}")))?;
    let mut array: *mut sys::virNetworkDHCPLeasePtr = std::ptr::null_mut();
    // SAFETY: the network pointer is valid for the life of `network`; on success libvirt hands
    // us `n` leases in a malloc'ed array that we own and free below, each with its free function.
    let n = unsafe { sys::virNetworkGetDHCPLeases(network.as_ptr(), mac_c.as_ptr(), &mut array, 0) };
    if n < 0 {
        let e = virt::error::Error::last_error();
        return Err(HostError::call(format!("read DHCP leases for {mac}"), e));
    }
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        // SAFETY: `i < n`, so the element is one of the leases libvirt returned.
        unsafe {
            let lease = *array.add(i);
            if lease.is_null() {
                continue;
            }
            let l = &*lease;
            if !l.ipaddr.is_null() {
                out.push(Lease {
                    ip: CStr::from_ptr(l.ipaddr).to_string_lossy().into_owned(),
                    ipv4: l.type_ == sys::VIR_IP_ADDR_TYPE_IPV4 as i32,
                    expiry: l.expirytime,
                });
            }
            sys::virNetworkDHCPLeaseFree(lease);
        }
    }
    if !array.is_null() {
        // SAFETY: the array itself was allocated by libvirt with malloc.
        unsafe { libc_free(array.cast()) };
    }
    Ok(out)
}

extern "C" {
    #[link_name = "free"]
    fn libc_free(ptr: *mut std::ffi::c_void);
}
