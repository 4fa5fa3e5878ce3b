#!/usr/bin/env bash
# ferry.history there, ferry.checkpoint not (dropped by hand: it is empty
# most of the time; a dump or restore of the history table alone): ferry
# took the bookkeeping for absent, so status showed every migration
# pending, history "no runs recorded", validate "ferry has no record of
# it", and a dry run advised 'ferry baseline' over migrations it had
# applied itself.  The history is read as it is, the resume points as
# none; the first command that writes makes the checkpoint table again.
# And a schema ferry whose history table is not ferry's (another
# application's schema of that name): said so, exit 2 -- status showed
# every migration pending, and up failed on "column migration does not
# exist", exit 1.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_checkpoint_gone)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_items/up.sql" 'CREATE TABLE items (n int PRIMARY KEY);'
put "$D/migrations/20250102_fill/up.lua" 'for n = (ctx.checkpoint.get() or 0) + 1, 3 do
  db.transaction(function() db.exec("INSERT INTO items VALUES ($1) ON CONFLICT DO NOTHING", n); ctx.checkpoint.save(n) end)
  stats.inc("rows_created")
end'
put "$D/migrations/20250102_fill/validate.lua" 'check("three items", db.one("SELECT count(*)::int AS c FROM items").c == 3)'

run_ferry --dir "$D" -q up
is "$RC" 0 "up applies both"
psql_val "$db" "DROP TABLE ferry.checkpoint" >/dev/null

run_ferry --dir "$D" status
is "$RC|$(norm_times "$OUT")|$ERR" "0|$STATUS_HEADER
$(status_line 20250101_items applied "$TS" ok)
$(status_line 20250102_fill applied "$TS" ok)|" "status: both applied, as the history says"
run_ferry --dir "$D" --json status
is "$RC|$(json_eval "$OUT" '[m["status"] + " " + str(m["checkpoint"]) for m in j["migrations"]]')" \
   '0|["applied False","applied False"]' "status --json: the same, no resume point"
run_ferry --dir "$D" history
is "$RC|$(norm_times "$OUT" | sed -E 's/[0-9]+\.[0-9]{2} s/N s/')" "0|STARTED AT            MIGRATION                                     OPERATION STATUS       TIME
$TS  20250101_items                                up        applied      N s
$TS  20250102_fill                                 up        applied      N s
    rows_created 3" "history: the runs recorded"
run_ferry --dir "$D" validate 20250102
is "$RC|$OUT|$ERR" "0|==> validating 20250102_fill
✓ PASS three items
1 check(s), 0 failed|" "validate: applied, no 'not applied' note"
run_ferry --dir "$D" up --dry-run
is "$RC|$OUT|$ERR" "0|Nothing to do: every migration is applied.|" "up --dry-run: nothing to do, no advice to baseline"
is "$(psql_val "$db" "SELECT to_regclass('ferry.checkpoint') IS NULL")" "t" "...and the read-only commands made nothing"

# the first command that writes makes it again, and runs as usual
run_ferry --dir "$D" run 20250102
is "$RC|$ERR" "0|" "run: exit 0, nothing on stderr (no server NOTICE that the history table or its index already exists)"
is "$(psql_val "$db" "SELECT to_regclass('ferry.checkpoint') IS NOT NULL")" "t" "...the checkpoint table is made again"
is "$(history "$db")" "20250101_items|up|applied
20250102_fill|up|applied
20250102_fill|run|applied" "...and the run recorded"

db2=$(fresh_db ferry_cli_foreign_history)
psql_val "$db2" "CREATE SCHEMA ferry; CREATE TABLE ferry.history (trip int, port text)" >/dev/null
foreign="ferry.history is not the table ferry makes (another application's, in a schema of the same name?): ferry keeps its history and checkpoints in the schema ferry, which must be its own"
for c in status history up "up --dry-run" "run 20250101"; do
    # shellcheck disable=SC2086
    run_ferry --db "$db2" --dir "$D" $c
    is "$RC|$OUT|${ERR#*"[SQLSTATE 42703]; "}" "2||$foreign" "a foreign ferry.history: $c says so, exit 2"
    like "$ERR" "^ferry: cannot (read|create) ferry's history \(schema ferry\): column [a-z.]+ does not exist \[SQLSTATE 42703\]; " \
         "...after the server's words"
done
is "$(psql_val "$db2" "SELECT count(*) FROM pg_tables WHERE schemaname = 'ferry'")|$(psql_val "$db2" "SELECT to_regclass('items') IS NULL")" \
   "1|t" "...and nothing was made or run"

done_testing
