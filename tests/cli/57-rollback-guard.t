#!/usr/bin/env bash
# A rollback undoes what ferry did on this database.  It refuses, before
# anything is written (exit 2), to undo what ferry did not do -- unless
# told to with --force:
# - a migration recorded applied by `ferry baseline` (the database had it
#   before ferry: a schema step's rollback.sql would drop a live schema);
# - a migration ferry has no record of on this database, or a schema step
#   whose runs all failed (an up.sql that fails commits nothing);
# - a folder that looks like an applied migration renamed: what that one
#   wrote is recorded under its old id (a data migration's rows are tagged
#   with it), so the rollback belongs to the old name.
# A migration ferry applied or rolled back, or a data migration whose run
# failed (its committed batches stay), is rolled back as before.  validate refuses a renamed folder too: its checks
# would look for what the old id wrote and pass over nothing.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_t/up.sql" 'CREATE TABLE t (x int, tag text);'
put "$D/migrations/20250101_t/rollback.sql" 'DROP TABLE t;'
put "$D/migrations/20250102_d/up.lua" 'db.exec("INSERT INTO t VALUES (1, $1), (2, $1)", ctx.migration)'
put "$D/migrations/20250102_d/rollback.sql" "DELETE FROM t WHERE tag = '20250102_d';"
put "$D/migrations/20250102_d/validate.lua" 'check("rows", function()
  local n = db.one("SELECT count(*) AS n FROM t WHERE tag = $1", ctx.migration).n
  return n > 0, n .. " rows"
end)'
tables() { psql_val "$1" "SELECT coalesce(string_agg(tablename, ' ' ORDER BY tablename), '-') FROM pg_tables WHERE schemaname = 'public'"; }
rows() { psql_val "$1" "SELECT coalesce(string_agg(x || ':' || tag, ' ' ORDER BY x), '-') FROM t"; }

# ------------------------------------------------------------ baselined
db=$(fresh_db ferry_cli_rollback_guard)
export DATABASE_URL=$db
psql_val "$db" "CREATE TABLE t (x int, tag text); INSERT INTO t VALUES (7, 'live')" >/dev/null
run_ferry --dir "$D" -q baseline 20250101
is "$RC|$ERR" "0|" "baseline 20250101: the database had its table"
based=$(psql_val "$db" "SELECT to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                        FROM ferry.history WHERE migration = '20250101_t'")
run_ferry --dir "$D" rollback 20250101
is "$RC|$OUT|$ERR" "2||ferry: 20250101_t was recorded as applied by 'ferry baseline' at $based, not run by ferry here: its rollback would undo what the database had before ferry. To roll it back all the same: ferry rollback 20250101_t --force" \
   "rollback of a baselined migration: refused, exit 2, one line saying why and how"
is "$(tables "$db")|$(rows "$db")" "t|7:live" "...nothing dropped"
is "$(psql_val "$db" "SELECT count(*) FROM ferry.history WHERE operation = 'rollback'")" 0 "...nothing recorded"
run_ferry --dir "$D" --json rollback 20250101
is "$RC|$OUT" "2|{\"ok\":false,\"error\":\"20250101_t was recorded as applied by 'ferry baseline' at $based, not run by ferry here: its rollback would undo what the database had before ferry. To roll it back all the same: ferry rollback 20250101_t --force\"}" \
   "...the same with --json"

# ------------------------------------------------------------ never run here
db2=$(fresh_db ferry_cli_rollback_guard2)
export DATABASE_URL=$db2
psql_val "$db2" "CREATE TABLE t (x int, tag text)" >/dev/null
run_ferry --dir "$D" rollback 20250101
is "$RC|$OUT|$ERR" "2||ferry: ferry has no record of 20250101_t on this database (never run or baselined here): its rollback would undo what ferry did not do. To roll it back all the same: ferry rollback 20250101_t --force" \
   "rollback of a migration ferry never ran here: refused"
is "$(tables "$db2")" "t" "...nothing dropped"
run_ferry --dir "$D" rollback 20250101 --force
is "$RC|$ERR" "0|note: 20250101_t is not recorded as applied; running its rollback anyway" "--force: it runs, with the note"
is "$(tables "$db2")" "-" "...the table is dropped"

