#!/usr/bin/env bash
# scripts/with-pg.sh CMD [ARGS...] - run CMD against a private PostgreSQL 15.
#
# If DATABASE_URL is already set, CMD just runs with the environment as it is.
# Otherwise a throwaway cluster is started in build/pg (scripts/pg.sh), its
# PGHOST/PGPORT/PGUSER/PGDATABASE/FERRY_PG_TCP_PORT/DATABASE_URL are exported,
# CMD runs, and the cluster is stopped and removed when this script exits
# (also on failure or interrupt).  The exit code is CMD's.
#
# If another with-pg.sh already owns build/pg (parallel make), this one uses
# its own build/pg.XXXXXX instead.  FERRY_PG_DIR overrides build/pg.
# build/pg.lock is the lock file marking who owns build/pg.
set -uo pipefail

if [ $# -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

if [ -n "${DATABASE_URL:-}" ]; then
    exec "$@"
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
PG=$ROOT/scripts/pg.sh

PGDIR=${FERRY_PG_DIR:-$ROOT/build/pg}
PGDIR=${PGDIR%/}
mkdir -p "$(dirname "$PGDIR")" || exit 1
# PGDIR.lock marks PGDIR as owned by this run; held until we exit.
if exec 8>>"$PGDIR.lock" && ! flock -n 8; then
    PGDIR=$(mktemp -d "$PGDIR.XXXXXX") || exit 1
fi 2>/dev/null

cleanup() {
    trap '' INT TERM HUP
    bash "$PG" stop "$PGDIR" --clean 8>&- ||
        echo "with-pg.sh: warning: could not stop the cluster in $PGDIR" >&2
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

bash "$PG" start "$PGDIR" 8>&- || exit 1
pgenv=$(bash "$PG" env "$PGDIR") || exit 1
eval "$pgenv"

"$@" 8>&-
exit $?
