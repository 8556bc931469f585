output "kubeconfig" {
  description = "Admin kubeconfig: terraform output -raw kubeconfig > kubeconfig && chmod 0600 kubeconfig"
  value       = kvm_gitops_cluster.cluster.kubeconfig
  sensitive   = true
}

output "api_server_url" {
  value = kvm_gitops_cluster.cluster.api_server_url
}

output "sync_status" {
  description = "What Argo CD last reported for the root Application."
  value       = kvm_gitops_cluster.cluster.sync_status
}

output "healthy" {
  value = kvm_gitops_cluster.cluster.healthy
}

output "sealing_certificate" {
  description = "Seal secrets for this cluster offline: kvm-gitops seal --cert cert.pem (or kubeseal --cert)."
  value       = kvm_sealing_key.main.certificate_pem
}

output "known_hosts" {
  description = "Pinned host keys of every node: terraform output -raw known_hosts > known_hosts"
  value       = join("\n", concat([kvm_instance.server.known_hosts], kvm_instance.agent[*].known_hosts))
}

output "ssh" {
  description = "SSH commands with the host keys pinned (after writing the known_hosts output to ./known_hosts)."
  value = {
    for i in concat([kvm_instance.server], kvm_instance.agent) :
    i.name => "ssh -o StrictHostKeyChecking=yes -o UserKnownHostsFile=known_hosts root@${i.network_interface[0].ip}"
  }
}

output "sealing_key_fingerprint" {
  description = "SHA-256 of the sealing key's public key: the same before and after a rebuild."
  value       = kvm_sealing_key.main.fingerprint
}

output "cluster_ca_id" {
  description = "SHA-256 of the cluster's server CA: the same before and after a rebuild."
  value       = kvm_cluster_pki.cluster.id
}
