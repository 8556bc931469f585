output "kubeconfig" {
  value     = module.cluster.kubeconfig
  sensitive = true
}

output "api_server_url" {
  value = module.cluster.api_server_url
}

output "sync_status" {
  value = module.cluster.sync_status
}

output "sealing_key_fingerprint" {
  value = module.cluster.sealing_key_fingerprint
}

output "cluster_ca_id" {
  value = module.cluster.cluster_ca_id
}

output "known_hosts" {
  value = module.cluster.known_hosts
}

output "ssh" {
  value = module.cluster.ssh
}

output "proof_manifest" {
  description = "The SealedSecret to commit: terraform output -raw proof_manifest > gitops/drill-proof.yaml"
  value       = kvm_sealed_secret.proof.manifest
}
