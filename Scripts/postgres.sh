#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on loopback, for the MultiprocessingPostgres tests and demos.
#
#   Scripts/postgres.sh start     initdb (first time) and start; prints the connection URL
#   Scripts/postgres.sh url       prints the connection URL
#   Scripts/postgres.sh restart   pg_ctl restart -m fast (the tests use it to cut connections)
#   Scripts/postgres.sh status    exit 0 when the cluster runs
#   Scripts/postgres.sh stop      stops the cluster and deletes its data
#
# Debian's `postgresql` package (apt-get install -y postgresql). initdb refuses to run as root,
# so the cluster belongs to the `postgres` user and every server command runs through runuser.
# Trust authentication, listening on 127.0.0.1 only; the data lives under /tmp and is
# deleted by `stop`. MP_POSTGRES_PORT chooses the port (default 55432, away from the usual 5432).
set -euo pipefail

port="${MP_POSTGRES_PORT:-55432}"
root="/tmp/mp-postgres-$port"
data="$root/data"
log="$root/server.log"
url="postgres://postgres@127.0.0.1:$port/postgres"

bin_dir() {
  if [ -n "${MP_POSTGRES_BIN:-}" ]; then echo "$MP_POSTGRES_BIN"; return; fi
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$found" ] || [ ! -x "$found/initdb" ]; then
    echo "postgres.sh: no PostgreSQL server binaries (apt-get install -y postgresql)" >&2
    exit 2
  fi
  echo "$found"
}

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

running() {
  [ -f "$data/PG_VERSION" ] && as_postgres "$(bin_dir)/pg_ctl" -D "$data" status >/dev/null 2>&1
}

wait_ready() {
  local bin="$1"
  for _ in $(seq 1 100); do
    if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then return 0; fi
    sleep 0.1
  done
  echo "postgres.sh: the server did not become ready; its log:" >&2
  tail -20 "$log" >&2 || true
  exit 1
}

start() {
  local bin
  bin=$(bin_dir)
  if running; then
    wait_ready "$bin"
    echo "$url"
    return
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$root"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$root"; fi
    as_postgres "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --no-sync >"$root/initdb.log" 2>&1 || {
      cat "$root/initdb.log" >&2
      exit 1
    }
    cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$root'
max_connections = 300
shared_buffers = 128MB
log_min_messages = warning
EOF
  fi
  as_postgres "$bin/pg_ctl" -D "$data" -l "$log" -w -t 30 start >/dev/null
  wait_ready "$bin"
  echo "$url"
}

case "${1:-}" in
  start) start ;;
  url) echo "$url" ;;
  status) running ;;
  restart)
    bin=$(bin_dir)
    as_postgres "$bin/pg_ctl" -D "$data" -l "$log" -w -t 30 -m fast restart >/dev/null
    wait_ready "$bin"
    ;;
  stop)
    if running; then as_postgres "$(bin_dir)/pg_ctl" -D "$data" -w -t 30 -m fast stop >/dev/null; fi
    rm -rf "$root"
    ;;
  *)
    echo "usage: $0 start|stop|restart|status|url" >&2
    exit 64
    ;;
esac
