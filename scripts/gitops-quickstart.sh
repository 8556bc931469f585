#!/usr/bin/env bash
# The steps of `bash scripts/main.sh gitops` after the environment is ready, shared by main.sh and
# its acceptance test (acceptance-tests/tests/main_gitops.rs), so both run the same code:
#
#   bash scripts/gitops-quickstart.sh up        # machines, demo repository, Git server, cluster
#   bash scripts/gitops-quickstart.sh destroy   # all of it, the Git server included
#
# Expects (main.sh sets them up): KVM_TEST_NETNS (libvirtd's network namespace, where Terraform,
# ssh and the Git server run), KVM_TEST_IMAGE_DIR (scripts/guest-image.sh), TF_CLI_CONFIG_FILE
# (a mirror holding the provider), TERRAFORM (else `terraform` on PATH).
#
# How far it goes (decided before anything is applied, without sending a packet anywhere):
#   * KVM_GITOPS_ARTIFACTS=DIR: k3s, the Sealed Secrets controller and Argo CD air-gapped from DIR
#     (layout in examples/gitops-quickstart/README.md; a missing file is an error);
#   * else KVM_GITOPS_ONLINE=1 and a default route in the namespace (the NAT network's uplink):
#     the nodes download them;
#   * else: the machines, the sealing key, the demo repository and its Git server come up, then
#     one line `gitops: stopped after the VMs: …` says what is missing, and the exit code is 0.
#
# Settings (defaults in brackets): KVM_GITOPS_WORK [<repo>/target/gitops-quickstart] (keys,
# Terraform directory and state, demo repository, Git server pid and log), KVM_GITOPS_NAME
# [gitops-quickstart], KVM_GITOPS_CIDR [10.205.0.0/24], KVM_GITOPS_GIT_PORT [8418],
# KVM_GITOPS_AGENTS [0], KVM_GITOPS_SERVER_MEMORY [4GiB], KVM_ACCELERATOR [qemu].
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '[gitops] %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

cmd=${1:-up}
[[ $cmd == up || $cmd == destroy ]] || die "usage: $0 up|destroy"
ns=${KVM_TEST_NETNS:?KVM_TEST_NETNS: the network namespace libvirtd runs in (scripts/libvirt.sh)}
image_dir=${KVM_TEST_IMAGE_DIR:?KVM_TEST_IMAGE_DIR: the guest image (scripts/guest-image.sh)}
: "${TF_CLI_CONFIG_FILE:?TF_CLI_CONFIG_FILE: a CLI configuration with the provider mirror (provider_mirror in scripts/lib.sh)}"
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0
command -v git >/dev/null || die "git is needed for the demo repository and its server (apt-get install git)"
command -v python3 >/dev/null || die "python3 is needed for the Git server (scripts/setup.sh installs it)"
work=${KVM_GITOPS_WORK:-$root/target/gitops-quickstart}
name=${KVM_GITOPS_NAME:-gitops-quickstart}
cidr=${KVM_GITOPS_CIDR:-10.205.0.0/24}
port=${KVM_GITOPS_GIT_PORT:-8418}
gateway=${cidr%.*}.1
tfdir="$work/terraform"
mkdir -p "$work"

# Terraform, ssh and git run inside the namespace: the guests and the Git server are only there.
in_ns() { ip netns exec "$ns" "$@"; }
tf() { (cd "$tfdir" && in_ns "${TERRAFORM:-terraform}" "$@"); }

# --- The decision: how far can this go? ---------------------------------------------------------

