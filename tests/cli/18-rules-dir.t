#!/usr/bin/env bash
# require "rules.x" loads <dir>/rules/x.lua, and only that file: a rule
# missing from the --dir tree (deleted, renamed, not copied) is an error
# naming where ferry looked -- not the rules/x.lua of the current folder
# (Lua's own ./?.lua), which is another tree's, absent from the checksum.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

B4=20251110_backfill_conversations_messages

db=$(crm_db ferry_cli_rules_dir "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"
D=$TAP_TMPDIR/copy
mkdir -p "$D"
cp -R "$REPO_ROOT/migrations" "$REPO_ROOT/rules" "$D/"
rm "$D/rules/roles.lua"
# the current folder has a rules/roles.lua of its own (another checkout)
W=$TAP_TMPDIR/cwd
put "$W/rules/roles.lua" 'return {map = {customer = "user"}, normalize = function(a) return a end}'

before=$(db_snapshot "$db")
NOT_FOUND="ferry: migrations/$B4/up.lua:21: module 'rules.roles' not found: no file '$D/rules/roles.lua'"

got=$(cd "$W" && "$FERRY" --db "$db" --dir "$D" run 20251110 --dry-run 2>&1 >/dev/null; echo "rc=$?")
is "$got" "$NOT_FOUND
rc=1" "dry run, rules/roles.lua missing from --dir: exit 1 naming the file it looked for"
is "$(db_snapshot "$db")" "$before" "...nothing written"

got=$(cd "$W" && "$FERRY" --db "$db" --dir "$D" -q run 20251110 2>&1 >/dev/null; echo "rc=$?")
is "$got" "$NOT_FOUND
rc=1" "real run: the same"
is "$(history "$db" "WHERE migration = '$B4'")" "$B4|run|failed" "...recorded failed"
is "$(psql_val "$db" "SELECT count(*) FROM \"Message\" WHERE metadata->>'createdBy' = '$B4'")" 0 "...no message written"

# exec: the same rule of lookup
put "$W/x.lua" 'local r = require "rules.roles"; print(r.map.customer)'
got=$(cd "$W" && "$FERRY" --dir "$D" exec x.lua 2>&1; echo "rc=$?")
is "$got" "ferry: x.lua:1: module 'rules.roles' not found: no file '$D/rules/roles.lua'
rc=1" "exec: a rule missing from --dir is not taken from the current folder"
got=$(cd "$W" && "$FERRY" exec x.lua 2>&1; echo "rc=$?")
is "$got" "user
rc=0" "exec without --dir: the current folder's rules/roles.lua"

# once the rule is back, the run goes on
cp "$REPO_ROOT/rules/roles.lua" "$D/rules/roles.lua"
got=$(cd "$W" && "$FERRY" --db "$db" --dir "$D" -q run 20251110 2>&1; echo "rc=$?")
is "$got" "rc=0" "rule restored: the run applies"
is "$(psql_val "$db" "SELECT rules FROM ferry.history WHERE migration = '$B4' AND status = 'applied'")" \
   "{rules/roles.lua,rules/text.lua,rules/metadata.lua,rules/backfill.lua}" "...and records every rule it loaded"

done_testing
