# shellcheck shell=bash
# libvirt for the acceptance tests (source it): install, start inside a network namespace, stop.
#
#   libvirt_install   Debian packages: libvirt 11.3 + QEMU 10.0 from bookworm-backports, virtiofsd (built from
#                     crates.io: Debian has none), and the tools the
#                     tests and the guest image need. Skips apt entirely when everything is in place.
#   libvirt_start     network namespace $KVM_TEST_NETNS (default kvmtest) with lo up, virtlogd and libvirtd
#                     running inside it (reused when already there); exports KVM_TEST_NETNS and
#                     LIBVIRT_DEFAULT_URI=qemu:///system.
#   libvirt_stop      local clean-up: ends every process in the namespace (libvirtd, virtlogd, dnsmasq,
#                     qemu) and deletes it.
#   guest_image       builds or reuses the cached test guest image, exports KVM_TEST_IMAGE_DIR.
#
# Why a namespace: guests and everything they talk to must stay on networks the test run made.
# libvirtd's bridges, dnsmasq and the guests' taps live in the namespace libvirtd runs in, and the
# namespace has no link to the outside (only lo and what libvirt creates), so a NAT network there
# forwards to nowhere and dnsmasq's upstream DNS is unreachable. Whatever must reach a guest
# (terraform, ssh) runs under `ip netns exec $KVM_TEST_NETNS`.
#
# Why at most one libvirtd: its sockets (/run/libvirt/libvirt-sock), state (/var/lib/libvirt) and
# persistent definitions (/etc/libvirt) are on the shared filesystem, so a second libvirtd in another
# namespace would fight the first one for them. libvirt_start refuses (and says which namespace
# the running one is in) instead of starting a second one.
#
# No systemd here (CI runs in a container): the daemons are started by hand with -d.

_libvirt_sh_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

_libvirt_log() { printf '[libvirt] %s\n' "$*" >&2; }

# Runs a self-daemonising command with nothing inherited but /dev/null on 0-2: a daemon that
# kept a caller's pipe open (cargo's, Terraform's) would make that caller wait for EOF forever.
_libvirt_detached() {
  (
    for fd in /proc/self/fd/*; do
      n=${fd##*/}
      ((n > 2)) && eval "exec $n>&-"
    done 2>/dev/null
    exec "$@"
  ) </dev/null >/dev/null 2>&1
}

# The versions the project is written against (ENVIRONMENT.md): only bookworm-backports has them.
LIBVIRT_MIN_VERSION=11.3.0
QEMU_MIN_VERSION=1:10.0.0

libvirt_install() {
  _libvirt_packages && _libvirt_virtiofsd
}

# The virtiofs daemon behind kvm_instance's `filesystem` blocks. Debian 12 has no package (nor its
# backports), so it is built from crates.io once (about a minute; kept in $KVM_TOOLS) and installed
# as /usr/local/libexec/virtiofsd, with a vhost-user descriptor through which libvirt finds it.
VIRTIOFSD_VERSION=1.14.0

