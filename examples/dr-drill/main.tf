# Disaster-recovery drill: the cluster of examples/gitops-cluster (used as a module), plus a secret
# sealed for its key and committed to the GitOps repository. `kvm-gitops drill` destroys everything
# but the sealing key and the cluster PKI, recreates it with `terraform apply`, and checks that the
# committed SealedSecret still unseals. See README.md next to this file.

terraform {
  required_providers {
    kvm = {
      source  = "kvm/kvm"
      version = "0.1.0"
    }
  }
}

module "cluster" {
  source = "../gitops-cluster"

  name        = var.name
  cidr        = var.cidr
  libvirt_uri = var.libvirt_uri
  image       = var.image
  kernel      = var.kernel
  initrd      = var.initrd
  accelerator = var.accelerator

  ssh_public_key  = var.ssh_public_key
  ssh_private_key = var.ssh_private_key

  repo_url      = var.repo_url
  repo_revision = var.repo_revision
  repo_path     = var.repo_path
  repo_username = var.repo_username
  repo_password = var.repo_password

  # The drill destroys the instances right after the cluster: uninstalling k3s from them first
  # would only make the drill slower.
  keep_on_destroy = true
}

# The proof: a Secret sealed for the cluster's key. Its manifest is committed to the GitOps
# repository (README.md says how); Argo CD applies it and the Sealed Secrets controller unseals it,
# before and after the rebuild.
resource "kvm_sealed_secret" "proof" {
  namespace       = "drill"
  name            = "drill-proof"
  certificate_pem = module.cluster.sealing_certificate
  values = {
    password = var.proof_value
  }
}
