#!/usr/bin/env bash
# Builds the provider's release: what a registry or a provider network mirror serves.
#
#   bash scripts/release.sh                 # release build, packed into target/dist
#   bash scripts/release.sh --install       # ... and installed where Terraform finds it with no
#                                           # CLI configuration (the implied local mirror)
#
# Options:
#   --out DIR           release directory (default: target/dist of the repository)
#   --binary PATH       package this linux_amd64 binary instead of building one (e.g. a debug build)
#   --binary-arm64 PATH package this linux_arm64 binary too (built on an arm64 machine, say)
#   --install           copy the package into the implied local mirror, PLUGINS_DIR below
#   --plugins-dir DIR   implied local mirror to install into (default: ~/.terraform.d/plugins;
#                       ~/.local/share/terraform/plugins or /usr/local/share/terraform/plugins
#                       work too)
#
# The release directory (OUT) holds, under registry.terraform.io/kvm/kvm/:
#   terraform-provider-kvm_<version>_linux_amd64.zip   (and _linux_arm64.zip when built)
#   terraform-provider-kvm_<version>_SHA256SUMS        sha256 of every file below
#   terraform-provider-kvm_<version>_manifest.json     terraform-registry-manifest.json: protocol 6.0
#   index.json, <version>.json                         the provider network mirror protocol
# so OUT served by any static HTTPS server is a network mirror (`network_mirror { url =
# "https://host/path/" }`), and OUT on disk is a filesystem mirror in the packed layout.
# The version comes from the workspace's Cargo.toml.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf '[release] %s\n' "$*" >&2; }

out="$root/target/dist" binary="" binary_arm64="" install=false plugins_dir="$HOME/.terraform.d/plugins"
while (($#)); do
  case $1 in
    --out) out=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
    --binary-arm64) binary_arm64=$2; shift 2 ;;
    --install) install=true; shift ;;
    --plugins-dir) plugins_dir=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) log "unknown argument: $1 (see --help)"; exit 2 ;;
  esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)

case $(uname -m) in
  x86_64) host=linux_amd64 ;;
  aarch64) host=linux_arm64 ;;
  *) log "unsupported build machine: $(uname -m)"; exit 1 ;;
esac
target_dir=${CARGO_TARGET_DIR:-$root/target}

# arm64_toolchain: empty when this machine can cross-build linux_arm64, else why it cannot. The
# provider links libvirt (the `virt` crate), so besides Rust's aarch64 standard library it needs
# a cross linker and libvirt's arm64 development files (Debian multiarch: libvirt-dev:arm64).
arm64_toolchain() {
  if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
    echo "Rust's aarch64-unknown-linux-gnu target is not installed (rustup target add aarch64-unknown-linux-gnu)"
  elif ! command -v aarch64-linux-gnu-gcc >/dev/null; then
    echo "no cross linker aarch64-linux-gnu-gcc (Debian: gcc-aarch64-linux-gnu)"
  elif [[ ! -f /usr/lib/aarch64-linux-gnu/pkgconfig/libvirt.pc ]]; then
    echo "no arm64 libvirt to link against (Debian: dpkg --add-architecture arm64; apt-get install libvirt-dev:arm64)"
  fi
}

packages=()
if [[ -n $binary ]]; then
  packages+=("linux_amd64=$binary")
  if [[ -n $binary_arm64 ]]; then
    packages+=("linux_arm64=$binary_arm64")
  else
    log "linux_arm64: not packaged (--binary given without --binary-arm64)"
  fi
else
  log "building the provider (cargo build --release --locked): a few minutes"
  cargo build --release --locked -p terraform-provider-kvm --manifest-path "$root/Cargo.toml" >&2
  packages+=("$host=$target_dir/release/terraform-provider-kvm")
  if [[ -n $binary_arm64 ]]; then
    packages+=("linux_arm64=$binary_arm64")
  elif [[ $host == linux_amd64 ]]; then
    why=$(arm64_toolchain)
    if [[ -z $why ]]; then
      log "cross-building linux_arm64"
      CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
        PKG_CONFIG_ALLOW_CROSS=1 PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig \
        cargo build --release --locked -p terraform-provider-kvm --target aarch64-unknown-linux-gnu \
        --manifest-path "$root/Cargo.toml" >&2
      packages+=("linux_arm64=$target_dir/aarch64-unknown-linux-gnu/release/terraform-provider-kvm")
    else
      log "linux_arm64: NOT BUILT: this machine cannot cross-build it: $why." \
        "Build on an arm64 machine and pass the binary with --binary-arm64 PATH."
    fi
  fi
fi

python3 "$root/scripts/release_pack.py" --out "$out" --cargo-toml "$root/Cargo.toml" \
  --manifest "$root/terraform-registry-manifest.json" "${packages[@]}" >"$out/.packed"
host_zip=""
while read -r platform zip zh h1; do
  log "$platform: $zip"
  log "  $zh (sha256 of the zip, as in SHA256SUMS)  $h1 (its contents, as in .terraform.lock.hcl)"
  [[ $platform != "$host" ]] || host_zip=$zip
done <"$out/.packed"
rm -f "$out/.packed"
log "release directory: $out"
log "  serve it over HTTPS and use: provider_installation { network_mirror { url = \"https://<host>/<path>/\" } }"

if $install; then
  [[ -n $host_zip ]] || { log "no $host package to install"; exit 1; }
  version_zip=$(basename "$host_zip")
  version=${version_zip#terraform-provider-kvm_}
  version=${version%_"$host".zip}
  dest="$plugins_dir/registry.terraform.io/kvm/kvm"
  mkdir -p "$dest"
  install -m 0644 "$host_zip" "$dest/$version_zip"
  log "installed $dest/$version_zip"
  # An unpacked copy of the same version next to it would compete with the new package.
  if [[ -d $dest/$version/$host ]]; then
    log "WARNING: $dest/$version/$host (an unpacked copy of the same version) is there too: remove it"
  fi
  # Implied local mirrors are searched only when the CLI configuration has no provider_installation.
  for rc in "${TF_CLI_CONFIG_FILE:-}" "$HOME/.terraformrc"; do
    if [[ -n $rc && -f $rc ]] && grep -q provider_installation "$rc"; then
      log "NOTE: $rc has a provider_installation block, so Terraform ignores implied local mirrors:" \
        "add filesystem_mirror { path = \"$plugins_dir\" } to it instead"
    fi
  done
  log "terraform init now finds kvm/kvm $version with no CLI configuration. A working directory" \
    "that locked an earlier build of $version: delete its kvm/kvm entry in .terraform.lock.hcl, then terraform init."
fi