# Sets mode (none, airgap, online), k3s_images (airgap) and why (none).
decide() {
  mode=none k3s_images="" why=""
  if [[ -n ${KVM_GITOPS_ARTIFACTS:-} ]]; then
    local a=$KVM_GITOPS_ARTIFACTS f
    for f in k3s install.sh sealed-secrets/controller.yaml argocd/install.yaml controller-images.tar; do
      [[ -f "$a/$f" ]] || die "KVM_GITOPS_ARTIFACTS=$a has no $f (layout: examples/gitops-quickstart/README.md)"
    done
    for f in k3s-airgap-images-amd64.tar.zst k3s-airgap-images-amd64.tar; do
      [[ -f "$a/$f" ]] && k3s_images=$(cd "$a" && pwd)/$f && break
    done
    [[ -n $k3s_images ]] || die "KVM_GITOPS_ARTIFACTS=$a has no k3s-airgap-images-amd64.tar.zst (or .tar)"
    mode=airgap
    return
  fi
  # "Can the guests reach the internet?" is answered from configuration, never by probing an
  # outside address: the network is NAT, so they can if the namespace its bridge lives in has a
  # route out (the project's namespace has none) and the user said so.
  if [[ ${KVM_GITOPS_ONLINE:-} == 1 ]]; then
    if [[ -n "$(ip -n "$ns" route show default 2>/dev/null)" ]]; then
      mode=online
      return
    fi
    why="KVM_GITOPS_ONLINE=1 is set but network namespace $ns has no default route, so the NAT network has no uplink; "
  fi
  why+="k3s needs internet (KVM_GITOPS_ONLINE=1 with a default route out of network namespace $ns) or air-gap artifacts (KVM_GITOPS_ARTIFACTS=DIR, see examples/gitops-quickstart/README.md)"
}

# --- The Git server -------------------------------------------------------------------------------

pidfile="$work/git-http.pid"

