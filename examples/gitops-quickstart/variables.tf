variable "name" {
  type        = string
  default     = "gitops-quickstart"
  description = "Names the network, pool, volumes, instances and the cluster (lowercase letters, digits, '-')."
}

variable "libvirt_uri" {
  type    = string
  default = "qemu:///system"
}

variable "cidr" {
  type        = string
  default     = "10.205.0.0/24"
  description = "The network: gateway (and Git server) on host 1, the server on 10, agents on 20, 21, ..."
}

variable "image_dir" {
  type        = string
  description = "Directory with the guest image: disk.qcow2, vmlinuz and initrd.img (scripts/guest-image.sh builds one)."
}

variable "accelerator" {
  type        = string
  default     = "kvm"
  description = "kvm, or qemu (TCG) on hosts without usable KVM."
}

variable "agent_count" {
  type    = number
  default = 0
}

variable "server_memory" {
  type    = string
  default = "4GiB"
}

variable "agent_memory" {
  type    = string
  default = "2GiB"
}

variable "ssh_public_key" {
  type        = string
  description = "Public key allowed to log in as root on the nodes."
}

variable "ssh_private_key" {
  type        = string
  default     = null
  sensitive   = true
  description = "Its private half, for the bootstrap (not needed with bootstrap = \"none\")."
}

variable "bootstrap" {
  type        = string
  default     = "none"
  description = "none (machines and keys only), airgap (k3s and controllers from artifacts_dir) or online (downloaded by the nodes)."

  validation {
    condition     = contains(["none", "airgap", "online"], var.bootstrap)
    error_message = "The bootstrap must be none, airgap or online."
  }
}

variable "artifacts_dir" {
  type        = string
  default     = null
  description = "For bootstrap = \"airgap\": the KVM_GITOPS_ARTIFACTS layout (k3s, install.sh, sealed-secrets/controller.yaml, argocd/install.yaml, controller-images.tar)."
}

variable "k3s_images" {
  type        = string
  default     = null
  description = "For bootstrap = \"airgap\": k3s' image archive (k3s-airgap-images-amd64.tar.zst or .tar in artifacts_dir)."
}

variable "k3s_version" {
  type        = string
  default     = "v1.33.5+k3s1"
  description = "For bootstrap = \"online\"."
}

variable "git_port" {
  type        = number
  default     = 8418
  description = "Port of the demo repository's Git server on the gateway address."
}

variable "demo_password" {
  type        = string
  default     = "gitops-quickstart-demo"
  sensitive   = true
  description = "The demo Secret's value, sealed into the repository."
}
