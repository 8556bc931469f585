#!/usr/bin/env bash
# Benchmark: terraform validate / plan / apply with N resources of this provider against
# N null_resource (hashicorp/null 2.1.2, the Go baseline), same Terraform, same run, side by side.
#
# BENCH_RESOURCE picks ours:
# * sealed_secret (default): N kvm_sealed_secret; validate, plan and apply;
# * volume: N kvm_volume creates with no libvirt host reachable (the provider points at a socket
#   that does not exist); validate and plan only, the CI-validates-a-plan case;
# * instance: N kvm_instance creates (a disk, an interface, cloud-init), no host reachable;
#   validate and plan only.
#
# Reports the median wall time of each command per provider, the ratio ours/null, and the peak
# RSS of each provider process (measured in separate runs through a wrapper, so the wrapper's
# start-up does not pollute the timings).
#
# Both sides run on the same Terraform: $TERRAFORM, else the one scripts/setup.sh installs (1.0.3);
# `TERRAFORM=$KVM_TERRAFORM_MODERN` measures on the current one. Each repetition runs every
# provider in turn (kvm, null, null of the same state size), so a busy machine slows all alike.
# Results: target/bench/terraform-vs-null-<resource>-<terraform version>.json.
#
# Usage: [BENCH_RESOURCE=volume|instance] [TERRAFORM=path] acceptance-tests/bench/terraform-vs-null.sh [REPS] [COUNTS...]
#        (default: 3 reps, counts 1 1000)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/lib.sh"
source "$here/lib.sh"
root=$(repo_root)
setup_tools

terraform=${TERRAFORM:-$KVM_TOOLS/bin/terraform}
tf_version=$(TF_CLI_CONFIG_FILE=/dev/null "$terraform" version -json | python3 -c 'import json, sys; print(json.load(sys.stdin)["terraform_version"])')
echo "Terraform $tf_version ($terraform)" >&2

