# Source this file: a throw-away PostgreSQL cluster for the test run, on loopback only.
#
#   source scripts/postgres.sh
#   start_postgres DIR      # installs PostgreSQL if missing, initdb + pg_ctl in DIR, exports KVM_TEST_PG_URL
#   stop_postgres           # stops it (safe to call twice; meant for `trap stop_postgres EXIT`)
#
# The cluster listens only on 127.0.0.1 (a free port) and on a unix socket inside DIR, so it never
# meets the system's own cluster. Password authentication (scram-sha-256) with a password made for
# this run; KVM_TEST_PG_URL carries it, so never print that variable.

# Installs the server binaries unless present (idempotent). Prints the bin directory.
_pg_bindir() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  if [[ -z "$bin" || ! -x "$bin/initdb" ]]; then
    printf '[postgres] installing the postgresql package\n' >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  fi
  printf '%s\n' "$bin"
}

# Runs a command as the cluster's owner: initdb and postgres refuse to run as root.
_pg_as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

_pg_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_postgres DIR: a new cluster in DIR (emptied first) and KVM_TEST_PG_URL pointing at it.
start_postgres() {
  local dir=${1:?usage: start_postgres DIR}
  local bin; bin=$(_pg_bindir)
  if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
  if [[ -f "$dir/data/postmaster.pid" ]]; then
    _pg_as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
  chmod 0700 "$dir"

  local password; password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
  (umask 077; printf '%s\n' "$password" >"$dir/pwfile")
  [[ $(id -u) -eq 0 ]] && chown postgres: "$dir/pwfile"
  _pg_as_owner "$bin/initdb" -D "$dir/data" -U postgres --pwfile="$dir/pwfile" \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --no-instructions >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    return 1
  }
  rm -f "$dir/pwfile"

  local port try
  for try in 1 2 3 4 5; do
    port=$(_pg_free_port)
    if _pg_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=200" \
      start >/dev/null; then
      _KVM_PG_BIN=$bin
      _KVM_PG_DIR=$dir
      export KVM_TEST_PG_URL="postgres://postgres:${password}@127.0.0.1:${port}/postgres"
      printf '[postgres] cluster in %s listening on 127.0.0.1:%s\n' "$dir" "$port" >&2
      return 0
    fi
    printf '[postgres] start on port %s failed (try %s), log:\n' "$port" "$try" >&2
    tail -n 5 "$dir/server.log" >&2 || true
  done
  return 1
}

# Stops the cluster started by start_postgres, if any.
stop_postgres() {
  if [[ -n "${_KVM_PG_DIR:-}" && -f "$_KVM_PG_DIR/data/postmaster.pid" ]]; then
    _pg_as_owner "$_KVM_PG_BIN/pg_ctl" -D "$_KVM_PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  _KVM_PG_DIR=
}
