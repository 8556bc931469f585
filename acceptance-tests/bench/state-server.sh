#!/usr/bin/env bash
# Benchmarks of kvm-state-server, every figure beside its baseline from the same run:
#   * lock + POST (100 KiB) + unlock cycles with 1, 16 and 64 clients on SQLite and PostgreSQL,
#     against the SQL that Terraform's own pg backend runs for the same cycle;
#   * terraform apply of 200 null_resource with the server as http backend vs Terraform's pg
#     backend on the same PostgreSQL.
# Starts a throw-away PostgreSQL on loopback (scripts/postgres.sh). Terraform: $TERRAFORM, else the
# one scripts/setup.sh installs (1.0.3). Results on stdout and in
# state-server/benches/results-<terraform version>.json.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/lib.sh"
source "$here/../../scripts/postgres.sh"
root=$(repo_root)
setup_tools
pgdir=$(mktemp -d /tmp/kvm-bench-pg.XXXXXX)
trap 'stop_postgres; rm -rf "$pgdir"' EXIT
start_postgres "$pgdir"
export TERRAFORM=${TERRAFORM:-$KVM_TOOLS/bin/terraform}
tf_version=$(TF_CLI_CONFIG_FILE=/dev/null "$TERRAFORM" version -json | python3 -c 'import json, sys; print(json.load(sys.stdin)["terraform_version"])')
KVM_BENCH_OUT="$root/state-server/benches/results-$tf_version.json" \
  cargo bench --locked -p kvm-state-server --bench state_server --manifest-path "$root/Cargo.toml"
