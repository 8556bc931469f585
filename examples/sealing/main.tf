# A Sealed Secrets sealing key and a secret sealed with it.
#
# The key pair lives in Terraform state (keep the state private: see the README's remote
# state section); the SealedSecret manifest is safe to commit to Git.
#
# tests/sealing.tftest.hcl checks the example with `terraform test` (Terraform 1.6 or later).

terraform {
  required_providers {
    kvm = {
      source  = "kvm/kvm"
      version = "0.1.0"
    }
  }
}

variable "db_password" {
  description = "The value to seal. Pass it with TF_VAR_db_password; the default is for the demo only."
  type        = string
  sensitive   = true
  default     = "change-me"
}

variable "scope" {
  description = "Who may unseal: strict (this name in this namespace), namespace-wide or cluster-wide."
  type        = string
  default     = "strict"

  validation {
    condition     = contains(["strict", "namespace-wide", "cluster-wide"], var.scope)
    error_message = "The scope must be strict, namespace-wide or cluster-wide."
  }
}

# RSA-4096 key and a 10-year self-signed certificate, as the controller would make them.
# To bring back a lost cluster's key instead, set private_key_pem and certificate_pem.
resource "kvm_sealing_key" "cluster" {}

resource "kvm_sealed_secret" "db" {
  namespace       = "payments"
  name            = "db-credentials"
  scope           = var.scope
  certificate_pem = kvm_sealing_key.cluster.certificate_pem
  values = {
    username = "app"
    password = var.db_password
  }
}

output "manifest" {
  description = "The SealedSecret, ready to commit to Git."
  value       = kvm_sealed_secret.db.manifest
}

output "sealing_certificate" {
  description = "Public certificate: `kubeseal --cert` takes it."
  value       = kvm_sealing_key.cluster.certificate_pem
}

output "fingerprint" {
  value = kvm_sealing_key.cluster.fingerprint
}
