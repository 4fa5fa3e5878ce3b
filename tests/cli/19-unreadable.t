#!/usr/bin/env bash
# A script that is there but cannot be read (chmod 000, another owner) is
# an error naming it (exit 2, before anything is written) -- not taken for
# a missing file: then up.sql ran in place of the up.lua beside it,
# validate said there was no validate.lua, and check left it out.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

# chmod 000 does not stop root: as root, ferry runs as the server's user
# (who can reach its socket) and reads the files as that user -- a copy of
# the binary under test (FERRY_BIN, run under FERRY_WRAPPER as tests/run.sh
# does), since the checkout may be where that user cannot go (/root)
F=$FERRY
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || skip_all "running as root, and no postgres user to run ferry as"
    cp "${FERRY_BIN:?tests/run.sh sets it}" "$TAP_TMPDIR/ferry-bin"
    printf '#!/bin/sh\nexec %s "%s" "$@"\n' "${FERRY_WRAPPER:-}" "$TAP_TMPDIR/ferry-bin" >"$TAP_TMPDIR/ferry"
    chmod 755 "$TAP_TMPDIR" "$TAP_TMPDIR/ferry" "$TAP_TMPDIR/ferry-bin"
    F="runuser -u postgres -- $TAP_TMPDIR/ferry"
fi
run_as() { RC=0; $F "$@" >"$TAP_TMPDIR/o" 2>"$TAP_TMPDIR/e" || RC=$?; OUT=$(cat "$TAP_TMPDIR/o"); ERR=$(cat "$TAP_TMPDIR/e"); }

db=$(fresh_db ferry_cli_unreadable)
P=$TAP_TMPDIR/p
put "$P/migrations/20250101_both/up.lua" 'db.exec("CREATE TABLE from_lua (x int)")'
put "$P/migrations/20250101_both/up.sql" 'CREATE TABLE from_sql (x int);'
put "$P/migrations/20250102_lua/up.lua" 'db.exec("CREATE TABLE l (x int)")'
put "$P/migrations/20250102_lua/validate.lua" 'check("l exists", true)'
put "$P/rules/ok.lua" 'return {tests = {}}'
chmod -R a+rX "$P"
chmod 000 "$P/migrations/20250101_both/up.lua"
if [ -r "$P/migrations/20250101_both/up.lua" ] && [ "$(id -u)" != 0 ]; then
    skip_all "chmod 000 does not stop this user reading the file"
fi
DENIED=": Permission denied"
BOTH=migrations/20250101_both

run_as --db "$db" --dir "$P" run 20250101
is "$RC|$OUT|$ERR" "2||ferry: cannot read $BOTH/up.lua: $P/$BOTH/up.lua$DENIED" \
   "run: an unreadable up.lua beside an up.sql is an error (exit 2), the up.sql does not run in its place"
is "$(psql_val "$db" "SELECT concat_ws(',', to_regclass('ferry.history'), to_regclass('from_sql'), to_regclass('from_lua'))")" "" \
   "...nothing written"
run_as --db "$db" --dir "$P" up --dry-run
is "$RC|$OUT|$ERR" "2||ferry: cannot read $BOTH/up.lua: $P/$BOTH/up.lua$DENIED" "up --dry-run: the same"

run_as --dir "$P" check
is "$RC" 2 "check: exit 2"
is "$OUT" "FAIL $BOTH  has both up.lua and up.sql: only up.lua runs (delete the one you do not mean)
FAIL $BOTH/up.lua  does not compile: cannot read $BOTH/up.lua: $P/$BOTH/up.lua$DENIED
ok   migrations/20250102_lua/up.lua
ok   migrations/20250102_lua/validate.lua
ok   rules.ok  0 tests passed" "...naming the unreadable up.lua"

# the readable one applies; its validate.lua made unreadable
chmod 644 "$P/migrations/20250101_both/up.lua"
rm "$P/migrations/20250101_both/up.sql"
run_as --db "$db" --dir "$P" -q up
is "$RC|$OUT|$ERR" "0||" "readable again: up applies both"
chmod 000 "$P/migrations/20250102_lua/validate.lua"
run_as --db "$db" --dir "$P" validate 20250102
is "$RC|$OUT|$ERR" "2||ferry: cannot read migrations/20250102_lua/validate.lua: $P/migrations/20250102_lua/validate.lua$DENIED" \
   "validate: an unreadable validate.lua is named, not 'has no validate.lua'"
run_as --db "$db" --dir "$P" --json validate 20250102
is "$RC|$OUT" "2|{\"ok\":false,\"error\":\"cannot read migrations/20250102_lua/validate.lua: $P/migrations/20250102_lua/validate.lua$DENIED\"}" \
   "...and with --json, one object"

