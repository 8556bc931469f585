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

# release_provider: builds the provider in release mode (into $CARGO_TARGET_DIR when set) and
# prints the binary's path. Needs $root.
release_provider() {
  cargo build --release --locked -p terraform-provider-kvm --manifest-path "$root/Cargo.toml" >&2
  echo "${CARGO_TARGET_DIR:-$root/target}/release/terraform-provider-kvm"
}

# bench_lab SUBNET IMAGE_DIR: the place the instance benchmarks boot guests in, made once per run:
# a NAT network $net on SUBNET.0/24 (SUBNET like 10.204.7) with DHCP, a directory pool $pool at
# $pool_dir holding base.qcow2 (IMAGE_DIR/disk.qcow2, which guests' disks are backed by), and an
# SSH client key $work/client ($client_pub). The caller sets work, pool, net, pool_dir and
# bench_domains (the prefix of the domains it defines). On exit everything is removed: the
# caller's bench_cleanup_first, if defined (e.g. terraform destroy), then domains, volumes, pool,
# network and $work.
bench_lab() {
  local subnet=$1 image=$2 size
  trap bench_lab_cleanup EXIT
  cat >"$work/net.xml" <<XML
<network>
  <name>$net</name>
  <forward mode='nat'/>
  <ip address='$subnet.1' prefix='24'>
    <dhcp><range start='$subnet.2' end='$subnet.254'/></dhcp>
  </ip>
</network>
XML
  virsh net-define "$work/net.xml" >/dev/null
  virsh net-start "$net" >/dev/null
  virsh pool-define-as "$pool" dir --target "$pool_dir" >/dev/null
  virsh pool-build "$pool" >/dev/null
  virsh pool-start "$pool" >/dev/null
  size=$(stat -c %s "$image/disk.qcow2")
  virsh vol-create-as "$pool" base.qcow2 "$size" --format qcow2 >/dev/null
  virsh vol-upload --pool "$pool" base.qcow2 "$image/disk.qcow2"
  virsh pool-refresh "$pool" >/dev/null
  ssh-keygen -q -t ed25519 -N '' -C bench -f "$work/client"
  client_pub=$(cat "$work/client.pub")
}

bench_lab_cleanup() {
  local d v
  if declare -F bench_cleanup_first >/dev/null; then bench_cleanup_first || true; fi
  for d in $(virsh list --all --name 2>/dev/null | grep "^$bench_domains" || true); do
    virsh destroy "$d" >/dev/null 2>&1 || true
    virsh undefine "$d" --nvram >/dev/null 2>&1 || true
  done
  for v in $(virsh vol-list "$pool" --name 2>/dev/null); do virsh vol-delete --pool "$pool" "$v" >/dev/null 2>&1 || true; done
  virsh pool-destroy "$pool" >/dev/null 2>&1 || true
  virsh pool-delete "$pool" >/dev/null 2>&1 || true
  virsh pool-undefine "$pool" >/dev/null 2>&1 || true
  virsh net-destroy "$net" >/dev/null 2>&1 || true
  virsh net-undefine "$net" >/dev/null 2>&1 || true
  rm -rf "$work"
}
