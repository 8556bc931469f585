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
# integration tests). The run then executes the binaries of this build itself: any `cargo test -p …`
# or `cargo build -p …` resolves features for that package alone and rebuilds shared crates
# (aws-lc-sys among them), which cost minutes per run.
logs=$(mktemp -d)
trap 'stop_postgres; rm -rf "$pg_dir" "$logs"' EXIT
cargo test --locked --workspace --no-run --message-format=json-render-diagnostics >"$logs/build.jsonl"
python3 scripts/test_binaries.py <"$logs/build.jsonl" >"$logs/binaries.tsv"
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
# run_binaries LOG TERRAFORM FILTER [TEST-ARGS...]: runs every test binary whose "PACKAGE TARGET"
# matches the extended regex FILTER (with a leading `!`: does not match), as `cargo test` would (from its package's directory), with
# $TERRAFORM set; output shown or kept in LOG. Goes on after a failing binary (all failures in one
# run) and returns 1 if any failed, naming them in LOG's `[test] FAILED` lines.
run_binaries() {
  local log=$1 tf=$2 filter=$3 status=0 package target dir exe
  shift 3
  while IFS=$'\t' read -r package target dir exe; do
    if [[ $filter == !* ]]; then
      [[ ! "$package $target" =~ ${filter#!} ]] || continue
    else
      [[ "$package $target" =~ $filter ]] || continue
    fi
    echo "     Running $package $target ($exe)"
    if ! (cd "$dir" && TERRAFORM="$tf" "$exe" "$@" </dev/null); then
      echo "[test] FAILED: $package $target with $(tf_version "$tf")"
      status=1
    fi
  done <"$logs/binaries.tsv" >>"$logs/$log" 2>&1
  return $status
}
# totals LOG...: "N passed, N failed, N ignored" over every test binary's result line in the LOGs.
totals() {
  (cd "$logs" && cat "$@") |
    awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed, %d ignored", p, f, i }'
}

legacy=$(tf_version "$legacy_tf")
modern=${KVM_TERRAFORM_MODERN:+$(tf_version "$KVM_TERRAFORM_MODERN")}
echo "[test] Terraform matrix: $legacy ($legacy_tf); ${modern:-no current Terraform} ${KVM_TERRAFORM_MODERN:+($KVM_TERRAFORM_MODERN)}"
[[ ${1:-} != -- ]] || shift # `test.sh -- --nocapture` as with cargo test: the rest goes to the binaries

# Two streams at once. The acceptance tests boot guests under TCG and keep both cores busy about
# four fifths of the time; every other test binary (unit tests, the state server's servers and
# PostgreSQL, the CLI) mostly waits on sockets and timers, so it runs beside them instead of after
# them. The acceptance stream's output is shown as it comes; the other's when both are done.
acceptance='^acceptance-tests '
state_server_tf='^kvm-state-server (terraform|mtls|postgres)$'
(
  status=0
  run_binaries legacy-other "$legacy_tf" "!$acceptance" "$@" || status=1
  cargo test --locked --workspace --doc "$@" >>"$logs/legacy-other" 2>&1 || {
    echo "[test] FAILED: doc tests" >>"$logs/legacy-other"
    status=1
  }
  if [[ -n $modern ]]; then
    run_binaries modern-other "$KVM_TERRAFORM_MODERN" "$state_server_tf" "$@" || status=1
  fi
  exit $status
) &
other_pid=$!
status=0
touch "$logs/legacy-acceptance" "$logs/modern-acceptance"
tail -n +1 -f "$logs/legacy-acceptance" "$logs/modern-acceptance" --pid=$$ -q &
tail_pid=$!
run_binaries legacy-acceptance "$legacy_tf" "$acceptance" "$@" || status=1
if [[ -n $modern ]]; then
  # Tests that use Terraform only to make a guest skip themselves here (first_terraform_only).
  KVM_TEST_MATRIX_HALF=second run_binaries modern-acceptance "$KVM_TERRAFORM_MODERN" "$acceptance" "$@" || status=1
else
  echo "SKIPPED: the current-Terraform half of the matrix: no Terraform newer than 1.0.3 on PATH and" \
    "KVM_TERRAFORM_MODERN unset (scripts/setup.sh looks for the machine image's own terraform)"
fi
wait "$other_pid" || status=1
sleep 1
kill "$tail_pid" 2>/dev/null || true
echo "[test] the other tests (unit tests, state server, CLI, doc tests):"
cat "$logs/legacy-other" "$logs/modern-other" 2>/dev/null || true
grep -h '^\[test\] FAILED' "$logs"/* || true
echo "[test] every test, $legacy: $(totals legacy-acceptance legacy-other)"
[[ -z $modern ]] || echo "[test] every test that runs Terraform, $modern: $(totals modern-acceptance modern-other)"
exit $status
