# LVM storage: a volume group built from whole disks (or NVMe namespaces), a raw data volume on
# it, and a pool on a volume group the host has already.
#
#   terraform apply -var 'devices=["/dev/nvme1n1"]' -var existing_volume_group=vg_vms
#
# Each device must be empty: libvirt refuses one that holds a filesystem, a partition table or an
# LVM label (wipe it first with `wipefs -a` if it is meant to be erased). Destroy removes the built
# group and wipes the devices' LVM labels; the existing group is left as it was.
#
# Logical volumes are raw and allocated in full; sizes are whole extents (4 MiB by default).
# Growing `size` runs lvextend, which needs the libvirt host to be this machine (qemu:///system).
# The host needs lvm2 and a kernel with device-mapper (scripts/libvirt.sh installs lvm2).

terraform {
  required_providers {
    kvm = {
      source = "kvm/kvm"
    }
  }
}

variable "devices" {
  type        = list(string)
  description = "Empty block devices to build the volume group from."
}

variable "existing_volume_group" {
  type        = string
  description = "A volume group that exists on the host; null to leave that pool out."
  default     = null
}

provider "kvm" {}

resource "kvm_pool" "fast" {
  name    = "fast"
  type    = "logical"
  devices = var.devices
}

resource "kvm_volume" "data" {
  name = "data"
  pool = kvm_pool.fast.name
  size = "20GiB"
}

resource "kvm_pool" "existing" {
  count        = var.existing_volume_group == null ? 0 : 1
  name         = "vms"
  type         = "logical"
  volume_group = var.existing_volume_group
}

output "data_path" {
  description = "The logical volume's device node, e.g. /dev/fast/data."
  value       = kvm_volume.data.path
}
