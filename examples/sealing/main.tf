# A Sealed Secrets sealing key and a secret sealed with it.
#
# The key pair lives in Terraform state (keep the state private: see the README's remote
# state section); the SealedSecret manifest is safe to commit to Git.

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

# RSA-4096 key and a 10-year self-signed certificate, as the controller would make them.
# To bring back a lost cluster's key instead, set private_key_pem and certificate_pem.
resource "kvm_sealing_key" "cluster" {}

resource "kvm_sealed_secret" "db" {
  namespace       = "payments"
  name            = "db-credentials"
  scope           = "strict"
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
