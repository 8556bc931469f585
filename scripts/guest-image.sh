#!/usr/bin/env bash
# Builds the Debian 12 test guest image once and caches it; prints its directory on stdout.
#
#   bash scripts/guest-image.sh            -> /root/.cache/kvm-tools/images/debian12-<hash>
#
# The directory holds:
#   disk.qcow2   2 GiB virtual, one ext4 filesystem labelled `root` on the whole disk (no partitions)
#   vmlinuz      kernel for direct kernel boot, cmdline `console=ttyS0 root=/dev/vda rw`
#   initrd.img   its initramfs
#   disk-secureboot.qcow2
#                the same filesystem as partition 2 of a GPT disk whose partition 1 is an EFI system
#                partition booting through Debian's Microsoft-signed shim and Debian-signed GRUB into
#                the (Debian-signed) kernel above: a disk that boots under UEFI Secure Boot with the
#                Microsoft keys enrolled (OVMF_VARS_4M.ms.fd), as a distribution's cloud image does
#   recipe.sha256, kernel-version
#
# No cloud image can be downloaded here, so the image is made with debootstrap from the Debian mirror
# (the only outside traffic, allowed for package downloads) and turned into a disk without mounting
# anything (mkfs.ext4 -d), so it works in a container without loop devices.
#
# The guest: minbase + systemd, OpenSSH, sudo (as on Debian cloud images: the bootstrap tests log in as a
# sudo user), cloud-init (NoCloud only), ifupdown + dhclient, qemu-guest-agent,
# linux-image-cloud-amd64 (small; it has no SATA/AHCI, so cloud-init seeds must be virtio disks), and
# dbus, without which systemd-logind does not run and the guest ignores both the ACPI power button
# and the guest agent's guest-shutdown (`shutdown -P +0` needs logind): `virsh shutdown` would hang.
# No root password; root logs in with the SSH key from the seed (disable_root: false); serial console
# on ttyS0. Host keys and machine-id are made on first boot, so clones of the image differ.
#
# Env: KVM_TOOLS (cache root, default ~/.cache/kvm-tools), KVM_DEBIAN_MIRROR (default deb.debian.org),
# KVM_GUEST_IMAGE_PACKAGES (a flavour: more Debian packages, comma-separated, e.g. the disk benchmark's
# `fio,etcd-server,etcd-client`; default none).
# The cache key is a hash of this file (less its comment lines and the lines that end in `#flavour`),
# the mirror and a flavour's packages: any change to the recipe builds a new image, and a flavour gets
# its own directory, so the tests' image stays what it is. Each build of the default recipe removes
# images of other recipes that are over two days old; a flavoured build removes nothing.
set -euo pipefail

