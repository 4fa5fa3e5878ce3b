#!/usr/bin/env bash
# A database that already has what a migration creates (set up without
# ferry: from a schema dump, the contract schema) makes its up fail with
# the server's "already exists"; the error then says how to record what the
# database has (ferry baseline) -- only for a migration not applied yet,
# only for the "already exists" errors, and only for a schema step (up.sql).
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_existing)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_t/up.sql" 'CREATE TABLE t (x int);'
put "$D/migrations/20250102_col/up.sql" 'ALTER TABLE t ADD COLUMN y int;'
put "$D/migrations/20250103_u/up.sql" 'CREATE TABLE u (z int);'
psql_val "$db" "CREATE TABLE t (x int, y int)" >/dev/null

HINT="; the database already has what this migration creates: if it was set up without ferry (from a schema dump), record the migrations it already has as applied with 'ferry baseline VERSION' (the version of the last migration it has: 'ferry status' lists them), then run 'ferry up' again"

run_ferry --dir "$D" up
is "$RC" 1 "up on a database that has the table already: exit 1"
is "$ERR" "ferry: migrations/20250101_t/up.sql: script failed: relation \"t\" already exists [SQLSTATE 42P07]$HINT" \
   "...the server's error, then how to record what the database has"

run_ferry --dir "$D" --json up
is "$RC" 1 "the same with --json: exit 1"
is "$(json_eval "$OUT" 'j["migrations"][0]["error"]')" "migrations/20250101_t/up.sql: script failed: relation \"t\" already exists [SQLSTATE 42P07]" \
   "...its result's error is the server's"
is "$ERR" "ferry: migrations/20250101_t/up.sql: script failed: relation \"t\" already exists [SQLSTATE 42P07]$HINT" \
   "...and stderr has the same line with the advice"

# a column that exists (42701), on a migration run by itself
run_ferry --dir "$D" run 20250102
is "$RC|$ERR" "1|ferry: migrations/20250102_col/up.sql: script failed: column \"y\" of relation \"t\" already exists [SQLSTATE 42701]$HINT" \
   "run of a pending migration whose column exists: the same advice"

# the way out it gives
run_ferry --dir "$D" baseline 20250102
is "$RC" 0 "ferry baseline 20250102"
run_ferry --dir "$D" up
is "$RC" 0 "then ferry up applies the rest"
is "$(psql_val "$db" "SELECT to_regclass('u') IS NOT NULL")" "t" "...u is there"

# an applied migration run again: no advice to baseline it
run_ferry --dir "$D" run 20250103
is "$RC|$ERR" "1|ferry: migrations/20250103_u/up.sql: script failed: relation \"u\" already exists [SQLSTATE 42P07]" \
   "running an applied schema step again: the server's error alone"

# a data migration (up.lua) meeting "already exists": no advice to baseline
# it (that would skip its rows)
put "$D/migrations/20250105_data/up.lua" 'db.exec("CREATE TABLE t (x int)")'
run_ferry --dir "$D" run 20250105
is "$RC|$ERR" "1|ferry: migrations/20250105_data/up.lua:1: query failed: relation \"t\" already exists [SQLSTATE 42P07]" \
   "a data migration: the error alone"
rm -r "$D/migrations/20250105_data"

# another error: no advice
put "$D/migrations/20250104_bad/up.sql" 'CREATE TABLE v (w nosuchtype);'
run_ferry --dir "$D" up
is "$RC|$ERR" "1|ferry: migrations/20250104_bad/up.sql:1: script failed: type \"nosuchtype\" does not exist [SQLSTATE 42704]" \
   "another error: the server's error alone"

done_testing
