#!/usr/bin/env bash
# The test suite: unit tests of every crate, then acceptance tests that drive the real
# Terraform binary against the freshly built provider.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
root=$(repo_root)
setup_tools
cd "$root"
cargo build --locked -p terraform-provider-kvm
export KVM_PROVIDER_BIN="$root/target/debug/terraform-provider-kvm"
cargo test --locked --workspace "$@"
