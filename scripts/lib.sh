# Shared by the project's scripts (source it): tool set-up and a local provider mirror.

repo_root() { cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd; }

# Installs tools (idempotent) and exports PATH, KVM_TOOLS and CHECKPOINT_DISABLE.
setup_tools() {
  eval "$(bash "$(repo_root)/scripts/setup.sh")"
}

# provider_mirror BINARY DIR: puts BINARY into a filesystem mirror under DIR as kvm/kvm 0.1.0,
# writes DIR/terraformrc (this mirror plus the hashicorp/null baseline, never the network)
# and exports TF_CLI_CONFIG_FILE pointing at it.
provider_mirror() {
  local bin=$1 dir=$2
  local platform="$dir/mirror/registry.terraform.io/kvm/kvm/0.1.0/linux_amd64"
  mkdir -p "$platform"
  install -m 0755 "$bin" "$platform/terraform-provider-kvm_v0.1.0"
  cat >"$dir/terraformrc" <<RC
provider_installation {
  filesystem_mirror {
    path    = "$dir/mirror"
    include = ["registry.terraform.io/kvm/kvm"]
  }
  filesystem_mirror {
    path    = "$KVM_TOOLS/mirror"
    include = ["registry.terraform.io/hashicorp/null"]
  }
}
RC
  export TF_CLI_CONFIG_FILE="$dir/terraformrc"
}
