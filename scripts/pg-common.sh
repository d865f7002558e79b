# Shared by start-postgres.sh and stop-postgres.sh: where the throwaway test cluster lives and
# how to run PostgreSQL's programs, which refuse to run as root.

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$pg_bin" ]; then
    echo "PostgreSQL is not installed (run: make install)" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    pg_user=postgres
    as_pg() { runuser -u "$pg_user" -- "$@"; }
else
    pg_user=$(id -un)
    as_pg() { "$@"; }
fi

pg_dir=${RESERVOIR_PG_DIR:-$repo_root/var/pg}
# The server's user must reach the directory; a checkout under a private home may not let it.
if [ -z "${RESERVOIR_PG_DIR:-}" ] && [ "$(id -u)" -eq 0 ] &&
        ! runuser -u "$pg_user" -- test -x "$repo_root"; then
    pg_dir=$(python3 -c "import tempfile; print(tempfile.gettempdir())")/reservoir-pg-$(printf '%s' "$repo_root" | sha256sum | cut -c1-12)
fi
pg_data=$pg_dir/data