reps=${1:-3}
shift || true
counts=("$@")
((${#counts[@]})) || counts=(1 1000)

bin=$(release_provider)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
provider_mirror "$bin" "$work/plain"
plain_rc=$TF_CLI_CONFIG_FILE

# RSS runs: both providers behind a wrapper that records the child's peak RSS (KiB).
rss_log="$work/rss.log"
wrap() { # wrap REAL DEST
  cat >"$2" <<PY
#!/usr/bin/env python3
import resource, subprocess, sys
code = subprocess.call(["$1"] + sys.argv[1:])
with open("$rss_log", "a") as f:
    f.write("%d\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(code)
PY
  chmod +x "$2"
}
wrapped="$work/wrapped"
mkdir -p "$wrapped/null/registry.terraform.io/hashicorp/null/2.1.2/linux_amd64"
wrap "$KVM_TOOLS/mirror/registry.terraform.io/hashicorp/null/2.1.2/linux_amd64/terraform-provider-null_v2.1.2_x4" \
  "$wrapped/null/registry.terraform.io/hashicorp/null/2.1.2/linux_amd64/terraform-provider-null_v2.1.2_x4"
wrap "$bin" "$work/kvm-wrapper"
provider_mirror "$work/kvm-wrapper" "$wrapped"
sed -i "s#$KVM_TOOLS/mirror#$wrapped/null#" "$wrapped/terraformrc"
wrapped_rc="$wrapped/terraformrc"

resource=${BENCH_RESOURCE:-sealed_secret}
case $resource in
  sealed_secret) ops=(validate plan apply) kinds=(kvm null null_big) ;;
  volume | instance) ops=(validate plan) kinds=(kvm null null_big) ;;
  *) echo "BENCH_RESOURCE must be sealed_secret, volume or instance" >&2; exit 2 ;;
esac

cert_file="$root/testdata/sealed-secrets/sealing-cert.pem"
[[ -f $cert_file ]] || { echo "missing $cert_file" >&2; exit 1; }

same_shape() { # same_shape N: N more trigger values, one per line
  local i
  for ((i = 1; i < $1; i++)); do printf '\n    a%d = "v-${count.index}"' "$i"; done
}

config() { # config KIND N DIR
  local kind=$1 n=$2 dir=$3
  mkdir -p "$dir"
  cp "$cert_file" "$dir/cert.pem"
  if [[ $kind == kvm && $resource == volume ]]; then
    kvm_required_providers >"$dir/main.tf"
    cat >>"$dir/main.tf" <<TF
provider "kvm" {
  uri = "qemu+unix:///system?socket=/nonexistent/libvirt-sock"
}
resource "kvm_volume" "v" {
  count = $n
  name  = "disk-\${count.index}.qcow2"
  pool  = "bench"
  size  = "20GiB"
}
TF
  elif [[ $kind == kvm && $resource == instance ]]; then
    kvm_required_providers >"$dir/main.tf"
    cat >>"$dir/main.tf" <<TF
provider "kvm" {
  uri = "qemu+unix:///system?socket=/nonexistent/libvirt-sock"
}
resource "kvm_instance" "vm" {
  count  = $n
  name   = "vm-\${count.index}"
  vcpu   = 2
  memory = "2GiB"
  disk {
    volume = "vm-\${count.index}-root.qcow2"
    pool   = "bench"
  }
  network_interface {
    network = "bench"
  }
  cloud_init {
    user_data = "#cloud-config\n"
  }
}
TF
  elif [[ $kind == kvm ]]; then
    kvm_required_providers >"$dir/main.tf"
    cat >>"$dir/main.tf" <<TF
resource "kvm_sealed_secret" "s" {
  count           = $n
  namespace       = "bench"
  name            = "secret-\${count.index}"
  certificate_pem = file("\${path.module}/cert.pem")
  values          = { password = "p-\${count.index}" }
}
TF
  else
    # null_big: a null_resource carrying about as much state as a sealed secret (certificate +
    # ~1.3 KB of manifest-sized text), to separate Terraform's per-resource state cost from the
    # provider's.
    local extra=""
    [[ $kind == null_big && $resource == sealed_secret ]] && extra='
    cert     = file("${path.module}/cert.pem")
    manifest = join("", [for i in range(40) : "abcdefghijklmnopqrstuvwxyz012345"])'
    # For volumes: as many values per instance as a planned kvm_volume shows (12 attributes).
    [[ $kind == null_big && $resource == volume ]] && extra=$(same_shape 12)
    # For instances: as many values as a planned kvm_instance shows (31 known, with its disk,
    # interface and cloud_init blocks).
    [[ $kind == null_big && $resource == instance ]] && extra=$(same_shape 31)
    cat >"$dir/main.tf" <<TF
terraform {
  required_providers {
    null = { source = "hashicorp/null", version = "2.1.2" }
  }
}
resource "null_resource" "s" {
  count    = $n
  triggers = {
    password = "p-\${count.index}"$extra
  }
}
TF
  fi
}


declare -A T
results="$root/target/bench"
mkdir -p "$results"
json="$results/terraform-vs-null-$resource-$tf_version.json"
echo "[" >"$json"
first=1
for n in "${counts[@]}"; do
  for kind in "${kinds[@]}"; do
    for op in "${ops[@]}"; do : >"$work/t-$kind-$n-$op"; done
  done
  for ((r = 0; r < reps; r++)); do
    for kind in "${kinds[@]}"; do
      dir="$work/run-$kind-$n-$r"
      config "$kind" "$n" "$dir"
      (cd "$dir" && TF_CLI_CONFIG_FILE=$plain_rc "$terraform" init -input=false >/dev/null)
      for op in "${ops[@]}"; do
        args=()
        [[ $op == apply ]] && args=(-auto-approve -input=false)
        [[ $op == plan ]] && args=(-input=false)
        t0=$(now)
        (cd "$dir" && TF_CLI_CONFIG_FILE=$plain_rc "$terraform" "$op" "${args[@]}" >/dev/null)
        t1=$(now)
        { div "$t1 - $t0" 1; echo; } >>"$work/t-$kind-$n-$op"
      done
      rm -rf "$dir"
    done
  done
  for kind in "${kinds[@]}"; do
    # Peak RSS over one run of every operation, through the wrapper.
    dir="$work/rss-$kind-$n"
    config "$kind" "$n" "$dir"
    : >"$rss_log"
    (cd "$dir" && TF_CLI_CONFIG_FILE=$wrapped_rc "$terraform" init -input=false >/dev/null &&
      TF_CLI_CONFIG_FILE=$wrapped_rc "$terraform" validate >/dev/null &&
      TF_CLI_CONFIG_FILE=$wrapped_rc "$terraform" plan -input=false >/dev/null &&
      { [[ $resource == volume || $resource == instance ]] || TF_CLI_CONFIG_FILE=$wrapped_rc "$terraform" apply -auto-approve -input=false >/dev/null; })
    T[$kind-$n-rss]=$(sort -g "$rss_log" | tail -n1)
    rm -rf "$dir"
    for op in "${ops[@]}"; do
      T[$kind-$n-$op]=$(median <"$work/t-$kind-$n-$op")
    done
  done
  printf '\n%s %s resources, Terraform %s (%s reps, median wall seconds)\n' "$n" "$resource" "$tf_version" "$reps"
  printf '%-9s %10s %10s %8s %14s %8s\n' op kvm null ratio null_same_state ratio
  for op in "${ops[@]}"; do
    ratio=$(div "${T[kvm-$n-$op]}" "${T[null-$n-$op]}")
    ratio_big=$(div "${T[kvm-$n-$op]}" "${T[null_big-$n-$op]}")
    printf '%-9s %10.3f %10.3f %8.3f %14.3f %8.3f\n' "$op" "${T[kvm-$n-$op]}" "${T[null-$n-$op]}" "$ratio" "${T[null_big-$n-$op]}" "$ratio_big"
    [[ $first == 1 ]] || echo "," >>"$json"
    first=0
    printf '{"terraform":"%s","resource":"%s","resources":%s,"op":"%s","kvm_s":%s,"null_s":%s,"ratio":%.4f,"null_same_state_s":%s,"ratio_same_state":%.4f}' \
      "$tf_version" "$resource" "$n" "$op" "${T[kvm-$n-$op]}" "${T[null-$n-$op]}" "$ratio" "${T[null_big-$n-$op]}" "$ratio_big" >>"$json"
  done
  printf '%-9s %9s KiB %9s KiB %8.3f\n' "peak RSS" "${T[kvm-$n-rss]}" "${T[null-$n-rss]}" "$(div "${T[kvm-$n-rss]}" "${T[null-$n-rss]}")"
  printf ',\n{"terraform":"%s","resources":%s,"op":"provider_peak_rss_kib","kvm":%s,"null":%s}' "$tf_version" "$n" "${T[kvm-$n-rss]}" "${T[null-$n-rss]}" >>"$json"
done
echo "]" >>"$json"
echo "results: $json" >&2
