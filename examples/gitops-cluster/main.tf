# A GitOps cluster on KVM: one k3s server and two agents on kvm_instances, the Sealed Secrets
# controller holding a sealing key from Terraform state, and Argo CD syncing a Git repository.
# See README.md next to this file for how to run it.

terraform {
  required_providers {
    kvm = {
      source  = "kvm/kvm"
      version = "0.1.0"
    }
  }
}

provider "kvm" {
  uri = var.libvirt_uri
}

locals {
  # Fixed addresses (reserved in the network's DHCP): the kubeconfig's server address is then known
  # at plan time, and a rebuilt cluster answers at the same address.
  server_ip = cidrhost(var.cidr, 10)
  agent_ips = [for i in range(var.agent_count) : cidrhost(var.cidr, 20 + i)]

  cloud_config = <<-EOT
    #cloud-config
    disable_root: false
  EOT
}

# --- Machines ------------------------------------------------------------------------------

resource "kvm_network" "lan" {
  name = var.name
  mode = "nat"
  cidr = var.cidr
}

resource "kvm_pool" "pool" {
  name = var.name
  path = "/var/lib/libvirt/${var.name}"
}

resource "kvm_volume" "base" {
  name   = "${var.name}-base.qcow2"
  pool   = kvm_pool.pool.name
  source = var.image
}

resource "kvm_volume" "server_root" {
  name        = "${var.name}-server-root.qcow2"
  pool        = kvm_pool.pool.name
  base_volume = kvm_volume.base.name
  size        = "20GiB"
}

resource "kvm_volume" "agent_root" {
  count       = var.agent_count
  name        = "${var.name}-agent-${count.index + 1}-root.qcow2"
  pool        = kvm_pool.pool.name
  base_volume = kvm_volume.base.name
  size        = "20GiB"
}

resource "kvm_instance" "server" {
  name        = "${var.name}-server-1"
  vcpu        = 2
  memory      = var.server_memory
  accelerator = var.accelerator

  # Only for images that boot a kernel directly (scripts/guest-image.sh); null for cloud images.
  kernel  = var.kernel
  initrd  = var.initrd
  cmdline = var.kernel == null ? null : "console=ttyS0 root=/dev/vda rw"

  disk {
    volume = kvm_volume.server_root.name
    pool   = kvm_pool.pool.name
  }

  network_interface {
    network = kvm_network.lan.name
    ip      = local.server_ip
  }

  cloud_init {
    user_data           = local.cloud_config
    ssh_authorized_keys = [var.ssh_public_key]
  }

  # The apply continues only once SSH answers with the host key Terraform generated.
  wait_for = "ssh"
}

resource "kvm_instance" "agent" {
  count       = var.agent_count
  name        = "${var.name}-agent-${count.index + 1}"
  vcpu        = 2
  memory      = var.agent_memory
  accelerator = var.accelerator

  kernel  = var.kernel
  initrd  = var.initrd
  cmdline = var.kernel == null ? null : "console=ttyS0 root=/dev/vda rw"

  disk {
    volume = kvm_volume.agent_root[count.index].name
    pool   = kvm_pool.pool.name
  }

  network_interface {
    network = kvm_network.lan.name
    ip      = local.agent_ips[count.index]
  }

  cloud_init {
    user_data           = local.cloud_config
    ssh_authorized_keys = [var.ssh_public_key]
  }

  wait_for = "ssh"
}

# --- Keys: kept in Terraform state, kept across rebuilds ---------------------------------------

# The Sealed Secrets key pair. Everything sealed with its certificate unseals in this cluster and
# in any cluster rebuilt from this state.
resource "kvm_sealing_key" "main" {}

# The cluster CAs, service-account key, admin certificate and join token.
resource "kvm_cluster_pki" "cluster" {
  cluster_name = var.name
}

# --- The cluster -------------------------------------------------------------------------------

resource "kvm_gitops_cluster" "cluster" {
  name         = var.name
  pki          = kvm_cluster_pki.cluster.bundle
  token        = kvm_cluster_pki.cluster.token
  sealing_keys = [kvm_sealing_key.main]

  server {
    host        = local.server_ip
    user        = "root"
    private_key = var.ssh_private_key
    host_key    = kvm_instance.server.known_hosts
    node_ip     = local.server_ip
  }

  dynamic "agent" {
    for_each = kvm_instance.agent
    content {
      host        = local.agent_ips[agent.key]
      user        = "root"
      private_key = var.ssh_private_key
      host_key    = agent.value.known_hosts
      node_ip     = local.agent_ips[agent.key]
      labels      = { "node-role.example.net/worker" = "true" }
    }
  }

  k3s {
    version = var.k3s_version
    disable = ["traefik"]
  }

  # Argo CD is the default reconciler; written out to show where Flux would go.
  reconciler {
    kind = "argocd"
  }

  repository {
    url      = var.repo_url
    revision = var.repo_revision
    path     = var.repo_path
    # HTTPS credentials for a private repository (both null for a public one).
    username = var.repo_username
    password = var.repo_password
  }

  keep_on_destroy = var.keep_on_destroy

  timeouts {
    create = "45m" # per waiting stage; guests under TCG are slow to pull Argo CD's images
    update = "45m"
  }
}