TOOLS=${KVM_TOOLS:-$HOME/.cache/kvm-tools}
MIRROR=${KVM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
SIZE=2G
PACKAGES=systemd-sysv,udev,dbus,openssh-server,sudo,cloud-init,python3-cffi-backend,linux-image-cloud-amd64,iproute2,ifupdown,isc-dhcp-client,qemu-guest-agent,ca-certificates,netbase
EXTRA=${KVM_GUEST_IMAGE_PACKAGES:-} #flavour
PACKAGES+=${EXTRA:+,$EXTRA} #flavour

log() { printf '[guest-image] %s\n' "$*" >&2; }

recipe=$( { sed '/^[[:space:]]*#/d' "${BASH_SOURCE[0]}"; echo "$MIRROR"; } | sha256sum | cut -c1-64)
# The line above is the key's formula from before flavours, kept as it was: the key hashes this file
# without the lines marked #flavour, and with the line above and without them the hashed text is the
# one from before, so the default image kept its cache directory (and CI its cached image).
recipe=$( { sed '/^[[:space:]]*#/d; /#flavour$/d' "${BASH_SOURCE[0]}"; echo "$MIRROR"; [[ -z $EXTRA ]] || echo "+$EXTRA"; } | sha256sum | cut -c1-64) #flavour
images="$TOOLS/images"
dest="$images/debian12-${recipe:0:12}"

complete() { [[ -s "$1/disk.qcow2" && -s "$1/disk-secureboot.qcow2" && -s "$1/vmlinuz" && -s "$1/initrd.img" ]]; }

if complete "$dest"; then
  printf '%s\n' "$dest"
  exit 0
fi

mkdir -p "$images"
# One builder at a time (two test runs started together would otherwise both build).
exec 9>"$images/.lock"
flock 9
if complete "$dest"; then
  printf '%s\n' "$dest"
  exit 0
fi

for tool in debootstrap:debootstrap mkfs.ext4:e2fsprogs qemu-img:qemu-utils mkfs.vfat:dosfstools mcopy:mtools sfdisk:fdisk; do
  if ! command -v "${tool%%:*}" >/dev/null; then
    log "installing ${tool#*:}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool#*:}" >&2
  fi
done

# remove_tree DIR: an interrupted debootstrap can leave /proc or /sys mounted inside its tree, so
# unmount whatever is below DIR first and never delete across a mount point.
remove_tree() {
  local m
  awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$1"
}

# Leftovers of interrupted builds (we hold the lock, so nobody else is building).
for old in "$images"/.build-*; do
  [[ -e "$old" ]] && remove_tree "$old"
done
# Build next to the destination so the final rename is atomic: an interrupted build never leaves
# a half image under the cached name.
work=$(mktemp -d "$images/.build-XXXXXX")
trap 'remove_tree "$work"' EXIT
root="$work/root"
out="$work/image"
mkdir -p "$root" "$out" "$TOOLS/download/debootstrap"

start=$SECONDS
log "debootstrap $SUITE into $root (1.5 to 3 minutes)"
# Two stages so that dpkg can be told not to fsync every file it unpacks (force-unsafe-io): a
# half-written image is thrown away anyway. --cache-dir keeps the .debs, so a changed recipe
# rebuilds without downloading them again.
debootstrap_failed() {
  tail -n 30 "$work/debootstrap.log" >&2
  [[ -f "$root/debootstrap/debootstrap.log" ]] && tail -n 30 "$root/debootstrap/debootstrap.log" >&2
  log "debootstrap failed"
  exit 1
}
debootstrap --foreign --variant=minbase --include="$PACKAGES" --cache-dir="$TOOLS/download/debootstrap" \
  "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 || debootstrap_failed
mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/kvm-test-build"
chroot "$root" /debootstrap/debootstrap --second-stage >>"$work/debootstrap.log" 2>&1 || debootstrap_failed
rm -f "$root/etc/dpkg/dpkg.cfg.d/kvm-test-build"
log "debootstrap done in $((SECONDS - start)) s"

# --- configuration (plain file edits, nothing runs in the guest) -----------------------------------
# The root filesystem is the whole of /dev/vda; the label lets a later bootloader find it too.
echo 'LABEL=root / ext4 defaults,noatime 0 1' >"$root/etc/fstab"
echo debian >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"

cat >"$root/etc/cloud/cloud.cfg.d/99_kvm_test.cfg" <<'CFG'
# terraform-provider-kvm test image (scripts/guest-image.sh).
# Only a NoCloud seed (a virtio disk labelled cidata) or nothing: no probing of cloud metadata services.
datasource_list: [ NoCloud, None ]
# Tests log in as root with the key from their seed (there is no root password).
disable_root: false
# Host keys are made on first boot (the image has none, so every guest differs); RSA keygen is slow under TCG.
ssh_genkeytypes: [ ed25519, ecdsa ]
# No locales package in the image: C.UTF-8 is built in, and with /etc/default/locale saying so
# cloud-init has nothing to generate or update (`locale: false` would fail its schema check).
locale: C.UTF-8
CFG
echo 'LANG=C.UTF-8' >"$root/etc/default/locale"

# Guests run under TCG on one or two emulated CPUs, so every unit that starts at boot slows the way
# to SSH: mask the periodic jobs a throwaway test guest has no use for.
for unit in e2scrub_reap.service e2scrub_all.timer fstrim.timer apt-daily.timer apt-daily-upgrade.timer; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done

# Made on first boot instead: every guest gets its own machine-id (DHCP DUIDs) and SSH host keys.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*

# The kernel and initramfs are booted directly by libvirt: copy them out, drop them from the disk.
kver=$(find "$root/boot" -name 'vmlinuz-*' -printf '%f\n' | sed 's/^vmlinuz-//' | sort -V | tail -n1)
install -m 0644 "$root/boot/vmlinuz-$kver" "$out/vmlinuz"
install -m 0644 "$root/boot/initrd.img-$kver" "$out/initrd.img"
rm -f "$root"/boot/vmlinuz-* "$root"/boot/initrd.img-* "$root"/boot/System.map-* "$root"/vmlinuz* "$root"/initrd.img*
echo "$kver" >"$out/kernel-version"

# Keep the image small: no package cache, lists, docs, man pages or translations.
rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
  "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/debootstrap
find "$root/var/cache/debconf" -name '*-old' -delete

# --- disk ------------------------------------------------------------------------------------------
log "making the ext4 filesystem and the qcow2 image"
truncate -s "$SIZE" "$work/disk.raw"
mkfs.ext4 -q -F -L root -d "$root" "$work/disk.raw"
# Deleting the tree can take a while (seen: 24 s on a busy machine): do it during the conversion.
remove_tree "$root" &
qemu-img convert -f raw -O qcow2 "$work/disk.raw" "$out/disk.qcow2"

# --- the Secure Boot disk --------------------------------------------------------------------------
# The boot chain of a signed distribution: OVMF (Microsoft keys) -> shim (signed by Microsoft, carries
# Debian's CA) -> GRUB (signed by Debian) -> the kernel (signed by Debian). Only the signed binaries are
# taken from their packages (unpacked, never installed: their maintainer scripts would run grub-install).
# shim at the removable-media path EFI/BOOT/BOOTX64.EFI loads grubx64.efi beside it (no fbx64.efi, so
# no boot entries are written and no reboot happens); the signed GRUB reads $prefix/grub.cfg, its
# prefix being /EFI/debian on the partition it was loaded from. The kernel and initrd sit on the ESP.
log "making the Secure Boot disk (EFI system partition + the same root filesystem)"
sb_debs="$TOOLS/download/secureboot"
mkdir -p "$sb_debs" "$work/sb"
(cd "$sb_debs" && { apt-get download shim-signed grub-efi-amd64-signed >&2 ||
  { apt-get update -qq >&2 && apt-get download shim-signed grub-efi-amd64-signed >&2; }; })
for deb in "$sb_debs"/shim-signed_*.deb "$sb_debs"/grub-efi-amd64-signed_*.deb; do
  dpkg-deb -x "$deb" "$work/sb"
done
cat >"$work/grub.cfg" <<'GRUB'
set timeout=0
linux /vmlinuz console=ttyS0 root=/dev/vda2 rw
initrd /initrd.img
boot
GRUB
esp_mib=128
mkfs.vfat -C -n EFI "$work/esp.img" $((esp_mib * 1024)) >/dev/null
mmd -i "$work/esp.img" ::/EFI ::/EFI/BOOT ::/EFI/debian
mcopy -i "$work/esp.img" "$work/sb/usr/lib/shim/shimx64.efi.signed" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$work/esp.img" "$work/sb/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed" ::/EFI/BOOT/grubx64.efi
mcopy -i "$work/esp.img" "$work/grub.cfg" ::/EFI/debian/grub.cfg
mcopy -i "$work/esp.img" "$out/vmlinuz" ::/vmlinuz
mcopy -i "$work/esp.img" "$out/initrd.img" ::/initrd.img
root_mib=$(($(stat -c %s "$work/disk.raw") / 1048576))
# 1 MiB before the ESP (the primary GPT), 1 MiB after the root partition (the backup GPT).
truncate -s $((1 + esp_mib + root_mib + 1))M "$work/disk-sb.raw"
sfdisk -q "$work/disk-sb.raw" <<PARTS
label: gpt
start=1MiB, size=${esp_mib}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=EFI
start=$((1 + esp_mib))MiB, size=${root_mib}MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root
PARTS
dd if="$work/esp.img" of="$work/disk-sb.raw" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$work/disk.raw" of="$work/disk-sb.raw" bs=1M seek=$((1 + esp_mib)) conv=notrunc,sparse status=none
qemu-img convert -f raw -O qcow2 "$work/disk-sb.raw" "$out/disk-secureboot.qcow2"
rm -f "$work/disk.raw" "$work/disk-sb.raw" "$work/esp.img"
wait
chmod 0644 "$out/disk.qcow2" "$out/disk-secureboot.qcow2"
echo "$recipe" >"$out/recipe.sha256"
chmod 0755 "$out"

rm -rf "$dest"
mv "$out" "$dest"
# A flavour leaves the other images alone (the tests' image may be older than two days and still wanted).
if [[ -n $EXTRA ]]; then log "built $dest in $((SECONDS - start)) s ($(du -sh "$dest" | cut -f1))"; printf '%s\n' "$dest"; exit 0; fi #flavour
# Images of other recipes go once they are two days old (not at once: another checkout may still use one).
find "$images" -mindepth 1 -maxdepth 1 -name 'debian12-*' ! -path "$dest" -mtime +2 -exec rm -rf {} +
log "built $dest in $((SECONDS - start)) s ($(du -sh "$dest" | cut -f1))"
printf '%s\n' "$dest"
