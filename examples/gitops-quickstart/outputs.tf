# The outputs the script reads between its two applies refer to resources, not only to
# variables: a targeted apply (-target=kvm_instance.server ...) updates only those.
output "server_ip" {
  value = kvm_instance.server.ip_address
}

output "known_hosts" {
  description = "Pinned host keys of every node."
  value       = join("\n", concat([kvm_instance.server.known_hosts], kvm_instance.agent[*].known_hosts))
}

output "repo_url" {
  description = "Where the nodes clone the demo repository from."
  value       = "http://${cidrhost(kvm_network.lan.cidr, 1)}:${var.git_port}/gitops.git"
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
