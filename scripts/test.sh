#!/usr/bin/env bash
# The test suite: unit tests of every crate, then acceptance tests that drive the real
# Terraform binary against the freshly built provider, with libvirt running inside a network
# namespace of this run (scripts/libvirt.sh) and a Debian test guest image (scripts/guest-image.sh).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/libvirt.sh"
source "$(dirname "$0")/postgres.sh"
root=$(repo_root)
setup_tools
cd "$root"

# PostgreSQL for the state server's tests: a throw-away cluster of this run, on 127.0.0.1 only.
pg_dir=$(mktemp -d /tmp/kvm-test-pg.XXXXXX)
trap 'stop_postgres; rm -rf "$pg_dir"' EXIT
start_postgres "$pg_dir" # exports KVM_TEST_PG_URL (never print it: it carries the password)

# libvirt and the guest image. The image (about 2 minutes the first time on a machine, then cached)
# builds in the background while cargo builds; the tests wait for it and a failed build fails the run.
libvirt_install
image_out=$(mktemp) image_log=$(mktemp)
bash scripts/guest-image.sh >"$image_out" 2>"$image_log" &
image_pid=$!
libvirt_start # exports KVM_TEST_NETNS, LIBVIRT_DEFAULT_URI

cargo build --locked -p terraform-provider-kvm
export KVM_PROVIDER_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/terraform-provider-kvm"
# The drill acceptance test runs the CLI binary against a Terraform directory.
cargo build --locked -p kvm-bootstrap --bin kvm-gitops
export KVM_GITOPS_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/kvm-gitops"
cargo test --locked --workspace --no-run

if ! wait "$image_pid"; then
  cat "$image_log" >&2
  echo "[test] building the guest image failed" >&2
  exit 1
fi
cat "$image_log" >&2
KVM_TEST_IMAGE_DIR=$(tail -n1 "$image_out")
export KVM_TEST_IMAGE_DIR
rm -f "$image_out" "$image_log"

cargo test --locked --workspace "$@"
