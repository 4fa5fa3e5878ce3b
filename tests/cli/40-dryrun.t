#!/usr/bin/env bash
# --dry-run is read-only: the session cannot write (PostgreSQL says so),
# no history row, no ferry schema, no checkpoint; and its counts are those
# of the real run that follows.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_dryrun)
export DATABASE_URL=$db
psql_val "$db" "CREATE TABLE src (id int PRIMARY KEY, v text);
INSERT INTO src SELECT g, CASE WHEN g % 4 = 0 THEN NULL ELSE 'v' || g END FROM generate_series(1, 20) g;
CREATE TABLE dst (id int PRIMARY KEY, v text);
CREATE SEQUENCE seq;" >/dev/null
snapshot() { psql_val "$db" "SELECT (SELECT count(*) FROM dst) || '|' || (SELECT last_value || ',' || is_called FROM seq) || '|' || coalesce(to_regclass('ferry.history')::text, 'no history')"; }
before=$(snapshot)
is "$before" "0|1,false|no history" "the starting state"

D=$TAP_TMPDIR/proj
mig() { put "$D/migrations/$1/up.lua" "$2"; }

# each of these tries to write in its own way; in a dry run every one must
# fail with PostgreSQL's read-only error and leave nothing behind.
mig 20250101_exec    'db.exec("INSERT INTO dst VALUES (1, $1)", "x")'
mig 20250102_txn     'db.transaction(function() db.exec("INSERT INTO dst VALUES (2, $1)", "x") end)'
mig 20250103_conn    'local c = db.connect()
c:exec("INSERT INTO dst VALUES (3, $1)", "x")'
mig 20250104_copy    'local w <close> = db.copy("COPY dst (id, v) FROM STDIN")
w:put(4, "x")
w:finish()'
mig 20250105_seq     'db.one("SELECT nextval($1) AS n", "seq")'
mig 20250106_ddl     'db.exec("CREATE TABLE sneaky (x int)")'
mig 20250107_script  'db.exec_script("INSERT INTO dst VALUES (7, NULL); INSERT INTO dst VALUES (8, NULL);")'
declare -A verb=([exec]=INSERT [txn]=INSERT [conn]=INSERT [copy]='COPY FROM' [seq]='nextval()' [ddl]='CREATE TABLE' [script]=INSERT)
for id in 20250101_exec 20250102_txn 20250103_conn 20250104_copy 20250105_seq 20250106_ddl 20250107_script; do
    run_ferry --dir "$D" run "$id" --dry-run
    is "$RC" 1 "dry run of a writing script ($id): exit 1"
    like "$ERR" "^ferry: .*cannot execute ${verb[${id#*_}]//(/\\(} in a read-only transaction" \
         "$id: PostgreSQL's read-only error"
    is "$(snapshot)" "$before" "$id: nothing written, no history"
done
is "$(psql_val "$db" "SELECT to_regclass('sneaky') IS NULL")" "t" "no table was created"

# up --dry-run: same, and it stops at the first failure
run_ferry --dir "$D" up --dry-run
is "$RC" 1 "up --dry-run with a writing script: exit 1"
like "$ERR" 'ferry: .*cannot execute INSERT in a read-only transaction \[SQLSTATE 25006\]' "up --dry-run: read-only error"
is "$(snapshot)" "$before" "up --dry-run: nothing written"
rm -rf "$D/migrations"

# --- an up.sql in a dry run is not run at all
put "$D/migrations/20250101_sql/up.sql" 'INSERT INTO dst VALUES (100, NULL);'
run_ferry --dir "$D" up --dry-run
is "$RC|$ERR" "0|" "up --dry-run of an up.sql: exit 0"
like "$OUT" $'^==> 20250101_sql \\(dry run\\)\n   \\[DRY RUN\\] Would run migrations/20250101_sql/up.sql in one transaction\n\u2713 20250101_sql dry run finished in' \
     "up.sql in a dry run: says what it would run"
is "$(snapshot)" "$before" "up.sql in a dry run: nothing written"

# --- a well-behaved data migration: the dry run's counts equal the real run's
put "$D/migrations/20250102_copy/up.lua" 'stats.declare{"seen", "copied", "skipped"}
local batch = {}
for r in db.rows("SELECT id, v FROM src WHERE id > $1 ORDER BY id", ctx.checkpoint.get() or 0) do
  stats.inc("seen")
  if r.v == nil then
    stats.inc("skipped")
  elseif r.id == 13 then
    stats.error(r.id, "thirteen is unlucky")
  else
    batch[#batch + 1] = {r.id, r.v}
  end
end
stats.inc("copied", #batch)
if not ctx.dry_run then
  db.transaction(function()
    db.copy_rows("COPY dst (id, v) FROM STDIN", batch)
    ctx.checkpoint.save(20)   -- with the counters so far, in the same transaction
  end)
end
'
run_ferry --dir "$D" --json up --dry-run
is "$RC" 1 "up --dry-run with a row error: exit 1"
dry=$(json_eval "$OUT" '[[m["migration"], m["mode"], m["ok"], m["stats"], m["errors"]] for m in j["migrations"]]')
is "$dry" '[["20250101_sql","dry-run",true,{},[]],["20250102_copy","dry-run",false,{"seen":20,"copied":14,"skipped":5,"errors":1},[{"key":"13","message":"thirteen is unlucky"}]]]' \
   "up --dry-run --json: the counts"
is "$(snapshot)" "$before" "...and nothing written"

run_ferry --dir "$D" --json up
is "$RC" 1 "the real run: exit 1 (the same row error)"
real=$(json_eval "$OUT" '[[m["migration"], m["mode"], m["ok"], m["stats"], m["errors"]] for m in j["migrations"]]')
is "${real//\"apply\"/\"dry-run\"}" "$dry" "the real run reports exactly the dry run's counts"
is "$(psql_val "$db" "SELECT count(*) FROM dst")" "15" "the real run wrote (14 copied + the up.sql row)"

# a dry run on a database that has history adds no row and keeps the checkpoint
n=$(psql_val "$db" "SELECT count(*) || '|' || coalesce((SELECT position::text FROM ferry.checkpoint WHERE migration = '20250102_copy'), 'none') FROM ferry.history")
is "$n" "2|none" "history has two rows; a run with a row error leaves no checkpoint past it"
run_ferry --dir "$D" --json run 20250102_copy --dry-run
is "$RC" 1 "a dry run after the failed run: exit 1 (the earlier row error is kept)"
is "$(json_eval "$OUT" '[j["mode"], j["stats"], j["errors"]]')" \
   '["dry-run",{"seen":20,"copied":14,"skipped":5,"errors":1},[{"key":"13","message":"thirteen is unlucky"}]]' \
   "...with the totals of the run it resumes (counters restored from the checkpoint)"
is "$(psql_val "$db" "SELECT count(*) || '|' || coalesce((SELECT position::text FROM ferry.checkpoint WHERE migration = '20250102_copy'), 'none') FROM ferry.history")" \
   "$n" "the dry run wrote no history row and left the checkpoint alone"
is "$(psql_val "$db" "SELECT count(*) FROM dst")" "15" "...and no data"

done_testing
