#!/usr/bin/env bash
# Benchmark: one kvm_instance until SSH answers, against the same steps done by hand, same run.
#
# 1. ours: `terraform apply` of a copy-on-write root volume plus a kvm_instance with cloud_init and
#    wait_for = "ssh" (Terraform and provider start, clone, host key, seed built in memory and
#    streamed into the pool, define, start, wait for a fresh DHCP lease, SSH handshake checked
#    against the pinned key).
#    floor: a shell script doing the same with virsh and qemu-img: overlay with `qemu-img create`,
#    host key with ssh-keygen, seed with mkfs.vfat + mcopy, `virsh vol-upload`, `virsh define` +
#    `start` of an equivalent domain, poll `virsh net-dhcp-leases` every 0.5 s, then
#    `ssh-keyscan` until the expected key answers. Target: ratio <= 1.15.
# 2. four instances in one apply (-parallelism=4) against one: wall-time ratio, reported.
#
# Both sides boot the same Debian test image (scripts/guest-image.sh) under the same accelerator
# (TCG here: no /dev/kvm), on a NAT network and a pool made once for the run.
#
# Needs the test libvirtd (scripts/libvirt.sh; KVM_TEST_NETNS, default kvmtest).
# Usage: acceptance-tests/bench/instance-vs-virsh.sh [REPS]   (default 3)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/lib.sh"
source "$here/lib.sh"
root=$(repo_root)
setup_tools
reps=${1:-3}
# TCG unless told otherwise: /dev/kvm can exist without KVM working (nested virtualisation).
accel=${KVM_ACCELERATOR:-qemu}

image=$(bash "$root/scripts/guest-image.sh" | tail -n1)
bin=$(release_provider)
work=$(mktemp -d /var/tmp/kvm-bench.XXXXXX)
pool="kvmbench-i$$"
net="kvmbench-n$$"
pool_dir="/var/lib/libvirt/$pool"
bench_domains=kvmbench-
bench_lab "10.204.$(($$ % 250))" "$image"
provider_mirror "$bin" "$work/tf"


# The floor: every step of ours, by hand. NAME MAC
floor() {
  local name=$1 mac=$2 d="$work/$1"
  mkdir -p "$d"
  qemu-img create -q -f qcow2 -F qcow2 -b "$pool_dir/base.qcow2" "$pool_dir/$name-root.qcow2"
  virsh pool-refresh "$pool" >/dev/null
  ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$d/host"
  {
    echo "#cloud-config"
    echo "disable_root: false"
    echo "ssh_genkeytypes: []"
    echo "ssh_keys:"
    echo "  ed25519_private: |"
    sed 's/^/    /' "$d/host"
    echo "  ed25519_public: $(cat "$d/host.pub")"
    echo "ssh_authorized_keys: [\"$client_pub\"]"
  } >"$d/user-data"
  printf 'instance-id: %s\nlocal-hostname: %s\n' "$name" "$name" >"$d/meta-data"
  mkfs.vfat -n CIDATA -C "$d/seed.img" 1024 >/dev/null
  mcopy -i "$d/seed.img" "$d/user-data" "$d/meta-data" ::
  virsh vol-create-as "$pool" "$name-cidata.img" 1M --format raw >/dev/null
  virsh vol-upload --pool "$pool" "$name-cidata.img" "$d/seed.img"
  cat >"$d/domain.xml" <<XML
<domain type='$accel'>
  <name>$name</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os>
    <type machine='q35'>hvm</type>
    <kernel>$image/vmlinuz</kernel>
    <initrd>$image/initrd.img</initrd>
    <cmdline>console=ttyS0 root=/dev/vda rw</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <cpu mode='$([[ $accel == kvm ]] && echo host-passthrough || echo maximum)'/>
  <devices>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2' cache='none' io='threads' discard='unmap'/>
      <source pool='$pool' volume='$name-root.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='raw'/>
      <source pool='$pool' volume='$name-cidata.img'/>
      <target dev='vdb' bus='virtio'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <mac address='$mac'/>
      <source network='$net'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'/>
    <console type='pty'/>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
</domain>
XML
  virsh define "$d/domain.xml" >/dev/null
  virsh start "$name" >/dev/null
  local ip=""
  while [[ -z $ip ]]; do
    sleep 0.5
    ip=$(virsh net-dhcp-leases "$net" --mac "$mac" | awk '{print $5}' | cut -d/ -f1 | head -n1)
  done
  local want
  want=$(awk '{print $2}' "$d/host.pub")
  until in_ns ssh-keyscan -T 2 -t ed25519 "$ip" 2>/dev/null | grep -q "$want"; do sleep 0.5; done
}

