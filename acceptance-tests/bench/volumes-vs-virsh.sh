#!/usr/bin/env bash
# Benchmark: kvm_volume against virsh on the same libvirtd, same run.
#
# 1. Importing a 1 GiB image from a local file: `terraform apply` of one kvm_volume with `source`
#    (Terraform and provider start, volume create, sparse virStorageVolUpload stream) against
#    `virsh vol-create-as` + `virsh vol-upload` of the same file. Target: ratio <= 1.1. Two images:
#    a raw disk image holding an ext4 filesystem with system libraries in it (what disk images
#    look like: data and unwritten space), and 1 GiB of random bytes (the worst case: no holes).
# 2. 20 qcow2 clones of one base: `terraform apply -parallelism=20` of 20 kvm_volume with
#    `base_volume` against 20 sequential `virsh vol-create-as --backing-vol`. Reported.
#
# Needs the test libvirtd (scripts/libvirt.sh; KVM_TEST_NETNS, default kvmtest).
# Usage: acceptance-tests/bench/volumes-vs-virsh.sh [REPS]   (default 3)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/lib.sh"
source "$here/lib.sh"
export BENCH_SYNC=1
root=$(repo_root)
setup_tools
reps=${1:-3}

bin=$(release_provider)
work=$(mktemp -d /var/tmp/kvm-bench.XXXXXX)
pool="kvmbench-$$"
cleanup() {
  for v in $(virsh vol-list "$pool" --name 2>/dev/null); do virsh vol-delete --pool "$pool" "$v" >/dev/null 2>&1 || true; done
  virsh pool-destroy "$pool" >/dev/null 2>&1 || true
  virsh pool-delete "$pool" >/dev/null 2>&1 || true
  virsh pool-undefine "$pool" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
provider_mirror "$bin" "$work/tf"

virsh pool-define-as "$pool" dir --target "/var/lib/libvirt/$pool" >/dev/null
virsh pool-build "$pool" >/dev/null
virsh pool-start "$pool" >/dev/null

images=(fs random)
# About 600 MB of real files (programs, compiler, documentation) on a 1 GiB filesystem.
mkdir -p "$work/stage"
cp -a /usr/bin /usr/lib/gcc /usr/share/doc "$work/stage/"
truncate -s 1G "$work/fs.raw"
mkfs.ext4 -q -F -L bench -d "$work/stage" "$work/fs.raw"
rm -rf "$work/stage"
head -c $((1 << 30)) /dev/urandom >"$work/random.raw"
sync

# Each timed step starts with no dirty pages in flight (BENCH_SYNC=1), and ends when the command
# returns, as a user sees it.

tf_dir() { # tf_dir DIR BODY
  mkdir -p "$1"
  {
    kvm_required_providers
    cat <<TF
provider "kvm" {
  uri = "qemu:///system"
}
$2
TF
  } >"$1/main.tf"
  (cd "$1" && "${TERRAFORM:-terraform}" init -input=false >/dev/null)
}

: >"$work/clones-ours" >"$work/clones-virsh"
for img in "${images[@]}"; do : >"$work/upload-$img-ours" >"$work/upload-$img-virsh"; done
for ((r = 0; r < reps; r++)); do
  # 1 GiB imports.
  for img in "${images[@]}"; do
    image="$work/$img.raw"
    virsh_upload() {
      virsh vol-create-as "$pool" "virsh-$r.raw" 1G --format raw &&
        virsh vol-upload --pool "$pool" "virsh-$r.raw" "$image"
    }
    tf_dir "$work/upload-$img-$r" "resource \"kvm_volume\" \"image\" {
  name   = \"ours-$r.raw\"
  pool   = \"$pool\"
  source = \"$image\"
}"
    ours_upload() { tf "$work/upload-$img-$r" apply -auto-approve; }
    # Alternate which side goes first.
    if ((r % 2)); then
      timed ours_upload >>"$work/upload-$img-ours"
      timed virsh_upload >>"$work/upload-$img-virsh"
    else
      timed virsh_upload >>"$work/upload-$img-virsh"
      timed ours_upload >>"$work/upload-$img-ours"
    fi
    virsh vol-delete --pool "$pool" "virsh-$r.raw" >/dev/null
    tf "$work/upload-$img-$r" destroy -auto-approve >/dev/null
  done

  # 20 clones of a base.
  virsh vol-create-as "$pool" "base-$r.qcow2" 1G --format qcow2 >/dev/null
  virsh_clones() {
    for i in $(seq 0 19); do
      virsh vol-create-as "$pool" "vclone-$r-$i.qcow2" 1G --format qcow2 \
        --backing-vol "base-$r.qcow2" --backing-vol-format qcow2 || return 1
    done
  }
  timed virsh_clones >>"$work/clones-virsh"
  for i in $(seq 0 19); do virsh vol-delete --pool "$pool" "vclone-$r-$i.qcow2" >/dev/null; done
  tf_dir "$work/clones-$r" "resource \"kvm_volume\" \"clone\" {
  count       = 20
  name        = \"clone-$r-\${count.index}.qcow2\"
  pool        = \"$pool\"
  base_volume = \"base-$r.qcow2\"
}"
  timed tf "$work/clones-$r" apply -auto-approve -parallelism=20 >>"$work/clones-ours"
  tf "$work/clones-$r" destroy -auto-approve -parallelism=20 >/dev/null
  virsh vol-delete --pool "$pool" "base-$r.qcow2" >/dev/null
done

printf '\n%s reps, median wall seconds\n' "$reps"
printf '%-34s %10s %10s %8s\n' case kvm virsh ratio
mkdir -p "$root/target/bench"
json="$root/target/bench/volumes-vs-virsh.json"
echo "[" >"$json"
row() { # row CASE LABEL OURS_FILE VIRSH_FILE
  local ours virsh ratio
  ours=$(median <"$3")
  virsh=$(median <"$4")
  ratio=$(div "$ours" "$virsh")
  printf '%-34s %10.3f %10.3f %8.3f\n' "$2" "$ours" "$virsh" "$ratio"
  printf '{"case":"%s","kvm_s":%s,"virsh_s":%s,"ratio":%.4f}' "$1" "$ours" "$virsh" "$ratio" >>"$json"
}
row import_1gib_fs "import 1 GiB disk image (ext4)" "$work/upload-fs-ours" "$work/upload-fs-virsh"
echo "," >>"$json"
row import_1gib_random "import 1 GiB random bytes" "$work/upload-random-ours" "$work/upload-random-virsh"
echo "," >>"$json"
row clones_20 "20 qcow2 clones" "$work/clones-ours" "$work/clones-virsh"
echo "]" >>"$json"
echo "results: $root/target/bench/volumes-vs-virsh.json" >&2
