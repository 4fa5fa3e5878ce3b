#!/usr/bin/env bash
# ferry's sessions run with settings the engine relies on (README, docs/cli.md
# "Session settings"): row_security off (a policy fails a statement instead of
# hiding rows), --lock-timeout and --statement-timeout, datestyle ISO, READ
# COMMITTED, jit off, the idle timeouts off.  A script's RESET ALL or DISCARD
# ALL (a script tidying its session) put them all back to the server's,
# database's or role's values for the rest of the run: rows hidden by a
# policy, a lock waited for without end.  ferry sets them again before its
# next statement on that session; a setting the script changes by name stays
# the script's choice.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_settings_kept)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
mkdir -p "$D/migrations"
SHOW='local function show(conn)
  local r = conn:one([[SELECT current_setting($$row_security$$) || $$ $$ || current_setting($$lock_timeout$$) || $$ $$ ||
    current_setting($$statement_timeout$$) || $$ $$ || current_setting($$DateStyle$$) || $$ $$ ||
    current_setting($$default_transaction_isolation$$) || $$ $$ || current_setting($$jit$$) || $$ $$ ||
    current_setting($$default_transaction_read_only$$) AS s]])
  return r.s
end'
psql_val "$db" "ALTER DATABASE ferry_cli_settings_kept SET row_security = on; ALTER DATABASE ferry_cli_settings_kept SET DateStyle = 'SQL, DMY'" >/dev/null
KEPT="off 7s 9s ISO, DMY read committed off off"

for stmt in "RESET ALL" "reset   all" "DISCARD ALL"; do
    put "$D/s.lua" "$SHOW
local main = db.open()
print(show(main))
main:exec([[$stmt]])
print(show(main))
local other <close> = db.connect()
other:exec([[$stmt]])
print(show(other))"
    run_ferry --lock-timeout 7s --statement-timeout 9s exec "$D/s.lua"
    is "$RC|$OUT|$ERR" "0|$KEPT
$KEPT
$KEPT|" "exec, $stmt on the main session and on a db.connect() one: ferry's settings are set again"
done

put "$D/s.lua" "$SHOW
local main = db.open()
main:exec_script([[SET work_mem = 4096; RESET ALL]])
print(show(main))
for r in main:rows([[SELECT 1 AS x; ]]) do end
main:exec([[DISCARD ALL]])
for r in main:rows([[SELECT current_setting('row_security') AS s]]) do print(r.s) end"
run_ferry --lock-timeout 7s --statement-timeout 9s exec "$D/s.lua"
is "$RC|$OUT|$ERR" "0|$KEPT
off|" "exec_script's RESET ALL, and rows() after a DISCARD ALL: the same"

# A dry run's sessions stay read-only (its own setting comes back with them)
put "$D/s.lua" "$SHOW
local main = db.open()
main:exec([[RESET ALL]])
print(show(main))"
run_ferry --dry-run --lock-timeout 7s --statement-timeout 9s exec "$D/s.lua"
is "$RC|$OUT|$ERR" "0|off 7s 9s ISO, DMY read committed off on|" "a dry run: read-only again too"

# A setting the script changes by name is its own choice
put "$D/s.lua" "$SHOW
local main = db.open()
main:exec([[RESET ALL]])
main:exec([[SET row_security = on]])
print(show(main))"
run_ferry --lock-timeout 7s --statement-timeout 9s exec "$D/s.lua"
is "$RC|$OUT|$ERR" "0|on 7s 9s ISO, DMY read committed off off|" "SET row_security = on after it: the script's"

# In a migration: the run's statements after a RESET ALL still see row_security off
psql_val "$db" "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)" >/dev/null
put "$D/migrations/20250101_m/up.lua" 'db.exec("RESET ALL")
stats.set("rls", db.one("SELECT current_setting($1) AS s", "row_security").s == "off" and 1 or 0)'
run_ferry --dir "$D" -q run 20250101
is "$RC|$ERR" "0|" "run: exit 0"
is "$(psql_val "$db" "SELECT stats->'stats'->>'rls' FROM ferry.history WHERE migration = '20250101_m'")" "1" "...row_security was off again after the script's RESET ALL"

# Statements after a RESET ALL in the same call would run before ferry can
# set its settings again: refused, nothing sent
AFTER="refused: the statements after it in the same call would run without ferry's session settings (row_security off, the lock and statement timeouts: docs/cli.md, The settings of ferry's sessions), which ferry sets again only before its next call: end the call with it, or reset by name what the script set (RESET work_mem); nothing was sent"
put "$D/s.lua" 'db.exec_script("INSERT INTO t VALUES (3); RESET ALL; INSERT INTO t VALUES (4)")'
run_ferry exec "$D/s.lua"
is "$RC|$OUT|$ERR" "1||ferry: $D/s.lua:1: RESET ALL $AFTER" "exec_script: RESET ALL with a statement after it, refused"
put "$D/s.lua" 'local c <close> = db.connect()
c:exec_script("reset all; SELECT 1")'
run_ferry exec "$D/s.lua"
is "$RC|$OUT|$ERR" "1||ferry: $D/s.lua:2: RESET ALL $AFTER" "...on a db.connect() session: the same"
put "$D/migrations/20250102_sql/up.sql" 'INSERT INTO t VALUES (5);
RESET ALL;
UPDATE t SET x = x + 10;'
run_ferry --dir "$D" -q up
is "$RC|$ERR" "1|ferry: migrations/20250102_sql/up.sql: RESET ALL $AFTER" "up.sql: the same, exit 1"
is "$(psql_val "$db" "SELECT string_agg(x::text, ',' ORDER BY x) FROM t")" "1,2" "...nothing of any of them written"
put "$D/migrations/20250102_sql/up.sql" 'INSERT INTO t VALUES (5);
RESET ALL;'
run_ferry --dir "$D" -q up
is "$RC|$ERR|$(psql_val "$db" "SELECT string_agg(x::text, ',' ORDER BY x) FROM t")" "0||1,2,5" "up.sql ending with RESET ALL: runs"

done_testing
