#!/usr/bin/env bash
# A password on the command line does not stay in the process's argument
# list (/proc/PID/cmdline, which ps shows to every user): ferry overwrites
# its bytes with 'x' right after reading its options, before it connects,
# in every --db value (--db X, --db=X, every occurrence) and in any other
# argument holding a connection string with one.  The connections, and the
# script's own arguments, still get the real values.
#
# The process looked at is the binary itself (FERRY_BIN), not one under
# FERRY_WRAPPER: valgrind runs ferry on a copy of its arguments, and the
# process's own list is valgrind's.  (The scrub still runs under the wrapper
# in every other test that passes a password, e.g. cli/70-security.t.)
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

ferry=${FERRY_BIN:-$FERRY}
PW='Sup3r-Secret-pw'           # ferry_pw's password (scripts/pg.sh)
XS=xxxxxxxxxxxxxxx             # as many x's
dbname=ferry_cli_argv_scrub
fresh_db "$dbname" >/dev/null
hp="127.0.0.1:$FERRY_PG_TCP_PORT"
url="postgresql://ferry_pw:$PW@$hp/$dbname?sslmode=disable"
url_x="postgresql://ferry_pw:$XS@$hp/$dbname?sslmode=disable"
kv="host=127.0.0.1 port=$FERRY_PG_TCP_PORT user=ferry_pw dbname=$dbname sslmode=disable"
# the password is the only way in
export PGPASSFILE=$TAP_TMPDIR/no-such-pgpass
unset PGPASSWORD DATABASE_URL

T=$TAP_TMPDIR
mkfifo "$T/ready" "$T/go"
# connects (on the main session, and on a connection string of its own when
# given one), says so through the fifo "ready", then waits for a line on
# the fifo "go"
put "$T/wait.lua" 'local ready, go, own = ...
local who = db.one("SELECT current_user AS u").u
if own then
  local c = db.connect((own:gsub("^own=", "")))
  who = who .. "+" .. c:one("SELECT current_user AS u").u
  c:close()
end
local r = assert(io.open(ready, "w"))
r:write("connected\n")
r:close()
local g = assert(io.open(go))
print(who, g:read("l"))
g:close()'

# look ARGS...: runs ferry ARGS... exec wait.lua READY GO [OWN...] in the
# background; once it has connected, CMDLINE gets its argument list (NULs
# shown as '|'); then it is let go: OUT, ERR, RC.  The fifos are opened
# under `timeout`: a ferry that died early fails the test instead of
# hanging it.
look() {
    local n=$# i pre=() own=()
    # the words before "exec" are ferry's options; after it, the script's
    for ((i = 1; i <= n; i++)); do
        if [ "${!i}" = exec ]; then break; fi
        pre+=("${!i}")
    done
    for ((i = i + 1; i <= n; i++)); do own+=("${!i}"); done
    "$ferry" "${pre[@]}" exec "$T/wait.lua" "$T/ready" "$T/go" "${own[@]}" >"$T/out" 2>"$T/err" &
    local pid=$!
    MARK=$(timeout 60 cat "$T/ready")
    CMDLINE=$(tr '\0' '|' <"/proc/$pid/cmdline")
    timeout 60 sh -c 'echo go >"$1"' _ "$T/go"
    wait "$pid"
    RC=$?
    OUT=$(cat "$T/out")
    ERR=$(cat "$T/err")
}
tail_args="exec|$T/wait.lua|$T/ready|$T/go|"

look --db "$url" exec
is "$MARK" connected "--db URL: ferry connected with the password"
is "$CMDLINE" "$ferry|--db|$url_x|$tail_args" "...and its argument list shows x's in its place, the rest intact"
is "$RC|$OUT|$ERR" $'0|ferry_pw\tgo|' "...and it ran to the end"

look --db "$kv password=$PW" exec
is "$CMDLINE" "$ferry|--db|$kv password=$XS|$tail_args" "--db 'key=value password=...': scrubbed"
is "$RC|$OUT|$ERR" $'0|ferry_pw\tgo|' "...and it connected"

look --db="$url" exec
is "$CMDLINE" "$ferry|--db=$url_x|$tail_args" "--db=URL: scrubbed"
is "$RC|$OUT|$ERR" $'0|ferry_pw\tgo|' "...and it connected"

look --db "$kv password='$PW'" exec
is "$CMDLINE" "$ferry|--db|$kv password='$XS'|$tail_args" "password='...' (quoted): scrubbed inside the quotes"
is "$RC|$OUT|$ERR" $'0|ferry_pw\tgo|' "...and it connected"

look --db "postgresql://$hp/$dbname?user=ferry_pw&pass%77ord=$PW&sslmode=disable" exec
is "$CMDLINE" "$ferry|--db|postgresql://$hp/$dbname?user=ferry_pw&pass%77ord=$XS&sslmode=disable|$tail_args" \
   "a URL's ?pass%77ord= (percent-encoded keyword): scrubbed"
is "$RC|$OUT|$ERR" $'0|ferry_pw\tgo|' "...and it connected"

# every --db is scrubbed; the last one is the one used
look --db "host=127.0.0.1 password=First-Secret-pw" --db="$kv password=Second-Secret-pw" --db "$url" exec
is "$CMDLINE" "$ferry|--db|host=127.0.0.1 password=xxxxxxxxxxxxxxx|--db=$kv password=xxxxxxxxxxxxxxxx|--db|$url_x|$tail_args" \
   "three --db: all three scrubbed"
is "$RC|$OUT|$ERR" $'0|ferry_pw\tgo|' "...and the last one used"

# a connection string among the script's arguments: scrubbed in the list,
# the script gets it as given (it connects with it)
look --db "$url" exec "$url"
is "$CMDLINE" "$ferry|--db|$url_x|$tail_args$url_x|" "a connection string in the script's arguments: scrubbed too"
is "$RC|$OUT|$ERR" $'0|ferry_pw+ferry_pw\tgo|' "...and the script connected with the real one"
# ...a URL inside an argument, wherever it begins
look --db "$url" exec "own=$url"
is "$CMDLINE" "$ferry|--db|$url_x|${tail_args}own=$url_x|" "a URL inside an argument (own=postgresql://...): scrubbed"
is "$RC|$OUT|$ERR" $'0|ferry_pw+ferry_pw\tgo|' "...and the script got it as given"

# nothing else changes: no password, nothing scrubbed
me=${PGUSER:-postgres}
look --db "$(db_uri "$dbname")" exec "$(db_uri "$dbname")"
is "$CMDLINE" "$ferry|--db|$(db_uri "$dbname")|$tail_args$(db_uri "$dbname")|" "no password: the list as given"
is "$RC|$OUT|$ERR" "0|$me+$me"$'\tgo|' "...and it ran"

done_testing
