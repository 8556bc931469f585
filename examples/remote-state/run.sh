#!/usr/bin/env bash
# Runs this example end to end on this machine, on loopback only: builds kvm-state-server, makes a
# TLS certificate, an encryption key and a users file with fresh passwords in a temporary
# directory, starts the server with server.toml, and lets Terraform use it as its backend:
# init, two applies, a plan, the versions, a restore, and the audit log.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$root/scripts/lib.sh"
setup_tools
cargo build --release --locked -p kvm-state-server --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/release/kvm-state-server"

work=$(mktemp -d)
pid=
cleanup() { [[ -n "$pid" ]] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$work/server.key" -out "$work/server.crt" 2>/dev/null
(umask 077; head -c 32 /dev/urandom >"$work/state.key")
ci_pw=$(openssl rand -hex 16)
admin_pw=$(openssl rand -hex 16)
(umask 077; cat >"$work/users.toml" <<USERS
[[user]]
name = "ci"
password_hash = "$(printf '%s\n' "$ci_pw" | "$bin" hash-password)"
grants = [{ prefix = "example", role = "write" }]

[[user]]
name = "alice"
password_hash = "$(printf '%s\n' "$admin_pw" | "$bin" hash-password)"
grants = [{ prefix = "*", role = "admin" }]
USERS
)
# The example configuration as is, except a free port.
sed 's/^listen = .*/listen = "127.0.0.1:0"/' "$here/server.toml" >"$work/server.toml"
"$bin" check-config --config "$work/server.toml"
"$bin" serve --config "$work/server.toml" >"$work/stdout" 2>"$work/server.log" &
pid=$!
for _ in $(seq 100); do grep -q listening "$work/stdout" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's/^listening on //p' "$work/stdout" | sed 's/127.0.0.1/localhost/')
echo "server at $base"

cp "$here/main.tf" "$work/main.tf"
cd "$work"
export SSL_CERT_FILE="$work/server.crt" TF_HTTP_USERNAME=ci TF_HTTP_PASSWORD="$ci_pw" TF_IN_AUTOMATION=1
export TF_CLI_CONFIG_FILE="$work/terraformrc"
cat >"$TF_CLI_CONFIG_FILE" <<RC
provider_installation {
  filesystem_mirror {
    path    = "$KVM_TOOLS/mirror"
    include = ["registry.terraform.io/hashicorp/null"]
  }
}
RC
state="$base/states/example/app"
terraform init -input=false -no-color \
  -backend-config="address=$state" -backend-config="lock_address=$state" -backend-config="unlock_address=$state" >/dev/null
terraform apply -input=false -auto-approve -no-color
terraform apply -input=false -auto-approve -no-color -var greeting=bonjour
terraform state list

curl_() { curl -sS --cacert "$work/server.crt" "$@"; echo; }
echo "--- versions"
curl_ -u "ci:$ci_pw" "$base/versions/example/app"
echo "--- restore version 1 (admin), then plan shows the change back"
curl_ -u "alice:$admin_pw" -X POST "$base/restore/example/app?version=1"
terraform plan -input=false -no-color -var greeting=bonjour | grep -E 'Plan:|greeting' || true
echo "--- audit log"
curl_ -u "alice:$admin_pw" "$base/audit?state=example&limit=5"
