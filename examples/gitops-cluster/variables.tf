variable "name" {
  type        = string
  default     = "gitops-lab"
  description = "Cluster name; also names the network, pool, volumes and instances (lowercase letters, digits, '-')."
}

variable "libvirt_uri" {
  type    = string
  default = "qemu:///system"
}

variable "cidr" {
  type        = string
  default     = "10.204.0.0/24"
  description = "The lab network. The server gets host 10, agents 20, 21, ..."
}

variable "image" {
  type        = string
  description = "Path or http(s) URL of a qcow2/raw disk image with cloud-init, curl and systemd, e.g. a Debian 12 genericcloud image."
}

variable "kernel" {
  type        = string
  default     = null
  description = "Only for images that boot a kernel directly (scripts/guest-image.sh): path of vmlinuz on the libvirt host."
}

variable "initrd" {
  type    = string
  default = null
}

variable "accelerator" {
  type        = string
  default     = "kvm"
  description = "kvm, or qemu (TCG) on hosts without /dev/kvm."
}

variable "agent_count" {
  type    = number
  default = 2
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
  sensitive   = true
  description = "Its private half, for the bootstrap (TF_VAR_ssh_private_key=\"$(cat ~/.ssh/lab_ed25519)\"). Stored in state like every value."
}

variable "k3s_version" {
  type        = string
  default     = "v1.33.5+k3s1"
  description = "Pinned, so a rebuilt cluster runs the same version."
}

variable "repo_url" {
  type        = string
  description = "Clone URL of the GitOps repository, reachable from the nodes."
}

variable "repo_revision" {
  type    = string
  default = "main"
}

variable "repo_path" {
  type        = string
  default     = "."
  description = "Directory of the root manifests in the repository."
}

variable "repo_username" {
  type        = string
  default     = null
  description = "HTTPS user for a private repository (any name, e.g. git, with a token)."
}

variable "repo_password" {
  type        = string
  default     = null
  sensitive   = true
  description = "HTTPS password or access token for a private repository."
}

variable "keep_on_destroy" {
  type        = bool
  default     = false
  description = "Skip the k3s uninstall on destroy (the instances are destroyed in the same run anyway)."
}