_libvirt_virtiofsd() {
  local bin=/usr/local/libexec/virtiofsd desc=/etc/qemu/vhost-user/50-virtiofsd.json
  if [[ "$("$bin" --version 2>/dev/null)" != "virtiofsd $VIRTIOFSD_VERSION" ]]; then
    local root="${KVM_TOOLS:-$HOME/.cache/kvm-tools}/virtiofsd-$VIRTIOFSD_VERSION" dev=() pkg
    if [[ ! -x $root/bin/virtiofsd ]]; then
      for pkg in libseccomp-dev libcap-ng-dev; do
        [[ "$(dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null)" == "install ok installed" ]] || dev+=("$pkg")
      done
      if ((${#dev[@]})); then
        _libvirt_log "installing ${dev[*]} (to build virtiofsd)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${dev[@]}" >&2
      fi
      _libvirt_log "building virtiofsd $VIRTIOFSD_VERSION from crates.io (about a minute)"
      cargo install --quiet --locked --version "$VIRTIOFSD_VERSION" --root "$root" virtiofsd >&2
    fi
    install -D -m 0755 "$root/bin/virtiofsd" "$bin"
  fi
  local want
  want=$(printf '{\n  "description": "virtiofsd %s from crates.io (installed by scripts/libvirt.sh)",\n  "type": "fs",\n  "binary": "%s"\n}' "$VIRTIOFSD_VERSION" "$bin")
  if [[ "$(cat "$desc" 2>/dev/null)" != "$want" ]]; then
    mkdir -p "${desc%/*}"
    printf '%s\n' "$want" >"$desc"
  fi
}

_libvirt_packages() {
  # Installed from bookworm-backports (-t): libvirt and QEMU themselves, plus qemu-utils, which the
  # machine image already has from backports (bookworm's qemu-system-x86 7.2 conflicts with it).
  # libvirt-daemon-driver-storage-logical: the LVM storage backend (`kvm_pool` type "logical").
  local backports=(qemu-system-x86 qemu-utils libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev
    libvirt-daemon-driver-storage-logical)
  # From bookworm (the -t only raises backports' priority, so these come from wherever they exist):
  #   dnsmasq-base + nftables: DHCP/DNS and NAT of libvirt's virtual networks (libvirt 11 uses the
  #     nftables firewall backend; both are dependencies of libvirt-daemon-driver-network anyway);
  #   iproute2: `ip netns`; procps: pgrep; openssh-client: ssh into guests, ssh-keygen;
  #   debootstrap + e2fsprogs: the guest image (scripts/guest-image.sh, `mkfs.ext4 -d`);
  #   openssh-server: an sshd the remote-host tests start on loopback inside the namespace
  #     (qemu+libssh:// with a pinned host key), and the bootstrap's SSH engine tests start on
  #     127.0.0.1 (bootstrap/tests/ssh.rs); no system-wide sshd is started;
  #   dosfstools + mtools: independent readers (fsck.fat, mdir, mtype) of the cloud-init seeds we write;
  #   openssl: the independent verifier of the k3s cluster PKI the bootstrap generates;
  #   sudo: the SSH engine runs commands through `sudo -n` for non-root users (its test runs one).
  #   swtpm + swtpm-tools: the TPM 2.0 emulator libvirt runs for an instance's `tpm` block;
  #   ovmf: UEFI firmware (`firmware = "uefi"`), with the Secure Boot builds and their descriptors
  #     (40-edk2-x86_64-secure-enrolled.json) that `secure_boot = true` asks libvirt for;
  #   fdisk: sfdisk, which partitions the test image's Secure Boot disk;
  #   lvm2: the commands libvirt's LVM backend runs for `kvm_pool` type "logical" (pvcreate,
  #     vgcreate, lvcreate, ...) and the `lvextend` the provider runs to grow a logical volume.
  local others=(dnsmasq-base nftables iproute2 procps openssh-client openssh-server debootstrap e2fsprogs
    dosfstools mtools openssl sudo swtpm swtpm-tools ovmf fdisk lvm2)
  local missing=() pkg

  for pkg in "${backports[@]}" "${others[@]}"; do
    [[ "$(dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null)" == "install ok installed" ]] || missing+=("$pkg")
  done
  local lv qv
  lv=$(dpkg-query -W -f '${Version}' libvirt-daemon 2>/dev/null || true)
  qv=$(dpkg-query -W -f '${Version}' qemu-system-x86 2>/dev/null || true)
  if ((${#missing[@]} == 0)) && dpkg --compare-versions "${lv:-0}" ge "$LIBVIRT_MIN_VERSION" &&
    dpkg --compare-versions "${qv:-0}" ge "$QEMU_MIN_VERSION"; then
    return 0
  fi
  _libvirt_log "installing ${missing[*]:-libvirt/QEMU upgrades} (libvirt ${lv:-none}, QEMU ${qv:-none})"

  # Same mirror and keyring as the machine's own Debian source.
  local src=/etc/apt/sources.list.d/bookworm-backports.sources
  local want
  want=$'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg'
  if [[ "$(cat "$src" 2>/dev/null)" != "$want" ]]; then
    printf '%s\n' "$want" >"$src"
  fi

  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # With recommends, as on the developers' machines (the drivers for networks, storage, secrets...
  # are recommends of libvirt-daemon).
  apt-get install -y -qq -t bookworm-backports "${backports[@]}" "${others[@]}" >&2
  lv=$(dpkg-query -W -f '${Version}' libvirt-daemon)
  dpkg --compare-versions "$lv" ge "$LIBVIRT_MIN_VERSION" || {
    _libvirt_log "libvirt $lv installed, need >= $LIBVIRT_MIN_VERSION"
    return 1
  }
}

# _libvirt_daemons NAME: a "pid<TAB>netns" line for every running process called NAME
# (netns empty when it is not in a named namespace, e.g. on the host's network).
_libvirt_daemons() {
  local pid
  for pid in $(pgrep -x "$1" || true); do
    printf '%s\t%s\n' "$pid" "$(ip netns identify "$pid" 2>/dev/null)"
  done
}

libvirt_start() {
  local ns=${KVM_TEST_NETNS:-kvmtest}
  export KVM_TEST_NETNS=$ns LIBVIRT_DEFAULT_URI=qemu:///system

  # A libvirtd running elsewhere owns /run/libvirt: refuse before touching anything.
  local pid where found=""
  while IFS=$'\t' read -r pid where; do
    [[ -n "$pid" ]] || continue
    if [[ "$where" == "$ns" ]]; then
      found=$pid
    else
      _libvirt_log "libvirtd (pid $pid) already runs outside network namespace $ns (in: ${where:-the host or an unnamed one})."
      _libvirt_log "Only one libvirtd can run (they share /run/libvirt): ${where:+use KVM_TEST_NETNS=$where or }stop it first."
      return 1
    fi
  done < <(_libvirt_daemons libvirtd)

  if [[ ! -e "/run/netns/$ns" ]]; then
    _libvirt_log "creating network namespace $ns"
    ip netns add "$ns"
  fi
  ip -n "$ns" link set lo up

  _libvirt_configure_qemu

  # virtlogd collects the guests' console and QEMU logs; libvirtd refuses to start guests without it.
  # One is enough whatever namespace it runs in (it only talks over its unix socket).
  if [[ -z "$(_libvirt_daemons virtlogd)" ]]; then
    _libvirt_detached ip netns exec "$ns" virtlogd -d
  fi

  if [[ -z "$found" ]]; then
    _libvirt_log "starting libvirtd in network namespace $ns"
    _libvirt_detached ip netns exec "$ns" libvirtd -d
  fi

  local i
  for ((i = 0; i < 300; i++)); do
    if ip netns exec "$ns" virsh -q -c qemu:///system version >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  _libvirt_log "libvirtd in $ns did not answer within 30 s"
  tail -n 20 /var/log/libvirt/libvirtd.log >&2 2>/dev/null || true
  return 1
}

# QEMU runs as root in the test environment (qemu.conf user/group), decided after booting guests both ways:
# with Debian's default (QEMU as libvirt-qemu) dynamic_ownership does chown every disk, backing file,
# kernel and initrd to libvirt-qemu at start (and back at stop), but it does not make their directories
# traversable, and the tests' files live in directories libvirt-qemu cannot enter: the guest image
# cache under /root (0700) and tempfile's directories (0700). The guest then fails to start with
# "Cannot access backing file ... (as uid:64055, gid:64055): Permission denied". Where a user keeps
# images on a real host is the user's business, not the provider's, so the tests run QEMU as root
# rather than teach every test where libvirt-qemu may look. (Guests are still unprivileged TCG
# processes with no capabilities: libvirt's clear_emulator_capabilities stays on.)
# Second reason, measured: /dev/kvm here is root:sgx 0660, so root can open it and libvirt-qemu
# cannot. With QEMU as libvirt-qemu, libvirtd finds its cached QEMU capabilities outdated (apparently
# because KVM looks usable to one check and not to the other) and probes qemu-system-x86_64 again on every
# lookup: `virsh version` or `capabilities` took 1 to 8 s each instead of 0.02 s, and so does
# anything that needs the capabilities (defining and starting domains).
# A libvirtd that is already running keeps the settings it started with: restart it to apply these.
_libvirt_configure_qemu() {
  local conf=/etc/libvirt/qemu.conf
  grep -q '^# kvm-tests:' "$conf" && return 0
  if grep -qE '^[[:space:]]*(user|group)[[:space:]]*=' "$conf"; then
    _libvirt_log "$conf sets user/group already; leaving it as it is"
    return 0
  fi
  cat >>"$conf" <<'CONF'

# kvm-tests: added by terraform-provider-kvm's scripts/libvirt.sh (see the comment there): QEMU runs
# as root so that guests can read test images in directories libvirt-qemu cannot traverse.
user = "root"
group = "root"
CONF
  if [[ -n "$(_libvirt_daemons libvirtd)" ]]; then
    _libvirt_log "note: $conf changed; the running libvirtd applies it only after a restart"
  fi
}

libvirt_stop() {
  local ns=${KVM_TEST_NETNS:-kvmtest}
  [[ -e "/run/netns/$ns" ]] || return 0
  local pids
  # Everything in the namespace was started by a test run: libvirtd, virtlogd (if started here),
  # dnsmasq, QEMU. libvirtd first, so it does not restart anything.
  pids=$(_libvirt_daemons libvirtd | awk -F'\t' -v ns="$ns" '$2 == ns { print $1 }')
  # shellcheck disable=SC2086 # one word per pid
  [[ -z "$pids" ]] || kill $pids 2>/dev/null || true
  sleep 1
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  # shellcheck disable=SC2086
  [[ -z "$pids" ]] || kill $pids 2>/dev/null || true
  sleep 1
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  # shellcheck disable=SC2086
  [[ -z "$pids" ]] || kill -9 $pids 2>/dev/null || true
  ip netns del "$ns"
}

guest_image() {
  local dir
  dir=$(bash "$_libvirt_sh_dir/guest-image.sh") || return 1
  export KVM_TEST_IMAGE_DIR=$dir
}
