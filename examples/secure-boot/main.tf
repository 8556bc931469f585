# A Secure Boot instance with a TPM 2.0: UEFI with the Microsoft keys enrolled, SMM, a variable
# store of its own (kept across restarts, removed with the instance) and swtpm. The guest boots
# from its disk through the image's signed shim; the kernel locks itself down. Optionally a host
# directory shared read-only over virtiofs (in the guest: mount -t virtiofs shared /mnt).
#
#   terraform apply -var image=/path/to/disk-secureboot.qcow2 -var ssh_public_key="$(cat ~/.ssh/id_ed25519.pub)"
#
# Any UEFI cloud image with a signed shim works (Debian's, Ubuntu's, Fedora's); the test image's
# Secure Boot disk is built by scripts/guest-image.sh (disk-secureboot.qcow2 in the directory it prints).
# The host needs ovmf and swtpm (scripts/libvirt.sh installs them); the apply says so when they are
# missing, before anything is made. Inside the guest: `mokutil --sb-state` (or the last byte of
# /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c is 1).

terraform {
  required_providers {
    kvm = {
      source = "kvm/kvm"
    }
  }
}

variable "image" {
  type        = string
  description = "Path on the libvirt host of a UEFI disk image that boots through a signed shim."
}

variable "ssh_public_key" {
  type        = string
  description = "Public key allowed to log in as root."
}

variable "shared_dir" {
  type        = string
  default     = null
  description = "A directory of the libvirt host to share read-only with the guest (virtiofs, tag `shared`); null for none."
}

variable "accelerator" {
  type        = string
  default     = "kvm"
  description = "kvm, or qemu (TCG) on hosts without /dev/kvm."
}

variable "libvirt_uri" {
  type    = string
  default = "qemu:///system"
}

provider "kvm" {
  uri = var.libvirt_uri
}

resource "kvm_network" "lan" {
  name = "secure-boot"
  mode = "nat"
  cidr = "10.204.0.0/24"
}

resource "kvm_pool" "pool" {
  name = "secure-boot"
  path = "/var/lib/libvirt/secure-boot"
}

resource "kvm_volume" "base" {
  name   = "secure-boot-base.qcow2"
  pool   = kvm_pool.pool.name
  source = var.image
}

resource "kvm_volume" "root" {
  name        = "secure-1-root.qcow2"
  pool        = kvm_pool.pool.name
  base_volume = kvm_volume.base.name
}

resource "kvm_instance" "secure" {
  name        = "secure-1"
  memory      = "1GiB"
  accelerator = var.accelerator
  firmware    = "uefi"
  secure_boot = true

  tpm {}

  dynamic "filesystem" {
    for_each = var.shared_dir == null ? [] : [var.shared_dir]
    content {
      source    = filesystem.value
      target    = "shared"
      read_only = true
    }
  }

  disk {
    volume = kvm_volume.root.name
    pool   = kvm_pool.pool.name
  }
  network_interface {
    network = kvm_network.lan.name
  }
  cloud_init {
    user_data           = "#cloud-config\ndisable_root: false\n"
    ssh_authorized_keys = [var.ssh_public_key]
  }
  wait_for = "ssh"
}

output "ip" {
  value = kvm_instance.secure.ip_address
}

output "known_hosts" {
  value = kvm_instance.secure.known_hosts
}

output "nvram" {
  value = kvm_instance.secure.nvram
}
