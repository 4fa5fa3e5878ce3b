#!/usr/bin/env bash
# ferry's migration lock is a session advisory lock on the main session,
# which a statement of the script's could release: DISCARD ALL (a script
# tidying its session) or pg_advisory_unlock_all().  A second ferry then
# took the lock and ran the same migration at once: both ran it, both said
# applied, the first's history row was closed as failed (its session no
# longer held the lock) and it ended with the server's "WARNING:  you don't
# own a lock".  On the session that holds the lock such a statement is
# refused before it is sent; on another session (db.connect()) it goes as
# before.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_lock_kept)
export DATABASE_URL=$db
psql_val "$db" "CREATE TABLE t (x int)" >/dev/null
D=$TAP_TMPDIR/proj
mkdir -p "$D/rules"
mig() { rm -rf "$D/migrations"; put "$D/migrations/20250101_m/up.lua" "$1"; }
WHY="refused: this session holds ferry's migration lock while the command runs, and it would release it (another ferry could then run migrations on this database at the same time); nothing was sent"

for stmt in "DISCARD ALL" "discard  all" "SELECT pg_advisory_unlock_all()" "SELECT pg_catalog.pg_advisory_unlock_all()"; do
    mig "db.exec(\"$stmt\")
db.exec(\"INSERT INTO t VALUES (1)\")"
    run_ferry --dir "$D" run 20250101
    word=DISCARD\ ALL
    case $stmt in *unlock_all*) word="pg_advisory_unlock_all()" ;; esac
    is "$RC|$ERR" "1|ferry: migrations/20250101_m/up.lua:1: $word $WHY" "ferry run, $stmt: exit 1, refused"
done
mig 'db.exec_script("SET work_mem = 4096; SELECT pg_advisory_unlock_all()")'
run_ferry --dir "$D" run 20250101
is "$RC|$ERR" "1|ferry: migrations/20250101_m/up.lua:1: pg_advisory_unlock_all() $WHY" "exec_script, its second statement: the same"
mig 'for r in db.rows("SELECT pg_advisory_unlock_all()") do end'
run_ferry --dir "$D" run 20250101
is "$RC|$ERR" "1|ferry: migrations/20250101_m/up.lua:1: pg_advisory_unlock_all() $WHY" "rows(): the same"
is "$(psql_val "$db" "SELECT count(*) FROM t")" 0 "nothing written"

# the words elsewhere are no such statement; another session may do it
mig 'db.exec("INSERT INTO t SELECT length($1)", "DISCARD ALL")
db.exec("SELECT $1::text AS s", "pg_advisory_unlock_all()")
db.exec("DISCARD PLANS")
local c = db.connect()
c:exec("DISCARD ALL")
c:exec("SELECT pg_advisory_unlock_all()")'
run_ferry --dir "$D" -q run 20250101
is "$RC|$ERR|$(psql_val "$db" "SELECT string_agg(x::text, ',') FROM t")" "0||11" \
   "in a string, DISCARD PLANS, on a db.connect() session: they go through"

done_testing
