#!/usr/bin/env bash
# `ferry up --dry-run` with a schema step (up.sql) pending before a data
# migration that reads what it creates: the dry run applies no up.sql, so
# the data migration's dry run fails on a missing table or column.  Found
# by an author's test: the error said only 'column c.message_count does
# not exist'; it now says which pending schema step this dry run did not
# apply and what to do.  Other failures, and a dry run with no schema step
# before, get no such advice.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_dry_pending_schema)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_base/up.sql" 'CREATE TABLE src (id int PRIMARY KEY);'
put "$D/migrations/20250102_stats_1_table/up.sql" 'CREATE TABLE stats_t (id int PRIMARY KEY, n int);'
put "$D/migrations/20250102_stats_2_col/up.sql" 'ALTER TABLE src ADD COLUMN n int;'
put "$D/migrations/20250102_stats_3_fill/up.lua" 'local r = db.one("SELECT count(*) AS c FROM stats_t")
local s = db.one("SELECT count(n) AS c FROM src")'

run_ferry --dir "$D" up --to 20250101
is "$RC" 0 "the base table"

HINT='; this dry run applied nothing of 20250102_stats_1_table, 20250102_stats_2_col before it (a dry run runs no up.sql): apply them first: ferry up --to 20250102_stats_2_col (which also runs what is pending before it), then dry-run this one'
run_ferry --dir "$D" up --dry-run
is "$RC|$ERR" "1|ferry: migrations/20250102_stats_3_fill/up.lua:1: query failed: relation \"stats_t\" does not exist [SQLSTATE 42P01]$HINT" \
   "up --dry-run: a missing table of a schema step pending before it: names the steps and what to do"
# (--json: a program driving ferry shows its "error" to its user, so the
# advice is there too, in the command's and in the migration's)
J=$(cd "$D" && "$FERRY" --json up --dry-run 2>/dev/null)
is "$(json_eval "$J" 'j["error"]')|$(json_eval "$J" 'j["migrations"][2]["error"]')" \
   "migrations/20250102_stats_3_fill/up.lua:1: query failed: relation \"stats_t\" does not exist [SQLSTATE 42P01]$HINT|migrations/20250102_stats_3_fill/up.lua:1: query failed: relation \"stats_t\" does not exist [SQLSTATE 42P01]$HINT" \
   "...--json's error, the command's and the migration's, carries the same advice"

run_ferry --dir "$D" run 20250102_stats_3_fill --dry-run
is "$RC|$ERR" "1|ferry: migrations/20250102_stats_3_fill/up.lua:1: query failed: relation \"stats_t\" does not exist [SQLSTATE 42P01]; 20250102_stats_1_table, 20250102_stats_2_col, schema steps before it, are not applied here (ferry run runs only the migration it is given): apply them first: ferry up --to 20250102_stats_2_col (which also runs what is pending before it), then dry-run this one again" \
   "run --dry-run, two schema steps pending before it: names both (see below)"

run_ferry --dir "$D" up --to 20250102_stats_1_table
run_ferry --dir "$D" up --dry-run
is "$RC|$ERR" "1|ferry: migrations/20250102_stats_3_fill/up.lua:2: query failed: column \"n\" does not exist [SQLSTATE 42703]; this dry run applied nothing of 20250102_stats_2_col before it (a dry run runs no up.sql): apply it first: ferry up --to 20250102_stats_2_col (which also runs what is pending before it), then dry-run this one" \
   "a missing column, one step pending: names that one"

put "$D/migrations/20250102_stats_3_fill/up.lua" 'db.one("SELECT 1/0")'
run_ferry --dir "$D" up --dry-run
is "$RC|$ERR" "1|ferry: migrations/20250102_stats_3_fill/up.lua:1: query failed: division by zero [SQLSTATE 22012]" \
   "another error after a pending schema step: no advice"
run_ferry --dir "$D" run 20250102_stats_3_fill --dry-run
is "$RC|$ERR" "1|ferry: migrations/20250102_stats_3_fill/up.lua:1: query failed: division by zero [SQLSTATE 22012]" \
   "...nor from run"
put "$D/migrations/20250102_stats_3_fill/up.lua" 'local r = db.one("SELECT count(*) AS c FROM stats_t")
local s = db.one("SELECT count(n) AS c FROM src")'

# `ferry run` runs only the migration it is given: an author who runs the
# fill (dry or not) before its schema step is told which step is not
# applied (found writing a Batch 6: the error named only the table)
RUN_HINT='; 20250102_stats_2_col, a schema step before it, is not applied here (ferry run runs only the migration it is given): apply it first: ferry up --to 20250102_stats_2_col (which also runs what is pending before it), then'
run_ferry --dir "$D" run 20250102_stats_3_fill --dry-run
is "$RC|$ERR" "1|ferry: migrations/20250102_stats_3_fill/up.lua:2: query failed: column \"n\" does not exist [SQLSTATE 42703]$RUN_HINT dry-run this one again" \
   "run --dry-run of the data migration alone, its schema step pending: names it and what to do"
run_ferry --dir "$D" run 20250102_stats_3_fill
is "$RC|$ERR" "1|ferry: migrations/20250102_stats_3_fill/up.lua:2: query failed: column \"n\" does not exist [SQLSTATE 42703]$RUN_HINT run this one again" \
   "run of it, not dry: the same advice"
is "$(json_eval "$(cd "$D" && "$FERRY" --json run 20250102_stats_3_fill --dry-run 2>/dev/null)" 'j["error"]')" \
   "migrations/20250102_stats_3_fill/up.lua:2: query failed: column \"n\" does not exist [SQLSTATE 42703]$RUN_HINT dry-run this one again" \
   "...--json's error carries the same advice (as up's does)"
run_ferry --dir "$D" up --to 20250102_stats_2_col
put "$D/migrations/20250102_stats_3_fill/up.lua" 'db.one("SELECT count(*) AS c FROM no_such_table")'
run_ferry --dir "$D" run 20250102_stats_3_fill --dry-run
is "$RC|$ERR" "1|ferry: migrations/20250102_stats_3_fill/up.lua:1: query failed: relation \"no_such_table\" does not exist [SQLSTATE 42P01]" \
   "every schema step before it applied: the error as it is"

done_testing
