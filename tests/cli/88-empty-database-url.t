#!/usr/bin/env bash
# DATABASE_URL set but empty -- a variable or a CI secret not filled in
# (`DATABASE_URL: ${{ secrets.X }}` with X missing) -- is no connection
# string: ferry used to take it for unset and connect where libpq's PG*
# variables point, another database than the one meant, with no word of
# it (as `--db ""` would have, which is a usage error: cli/10).  A command
# that connects now refuses, exit 2, one line, nothing written anywhere;
# one that needs no database (check, new) works as before, and --db
# given, or DATABASE_URL unset, connect as they always did.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_empty_url)
D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_alpha/up.sql" 'CREATE TABLE alpha (x int);'
# the PG* variables lead to that same database: where ferry would have gone
export PGDATABASE=ferry_empty_url
WANT="ferry: cannot connect to the database: DATABASE_URL is set but empty (a variable or a secret not filled in?): give it a connection string, or give --db; unset it to connect where libpq's PG* variables say"

for cmd in "status" "up" "up --dry-run" "run alpha" "history" "baseline 20250101"; do
    # shellcheck disable=SC2086  # (the command's words)
    DATABASE_URL= run_ferry --dir "$D" $cmd
    is "$RC|$OUT|$ERR" "2||$WANT" "DATABASE_URL='' ferry $cmd: exit 2, one line"
done
is "$(psql_val "$db" "SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry'")|$(psql_val "$db" "SELECT to_regclass('alpha') IS NULL")" \
   "0|t" "...nothing written: no ferry schema, no table alpha"

DATABASE_URL= run_ferry --json --dir "$D" status
is "$RC|$OUT" "2|{\"ok\":false,\"error\":\"${WANT#ferry: }\"}" \
   "--json: the same line as the object's error, exit 2"

# what needs no database works as before
DATABASE_URL= run_ferry --dir "$D" check
is "$RC|$ERR" "0|" "DATABASE_URL='' ferry check: exit 0 (no database)"

# --db given wins over the empty variable; the variable unset is libpq's PG*
DATABASE_URL= run_ferry --dir "$D" --db "$db" status
is "$RC|$ERR" "0|" "DATABASE_URL='' with --db: connects to --db"
env -u DATABASE_URL "$FERRY" --dir "$D" status >/dev/null 2>"$TAP_TMPDIR/unset.err"
is "$?|$(cat "$TAP_TMPDIR/unset.err")" "0|" "DATABASE_URL unset: the PG* variables, as before"
done_testing
