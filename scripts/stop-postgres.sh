#!/usr/bin/env bash
# Stops the test cluster started by start-postgres.sh, if it is running.
set -euo pipefail
. "$(dirname "$0")/pg-common.sh"

if [ -d "$pg_data" ] && as_pg "$pg_bin/pg_ctl" -D "$pg_data" status >/dev/null 2>&1; then
    as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null
fi
