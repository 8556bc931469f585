# Helpers shared by the benchmark scripts; sourced after scripts/lib.sh.
# Commands against the test libvirtd run in its namespace (KVM_TEST_NETNS, default kvmtest).
bench_ns=${KVM_TEST_NETNS:-kvmtest}
in_ns() { ip netns exec "$bench_ns" "$@"; }
virsh() { in_ns /usr/bin/virsh -q -c qemu:///system "$@"; }
# Terraform ($TERRAFORM, else the one on PATH: scripts/setup.sh puts 1.0.3 first) in DIR with the
# rest of the arguments, inside the namespace.
tf() { (cd "$1" && shift && in_ns "${TERRAFORM:-terraform}" "$@" -input=false -no-color); }
now() { date +%s.%N; }
div() { awk "BEGIN { printf \"%.6f\", ($1) / ($2) }"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# Seconds the command takes (its output discarded); with BENCH_SYNC=1 the page cache is flushed
# first, so one side's write-back never lands in the other's time.
timed() {
  local t0 t1
  [[ ${BENCH_SYNC:-0} == 1 ]] && sync
  t0=$(now)
  "$@" >/dev/null
  t1=$(now)
  div "$t1 - $t0" 1
  echo
}
# The terraform block for the kvm provider from the run's mirror.
kvm_required_providers() {
  cat <<'TF'
terraform {
  required_providers {
    kvm = { source = "kvm/kvm", version = "0.1.0" }
  }
}
TF
}
