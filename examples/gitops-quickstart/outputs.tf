output "server_ip" {
  value = local.server_ip
}

output "known_hosts" {
  description = "Pinned host keys of every node."
  value       = join("\n", concat([kvm_instance.server.known_hosts], kvm_instance.agent[*].known_hosts))
}

output "repo_url" {
  description = "Where the nodes clone the demo repository from."
  value       = local.repo_url
}

output "sealed_secret" {
  description = "The demo SealedSecret manifest, committed to the demo repository."
  value       = kvm_sealed_secret.demo.manifest
}

output "kubeconfig" {
  description = "Admin kubeconfig (null without a cluster)."
  value       = one(kvm_gitops_cluster.cluster[*].kubeconfig)
  sensitive   = true
}

output "sync_status" {
  description = "What Argo CD reported for the root Application (null without a cluster)."
  value       = one(kvm_gitops_cluster.cluster[*].sync_status)
}