# an unreadable up.lua alone: named, not "has neither up.lua nor up.sql"
put "$P/migrations/20250103_alone/up.lua" 'db.exec("CREATE TABLE a (x int)")'
chmod 000 "$P/migrations/20250103_alone/up.lua"
run_as --db "$db" --dir "$P" run 20250103
is "$RC|$OUT|$ERR" "2||ferry: cannot read migrations/20250103_alone/up.lua: $P/migrations/20250103_alone/up.lua$DENIED" \
   "run: an unreadable up.lua alone is named"
is "$(history "$db")" "20250101_both|up|applied
20250102_lua|up|applied" "...no history row for it"

# folders: an unreadable migrations/ or rules/ is named, not taken for none
chmod 644 "$P/migrations/20250103_alone/up.lua" "$P/migrations/20250102_lua/validate.lua"
chmod 000 "$P/rules"
run_as --dir "$P" check
is "$RC|$ERR" "2|ferry: cannot read $P/rules: Permission denied" \
   "check: an unreadable rules/ is an error (exit 2), not 'no rules' with exit 0"
run_as --db "$db" --dir "$P" run 20250103 --dry-run
is "$RC|$OUT|$ERR" "2||ferry: cannot read $P/rules: Permission denied" "run of an up.lua: the same, before it runs"
chmod 755 "$P/rules"
chmod 000 "$P/migrations"
run_as --db "$db" --dir "$P" status
is "$RC|$OUT|$ERR" "2||ferry: cannot read $P/migrations: Permission denied" \
   "status: an unreadable migrations/ is named, not 'no migrations folder'"
chmod 755 "$P/migrations"
rm -rf "$TAP_TMPDIR/none"
mkdir -p "$TAP_TMPDIR/none"
run_as --dir "$TAP_TMPDIR/none" check
is "$RC|$OUT|$ERR" "2||ferry: no migrations folder at $TAP_TMPDIR/none/migrations (use --dir)" "a folder that is not there: as before"

# a migration's folder that cannot be searched (chmod 000): named, not
# taken for one that has every script (each open failed with "Permission
# denied", which reads as "there"): check said 'has both up.lua and up.sql'
# of a folder holding only an up.sql, run named an up.lua that is not there
put "$P/migrations/20250104_shut/up.sql" 'CREATE TABLE shut (x int);'
chmod 000 "$P/migrations/20250104_shut"
SHUT="ferry: cannot read $P/migrations/20250104_shut: Permission denied"
run_as --dir "$P" check
is "$RC|$OUT|$ERR" "2||$SHUT" "check: a migration folder that cannot be searched is named (exit 2)"
run_as --db "$db" --dir "$P" run 20250104
is "$RC|$OUT|$ERR" "2||$SHUT" "run: the same, not 'cannot read .../up.lua'"
run_as --db "$db" --dir "$P" status
is "$RC|$OUT|$ERR" "2||$SHUT" "status: the same"
chmod 755 "$P/migrations/20250104_shut"

# a script that is a folder (up.lua/, exec's FILE): named with the reason,
# not "nil" (read_file dropped the error of f:read)
mkdir -p "$P/adir" "$P/migrations/20250105_dir/up.lua" "$P/migrations/20250106_sqldir/up.sql"
chmod -R a+rX "$P"
ISDIR=": Is a directory"
run_as exec "$P/adir"
is "$RC|$OUT|$ERR" "2||ferry: cannot read $P/adir$ISDIR" "exec of a folder: says it is a directory (the path said once)"
run_as --db "$db" --dir "$P" run 20250105
is "$RC|$OUT|$ERR" "2||ferry: cannot read migrations/20250105_dir/up.lua: $P/migrations/20250105_dir/up.lua$ISDIR" \
   "run: an up.lua that is a folder: says it is a directory"
run_as --db "$db" --dir "$P" run 20250106
is "$RC|$OUT|$ERR" "2||ferry: cannot read migrations/20250106_sqldir/up.sql: $P/migrations/20250106_sqldir/up.sql$ISDIR" \
   "run: an up.sql that is a folder: the same"
run_as --dir "$P" check
like "$OUT" "(^|
)FAIL migrations/20250105_dir/up.lua  does not compile: cannot read migrations/20250105_dir/up.lua: $P/migrations/20250105_dir/up.lua$ISDIR(
|\$)" "check: names the folder up.lua with the reason"
unlike "$OUT$ERR" ": nil" "...and never says nil"
rm -rf "$P/adir" "$P/migrations/20250105_dir" "$P/migrations/20250106_sqldir"

done_testing
