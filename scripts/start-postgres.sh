#!/usr/bin/env bash
# Starts (or finds running) a throwaway PostgreSQL cluster for the tests and prints its URL.
# It listens on 127.0.0.1 only, trusts every local connection and keeps nothing worth keeping,
# so durability is switched off for speed. Stop it with scripts/stop-postgres.sh.
set -euo pipefail
. "$(dirname "$0")/pg-common.sh"

database=reservoir_test
role=reservoir

mkdir -p "$pg_dir"
[ "$pg_user" = "$(id -un)" ] || chown "$pg_user" "$pg_dir"
# Two runs starting at once must not both initialise or start the cluster.
exec 9>"$pg_dir/lock"
flock 9

port_free() {
    python3 -c 'import socket, sys; s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}

if ! as_pg "$pg_bin/pg_ctl" -D "$pg_data" status >/dev/null 2>&1; then
    if [ ! -s "$pg_data/PG_VERSION" ]; then
        rm -rf "$pg_data"
        as_pg "$pg_bin/initdb" -D "$pg_data" -U "$role" -A trust -E UTF8 --locale=C.UTF-8 \
            >"$pg_dir/initdb.log" 2>&1 || { cat "$pg_dir/initdb.log" >&2; exit 1; }
    fi
    port=55432
    if ! port_free "$port"; then
        port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    fi
    echo "$port" >"$pg_dir/port"
    # No Unix socket: its path could exceed the length limit, and TCP on loopback is all we use.
    as_pg "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_dir/server.log" -w -t 60 start -o \
        "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories= \
         -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        >/dev/null 9>&- || { tail -n 20 "$pg_dir/server.log" >&2; exit 1; }
fi
port=$(cat "$pg_dir/port")

psql=("$pg_bin/psql" -X -q -h 127.0.0.1 -p "$port" -U "$role" -d postgres -v ON_ERROR_STOP=1)
if [ -z "$("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = '$database'")" ]; then
    "${psql[@]}" -c "CREATE DATABASE $database"
fi
echo "postgresql+psycopg://$role@127.0.0.1:$port/$database"
