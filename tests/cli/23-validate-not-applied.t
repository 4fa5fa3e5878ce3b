#!/usr/bin/env bash
# ferry validate of a migration that is not applied on this database --
# pending (ferry has no record of it here) or rolled back -- runs its checks
# as asked, and says first, on stderr, that it is not applied: its checks
# look for what it leaves behind, so a failing one (a table not there yet,
# a raw query error) says nothing of the migration.  --json gives the same
# as "not_applied": "pending" | "rolled back".  The exit code stays the
# checks' (1 when one failed).  An applied migration (run, or baselined)
# prints exactly as before: no note, no new field.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_validate_not_applied)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
A=20250101_a
B=20250102_b
put "$D/migrations/$A/up.sql" 'CREATE TABLE t (x int); INSERT INTO t VALUES (1);'
put "$D/migrations/$A/rollback.sql" 'DROP TABLE t;'
put "$D/migrations/$A/validate.lua" 'check("t has rows", function()
  local n = db.one("SELECT count(*) AS n FROM t").n
  return n > 0, n .. " rows"
end)
'
put "$D/migrations/$B/up.sql" 'CREATE TABLE u (x int);'
put "$D/migrations/$B/validate.lua" 'check("constant", true)'

# not_applied ID WHY: the note validate writes first
not_applied() {
    echo "note: $1 is not applied on this database ($2): its checks look for what it leaves behind, and fail where they do not find it; apply it first: ferry up --to $1 (which also runs what is pending before it), then validate again"
}
PENDING="pending: ferry has no record of it here"
NO_T='error: migrations/20250101_a/validate.lua:2: query failed: relation "t" does not exist [SQLSTATE 42P01]'
FAILED_A="==> validating $A
✗ FAIL t has rows  ($NO_T)
1 check(s), 1 failed"
PASSED_A="==> validating $A
✓ PASS t has rows  (1 rows)
1 check(s), 0 failed"

# --- pending, on a database ferry has never written to
run_ferry --dir "$D" validate $A
is "$RC" 1 "pending, a check fails (its table is not there yet): exit 1, as for any failed check"
is "$ERR" "$(not_applied $A "$PENDING")" "...one line first on stderr: not applied, pending, and what to do"
is "$OUT" "$FAILED_A" "...the checks as before"
is "$(psql_val "$db" "SELECT to_regnamespace('ferry') IS NULL")" "t" "...nothing written (no ferry schema)"

run_ferry --dir "$D" --json validate $A
is "$RC" 1 "--json, pending: exit 1"
is "$OUT" '{"migration":"'$A'","mode":"validate","not_applied":"pending","ok":false,"checks":[{"name":"t has rows","ok":false,"detail":"'"${NO_T//\"/\\\"}"'"}]}' \
   '...the object says "not_applied": "pending"'
is "$ERR" "$(not_applied $A "$PENDING")" "...and the note is on stderr"

run_ferry --dir "$D" -q validate $A
is "$RC|$ERR" "1|$(not_applied $A "$PENDING")" "-q, pending: exit 1, the note (-q: errors, failed checks and notes about the data)"
is "$OUT" "✗ FAIL t has rows  ($NO_T)" "...the failed check"

# a pending migration whose checks pass (what they look for is there
# already): said all the same, exit 0
run_ferry --dir "$D" validate $B
is "$RC|$ERR" "0|$(not_applied $B "$PENDING")" "pending, its checks pass: exit 0, the note all the same"
is "$OUT" "==> validating $B
✓ PASS constant
1 check(s), 0 failed" "...the checks as before"

# --- applied: exactly as before
run_ferry --dir "$D" -q run $A
is "$RC" 0 "$A applied"
run_ferry --dir "$D" validate $A
is "$RC|$ERR" "0|" "applied, its checks pass: exit 0, nothing on stderr"
is "$OUT" "$PASSED_A" "...the checks as before"
run_ferry --dir "$D" --json validate $A
is "$RC|$ERR" "0|" "--json, applied: exit 0, nothing on stderr"
is "$OUT" '{"migration":"'$A'","mode":"validate","ok":true,"checks":[{"name":"t has rows","ok":true,"detail":"1 rows"}]}' \
   "...the object as before (no not_applied)"

# --- pending beside a migration the history has
run_ferry --dir "$D" validate $B
is "$RC|$ERR" "0|$(not_applied $B "$PENDING")" "pending while another is applied: the note"

# --- rolled back
run_ferry --dir "$D" -q rollback $A
is "$RC" 0 "$A rolled back"
at=$(psql_val "$db" "SELECT to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM ferry.history WHERE operation = 'rollback'")
run_ferry --dir "$D" validate $A
is "$RC" 1 "rolled back, a check fails: exit 1"
is "$ERR" "$(not_applied $A "rolled back at $at")" "...the note says rolled back, and when"
is "$OUT" "$FAILED_A" "...the checks as before"
run_ferry --dir "$D" --json validate $A
is "$RC|$ERR" "1|$(not_applied $A "rolled back at $at")" "--json, rolled back: exit 1, the note on stderr"
is "$(json_eval "$OUT" 'j["not_applied"] + " " + str(j["ok"])')" "rolled back False" '...and "not_applied": "rolled back" in the object'

# --- baselined: applied, no note
run_ferry --dir "$D" -q baseline $B
is "$RC" 0 "baseline $B (records $A and $B applied)"
run_ferry --dir "$D" validate $B
is "$RC|$ERR" "0|" "baselined: no note"
run_ferry --dir "$D" --json validate $B
is "$(json_eval "$OUT" '"not_applied" in j')" "false" "...and no not_applied in the object"

done_testing
