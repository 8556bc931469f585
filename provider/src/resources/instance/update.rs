//! Applying an update to an existing instance on the host (a host operation, as in `ops`, but
//! one that composes many of them: the redefinition, hot-plugging and restart decisions).

use libvirt_xml::domain::{Disk, Domain, Interface, Vcpu};
use libvirt_xml::Capacity;

use super::metadata::FixedIp;
use super::spec::{DiskSource, GraphicsSpec, Spec};
use super::{build, ops};
use crate::libvirt::HostError;

/// Applies an update on the host: redefines the persistent definition from the current one
/// (device addresses kept, so the guest sees the same PCI layout), hot-plugs what changed,
/// restarts when needed. Returns `Some` (with the first interface's lease before the start) when
/// the instance was (re)started.
pub fn apply(
    conn: &virt::connect::Connect,
    uuid: &str,
    old: &Spec,
    new: &Spec,
    restart: bool,
) -> Result<Option<Option<ops::LeaseWatch>>, HostError> {
    let dom = ops::lookup(conn, uuid)?;
    // Only the definition and our record: the guest's addresses are not needed here.
    let mut doc: Domain = ops::definition(&dom, &new.name)?;
    let mut meta = ops::metadata(&dom);
    doc.memory = Capacity::from_bytes(new.memory);
    doc.current_memory = None;
    doc.vcpu = Vcpu::new(new.vcpu);
    doc.cpu = Some(build::cpu(new));

    let seed = meta.seed.as_ref().map(|s| DiskSource::Volume { pool: s.pool.clone(), volume: s.volume.clone() });
    let (seed_disks, current): (Vec<Disk>, Vec<Disk>) =
        doc.devices.disks.drain(..).partition(|d| seed.as_ref().is_some_and(|s| build::same_source(d, s)));
    let reserved: Vec<String> = seed_disks.iter().map(|d| d.target.dev.clone()).collect();
    let devices = build::assign_devices(&new.disks, &reserved);
    let mut disks = Vec::new();
    let (mut added_disks, mut removed_disks) = (Vec::new(), Vec::new());
    let mut threads = 0;
    for (i, d) in new.disks.iter().enumerate() {
        let existing = current
            .iter()
            .find(|x| build::same_source(x, &d.source) && x.target.bus.as_deref() == Some(d.bus.as_str()));
        let format = match (existing.and_then(|x| x.driver.as_ref()).and_then(|dr| dr.driver_type.clone()), &d.source) {
            (Some(f), _) => f,
            (None, DiskSource::Volume { pool, volume }) => ops::volume_format(conn, pool, volume)?,
            (None, DiskSource::Nvme { .. }) => "raw".into(),
        };
        let thread = (d.is_virtio() && d.iothread).then(|| {
            threads += 1;
            threads
        });
        let dev = existing.map(|x| x.target.dev.clone()).unwrap_or_else(|| devices[i].clone());
        let mut disk = build::disk(d, &format, &dev, thread);
        match existing {
            Some(x) => {
                disk.address = x.address.clone();
                disk.boot = x.boot;
            }
            None => added_disks.push(disk.clone()),
        }
        disks.push(disk);
    }
    for x in &current {
        if !disks.iter().any(|d| d.target.dev == x.target.dev) {
            removed_disks.push(x.clone());
        }
    }
    disks.extend(seed_disks);
    doc.devices.disks = disks;
    doc.iothreads = (threads > 0).then_some(threads);

    let current_nics: Vec<Interface> = std::mem::take(&mut doc.devices.interfaces);
    let (mut added_nics, mut removed_nics) = (Vec::new(), Vec::new());
    for n in &new.nics {
        let wanted = build::interface(n);
        let existing = current_nics.iter().find(|x| {
            x.mac == wanted.mac
                && x.interface_type == wanted.interface_type
                && x.source == wanted.source
                && x.model == wanted.model
        });
        match existing {
            Some(x) => doc.devices.interfaces.push(x.clone()),
            None => {
                added_nics.push(wanted.clone());
                doc.devices.interfaces.push(wanted);
            }
        }
    }
    for x in &current_nics {
        if !doc.devices.interfaces.iter().any(|i| i == x) {
            removed_nics.push(x.clone());
        }
    }

    // Shared directories: a change restarts the instance (planned so), on memory shared with
    // the daemons. Unchanged ones keep their addresses.
    if old.filesystems != new.filesystems {
        doc.devices.filesystems = build::filesystems(new);
        if doc.memory_backing.as_ref().is_none_or(|m| !m.is_shared()) {
            doc.memory_backing = build::memory_backing(new);
        }
    }

    // The graphics as configured, with the configuration's password (write-only: the definition
    // read back has none). A new password version sets it on the running display too.
    doc.devices.graphics = new.graphics.iter().map(build::graphics).collect();
    let same_display = |a: &GraphicsSpec, b: &GraphicsSpec| a.kind == b.kind && a.listen == b.listen;
    let new_password = match (&old.graphics, &new.graphics) {
        (Some(a), Some(b)) if same_display(a, b) && a.password_version != b.password_version => {
            Some(build::graphics(b))
        }
        _ => None,
    };

    let (old_ips, new_ips) = (old.fixed_ips(), new.fixed_ips());
    let gone: Vec<FixedIp> = old_ips.iter().filter(|f| !new_ips.contains(f)).cloned().collect();
    let fresh: Vec<FixedIp> = new_ips.iter().filter(|f| !old_ips.contains(f)).cloned().collect();
    ops::remove_fixed_ips(conn, &gone, &new.name)?;
    ops::add_fixed_ips(conn, &fresh, &new.name)?;
    meta.fixed_ips = new_ips;

    tracing::info!(instance = %new.name, "redefining instance");
    ops::define(conn, &doc, &meta)?;
    dom.set_autostart(new.autostart).map_err(|e| HostError::call(format!("set autostart of {:?}", new.name), e))?;

    let active = dom.is_active().unwrap_or(false);
    let watch = || new.nics.first().map(|n| ops::LeaseWatch::before_start(conn, n.network.as_deref(), &n.mac));
    let mut started = None;
    if active && restart && new.running {
        ops::shutdown(&dom, new.shutdown_timeout, &new.name)?;
        let w = watch();
        ops::start(&dom, &new.name)?;
        started = Some(w);
    } else if active {
        // The persistent definition's PCI address of a device plugged while running differs from
        // the live one, and libvirt refuses a detach whose address does not match: let it find
        // disks by target and interfaces by MAC.
        for d in &removed_disks {
            let d = Disk { address: None, alias: None, ..d.clone() };
            ops::hotplug(&dom, &d, ops::Plug::Detach, &format!("disk {}", d.target.dev), &new.name)?;
        }
        for n in &removed_nics {
            let n = Interface { address: None, alias: None, ..n.clone() };
            ops::hotplug(&dom, &n, ops::Plug::Detach, "interface", &new.name)?;
        }
        for d in &added_disks {
            let mut d = d.clone();
            // The running domain has the I/O threads it was started with; the new disk gets its
            // own at the next start.
            if let Some(driver) = d.driver.as_mut() {
                driver.iothread = None;
            }
            ops::hotplug(&dom, &d, ops::Plug::Attach, &format!("disk {}", d.target.dev), &new.name)?;
        }
        for n in &added_nics {
            ops::hotplug(&dom, n, ops::Plug::Attach, "interface", &new.name)?;
        }
        if let Some(g) = new_password.as_ref().filter(|_| new.running) {
            ops::set_graphics_password(&dom, g, &new.name)?;
        }
        if !new.running {
            ops::shutdown(&dom, new.shutdown_timeout, &new.name)?;
        }
    } else if new.running {
        let w = watch();
        ops::start(&dom, &new.name)?;
        started = Some(w);
    }
    Ok(started)
}
