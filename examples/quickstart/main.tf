# Quickstart: a NAT network, a pool, a base image, and one instance with cloud-init and a
# Terraform-generated SSH host key, ready for SSH when the apply returns.
#
#   bash scripts/main.sh          # builds everything and applies this with embedded defaults
#
# or by hand, with a guest image directory (disk.qcow2, vmlinuz, initrd.img):
#
#   terraform apply -var image_dir=/path/to/image -var ssh_public_key="$(cat ~/.ssh/id_ed25519.pub)"

terraform {
  required_providers {
    kvm = {
      source = "kvm/kvm"
    }
  }
}

variable "image_dir" {
  type        = string
  description = "Directory with the guest image: disk.qcow2, vmlinuz and initrd.img (scripts/guest-image.sh builds one)."
}

variable "ssh_public_key" {
  type        = string
  description = "Public key allowed to log in as root."
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
  name = "quickstart"
  mode = "nat"
  cidr = "10.203.0.0/24"
}

resource "kvm_pool" "pool" {
  name = "quickstart"
  path = "/var/lib/libvirt/quickstart"
}

resource "kvm_volume" "base" {
  name   = "debian-12.qcow2"
  pool   = kvm_pool.pool.name
  source = "${var.image_dir}/disk.qcow2"
}

resource "kvm_volume" "root" {
  name        = "quickstart-1-root.qcow2"
  pool        = kvm_pool.pool.name
  base_volume = kvm_volume.base.name
}

resource "kvm_instance" "vm" {
  name        = "quickstart-1"
  vcpu        = 1
  memory      = "1GiB"
  accelerator = var.accelerator

  # The test image boots its kernel directly; cloud images with a bootloader leave these out.
  kernel  = "${var.image_dir}/vmlinuz"
  initrd  = "${var.image_dir}/initrd.img"
  cmdline = "console=ttyS0 root=/dev/vda rw"

  disk {
    volume = kvm_volume.root.name
    pool   = kvm_pool.pool.name
  }

  network_interface {
    network = kvm_network.lan.name
    ip      = "10.203.0.10"
  }

  cloud_init {
    user_data           = <<-EOT
      #cloud-config
      disable_root: false
    EOT
    ssh_authorized_keys = [var.ssh_public_key]
  }

  wait_for = "ssh"
}

output "ip_address" {
  value = kvm_instance.vm.ip_address
}

output "known_hosts" {
  description = "Pins the instance's SSH host key: no trust-on-first-use."
  value       = kvm_instance.vm.known_hosts
}