# The pid of our Git server if it runs (a pid file of a dead or different process does not count).
server_pid() {
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [[ -n $pid ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "git-http.py --listen $gateway:$port --root $work/git" &&
    echo "$pid"
}

serve() {
  server_pid >/dev/null && return 0
  rm -f "$pidfile"
  # Detached: nothing inherited but the log on 1-2, so no caller waits on a pipe it holds.
  # (No redirection on the loop: bash would park fd 2 on a high fd the loop then closes.)
  (
    fds=(/proc/"$BASHPID"/fd/*)
    for fd in "${fds[@]}"; do
      n=${fd##*/}
      if ((n > 2)) && [[ -e $fd ]]; then eval "exec $n>&-"; fi
    done
    exec ip netns exec "$ns" python3 "$root/scripts/git-http.py" --listen "$gateway:$port" --root "$work/git" --pid-file "$pidfile"
  ) </dev/null >>"$work/git-http.log" 2>&1 &
  local i
  for ((i = 0; i < 100; i++)); do
    if server_pid >/dev/null && in_ns git ls-remote "http://$gateway:$port/gitops.git" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  tail -n 5 "$work/git-http.log" >&2
  die "the Git server did not answer on http://$gateway:$port/ within 10 s"
}

stop_server() {
  local pid
  if pid=$(server_pid); then
    kill "$pid"
    log "stopped the Git server (pid $pid)"
  fi
  rm -f "$pidfile"
}

# --- The demo repository ----------------------------------------------------------------------------

# An app (a ConfigMap in namespace demo: no container image, so it also syncs on an air-gapped
# node that has only the images of the artifacts) and the SealedSecret Terraform sealed, committed
# only when something changed, and pushed to the bare repository the server serves.
demo_repo() {
  local wc="$work/repo" bare="$work/git/gitops.git"
  local g=(git -c user.name=gitops-quickstart -c user.email=gitops-quickstart@localhost -c commit.gpgsign=false)
  [[ -d $bare ]] || "${g[@]}" init -q --bare -b main "$bare"
  [[ -d $wc/.git ]] || "${g[@]}" init -q -b main "$wc"
  mkdir -p "$wc/apps"
  cat >"$wc/apps/namespace.yaml" <<'YAML'
apiVersion: v1
kind: Namespace
metadata:
  name: demo
YAML
  cat >"$wc/apps/app.yaml" <<'YAML'
apiVersion: v1
kind: ConfigMap
metadata:
  name: demo-app
  namespace: demo
data:
  message: "Deployed by Argo CD from the gitops-quickstart demo repository."
  secret: "demo/demo-credentials (unsealed by the Sealed Secrets controller)"
YAML
  tf output -raw sealed_secret >"$wc/apps/sealed-secret.yaml"
  "${g[@]}" -C "$wc" add -A
  if ! "${g[@]}" -C "$wc" rev-parse -q --verify HEAD >/dev/null || ! "${g[@]}" -C "$wc" diff --cached --quiet; then
    "${g[@]}" -C "$wc" commit -q -m "demo app and SealedSecret for the gitops quickstart"
  fi
  "${g[@]}" -C "$wc" push -q "$bare" main
}

# --- Main ----------------------------------------------------------------------------------------

mkdir -p "$tfdir"
cp "$root"/examples/gitops-quickstart/*.tf "$tfdir/"
[[ -f "$work/id_ed25519" ]] || ssh-keygen -q -t ed25519 -N '' -C gitops-quickstart -f "$work/id_ed25519"
export TF_VAR_ssh_private_key
TF_VAR_ssh_private_key=$(cat "$work/id_ed25519")
vars=(-var "name=$name" -var "cidr=$cidr" -var "git_port=$port" -var "image_dir=$image_dir"
  -var "accelerator=${KVM_ACCELERATOR:-qemu}" -var "agent_count=${KVM_GITOPS_AGENTS:-0}"
  -var "server_memory=${KVM_GITOPS_SERVER_MEMORY:-4GiB}" -var "ssh_public_key=$(cat "$work/id_ed25519.pub")")
# A new provider build has a new checksum: drop the old lock so init records it afresh.
rm -f "$tfdir/.terraform.lock.hcl"
tf init -input=false -upgrade -no-color >/dev/null

if [[ $cmd == destroy ]]; then
  stop_server
  tf destroy -input=false -auto-approve -no-color "${vars[@]}"
  rm -rf "$work/git" "$work/repo" "$work/kubeconfig"
  exit 0
fi

decide
vars+=(-var "bootstrap=$mode")
[[ $mode != airgap ]] || vars+=(-var "artifacts_dir=$KVM_GITOPS_ARTIFACTS" -var "k3s_images=$k3s_images")
log "bootstrap: $mode"

# The machines, the key and the sealed secret first: the repository needs the secret, and the
# cluster needs the repository served.
if [[ $mode == none ]]; then
  tf apply -input=false -auto-approve -no-color "${vars[@]}"
else
  tf apply -input=false -auto-approve -no-color "${vars[@]}" \
    -target=kvm_instance.server -target=kvm_instance.agent -target=kvm_sealed_secret.demo
fi
tf output -raw known_hosts >"$work/known_hosts"
demo_repo
serve
server_ip=$(tf output -raw server_ip)
ssh_cmd="ip netns exec $ns ssh -i $work/id_ed25519 -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$work/known_hosts root@$server_ip"
repo_url=$(tf output -raw repo_url)
echo
echo "gitops: machines up: $(grep -c . "$work/known_hosts") node(s); server: $ssh_cmd"
echo "gitops: demo repository $repo_url (branch main, path apps/), commit $(git -C "$work/repo" rev-parse --short HEAD), served from $work/git"

if [[ $mode == none ]]; then
  echo "gitops: stopped after the VMs: $why"
  exit 0
fi

tf apply -input=false -auto-approve -no-color "${vars[@]}"
(
  umask 077
  tf output -raw kubeconfig >"$work/kubeconfig"
)
# The SealedSecret from Git, unsealed by the controller into a Secret (Argo CD reported the root
# in sync when the apply returned; the controller may need a moment more).
on_server() { in_ns ssh -i "$work/id_ed25519" -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=10 -o UserKnownHostsFile="$work/known_hosts" "root@$server_ip" "$@"; }
unsealed=""
for ((i = 0; i < 60; i++)); do
  unsealed=$(on_server "k3s kubectl -n demo get secret demo-credentials -o jsonpath='{.data.password}'" 2>/dev/null || true)
  [[ -n $unsealed ]] && break
  sleep 5
done
[[ -n $unsealed ]] || die "Argo CD synced but the Secret demo/demo-credentials did not appear within 5 minutes"
synced=$(on_server "k3s kubectl -n argocd get applications.argoproj.io root -o jsonpath='{range .status.resources[*]}{.kind}/{.name} {end}'")
echo "gitops: Argo CD: $(tf output -raw sync_status); synced: ${synced% }"
echo "gitops: Secret demo/demo-credentials unsealed from the SealedSecret in Git"
echo "gitops: kubeconfig: $work/kubeconfig (API at https://$server_ip:6443, reachable inside network namespace $ns: ip netns exec $ns kubectl --kubeconfig $work/kubeconfig get nodes)"
