#!/usr/bin/env bash
# ferry validate runs the whole validate.lua -- every check -- in one
# REPEATABLE READ READ ONLY transaction on the main session: the checks see
# one snapshot, whatever other sessions commit meanwhile.  Each check runs
# under a savepoint rolled back when it ends, so that one that raises (or
# whose statement fails) leaves the next one a working transaction; a
# db.transaction in a check nests as a savepoint; a statement that would
# begin or end a transaction on the main session is refused before it is
# sent; a timeout or Ctrl-C in a check ends it cleanly.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_validate_snapshot)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
M=20250101_t
V=$D/migrations/$M/validate.lua
put "$D/migrations/$M/up.sql" 'CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2), (3); CREATE TABLE u (x int);'
run_ferry --dir "$D" -q up
is "$RC" 0 "the table t (3 rows) is there"
rows() { psql_val "$db" "SELECT count(*) FROM t"; }
# (what validate.lua reads t with; inserted: a row another session commits)
PRELUDE='local function count(conn) return (conn or db.open()):one("SELECT count(*) AS n FROM t").n end
-- another session, in autocommit, as the application is: what it inserts
-- is committed at once
local app = db.connect()
app:exec("SET default_transaction_read_only = off")
local function insert(x) app:exec("INSERT INTO t VALUES ($1)", x) end
'
# (the rows the other session inserted, x >= 100, gone before the next script)
forget_inserted() { psql_val "$db" "DELETE FROM t WHERE x >= 100" >/dev/null; }
REFUSED="refused: ferry validate runs every check in one transaction, on one snapshot, and ends it itself (db.transaction nests as a savepoint); nothing was sent"

# --- one snapshot: a row committed by another session between two checks is
# seen by neither
put "$V" "$PRELUDE"'local first
check("count before", function()
  first = count()
  insert(100)
  return true, first .. " rows"
end)
check("count after", function()
  local n = count()
  return n == first, n .. " rows"
end)
'
run_ferry --dir "$D" validate $M
is "$RC|$ERR" "0|" "a row committed between two checks: exit 0"
is "$OUT" "==> validating $M
✓ PASS count before  (3 rows)
✓ PASS count after  (3 rows)
2 check(s), 0 failed" "... both checks count the same rows: one snapshot"
is "$(rows)" 4 "... the other session's row was committed meanwhile"
run_ferry --dir "$D" --json validate $M
is "$RC|$ERR" "0|" "--json: exit 0"
is "$OUT" "{\"migration\":\"$M\",\"mode\":\"validate\",\"ok\":true,\"checks\":[{\"name\":\"count before\",\"ok\":true,\"detail\":\"4 rows\"},{\"name\":\"count after\",\"ok\":true,\"detail\":\"4 rows\"}]}" \
   "--json: the same one object as before"
forget_inserted

# --- the sessions a script opens: db.reader() and db.share_snapshot(conn)
# read the checks' snapshot, a plain db.connect() what is committed now
put "$V" "$PRELUDE"'local first = count()
insert(101)
check("the main session", function() return count() == first, count() .. " rows" end)
check("db.reader()", function()
  local r <close> = db.reader()
  return count(r) == first, count(r) .. " rows"
end)
-- (a db.connect() session given the snapshot by share(c))
local function shared(share)
  local c <close> = db.connect()
  share(c)
  local n = count(c)
  c:exec("COMMIT")
  return n == first, n .. " rows"
end
check("db.connect() with db.share_snapshot", function() return shared(db.share_snapshot) end)
check("db.open():share_snapshot", function() return shared(function(c) db.open():share_snapshot(c) end) end)
check("db.connect() alone", function()
  local c <close> = db.connect()
  return count(c) == first + 1, count(c) .. " rows"
end)
'
run_ferry --dir "$D" validate $M
is "$RC|$ERR" "0|" "sessions of the script's own: exit 0"
is "$OUT" "==> validating $M
✓ PASS the main session  (3 rows)
✓ PASS db.reader()  (3 rows)
✓ PASS db.connect() with db.share_snapshot  (3 rows)
✓ PASS db.open():share_snapshot  (3 rows)
✓ PASS db.connect() alone  (4 rows)
5 check(s), 0 failed" "... a reader and a shared session see the checks' snapshot, a plain db.connect() the row committed since"
forget_inserted

