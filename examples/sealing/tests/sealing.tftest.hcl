# `terraform test` for this example (Terraform 1.6 or later; older releases read only the *.tf
# files of the directory and ignore this one). Nothing leaves Terraform: the key and the secret are
# computed by the provider, so the suite needs no libvirt host.
#
#   terraform init && terraform test

variables {
  db_password = "tftest-marker-5d1c9e"
}

# The plan already knows what it will seal, before any key exists.
run "plan_names_the_secret" {
  command = plan

  assert {
    condition     = kvm_sealed_secret.db.namespace == "payments" && kvm_sealed_secret.db.name == "db-credentials"
    error_message = "The planned secret is not payments/db-credentials."
  }

  assert {
    condition     = kvm_sealed_secret.db.scope == "strict" && kvm_sealed_secret.db.type == "Opaque"
    error_message = "The defaults (scope strict, type Opaque) are not planned."
  }
}

# A real key is generated and the secret sealed with it.
run "apply_seals_with_the_generated_key" {
  command = apply

  assert {
    condition     = startswith(kvm_sealing_key.cluster.certificate_pem, "-----BEGIN CERTIFICATE-----")
    error_message = "The sealing certificate is not PEM."
  }

  assert {
    condition     = output.sealing_certificate == kvm_sealing_key.cluster.certificate_pem
    error_message = "The certificate output is not the key's certificate."
  }

  assert {
    condition     = can(regex("^[0-9a-f]{64}$", output.fingerprint)) && kvm_sealing_key.cluster.id == output.fingerprint
    error_message = "The fingerprint is not a SHA-256 in lowercase hex."
  }

  assert {
    condition     = yamldecode(output.manifest).kind == "SealedSecret" && yamldecode(output.manifest).metadata.namespace == "payments" && yamldecode(output.manifest).metadata.name == "db-credentials"
    error_message = "The manifest is not the SealedSecret payments/db-credentials."
  }

  assert {
    condition     = join(",", sort(keys(yamldecode(output.manifest).spec.encryptedData))) == "password,username"
    error_message = "The manifest does not seal exactly the keys password and username."
  }

  assert {
    condition     = !strcontains(output.manifest, "tftest-marker-5d1c9e")
    error_message = "The password is in the manifest in clear text."
  }
}

# A wider scope is one variable away, and changes the manifest's annotations.
run "namespace_wide_scope" {
  command = apply

  variables {
    scope = "namespace-wide"
  }

  assert {
    condition     = yamldecode(output.manifest).metadata.annotations["sealedsecrets.bitnami.com/namespace-wide"] == "true"
    error_message = "A namespace-wide secret lacks the namespace-wide annotation."
  }
}

# A scope the controller does not know is refused before anything is planned.
run "an_unknown_scope_is_refused" {
  command = plan

  variables {
    scope = "global"
  }

  expect_failures = [
    var.scope,
  ]
}
