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

# One build of everything, with the workspace's feature set: every test binary, and the provider
# and kvm-gitops binaries the acceptance tests run (cargo builds a package's binaries for its own
# integration tests). Separate `cargo build -p …` runs resolve features per package and built
# shared dependencies (aws-lc-sys among them) twice more: about 8 of the run's minutes.
cargo test --locked --workspace --no-run
export KVM_PROVIDER_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/terraform-provider-kvm"
# The drill acceptance test runs the CLI binary against a Terraform directory.
export KVM_GITOPS_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/kvm-gitops"
for bin in "$KVM_PROVIDER_BIN" "$KVM_GITOPS_BIN"; do
  [[ -x $bin ]] || { echo "[test] $bin was not built by cargo test --no-run" >&2; exit 1; }
done

if ! wait "$image_pid"; then
  cat "$image_log" >&2
  echo "[test] building the guest image failed" >&2
  exit 1
fi
cat "$image_log" >&2
KVM_TEST_IMAGE_DIR=$(tail -n1 "$image_out")
export KVM_TEST_IMAGE_DIR
rm -f "$image_out" "$image_log"

# The Terraform matrix: every test once with Terraform 1.0.3 (the oldest release that installs
# protocol-6 providers), then every test that runs Terraform once more with the current one
# (KVM_TERRAFORM_MODERN, found by scripts/setup.sh). Tests of behaviour only newer releases have
# skip themselves on 1.0.3 with a `SKIPPED: …` line.
legacy_tf="$KVM_TOOLS/bin/terraform"
# sed reads to the end: with `head -n1` Terraform 1.0.3 sometimes dies of SIGPIPE (exit 255), which
# pipefail turned into a failed run.
tf_version() { CHECKPOINT_DISABLE=1 TF_CLI_CONFIG_FILE=/dev/null "$1" version | sed -n 1p; }
logs=$(mktemp -d)
trap 'stop_postgres; rm -rf "$pg_dir" "$logs"' EXIT
# run_tests LOG TERRAFORM CARGO-ARGS...: cargo test with $TERRAFORM set, its output shown and kept.
run_tests() {
  local log=$1 tf=$2
  shift 2
  TERRAFORM="$tf" cargo test --locked "$@" 2>&1 | tee -a "$logs/$log"
}
# totals LOG: "N passed, N failed, N ignored" over every test binary's result line in LOG.
totals() {
  awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed, %d ignored", p, f, i }' "$logs/$1"
}

legacy=$(tf_version "$legacy_tf")
modern=${KVM_TERRAFORM_MODERN:+$(tf_version "$KVM_TERRAFORM_MODERN")}
echo "[test] Terraform matrix: $legacy ($legacy_tf); ${modern:-no current Terraform} ${KVM_TERRAFORM_MODERN:+($KVM_TERRAFORM_MODERN)}"
run_tests legacy "$legacy_tf" --workspace "$@"
if [[ -n $modern ]]; then
  run_tests modern "$KVM_TERRAFORM_MODERN" -p acceptance-tests "$@"
  run_tests modern "$KVM_TERRAFORM_MODERN" -p kvm-state-server --test terraform --test mtls --test postgres "$@"
else
  echo "SKIPPED: the current-Terraform half of the matrix: no Terraform newer than 1.0.3 on PATH and" \
    "KVM_TERRAFORM_MODERN unset (scripts/setup.sh looks for the machine image's own terraform)"
fi
echo "[test] every test, $legacy: $(totals legacy)"
[[ -z $modern ]] || echo "[test] every test that runs Terraform, $modern: $(totals modern)"
