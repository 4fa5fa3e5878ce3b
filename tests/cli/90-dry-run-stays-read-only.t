#!/usr/bin/env bash
# A dry run's sessions (and validate's) are read-only through
# default_transaction_read_only, which a statement that resets the session
# turns off too: a script tidying its session with RESET ALL or DISCARD ALL
# (a bug, as far as the dry run goes) then wrote in a dry run, and the
# writes were committed.  The server reports the setting's value after
# every statement (PostgreSQL 14 on): ferry sets it back on before the next
# statement, so the server refuses the write as for any other.  A script
# that turns it off by name (SET default_transaction_read_only = off, ...
# READ WRITE) has what it asks: a guard against bugs, not a security
# boundary (cli/22 has validate's checks write as the application does,
# that way).  A real run is not concerned.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_dry_run_stays_ro)
export DATABASE_URL=$db
psql_val "$db" "CREATE TABLE dst (id int PRIMARY KEY)" >/dev/null
D=$TAP_TMPDIR/proj
mkdir -p "$D/rules"
mig() { rm -rf "$D/migrations"; put "$D/migrations/20250101_w/up.lua" "$1"; }
rows() { psql_val "$db" "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), 'none') FROM dst"; }
REFUSED="cannot execute INSERT in a read-only transaction [SQLSTATE 25006]"
DRY="; this is a dry run (--dry-run): every session is read-only and the script wrote: do its writes only in the real run (if not ctx.dry_run then ... end) and count where it decides, so that the dry run reports the real run's counts"

# the main session (RESET ALL; DISCARD ALL there would drop ferry's lock
# too), a session of db.connect(), rows() and copy()
mig 'db.exec("RESET ALL")
db.exec("INSERT INTO dst VALUES (1)")'
run_ferry --dir "$D" run 20250101 --dry-run
is "$RC|$ERR|$(rows)" "1|ferry: migrations/20250101_w/up.lua:2: query failed: $REFUSED$DRY|none" \
   "dry run, RESET ALL then an INSERT: exit 1, the INSERT refused by the read-only session, nothing written"
for turn_off in "RESET ALL" "DISCARD ALL"; do
    mig "local c = db.connect()
c:exec(\"$turn_off\")
c:exec(\"INSERT INTO dst VALUES (2)\")"
    run_ferry --dir "$D" run 20250101 --dry-run
    is "$RC|$ERR|$(rows)" "1|ferry: migrations/20250101_w/up.lua:3: query failed: $REFUSED$DRY|none" \
       "dry run, a db.connect() session, $turn_off then an INSERT: the same"
done
mig 'db.exec("RESET ALL")
for r in db.rows("INSERT INTO dst VALUES (3) RETURNING id") do end'
run_ferry --dir "$D" run 20250101 --dry-run
is "$RC|$ERR|$(rows)" "1|ferry: migrations/20250101_w/up.lua:2: query failed while reading rows: $REFUSED$DRY|none" "rows(): the same"
mig 'db.exec("RESET ALL")
local w <close> = db.copy("COPY dst (id) FROM STDIN")
w:put(4)
w:finish()'
run_ferry --dir "$D" run 20250101 --dry-run
like "$RC|$ERR|$(rows)" "^1\\|ferry: migrations/20250101_w/up.lua:2: COPY failed to start: .*cannot execute COPY FROM in a read-only transaction \\[SQLSTATE 25006\\]; this is a dry run .*\\|none\$" \
     "copy(): the same"
mig 'db.transaction(function() db.exec("RESET ALL") end)
db.exec("INSERT INTO dst VALUES (5)")'
run_ferry --dir "$D" run 20250101 --dry-run
is "$RC|$ERR|$(rows)" "1|ferry: migrations/20250101_w/up.lua:2: query failed: $REFUSED$DRY|none" \
   "RESET ALL committed in a db.transaction: the same"
mig 'db.exec("RESET ALL")
db.exec("SELECT 1")
db.exec("INSERT INTO dst VALUES (6)")'
run_ferry --dir "$D" run 20250101 --dry-run
is "$RC|$ERR|$(rows)" "1|ferry: migrations/20250101_w/up.lua:3: query failed: $REFUSED$DRY|none" \
   "RESET ALL, a read, then an INSERT: the same"

# a reset inside a function (a helper tidying the session): no RESET ALL in
# the statement sent, the server's report (PostgreSQL 14 on) tells
psql_val "$db" "CREATE FUNCTION tidy() RETURNS void LANGUAGE plpgsql AS \$\$BEGIN RESET ALL; END\$\$;
CREATE FUNCTION tidy_ro() RETURNS void LANGUAGE plpgsql AS \$\$BEGIN RESET default_transaction_read_only; END\$\$" >/dev/null
for helper in tidy tidy_ro; do
    mig "db.exec(\"SELECT $helper()\")
local c = db.connect()
c:exec(\"SELECT $helper()\")
db.exec(\"INSERT INTO dst VALUES (7)\")"
    run_ferry --dir "$D" run 20250101 --dry-run
    is "$RC|$ERR|$(rows)" "1|ferry: migrations/20250101_w/up.lua:4: query failed: $REFUSED$DRY|none" \
       "dry run, SELECT $helper() (a reset inside a function) then an INSERT: the same"
    mig "local c = db.connect()
c:exec(\"SELECT $helper()\")
c:exec(\"INSERT INTO dst VALUES (8)\")"
    run_ferry --dir "$D" run 20250101 --dry-run
    is "$RC|$ERR|$(rows)" "1|ferry: migrations/20250101_w/up.lua:3: query failed: $REFUSED$DRY|none" \
       "...on a db.connect() session too"
done

# validate: a check whose session is reset, then writes: it fails, nothing written
mig 'db.exec("INSERT INTO dst VALUES (20)")'
put "$D/migrations/20250101_w/validate.lua" 'check("writes", function()
  local c = db.connect()
  c:exec("RESET ALL")
  c:exec("INSERT INTO dst VALUES (21)")
  return true
end)'
run_ferry --dir "$D" -q up
run_ferry --dir "$D" validate 20250101
is "$RC|$OUT|$(rows)" "1|==> validating 20250101_w
✗ FAIL writes  (error: migrations/20250101_w/validate.lua:4: query failed: $REFUSED)
1 check(s), 1 failed|20" "validate: the check fails with the server's refusal, nothing written by it"

# the real run: the script's settings are its own
mig 'db.exec("RESET ALL")
db.exec("INSERT INTO dst VALUES (30)")'
run_ferry --dir "$D" -q run 20250101
is "$RC|$ERR|$(rows)" "0||20,30" "a real run: RESET ALL and the INSERT go through"
done_testing
