# A storage pool, a blank volume and a NAT network on the local libvirt host, plus what the
# host reports about itself.
#
# The provider connects to LIBVIRT_DEFAULT_URI, else qemu:///system: run Terraform as a user
# who may manage the system libvirt (root, or a member of the libvirt group).

terraform {
  required_providers {
    kvm = {
      source  = "kvm/kvm"
      version = "0.1.0"
    }
  }
}

provider "kvm" {}

data "kvm_host" "this" {}

# A directory pool. The provider creates the directory.
resource "kvm_pool" "example" {
  name = "tf-example"
  path = "/var/lib/libvirt/tf-example"
  mode = "0711"

  # Destroy also deletes volumes created outside Terraform in this pool.
  force_destroy = true
}

# Thin-provisioned: it takes almost no space until a guest writes to it.
resource "kvm_volume" "scratch" {
  name = "scratch.qcow2"
  pool = kvm_pool.example.name
  size = "1GiB"
}

# NAT network with DHCP, one fixed address and one DNS record.
resource "kvm_network" "example" {
  name   = "tf-example"
  cidr   = "10.231.7.0/24"
  domain = "example.test"

  dhcp {
    start = "10.231.7.100"
    end   = "10.231.7.199"
  }

  # A guest with this MAC always gets 10.231.7.10. Changing or adding host blocks does not
  # restart the network.
  host {
    mac  = "52:54:00:e7:07:0a"
    ip   = "10.231.7.10"
    name = "web"
  }

  dns_host {
    ip        = "10.231.7.10"
    hostnames = ["web.example.test", "www.example.test"]
  }
}

output "host" {
  value = {
    hostname        = data.kvm_host.this.hostname
    libvirt_version = data.kvm_host.this.libvirt_version
    hypervisor      = "${data.kvm_host.this.hypervisor} ${data.kvm_host.this.hypervisor_version}"
    arch            = data.kvm_host.this.arch
    cpus            = data.kvm_host.this.cpus
    memory          = data.kvm_host.this.memory
    accelerators    = data.kvm_host.this.accelerators
    disk_buses      = data.kvm_host.this.disk_buses
  }
}

output "pool_path" {
  value = kvm_pool.example.path
}

output "volume_path" {
  value = kvm_volume.scratch.path
}

output "network" {
  value = {
    bridge  = kvm_network.example.bridge
    gateway = kvm_network.example.gateway
  }
}
