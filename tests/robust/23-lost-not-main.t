#!/usr/bin/env bash
# "connection lost" said by anything but ferry's own main session: a
# script's own session (db.connect()) that the server ended while the main
# session is fine, a script's own error message, an up.sql's RAISE, a
# down.lua's error.  The engine took those words for its main session's
# loss: it closed that session (and the migration lock with it), recorded
# the run on a new one, and said that a crash of the server can have lost
# the last batches.  The main session decides: the run is recorded on it,
# failed, and said as any script's error (a session of the script's own
# lost: with how far it got, re-run to resume).
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../cli/cli-lib.sh"
require_pg

db=$(fresh_db ferry_lost_not_main)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_first/up.sql" 'CREATE TABLE recorded_by (id bigint, migration text, status text, pid int);'
run_ferry --dir "$D" -q run 20250101_first
is "$RC|$ERR" "0|" "the first migration runs"
# the session that writes each history row (ferry's main session, which
# holds the lock) and the one that closes it
psql_val "$db" "CREATE FUNCTION public.note_recorder() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN INSERT INTO public.recorded_by VALUES (NEW.id, NEW.migration, NEW.status, pg_backend_pid()); RETURN NEW; END \$\$;
CREATE TRIGGER note_recorder AFTER INSERT OR UPDATE ON ferry.history FOR EACH ROW EXECUTE FUNCTION public.note_recorder();" >/dev/null
# (how each run of migration \$1 was closed, and on which session: the main
# one that wrote its row, or another)
recorded_on() {
    psql_val "$db" "SELECT string_agg(r.status || '|' || CASE WHEN r.pid = s.pid THEN 'main' ELSE 'another' END, ',' ORDER BY r.id)
                      FROM recorded_by r JOIN recorded_by s ON s.id = r.id AND s.status = 'running'
                     WHERE r.migration = '$1' AND r.status <> 'running'"
}

# 1. A session of the script's own ended by the server; the main one fine.
put "$D/migrations/20250102_own/up.lua" "stats.declare{\"rows\"}
stats.inc(\"rows\")
local c = db.connect()
db.one(\"SELECT pg_terminate_backend(\$1) AS t\", c:backend_pid())
c:one(\"SELECT 1 AS one\")"
run_ferry --dir "$D" run 20250102_own
is "$RC" 1 "own session lost: exit 1"
like "$ERR" "^ferry: 20250102_own: migrations/20250102_own/up\.lua:5: connection lost: FATAL: .*; the run had got to: rows=1 .*re-run to resume$" \
     "own session lost: the script's line, how far it got, re-run to resume"
is "$(recorded_on 20250102_own)" "failed|main" "own session lost: recorded on the main session, not a new one"

# 2. A script's own error that says "connection lost".
put "$D/migrations/20250103_said/up.lua" "stats.declare{\"rows\"}
stats.inc(\"rows\")
error(\"the upstream API said: connection lost\", 0)"
run_ferry --dir "$D" run 20250103_said
is "$RC" 1 "a script's error: exit 1"
is "$ERR" "ferry: 20250103_said: the upstream API said: connection lost" \
   "a script's error: said as it is, not as a lost connection (no crash of the server)"
run_ferry --dir "$D" --json run 20250103_said
is "$RC|$(json_eval "$OUT" 'j["status"]')|$(json_eval "$OUT" 'j["error"]')" \
   "1|failed|the upstream API said: connection lost" "--json: failed, the script's words"
is "$(recorded_on 20250103_said)" "failed|main,failed|main" "a script's error: recorded on the main session"

# 3. An up.sql whose RAISE says it.
put "$D/migrations/20250104_sql/up.sql" "CREATE TABLE t1 (n int);
DO \$\$ BEGIN RAISE EXCEPTION 'upstream connection lost'; END \$\$;"
run_ferry --dir "$D" run 20250104_sql
is "$RC" 1 "an up.sql's RAISE: exit 1"
is "$ERR" "ferry: migrations/20250104_sql/up.sql: script failed: upstream connection lost [SQLSTATE P0001]" \
   "an up.sql's RAISE: said as any failed statement of a step"
is "$(recorded_on 20250104_sql)" "failed|main" "an up.sql's RAISE: recorded failed on the main session"

# 4. A down.lua's error that says it.
put "$D/migrations/20250105_down/up.lua" 'stats.inc("rows")'
put "$D/migrations/20250105_down/down.lua" 'error("remote said connection lost", 0)'
run_ferry --dir "$D" -q run 20250105_down
is "$RC" 0 "the migration to roll back runs"
run_ferry --dir "$D" rollback 20250105_down
is "$RC|$ERR" "1|ferry: 20250105_down: rollback failed: remote said connection lost" "a down.lua's error: said as it is"
is "$(recorded_on 20250105_down)" "applied|main,failed|main" "a down.lua's error: the rollback recorded failed on its main session"

# 5. A db.pipeline's second writer (a session of its own) ended by the
# server; the main session, its first writer, fine.
psql_val "$db" "CREATE TABLE dst (id int)" >/dev/null
put "$D/migrations/20250106_pipe/up.lua" 'stats.declare{"rows"}
local pipe <close> = db.pipeline{jobs = 2, checkpoint = ctx.checkpoint}
local buf = db.buffer()
local function batch(i)
  buf:put(i)
  pipe:send{copies = {{sql = "COPY dst (id) FROM STDIN", buffer = buf}}, position = i}
  buf:clear()
  stats.inc("rows")
end
batch(1)
batch(2)
pipe:finish()
db.one("SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid() AND datname = current_database()", "ferry")
for i = 3, 6 do batch(i) end
pipe:finish()'
run_ferry --dir "$D" run 20250106_pipe --jobs 2
is "$RC" 1 "a pipeline's writer lost: exit 1"
like "$ERR" "^ferry: 20250106_pipe: .*connection lost: .*; the run had got to: rows=[0-9]+ .*re-run to resume$" \
     "a pipeline's writer lost: connection lost, how far it got, re-run to resume"
is "$(recorded_on 20250106_pipe)" "failed|main" "a pipeline's writer lost: recorded failed on the main session"

done_testing
