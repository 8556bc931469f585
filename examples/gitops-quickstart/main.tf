# GitOps quickstart: the quickstart's kind of NAT network and the project's guest image, one k3s
# server (and optionally agents), a sealing key and a SealedSecret for the demo repository, and,
# when k3s can be installed, the cluster: k3s, the Sealed Secrets controller with that key, and
# Argo CD syncing the demo repository that scripts/gitops-quickstart.sh serves on the network's
# gateway address.
#
#   bash scripts/main.sh gitops           # builds everything and drives this (see README.md here)
#   bash scripts/main.sh gitops destroy   # removes it, the Git server included
#
# `bootstrap` chooses how far it goes: "none" (machines, keys and the sealed secret only),
# "airgap" (k3s and the controllers from var.artifacts_dir) or "online" (the nodes download them).

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
  gateway   = cidrhost(var.cidr, 1)
  server_ip = cidrhost(var.cidr, 10)
  agent_ips = [for i in range(var.agent_count) : cidrhost(var.cidr, 20 + i)]
  repo_url  = "http://${local.gateway}:${var.git_port}/gitops.git"
  airgap    = var.bootstrap == "airgap"

  # Online nodes fetch k3s with curl, which the project's minimal guest image lacks.
  cloud_config = var.bootstrap == "online" ? "#cloud-config\ndisable_root: false\npackages: [curl]\n" : "#cloud-config\ndisable_root: false\n"
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
  source = "${var.image_dir}/disk.qcow2"
}

resource "kvm_volume" "server_root" {
  name        = "${var.name}-server-1-root.qcow2"
  pool        = kvm_pool.pool.name
  base_volume = kvm_volume.base.name
  size        = "16GiB" # k3s, Argo CD and their images; cloud-init grows the file system
}

resource "kvm_volume" "agent_root" {
  count       = var.agent_count
  name        = "${var.name}-agent-${count.index + 1}-root.qcow2"
  pool        = kvm_pool.pool.name
  base_volume = kvm_volume.base.name
  size        = "16GiB"
}

resource "kvm_instance" "server" {
  name        = "${var.name}-server-1"
  vcpu        = 2
  memory      = var.server_memory
  accelerator = var.accelerator

  # The project's guest image boots its kernel directly.
  kernel  = "${var.image_dir}/vmlinuz"
  initrd  = "${var.image_dir}/initrd.img"
  cmdline = "console=ttyS0 root=/dev/vda rw"

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

  wait_for = "ssh"
}

resource "kvm_instance" "agent" {
  count       = var.agent_count
  name        = "${var.name}-agent-${count.index + 1}"
  vcpu        = 2
  memory      = var.agent_memory
  accelerator = var.accelerator

  kernel  = "${var.image_dir}/vmlinuz"
  initrd  = "${var.image_dir}/initrd.img"
  cmdline = "console=ttyS0 root=/dev/vda rw"

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

# --- The demo repository's secret ----------------------------------------------------------

# The cluster's Sealed Secrets key, kept in Terraform state (a rebuilt cluster gets it back).
resource "kvm_sealing_key" "main" {}

# Sealed offline for that key: the manifest goes into the demo repository, and only the
# controller holding the key turns it back into the Secret demo/demo-credentials.
resource "kvm_sealed_secret" "demo" {
  namespace       = "demo"
  name            = "demo-credentials"
  certificate_pem = kvm_sealing_key.main.certificate_pem
  values = {
    password = var.demo_password
  }
}

# --- The cluster (only when k3s can be installed) ---------------------------------------------

resource "kvm_cluster_pki" "cluster" {
  count        = var.bootstrap == "none" ? 0 : 1
  cluster_name = var.name
}

resource "kvm_gitops_cluster" "cluster" {
  count        = var.bootstrap == "none" ? 0 : 1
  name         = var.name
  pki          = kvm_cluster_pki.cluster[0].bundle
  token        = kvm_cluster_pki.cluster[0].token
  sealing_keys = [kvm_sealing_key.main]

  server {
    host        = local.server_ip
    user        = "root"
    private_key = var.ssh_private_key
    host_key    = kvm_instance.server.known_hosts
    node_name   = "${var.name}-server-1"
    node_ip     = local.server_ip
  }

  dynamic "agent" {
    for_each = kvm_instance.agent
    content {
      host        = local.agent_ips[agent.key]
      user        = "root"
      private_key = var.ssh_private_key
      host_key    = agent.value.known_hosts
      node_name   = agent.value.name
      node_ip     = local.agent_ips[agent.key]
    }
  }

  k3s {
    version               = local.airgap ? null : var.k3s_version
    airgap_binary         = local.airgap ? "${var.artifacts_dir}/k3s" : null
    airgap_images         = local.airgap ? var.k3s_images : null
    airgap_install_script = local.airgap ? "${var.artifacts_dir}/install.sh" : null
    airgap_extra_images   = local.airgap ? ["${var.artifacts_dir}/controller-images.tar"] : null
    disable               = ["traefik", "metrics-server"]
  }

  sealed_secrets {
    manifest_file = local.airgap ? "${var.artifacts_dir}/sealed-secrets/controller.yaml" : null
  }

  reconciler {
    kind          = "argocd"
    manifest_file = local.airgap ? "${var.artifacts_dir}/argocd/install.yaml" : null
  }

  repository {
    url      = local.repo_url
    revision = "main"
    path     = "apps"
  }

  # The machines go in the same destroy: no need to uninstall k3s from them first.
  keep_on_destroy = true

  timeouts {
    create = "45m" # per waiting stage; TCG guests are slow to start Argo CD
    update = "45m"
  }
}
