#!/usr/bin/env bash
# Benchmarks of kvm-state-server, every figure beside its baseline from the same run:
#   * lock + POST (100 KiB) + unlock cycles with 1, 16 and 64 clients on SQLite and PostgreSQL,
#     against the SQL that Terraform's own pg backend runs for the same cycle;
#   * terraform apply of 200 null_resource with the server as http backend vs Terraform's pg
#     backend on the same PostgreSQL.
# Starts a throw-away PostgreSQL on loopback (scripts/postgres.sh). Results on stdout and in
# state-server/benches/results.json.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/lib.sh"
source "$here/../../scripts/postgres.sh"
root=$(repo_root)
setup_tools
pgdir=$(mktemp -d /tmp/kvm-bench-pg.XXXXXX)
trap 'stop_postgres; rm -rf "$pgdir"' EXIT
start_postgres "$pgdir"
KVM_BENCH_OUT="$root/state-server/benches/results.json" \
  cargo bench --locked -p kvm-state-server --bench state_server --manifest-path "$root/Cargo.toml"
