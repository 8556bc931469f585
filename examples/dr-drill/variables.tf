variable "name" {
  type    = string
  default = "dr-drill"
}

variable "cidr" {
  type    = string
  default = "10.205.0.0/24"
}

variable "libvirt_uri" {
  type    = string
  default = "qemu:///system"
}

variable "image" {
  type        = string
  description = "Path or http(s) URL of a disk image with cloud-init, systemd and curl (see ../gitops-cluster/README.md)."
}

variable "kernel" {
  type    = string
  default = null
}

variable "initrd" {
  type    = string
  default = null
}

variable "accelerator" {
  type    = string
  default = "kvm"
}

variable "ssh_public_key" {
  type = string
}

variable "ssh_private_key" {
  type      = string
  sensitive = true
}

variable "repo_url" {
  type        = string
  description = "The GitOps repository holding the contents of ./gitops (and the sealed proof)."
}

variable "repo_revision" {
  type    = string
  default = "main"
}

variable "repo_path" {
  type    = string
  default = "gitops"
}

variable "repo_username" {
  type    = string
  default = null
}

variable "repo_password" {
  type      = string
  default   = null
  sensitive = true
}

variable "proof_value" {
  type        = string
  sensitive   = true
  default     = "sealed-before-the-disaster"
  description = "The value sealed into the proof Secret; compare it with what the rebuilt cluster unseals."
}