tf_dir() { # tf_dir DIR COUNT
  mkdir -p "$1"
  {
    kvm_required_providers
    cat <<TF
provider "kvm" {
  uri = "qemu:///system"
}
resource "kvm_volume" "root" {
  count       = $2
  name        = "$(basename "$1")-\${count.index}-root.qcow2"
  pool        = "$pool"
  base_volume = "base.qcow2"
}
resource "kvm_instance" "vm" {
  count       = $2
  name        = "$(basename "$1")-\${count.index}"
  accelerator = "$accel"
  memory      = "512MiB"
  kernel      = "$image/vmlinuz"
  initrd      = "$image/initrd.img"
  cmdline     = "console=ttyS0 root=/dev/vda rw"
  disk {
    volume = kvm_volume.root[count.index].name
    pool   = "$pool"
  }
  network_interface {
    network = "$net"
  }
  cloud_init {
    user_data           = "#cloud-config\\ndisable_root: false\\n"
    ssh_authorized_keys = ["$client_pub"]
  }
  wait_for         = "ssh"
  shutdown_timeout = "1s"
}
TF
  } >"$1/main.tf"
  (cd "$1" && "${TERRAFORM:-terraform}" init -input=false >/dev/null)
}
remove_floor() {
  virsh destroy "$1" >/dev/null 2>&1 || true
  virsh undefine "$1" >/dev/null
  virsh vol-delete --pool "$pool" "$1-root.qcow2" >/dev/null
  virsh vol-delete --pool "$pool" "$1-cidata.img" >/dev/null
}

: >"$work/one-ours" >"$work/one-floor" >"$work/four-ours"
for ((r = 0; r < reps; r++)); do
  name="kvmbench-floor-$r"
  mac=$(printf '52:54:00:be:%02x:%02x' $(($$ % 256)) "$r")
  tf_dir "$work/kvmbench-one-$r" 1
  if ((r % 2)); then
    timed tf "$work/kvmbench-one-$r" apply -auto-approve >>"$work/one-ours"
    timed floor "$name" "$mac" >>"$work/one-floor"
  else
    timed floor "$name" "$mac" >>"$work/one-floor"
    timed tf "$work/kvmbench-one-$r" apply -auto-approve >>"$work/one-ours"
  fi
  remove_floor "$name"
  tf "$work/kvmbench-one-$r" destroy -auto-approve >/dev/null
  tf_dir "$work/kvmbench-four-$r" 4
  timed tf "$work/kvmbench-four-$r" apply -auto-approve -parallelism=4 >>"$work/four-ours"
  tf "$work/kvmbench-four-$r" destroy -auto-approve -parallelism=4 >/dev/null
done

one=$(median <"$work/one-ours")
fl=$(median <"$work/one-floor")
four=$(median <"$work/four-ours")
printf '\n%s reps, median wall seconds (accelerator %s)\n' "$reps" "$accel"
printf '%-44s %10s %10s %8s\n' case kvm baseline ratio
printf '%-44s %10.2f %10.2f %8.3f\n' "1 instance until SSH vs virsh+qemu-img floor" "$one" "$fl" "$(div "$one" "$fl")"
printf '%-44s %10.2f %10.2f %8.3f\n' "4 instances in one apply vs 1" "$four" "$one" "$(div "$four" "$one")"
mkdir -p "$root/target/bench"
json="$root/target/bench/instance-vs-virsh.json"
printf '[{"case":"instance_until_ssh","accelerator":"%s","kvm_s":%s,"floor_s":%s,"ratio":%.4f},\n {"case":"four_vs_one","kvm_four_s":%s,"kvm_one_s":%s,"ratio":%.4f}]\n' \
  "$accel" "$one" "$fl" "$(div "$one" "$fl")" "$four" "$one" "$(div "$four" "$one")" >"$json"
echo "results: $json" >&2
