#!/usr/bin/env bash
# The main job with embedded defaults: build the provider, start libvirt (in the network
# namespace the project uses for its guests), build the Debian guest image, and apply
# examples/quickstart: a network, a pool, a base image and one instance reachable over SSH with
# a pinned host key. Prints how to log in. Re-running it changes nothing.
#
#   bash scripts/main.sh                    # the quickstart
#   bash scripts/main.sh examples/sealing   # another example (applied as is)
#   bash scripts/main.sh destroy            # remove the quickstart's resources
#   bash scripts/main.sh gitops             # the mission: a k3s cluster pulling from Git (below)
#   bash scripts/main.sh gitops destroy     # remove it, its Git server included
#   TERRAFORM=/usr/local/bin/terraform bash scripts/main.sh   # with another Terraform than 1.0.3
#
# `gitops` applies examples/gitops-quickstart through scripts/gitops-quickstart.sh: a network like the
# quickstart's, one k3s server (KVM_GITOPS_AGENTS=N adds agents), a sealing key, a demo GitOps
# repository (an app and a SealedSecret sealed with that key) served over Git's smart HTTP on the
# network's gateway address, then k3s (air-gapped from KVM_GITOPS_ARTIFACTS=DIR, or online with
# KVM_GITOPS_ONLINE=1 when the namespace has a route out), the Sealed Secrets controller and Argo CD
# syncing the repository; it prints the kubeconfig path and what synced. With neither it stops after
# the machines with one line `gitops: stopped after the VMs: …` saying what it needs, exit code 0.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/libvirt.sh"
root=$(repo_root)
setup_tools
libvirt_install
cargo build --release --locked -p terraform-provider-kvm --manifest-path "$root/Cargo.toml"
provider_mirror "${CARGO_TARGET_DIR:-$root/target}/release/terraform-provider-kvm" "$root/target/terraform"
# The Terraform to use: $TERRAFORM, else the one scripts/setup.sh put first on PATH (1.0.3).
terraform() { command "${TERRAFORM:-terraform}" "$@"; }

init() {
  # A new provider build has a new checksum: drop the old lock so init records it afresh.
  rm -f .terraform.lock.hcl
  terraform init -input=false -upgrade >/dev/null
}

if [[ "${1:-}" != "" && "${1:-}" != "destroy" && "${1:-}" != "gitops" ]]; then
  cd "$1"
  init
  terraform apply -input=false -auto-approve
  if [[ -f "$1/main.tf" ]] && grep -q 'output "manifest"' "$1/main.tf"; then
    echo
    echo "SealedSecret manifest (commit it to Git):"
    terraform output -raw manifest
  fi
  exit 0
fi

libvirt_start # exports KVM_TEST_NETNS, LIBVIRT_DEFAULT_URI
image_dir=$(bash "$root/scripts/guest-image.sh" | tail -n1)
if [[ "${1:-}" == "gitops" ]]; then
  [[ "${2:-}" == "" || "${2:-}" == "destroy" ]] || { echo "usage: $0 gitops [destroy]" >&2; exit 1; }
  KVM_TEST_IMAGE_DIR=$image_dir exec bash "$root/scripts/gitops-quickstart.sh" "${2:-up}"
fi
work="$root/target/quickstart"
mkdir -p "$work"
[[ -f "$work/id_ed25519" ]] || ssh-keygen -q -t ed25519 -N '' -C quickstart -f "$work/id_ed25519"
# TCG unless told otherwise: /dev/kvm can exist without KVM being able to run guests (nested
# virtualisation), and the quickstart must work everywhere. KVM_ACCELERATOR=kvm on real hosts.
accelerator=${KVM_ACCELERATOR:-qemu}
ns=(ip netns exec "$KVM_TEST_NETNS")
vars=(-var "image_dir=$image_dir" -var "ssh_public_key=$(cat "$work/id_ed25519.pub")" -var "accelerator=$accelerator")

cd "$root/examples/quickstart"
init
if [[ "${1:-}" == "destroy" ]]; then
  "${ns[@]}" "${TERRAFORM:-terraform}" destroy -input=false -auto-approve "${vars[@]}"
  exit 0
fi
"${ns[@]}" "${TERRAFORM:-terraform}" apply -input=false -auto-approve "${vars[@]}"
terraform output -raw known_hosts >"$work/known_hosts"
echo
echo "The instance is up; its SSH host key is pinned in $work/known_hosts. Log in with:"
echo "  ip netns exec $KVM_TEST_NETNS ssh -i $work/id_ed25519 -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$work/known_hosts root@$(terraform output -raw ip_address)"