# ------------------------------------------------------------ a schema step whose runs failed
# (an up.sql commits nothing when it fails: what is there is the database's own)
db4=$(fresh_db ferry_cli_rollback_guard4)
export DATABASE_URL=$db4
psql_val "$db4" "CREATE TABLE t (x int, tag text); INSERT INTO t VALUES (7, 'live')" >/dev/null
run_ferry --dir "$D" -q up --to 20250101
is "$RC" 1 "up of a step whose table exists: fails"
run_ferry --dir "$D" rollback 20250101
is "$RC|$OUT|$ERR" "2||ferry: ferry never applied 20250101_t on this database (its runs failed, and a schema step that fails commits nothing): its rollback would undo what the database had before ferry. To roll it back all the same: ferry rollback 20250101_t --force" \
   "rollback of a schema step whose runs all failed: refused"
is "$(tables "$db4")|$(rows "$db4")" "t|7:live" "...nothing dropped"
export DATABASE_URL=$db

# ------------------------------------------------------------ --force on the baselined one
export DATABASE_URL=$db
run_ferry --dir "$D" -q rollback 20250101 --force
is "$RC|$ERR" "0|" "--force: the baselined migration is rolled back"
is "$(tables "$db")" "-" "...its table dropped"
run_ferry --dir "$D" status
like "$OUT" "20250101_t +rolled back" "...and it is recorded rolled back"

# ------------------------------------------------------------ what ferry ran
db3=$(fresh_db ferry_cli_rollback_guard3)
export DATABASE_URL=$db3
run_ferry --dir "$D" -q up
is "$RC|$ERR" "0|" "up: both applied"
run_ferry --dir "$D" -q rollback 20250102
is "$RC|$ERR|$(rows "$db3")" "0||-" "rollback of an applied migration: as before"
run_ferry --dir "$D" rollback 20250102
is "$RC|$ERR" "0|note: 20250102_d is not recorded as applied; running its rollback anyway" \
   "again, after its rollback: ferry ran it here, so it runs, with the note"
run_ferry --dir "$D" -q run 20250102
is "$RC|$(rows "$db3")" "0|1:20250102_d 2:20250102_d" "run it again"

# ------------------------------------------------------------ renamed
mv "$D/migrations/20250102_d" "$D/migrations/20250102_data"
applied=$(psql_val "$db3" "SELECT to_char(max(finished_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                           FROM ferry.history WHERE migration = '20250102_d' AND status = 'applied'")
RENAMED="20250102_data looks like 20250102_d renamed (same version and scripts; 20250102_d was applied at $applied and its folder is gone)"
run_ferry --dir "$D" rollback 20250102_data
is "$RC|$OUT|$ERR" "2||ferry: $RENAMED: what 20250102_d did is recorded under that id, and its rollback belongs to it. Rename the folder back to 20250102_d and 'ferry rollback 20250102_d'; or, to run this folder's rollback all the same: ferry rollback 20250102_data --force" \
   "rollback of a renamed folder: refused, naming the old id"
is "$(rows "$db3")" "1:20250102_d 2:20250102_d" "...its rows are there"
run_ferry --dir "$D" validate 20250102_data
is "$RC|$OUT|$ERR" "2||ferry: $RENAMED: what 20250102_d did is recorded under that id, and its checks look for it. Rename the folder back to 20250102_d and 'ferry validate 20250102_d'" \
   "validate of a renamed folder: refused (its checks would pass over nothing)"
run_ferry --dir "$D" up
is "$RC|$OUT|$ERR" "2||ferry: $RENAMED: not run a second time. Rename the folder back to 20250102_d (a data migration is known by its id: its runs, resume point and checks go by it, and so may the rows it wrote, through ctx.migration); or, if it is a different migration, give it a new version" \
   "up of a renamed data migration: the way out is its old name (no baseline under the new one)"
mv "$D/migrations/20250102_data" "$D/migrations/20250102_d"
run_ferry --dir "$D" -q validate 20250102
is "$RC|$ERR" "0|" "renamed back: validate passes"

# --force belongs to rollback
run_ferry --dir "$D" up --force
is "$RC|$ERR" "2|ferry: --force does not apply to 'up'" "--force with another command: usage error"

done_testing
