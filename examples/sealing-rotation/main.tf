# Rotating the Sealed Secrets key offline (docs/resources/sealing_key.md, "Key rotation").
#
# Step 1: add kvm_sealing_key.new next to the old key and give the cluster both (for a
# kvm_gitops_cluster: list both in sealing_keys). The controller seals with the key whose
# certificate NotBefore is latest: the new one.
# Step 2: kvm-gitops reseal --state terraform.tfstate --cert new.pem gitops/   (new.pem from the
#         new_certificate output), then commit.
# Step 3: this check passes only when every SealedSecret in gitops/ is sealed to the new key;
#         then remove kvm_sealing_key.old (and from sealing_keys).

terraform {
  required_version = ">= 1.2" # postconditions
  required_providers {
    kvm = {
      source  = "kvm/kvm"
      version = "0.1.0"
    }
  }
}

variable "gitops_dir" {
  description = "The GitOps working tree whose SealedSecrets the cluster must open."
  type        = string
  default     = "gitops"
}

# The key everything is sealed to today.
resource "kvm_sealing_key" "old" {}

# The key to move to.
resource "kvm_sealing_key" "new" {}

data "kvm_sealed_secrets_check" "rotation" {
  directory          = "${path.module}/${var.gitops_dir}"
  private_keys       = [kvm_sealing_key.new.private_key_pem, kvm_sealing_key.old.private_key_pem]
  newest_certificate = kvm_sealing_key.new.certificate_pem

  lifecycle {
    postcondition {
      condition     = self.ok
      error_message = "Some SealedSecrets are not yet sealed to the new key (or open with neither key): run kvm-gitops reseal, commit, and plan again before removing the old key."
    }
  }
}

output "new_certificate" {
  description = "Save with: terraform output -raw new_certificate > new.pem"
  value       = kvm_sealing_key.new.certificate_pem
}

output "sealed_secret_count" {
  value = data.kvm_sealed_secrets_check.rotation.secret_count
}