# --- a check that raises, or whose statement fails, and the checks after it
put "$V" "$PRELUDE"'local first = count()
insert(102)
check("raises", function() error("boom") end)
check("after a raise", function() return count() == first, count() .. " rows" end)
check("a statement fails", function() local r = db.one("SELECT x FROM no_such_table") return r end)
check("after a failed statement", function() return count() == first, count() .. " rows" end)
check("its verdict is the caught failure", function()
  local wrote = pcall(db.exec, "DELETE FROM t")
  return not wrote, "could not write"
end)
check("goes on after a caught failure", function()
  pcall(db.exec, "DELETE FROM t")
  return db.one("SELECT 1 AS one").one == 1
end)
check("sets search_path", function()
  db.exec("SET search_path = nowhere")
  return db.one("SHOW search_path").search_path == "nowhere"
end)
check("does not see it", function()
  local p = db.one("SHOW search_path").search_path
  return p ~= "nowhere" and count() == first, p
end)
check("reads u", function() return db.one("SELECT count(*) AS n FROM u").n == 0 end)
check("its lock on u is let go", function()
  local r = db.one("SELECT count(*) AS n FROM pg_locks WHERE relation = $1::regclass AND pid = pg_backend_pid()", "u")
  return r.n == 0, r.n .. " locks"
end)
'
run_ferry --dir "$D" validate $M
is "$RC|$ERR" "1|" "failing checks: exit 1"
like "$OUT" "^==> validating $M
✗ FAIL raises  \\(error: migrations/$M/validate.lua:9: boom\\)
✓ PASS after a raise  \\(3 rows\\)
✗ FAIL a statement fails  \\(error: migrations/$M/validate.lua:11: query failed: relation \"no_such_table\" does not exist \\[SQLSTATE 42P01\\]\\)
✓ PASS after a failed statement  \\(3 rows\\)
✓ PASS its verdict is the caught failure  \\(could not write\\)
✗ FAIL goes on after a caught failure  \\(error: migrations/$M/validate.lua:19: query failed: current transaction is aborted, commands ignored until end of transaction block \\[SQLSTATE 25P02\\]\\)
✓ PASS sets search_path
✓ PASS does not see it  \\(\"\\\$user\", public\\)
✓ PASS reads u
✓ PASS its lock on u is let go  \\(0 locks\\)
10 check\\(s\\), 3 failed$" \
     "... each check starts from the snapshot: after a raise, a failed statement, a SET, a lock taken, the next check works"
forget_inserted

# a statement outside any check that fails, its error caught: the checks
# after it still run
put "$V" "$PRELUDE"'local first = count()
insert(103)
local ok = pcall(db.one, "SELECT x FROM no_such_table")
check("the caught failure", not ok)
check("the next check", function() return count() == first, count() .. " rows" end)
'
run_ferry --dir "$D" validate $M
is "$RC|$ERR" "0|" "a failed statement outside the checks, caught: exit 0"
is "$OUT" "==> validating $M
✓ PASS the caught failure
✓ PASS the next check  (3 rows)
2 check(s), 0 failed" "... and the next check reads the snapshot"
forget_inserted

# a check that leaves a rows() loop open on the main session, and checks
# made inside a rows() loop on it (which cannot use it while it streams)
put "$V" "$PRELUDE"'local first = count()
insert(107)
check("leaves a rows() loop open", function()
  local it = db.rows("SELECT x FROM t ORDER BY x")
  return it().x == 1
end)
check("after it", function() return count() == first, count() .. " rows" end)
for r in db.rows("SELECT x FROM t ORDER BY x") do
  check("row " .. r.x, function() return r.x < 100 end)
end
check("after the loop", function() return count() == first, count() .. " rows" end)
'
run_ferry --dir "$D" validate $M
is "$RC|$ERR" "0|" "rows() loops and checks: exit 0"
is "$OUT" "==> validating $M
✓ PASS leaves a rows() loop open
✓ PASS after it  (3 rows)
✓ PASS row 1
✓ PASS row 2
✓ PASS row 3
✓ PASS after the loop  (3 rows)
6 check(s), 0 failed" "... a loop a check left open is ended after it; checks inside a loop run"
forget_inserted

# --- db.transaction inside a check (and db.plan, which uses one) nests as a
# savepoint of the checks' transaction
put "$V" "$PRELUDE"'local first = count()
insert(104)
check("db.transaction in a check", function()
  local n = db.transaction(function() return count() end)
  local inner = db.transaction(function()
    return db.transaction(function() return count() end)
  end)
  local caught, err = pcall(db.transaction, function() db.exec("SELECT x FROM no_such_table") end)
  local after = count()
  return n == first and inner == first and not caught and after == first,
         string.format("%d %d %s %d", n, inner, tostring(caught), after)
end)
check("db.plan", function()
  return db.plan("SELECT * FROM t WHERE x = 1"):find("Seq Scan on t", 1, true) ~= nil
end)
check("db.transaction that raises", function()
  db.transaction(function() count(); error("inner boom") end)
end)
check("after it", function() return count() == first, count() .. " rows" end)
db.transaction(function()
  check("a check inside db.transaction", function() return count() == first, count() .. " rows" end)
end)
check("a check inside a check", function()
  local inner = check("inner", function() return count() == first end)
  return inner and count() == first
end)
'
run_ferry --dir "$D" validate $M
is "$RC|$ERR" "1|" "db.transaction in checks: exit 1 (one raises)"
is "$OUT" "==> validating $M
✓ PASS db.transaction in a check  (3 3 false 3)
✓ PASS db.plan
✗ FAIL db.transaction that raises  (error: migrations/$M/validate.lua:23: inner boom)
✓ PASS after it  (3 rows)
✓ PASS a check inside db.transaction  (3 rows)
✓ PASS inner
✓ PASS a check inside a check
7 check(s), 1 failed" "... each nests, rolls back only its own part, and sees the snapshot"
forget_inserted

# a check made where the transaction has failed inside something of the
# script's -- a db.transaction that caught a statement's error, a check
# that did -- cannot have a savepoint: it runs as it is, and fails at its
# first statement, as any statement there would.  Rolling back to where
# the script started would undo the db.transaction's savepoint too (its
# end then failed 'savepoint "ferry_sp_1" does not exist', stopping
# validate.lua), and a nested check raised out of ferry's db.lua in place
# of its verdict.
put "$V" "$PRELUDE"'local first = count()
insert(108)
local ok, err = pcall(db.transaction, function()
  pcall(db.exec, "SELECT x FROM no_such_table")
  check("in a failed db.transaction", function() return count() == first end)
  check("no statement, in a failed db.transaction", true)
end)
check("the db.transaction ends as one whose error was caught", not ok, err)
check("a check that caught a failure, with a check inside", function()
  pcall(db.exec, "SELECT x FROM no_such_table")
  local inner = check("inner", function() return count() == first end)
  local inner_no_sql = check("inner without a statement", function() return true end)
  return not inner and inner_no_sql, "inner failed"
end)
check("after them", function() return count() == first, count() .. " rows" end)
'
run_ferry --dir "$D" validate $M
is "$RC|$ERR" "1|" "checks in a failed transaction of the script's: exit 1"
is "$OUT" "==> validating $M
✗ FAIL in a failed db.transaction  (error: migrations/$M/validate.lua:1: query failed: current transaction is aborted, commands ignored until end of transaction block [SQLSTATE 25P02])
✓ PASS no statement, in a failed db.transaction
✓ PASS the db.transaction ends as one whose error was caught  (transaction rolled back: a statement in it failed and its error was caught (to go on after an error, catch it with a nested transaction))
✗ FAIL inner  (error: migrations/$M/validate.lua:1: query failed: current transaction is aborted, commands ignored until end of transaction block [SQLSTATE 25P02])
✓ PASS inner without a statement
✓ PASS a check that caught a failure, with a check inside  (inner failed)
✓ PASS after them  (3 rows)
7 check(s), 2 failed" "... each fails at its first statement, as the script's own would; the db.transaction ends as documented, the next check reads the snapshot"
forget_inserted

# --- BEGIN, COMMIT, ROLLBACK, END of the script's own on the main session:
# refused before they are sent, the checks' transaction and snapshot kept
put "$V" "$PRELUDE"'local first = count()
insert(105)
check("BEGIN", function() db.exec("BEGIN") return true end)
check("COMMIT", function() db.exec("COMMIT") return true end)
check("ROLLBACK in a script", function() db.exec_script("SELECT 1; ROLLBACK") return true end)
check("END through db.one", function() db.one("END") return true end)
check("START TRANSACTION through db.rows", function()
  for _ in db.rows("START TRANSACTION") do end
  return true
end)
check("COMMIT on db.main()", function() db.main():exec("commit") return true end)
check("COMMIT inside db.transaction", function()
  db.transaction(function() db.exec("COMMIT") end)
  return true
end)
check("caught, and goes on", function()
  local ok = pcall(db.exec, "COMMIT")
  return not ok and count() == first, count() .. " rows"
end)
check("db.close()", function() db.close() return true end)
check("still the snapshot", function() return count() == first, count() .. " rows" end)
'
run_ferry --dir "$D" validate $M
is "$RC|$ERR" "1|" "transaction statements of the script's own: exit 1, no server warning"
is "$OUT" "==> validating $M
✗ FAIL BEGIN  (error: migrations/$M/validate.lua:9: BEGIN $REFUSED)
✗ FAIL COMMIT  (error: migrations/$M/validate.lua:10: COMMIT $REFUSED)
✗ FAIL ROLLBACK in a script  (error: migrations/$M/validate.lua:11: ROLLBACK $REFUSED)
✗ FAIL END through db.one  (error: migrations/$M/validate.lua:12: END $REFUSED)
✗ FAIL START TRANSACTION through db.rows  (error: migrations/$M/validate.lua:14: START TRANSACTION $REFUSED)
✗ FAIL COMMIT on db.main()  (error: migrations/$M/validate.lua:17: COMMIT $REFUSED)
✗ FAIL COMMIT inside db.transaction  (error: migrations/$M/validate.lua:19: COMMIT $REFUSED)
✓ PASS caught, and goes on  (3 rows)
✗ FAIL db.close()  (error: migrations/$M/validate.lua:26: db.close: the main session holds the transaction of ferry validate's checks (one snapshot for all of them); it ends when the command ends)
✓ PASS still the snapshot  (3 rows)
10 check(s), 8 failed" "... each refused, nothing sent; the checks after them see the same snapshot"
forget_inserted
# one outside any check stops validate.lua, as any error there does
put "$V" "$PRELUDE"'check("first", true)
db.exec("COMMIT")
check("never run", true)
'
run_ferry --dir "$D" validate $M
is "$RC|$ERR" "1|" "a COMMIT outside the checks: exit 1"
is "$OUT" "==> validating $M
✓ PASS first
✗ FAIL validate.lua stopped: migrations/$M/validate.lua:8: COMMIT $REFUSED
2 check(s), 1 failed" "... validate.lua stops there"

# --- ferry validate's own savepoints (ferry_validate, ferry_validate_check)
# named by the script's SAVEPOINT, RELEASE or ROLLBACK TO: refused before
# they are sent.  Before, a SAVEPOINT ferry_validate_check of a check's own
# became the one ferry rolled back to, keeping what the check did before it
# (its SET) for the next check; a RELEASE of ferry's stopped validate.lua
# with 'savepoint "ferry_validate_check" does not exist'.  The script's own
# savepoints work as they did.
SPREFUSED="ferry_validate... refused: the savepoints named ferry_validate... are ferry validate's own (each check runs under one, rolled back when it ends); name yours otherwise, or nest with db.transaction; nothing was sent"
put "$V" "$PRELUDE"'local first = count()
insert(109)
check("SAVEPOINT ferry_validate_check", function()
  db.exec("SET search_path = nowhere")
  db.exec("SAVEPOINT ferry_validate_check")
  return true
end)
check("the SET before it is gone", function() local p = db.one("SHOW search_path").search_path return p ~= "nowhere", p end)
check("RELEASE SAVEPOINT ferry_validate", function() db.exec("RELEASE SAVEPOINT ferry_validate") return true end)
check("RELEASE, upper case, no SAVEPOINT", function() db.exec("RELEASE FERRY_VALIDATE_CHECK") return true end)
check("ROLLBACK WORK TO a quoted name, in a script", function()
  db.exec_script("SELECT 1; /* c */ rollback work to savepoint \"ferry_validate\"")
  return true
end)
check("savepoints of the script'"'"'s own", function()
  db.exec("SAVEPOINT mine")
  pcall(db.exec, "SELECT x FROM no_such_table")
  db.exec("ROLLBACK TO SAVEPOINT mine")
  db.exec("RELEASE mine")
  db.exec("SAVEPOINT \"FERRY_VALIDATE\"")
  return count() == first, count() .. " rows"
end)
check("still the snapshot", function() return count() == first, count() .. " rows" end)
'
run_ferry --dir "$D" validate $M
is "$RC|$ERR" "1|" "ferry's savepoints named by the script: exit 1"
is "$OUT" "==> validating $M
✗ FAIL SAVEPOINT ferry_validate_check  (error: migrations/$M/validate.lua:11: SAVEPOINT $SPREFUSED)
✓ PASS the SET before it is gone  (\"\$user\", public)
✗ FAIL RELEASE SAVEPOINT ferry_validate  (error: migrations/$M/validate.lua:15: RELEASE SAVEPOINT $SPREFUSED)
✗ FAIL RELEASE, upper case, no SAVEPOINT  (error: migrations/$M/validate.lua:16: RELEASE SAVEPOINT $SPREFUSED)
✗ FAIL ROLLBACK WORK TO a quoted name, in a script  (error: migrations/$M/validate.lua:18: ROLLBACK TO SAVEPOINT $SPREFUSED)
✓ PASS savepoints of the script's own  (3 rows)
✓ PASS still the snapshot  (3 rows)
7 check(s), 4 failed" "... each refused, nothing sent; the next check starts from the snapshot; the script's own savepoints work"
forget_inserted
# a check that releases a savepoint the script took before it: ferry's is
# released with it, and validate.lua stops saying so
put "$V" 'db.exec("SAVEPOINT mine")
check("releases mine", function() db.exec("RELEASE SAVEPOINT mine") return true end)
check("never run", true)
'
run_ferry --dir "$D" validate $M
is "$RC|$ERR" "1|" "a check that releases a savepoint taken before it: exit 1"
is "$OUT" "==> validating $M
✗ FAIL validate.lua stopped: the checks' transaction could not be restored after a check: its savepoint is gone (the check released, or rolled back to, a savepoint taken before it began): script failed: savepoint \"ferry_validate_check\" does not exist [SQLSTATE 3B001]
1 check(s), 1 failed" "... validate.lua stops, saying why"

# --- --statement-timeout and --lock-timeout: the check fails, the next one
# runs in the same snapshot
put "$V" "$PRELUDE"'local first = count()
insert(106)
check("slow", function() db.exec("SELECT pg_sleep(600)") return true end)
check("locked", function() db.one("SELECT count(*) AS n FROM u") return true end)
check("after them", function() return count() == first, count() .. " rows" end)
'
"$PSQL" -X -q -d "$db" -c "BEGIN" -c "LOCK TABLE u IN ACCESS EXCLUSIVE MODE" -c "SELECT pg_sleep(600)" >/dev/null 2>&1 &
locker_job=$!
locker() { psql_val "$db" "SELECT pid FROM pg_locks WHERE relation = 'u'::regclass AND mode = 'AccessExclusiveLock' AND granted"; }
wait_until 60 eval '[ -n "$(locker)" ]'
locker_pid=$(locker)
isnt "$locker_pid" "" "another session holds an exclusive lock on u"
run_ferry --dir "$D" --statement-timeout 1s --lock-timeout 100ms validate $M
is "$RC|$ERR" "1|" "timeouts: exit 1"
is "$OUT" "==> validating $M
✗ FAIL slow  (error: migrations/$M/validate.lua:9: query failed: canceling statement due to statement timeout [SQLSTATE 57014])
✗ FAIL locked  (error: migrations/$M/validate.lua:10: query failed: canceling statement due to lock timeout [SQLSTATE 55P03])
✓ PASS after them  (3 rows)
3 check(s), 2 failed" "... the checks that ran out of time fail, the next one reads the snapshot"
psql_val "$db" "SELECT pg_terminate_backend($locker_pid)" >/dev/null
wait "$locker_job" 2>/dev/null
forget_inserted

# --- Ctrl-C in a check: no more checks, exit 130, no session left behind
set -m
put "$V" 'check("first", true)
check("sleeps", function() db.exec("SELECT pg_sleep(600) /* ferry_validate_sleep */") return true end)
check("never run", true)
'
sleeping() { psql_val "$db" "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%/* ferry_validate_sleep */%' AND state = 'active' AND pid <> pg_backend_pid()"; }
"$FERRY" --dir "$D" validate $M >"$TAP_TMPDIR/bg.out" 2>"$TAP_TMPDIR/bg.err" &
pid=$!
wait_until 60 output_is 1 sleeping
is "$(sleeping)" 1 "a check is running"
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
is "$rc" 130 "Ctrl-C: exit 130"
is "$(cat "$TAP_TMPDIR/bg.out")" "==> validating $M
✓ PASS first
✗ FAIL validate.lua stopped: interrupted (SIGINT)
2 check(s), 1 failed" "... validate stops in the check running, no check after it runs"
wait_until 60 output_is 0 sleeping
is "$(psql_val "$db" "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'ferry'")" 0 \
   "... no ferry session is left"
set +m

done_testing
