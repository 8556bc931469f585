#!/usr/bin/env bash
# The main job with embedded defaults: build the provider and apply examples/sealing
# (a generated sealing key plus a sealed secret), then print the SealedSecret manifest.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/libvirt.sh"
root=$(repo_root)
setup_tools
# The provider links libvirt (libvirt-dev to build, libvirt0 to run), even for the sealing example.
libvirt_install
cargo build --release --locked -p terraform-provider-kvm --manifest-path "$root/Cargo.toml"
provider_mirror "$root/target/release/terraform-provider-kvm" "$root/target/terraform"

example=${1:-$root/examples/sealing}
cd "$example"
# A new provider build has a new checksum: drop the old lock so init records it afresh.
rm -f .terraform.lock.hcl
terraform init -input=false -upgrade >/dev/null
terraform apply -input=false -auto-approve
echo
echo "SealedSecret manifest (commit it to Git):"
terraform output -raw manifest
