#!/usr/bin/env bash
# ferry's session settings are set after connecting, so they win over what
# the connection string's options and PGOPTIONS say for them (README,
# Usage): READ COMMITTED, jit off, row_security off, client_min_messages
# notice, DateStyle ISO, the idle timeouts off -- on the main session and on
# one db.connect() opens.  What ferry leaves is as they set it: search_path,
# TimeZone, session_replication_role.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_settings)
put "$TAP_TMPDIR/show.lua" 'local names = {"default_transaction_isolation", "jit", "row_security", "client_min_messages",
  "DateStyle", "idle_in_transaction_session_timeout", "search_path", "TimeZone"}
local function show(q)
  local out = {}
  for _, n in ipairs(names) do out[#out + 1] = q("SELECT current_setting($1) AS v", n).v end
  return table.concat(out, "|")
end
print(show(db.one))
local other = db.connect()
print(show(function(...) return other:one(...) end))'
want="read committed|off|off|notice|ISO, DMY|0|app,public|Pacific/Chatham"

PGOPTIONS="-c default_transaction_isolation=serializable -c jit=on -c row_security=on -c client_min_messages=debug1 -c DateStyle=SQL,DMY -c idle_in_transaction_session_timeout=1s -c search_path=app,public -c TimeZone=Pacific/Chatham" \
    run_ferry --db "$db" exec "$TAP_TMPDIR/show.lua"
is "$RC|$OUT|$ERR" "0|$want
$want|" "PGOPTIONS: ferry's settings win on both sessions; search_path and TimeZone as PGOPTIONS set them"

opts="-cdefault_transaction_isolation%3Drepeatable%5C%20read -cjit%3Don -crow_security%3Don -cclient_min_messages%3Dwarning -cDateStyle%3DSQL%5C,DMY -cidle_in_transaction_session_timeout%3D1s -csearch_path%3Dapp%5C,public -cTimeZone%3DPacific/Chatham"
run_ferry --db "$db&options=$(sed 's/ /%20/g' <<<"$opts")" exec "$TAP_TMPDIR/show.lua"
is "$RC|$OUT|$ERR" "0|$want
$want|" "the connection string's options: the same"
done_testing
