#!/usr/bin/env bash
# Security: a password in the connection string never shows up in stdout,
# stderr, --json output or ferry.history; scripts get no os.execute or
# io.popen unless they say "-- ferry: allow-shell".
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

PW='Sup3r-Secret-pw'
WRONG='Wr0ng-Secret-pw'
dbname=ferry_cli_security
fresh_db "$dbname" >/dev/null
psql_val "$(db_uri "$dbname")" "ALTER DATABASE $dbname OWNER TO ferry_pw" >/dev/null
url="postgresql://ferry_pw:$PW@127.0.0.1:$FERRY_PG_TCP_PORT/$dbname?sslmode=disable"
wrong_url="postgresql://ferry_pw:$WRONG@127.0.0.1:$FERRY_PG_TCP_PORT/$dbname?sslmode=disable"
kv="host=127.0.0.1 port=$FERRY_PG_TCP_PORT user=ferry_pw dbname=$dbname sslmode=disable"
# no other way in: no password file, no PGPASSWORD, and not the socket
export PGPASSFILE=$TAP_TMPDIR/no-such-pgpass
unset PGPASSWORD DATABASE_URL

D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_schema/up.sql" 'CREATE TABLE t (x int, who text);'
put "$D/migrations/20250101_schema/rollback.sql" 'DROP TABLE t;'
put "$D/migrations/20250101_schema/validate.lua" 'check("t exists", function() return db.one("SELECT to_regclass($1) IS NOT NULL AS ok", "t").ok end)'
put "$D/migrations/20250102_data/up.lua" '-- log what a script can see of its context
local keys = {}
for k in pairs(ctx) do keys[#keys + 1] = k end
table.sort(keys)
for _, k in ipairs(keys) do log.info("ctx." .. k, tostring(ctx[k])) end
log.info("conn", tostring(db.open()))
db.exec("INSERT INTO t SELECT 1, current_user")
stats.inc("rows")
stats.error("row-1", "conninfo is not here")
'
put "$D/migrations/20250103_fail/up.lua" 'db.exec("SELECT * FROM no_such_table")'
# a script's own error and row errors that hold the password (a message
# built from a value that happens to be it): redacted in ferry.history too,
# as in every line ferry writes
put "$D/migrations/20250104_says/up.lua" "stats.error(\"row-$PW\", \"bad value $PW\")
error(\"failing with $PW inside\")"
# ...and a row error whose key and message are cut (200 and 2000 bytes)
# inside the password: the cut came first, and left its beginning
put "$D/migrations/20250105_cut/up.lua" "stats.error((\"k\"):rep(195) .. \"$PW\", (\"m\"):rep(1995) .. \"$PW\")"

all_out=''
collect() { all_out+=$'\n'"$OUT"$'\n'"$ERR"; }

run_ferry --db "$url" --dir "$D" status
is "$RC" 0 "the password URL works (status)"
collect
run_ferry --db "$url" --dir "$D" -v up --to 20250101
is "$RC" 0 "up over TCP with a password"
collect
run_ferry --db "$url" --dir "$D" -v --json run 20250102 --dry-run
collect
run_ferry --db "$url" --dir "$D" -v run 20250102
is "$RC" 1 "run (with a row error): exit 1"
collect
like "$OUT" $'\nctx\\.migration 20250102_data\n' "(the script logged its ctx)"
is "$(psql_val "$(db_uri "$dbname")" "SELECT string_agg(DISTINCT who, ',') FROM t")" "ferry_pw" "the script ran as ferry_pw"
run_ferry --db "$url" --dir "$D" --json run 20250102
collect
run_ferry --db "$url" --dir "$D" -v run 20250103
is "$RC" 1 "a failing script: exit 1"
collect
run_ferry --db "$url" --dir "$D" run 20250104
is "$RC|$ERR" "1|ferry: migrations/20250104_says/up.lua:2: failing with *** inside" "a script's error holding the password: redacted on stderr"
collect
is "$(psql_val "$(db_uri "$dbname")" "SELECT split_part(error, E'\\n', 1) || ' / ' || (stats->'errors')::text FROM ferry.history WHERE migration = '20250104_says'")" \
   'migrations/20250104_says/up.lua:2: failing with *** inside / [{"key": "row-***", "message": "bad value ***"}]' \
   "...and in its history row: the error and the row error's key and message"
rm -rf "$D/migrations/20250104_says"
run_ferry --db "$url" --dir "$D" run 20250105
cut_out="$OUT$ERR"
run_ferry --db "$url" --dir "$D" --json run 20250105
cut_out+="$OUT$ERR"
is "$RC|$(grep -c "${PW:0:5}" <<<"$cut_out")" "1|0" "a row error cut inside the password: no beginning of it on stdout, stderr or in --json"
is "$(psql_val "$(db_uri "$dbname")" "SELECT string_agg(DISTINCT length(e->>'key') || ' ' || right(e->>'key', 4) || ' ' || length(e->>'message') || ' ' || right(e->>'message', 4), ',') FROM ferry.history, jsonb_array_elements(stats->'errors') e WHERE migration = '20250105_cut'")" \
   '198 k*** 1998 m***' "...nor in its history row: redacted before the cut, the key and message whole"
rm -rf "$D/migrations/20250105_cut"
run_ferry --db "$url" --dir "$D" --json -v up
collect
run_ferry --db "$url" --dir "$D" --json validate 20250101
is "$RC" 0 "validate over TCP"
collect
run_ferry --db "$url" --dir "$D" rollback 20250101
is "$RC" 0 "rollback over TCP"
collect
run_ferry --db "$url" --dir "$D" --json status
collect
run_ferry --db "$kv password=$PW" --dir "$D" -v status
is "$RC" 0 "a key=value string with password= works"
collect
PGPASSWORD=$PW run_ferry --db "$kv" --dir "$D" -v up --to 20250101
is "$RC" 0 "PGPASSWORD works"
collect
DATABASE_URL=$url run_ferry --dir "$D" -v --json status
is "$RC" 0 "DATABASE_URL with a password works"
collect

# wrong passwords: exit 2, one line, no password
for u in "$wrong_url" "$kv password=$WRONG"; do
    for flags in "" "-v" "--json" "-v --json"; do
        # shellcheck disable=SC2086
        run_ferry --db "$u" --dir "$D" $flags up
        is "$RC" 2 "wrong password ($flags): exit 2"
        collect
    done
done
run_ferry --db "$wrong_url" --dir "$D" up
is "$ERR" "ferry: cannot connect to the database: connection to server at \"127.0.0.1\", port $FERRY_PG_TCP_PORT failed: FATAL:  password authentication failed for user \"ferry_pw\" [SQLSTATE 28P01]" \
   "wrong password: one clear line"
# no password at all (none in the string, no PGPASSWORD, no password file):
# libpq's "fe_sendauth: no password supplied", and where one goes
run_ferry --db "$kv" --dir "$D" status
is "$RC|$ERR" "2|ferry: cannot connect to the database: connection to server at \"127.0.0.1\", port $FERRY_PG_TCP_PORT failed: fe_sendauth: no password supplied; the server asks for a password: give it in PGPASSWORD, in a password file (~/.pgpass, or the one PGPASSFILE names: host:port:database:user:password) or in the connection string" \
   "no password given: one line saying where one goes"
PGPASSWORD=$WRONG run_ferry --db "$kv" --dir "$D" -v --json up
is "$RC" 2 "wrong PGPASSWORD: exit 2"
collect
DATABASE_URL=$wrong_url run_ferry --dir "$D" -v status
is "$RC" 2 "wrong password in DATABASE_URL: exit 2"
collect
# malformed strings that carry a password
for u in "postgresql://ferry_pw:$WRONG@127.0.0.1:$FERRY_PG_TCP_PORT/$dbname?nosuchoption=1" \
         "postgresql://ferry_pw:$WRONG@127.0.0.1:notaport/$dbname" \
         "host=127.0.0.1 password=$WRONG port=notaport" \
         "host=127.0.0.1 password=$WRONG nosuchkey=1" \
         "host='127.0.0.1 password=$WRONG" \
         "postgresql://ferry_pw:${WRONG/-/%2D}@127.0.0.1:$FERRY_PG_TCP_PORT/$dbname"; do
    run_ferry --db "$u" --dir "$D" -v --json status
    is "$RC" 2 "a bad connection string is exit 2: ${u//$WRONG/***}"
    collect
done

# a '%' that is no URL escape: libpq cannot parse the string and its error
# quotes the offending token -- which must not show the password either
PCT='50%off-Secret-pw'
for u in "postgresql://ferry_pw:$PCT@127.0.0.1:$FERRY_PG_TCP_PORT/$dbname" \
         "postgresql://ferry_pw:$PCT@127.0.0.1:$FERRY_PG_TCP_PORT/$dbname?sslmode=disable" \
         "postgresql://127.0.0.1:$FERRY_PG_TCP_PORT/$dbname?user=ferry_pw&password=$PCT" \
         "postgresql://127.0.0.1:$FERRY_PG_TCP_PORT/$dbname?user=ferry_pw&pass%77ord=$PCT" \
         "postgresql://ferry_pw:${WRONG}%00@127.0.0.1:$FERRY_PG_TCP_PORT/$dbname" \
         "postgresql://ferry_pw:$WRONG@[::1:$FERRY_PG_TCP_PORT/$dbname"; do
    for flags in "" "-v --json"; do
        # shellcheck disable=SC2086
        run_ferry --db "$u" --dir "$D" $flags status
        is "$RC" 2 "an unparsable URL is exit 2 ($flags): ${u//[0-9]%off-Secret-pw/***}"
        like "$ERR" '^ferry: cannot connect to the database: ' "...with one clear line"
        collect
    done
done
unlike "$all_out" "off-Secret" "a password libpq cannot parse is not echoed (not even in part)"
# Every run so far -- the right password with -v and --json, wrong ones in
# a URL, a key=value string, PGPASSWORD and DATABASE_URL, the malformed
# strings that carry one (libpq quotes some of them back) -- shows neither
# password: checked here, before all_out is reset for the next group (the
# same checks at the end see only that group, which holds neither).
like "$all_out" 'password authentication failed for user "ferry_pw"' "(the outputs above are collected)"
unlike "$all_out" "$PW" "the runs above: the password never appears in stdout or stderr (incl. --json, --verbose)"
unlike "$all_out" "$WRONG" "the runs above: a wrong password never appears in stdout or stderr"
unlike "$all_out" "${WRONG/-/%2D}" "the runs above: ...nor its URL-encoded form"
# ... nor when the echo is longer than an error line holds and the cut
# falls inside the password: redacted first, then cut (a user name of 1945
# bytes puts the cut 6 bytes into it; the SQLSTATE of a refusal was put in
# before the redaction, cutting first, and "Cut-Se" showed)
long_user=$(printf 'u%.0s' $(seq 1945))
run_ferry --db "postgresql://$long_user:Cut-Secret-pw@[::1/$dbname" --dir "$D" status
is "$RC|$ERR" "2|ferry: cannot connect to the database: end of string reached when looking for matching \"]\" in IPv6 host address in URI: \"***\"" \
   "an unparsable URL longer than an error line, cut inside its password: the whole URL redacted"

# an '@' or '/' in a URL's password that is not percent-encoded, a space in
# an unquoted password=: libpq reads the string differently and its error
# quotes the rest of the password, which must not show either
all_out=
for u in "postgresql://app:Zq9@xK7wSecret@127.0.0.1:$FERRY_PG_TCP_PORT/$dbname" \
         "postgresql://app:Ab12/xK7wSecret@127.0.0.1:$FERRY_PG_TCP_PORT/$dbname" \
         "postgresql://app:Ab12?xK7wSecret@127.0.0.1:$FERRY_PG_TCP_PORT/$dbname" \
         "host=127.0.0.1 port=$FERRY_PG_TCP_PORT user=app password=Zq9 xK7wSecret" \
         "host=127.0.0.1 user=app password=Zq9 xK7wSecret port=$FERRY_PG_TCP_PORT" \
         "postgresql://app:Zq9%40Ab/xK7wSecret@127.0.0.1:$FERRY_PG_TCP_PORT/$dbname" \
         "postgresql://app:Ab12%2F@xK7w%23Secret@127.0.0.1:$FERRY_PG_TCP_PORT/$dbname"; do
    for flags in "" "-v --json"; do
        # shellcheck disable=SC2086
        run_ferry --db "$u" --dir "$D" $flags status
        is "$RC" 2 "a password libpq splits is exit 2 ($flags): ${u//xK7wSecret/***}"
        collect
    done
done
unlike "$all_out" "xK7wSecret" "a password libpq splits at an '@', '/', '?' or a space is not echoed, not even in part"
unlike "$all_out" "Zq9" "...nor its first part"
unlike "$all_out" "Ab12" "...nor the part libpq took for a port"
# (a tool that encodes all but '/', as Python's urllib.parse.quote does:
# libpq decodes the piece it takes for a port, host or database)
unlike "$all_out" "Zq9@Ab" "...nor a piece libpq decoded (its '%40' an '@')"
unlike "$all_out" "xK7w#Secret" "...nor the piece after an '@' left unencoded, decoded"

unlike "$all_out" "$PW" "the password never appears in stdout or stderr (incl. --json, --verbose)"
unlike "$all_out" "$WRONG" "a wrong password never appears in stdout or stderr"
unlike "$all_out" "${WRONG/-/%2D}" "...nor its URL-encoded form"
v=$(psql_val "$(db_uri "$dbname")" "SELECT count(*) || '|' || count(*) FILTER (WHERE h::text LIKE '%' || '$PW' || '%' OR h::text LIKE '%Secret%') FROM ferry.history h")
like "$v" '^[0-9]+\|0$' "no ferry.history column holds the password ($v rows)"
is "$(psql_val "$(db_uri "$dbname")" "SELECT count(*) FROM ferry.checkpoint c WHERE c::text LIKE '%Secret%'")" 0 \
   "no ferry.checkpoint row holds it either"

# --- os.execute / io.popen only with "-- ferry: allow-shell"
db=$(fresh_db ferry_cli_security_shell)
S=$TAP_TMPDIR/shell
mark=$TAP_TMPDIR/marks
mkdir -p "$mark"
put "$S/migrations/20250101_plain/up.lua" "os.execute('touch $mark/plain')"
run_ferry --db "$db" --dir "$S" run 20250101
is "$RC" 1 "os.execute without allow-shell: exit 1"
is "$ERR" "ferry: migrations/20250101_plain/up.lua:1: attempt to call a nil value (field 'execute')" "...os.execute is nil"
put "$S/migrations/20250101_plain/up.lua" "io.popen('touch $mark/plain')"
run_ferry --db "$db" --dir "$S" run 20250101
is "$RC|$ERR" "1|ferry: migrations/20250101_plain/up.lua:1: attempt to call a nil value (field 'popen')" \
   "io.popen without allow-shell: nil"
put "$S/migrations/20250101_plain/up.lua" "local os2 = require 'os'
stats.inc(type(os2.execute) .. '_' .. type(io.popen) .. '_' .. type(package.loaded.io.popen))"
run_ferry --db "$db" --dir "$S" --json run 20250101
is "$(json_eval "$OUT" 'list(j["stats"].keys())')" '["nil_nil_nil"]' "not reachable through require 'os' or package.loaded either"
put "$S/rules/sh.lua" "return {run = function() return os.execute('touch $mark/rule') end}"
put "$S/migrations/20250101_plain/up.lua" "require('rules.sh').run()"
run_ferry --db "$db" --dir "$S" run 20250101
is "$RC" 1 "a rule gets no os.execute either"
ls_marks() { (cd "$mark" && ls | tr '\n' ' '); }
is "$(ls_marks)" "" "no shell command ran"

rm -rf "$S/migrations/20250101_plain" "$S/rules"
put "$S/migrations/20250102_shell/up.lua" "-- ferry: allow-shell
os.execute('touch $mark/allowed')
local p = io.popen('echo popen-works')
stats.inc(p:read('l'))
p:close()
"
put "$S/migrations/20250103_after/up.lua" "stats.inc('execute_' .. type(os.execute))
stats.inc('popen_' .. type(io.popen))
"
run_ferry --db "$db" --dir "$S" --json up
is "$(json_eval "$OUT" '[[m["migration"], m["ok"], m["stats"]] for m in j["migrations"]]')" \
   '[["20250102_shell",true,{"popen-works":1}],["20250103_after",true,{"execute_nil":1,"popen_nil":1}]]' \
   "allow-shell grants os.execute and io.popen to that script only, not to the next"
is "$(ls_marks)" "allowed " "only the allowed script ran a command"

put "$S/x.lua" 'print(type(os.execute), type(io.popen))'
run_ferry exec "$S/x.lua"
is "$OUT" $'nil\tnil' "ferry exec: no shell by default"
put "$S/x.lua" '-- ferry: allow-shell
print(type(os.execute), type(io.popen))'
run_ferry exec "$S/x.lua"
is "$OUT" $'function\tfunction' "ferry exec: allow-shell grants it"

# An unknown option is named without its value: a mistyped --db-url=...
# must not echo the password it carries.
run_ferry --db-url=postgresql://u:Ech0ed-Pw@127.0.0.1/x status
is "$RC" 2 "unknown --db-url=...: exit 2"
is "$ERR" "ferry: unknown option --db-url (see 'ferry --help')" "...named without its value"
# ... nor one glued to an option without '=' or a blank (--db"$URL", -q"$URL")
run_ferry --dbpostgresql://u:Ech0ed-Pw@127.0.0.1/x status
is "$ERR" "ferry: unknown option --dbpostgresql (see 'ferry --help')" "unknown --db<url>: named up to the URL"
run_ferry --json -qpostgres://u:Ech0ed-Pw@127.0.0.1/x up
is "$ERR" "ferry: unknown option -qpostgres (see 'ferry --help')" "unknown -q<url>: named up to the URL"
is "$OUT" '{"ok":false,"error":"unknown option -qpostgres (see '"'"'ferry --help'"'"')"}' "...in the --json object too"

# --- redaction must not garble ordinary text: the server's errors are the
# server's (it never sees the password), and a bare database name is no
# secret.  (PGPASSWORD=5 turned "[SQLSTATE 23505]" into "[SQLSTATE 23***0***]"
# and dropped the live-system hint; --db crm7 printed database "***".)
put "$D/dup.lua" 'db.exec("CREATE TEMP TABLE d (id int PRIMARY KEY)")
db.exec("INSERT INTO d VALUES (1234)")
db.exec("INSERT INTO d VALUES (1234)")'
PGPASSWORD=5 run_ferry --db "$kv password=$PW" exec "$D/dup.lua"
like "$ERR" 'Key \(id\)=\(1234\) already exists.*\[SQLSTATE 23505\]' "a short PGPASSWORD does not garble the server's error"
run_ferry --db "ferry_cli_no_such_db_5" status
like "$ERR" 'database "ferry_cli_no_such_db_5" does not exist' "a bare database name is shown in the server's error"

# --- a server error longer than the 2 KB an error keeps, with the password
# where it is cut: the password is redacted before the cut, so no part of
# it is left in front of the "..." (it showed "Sup3r-Secret..." and every
# shorter prefix)
put "$D/long.lua" 'local pw = ...
for n = 1960, 2000 do
  local ok, err = pcall(db.exec, "SELECT $1::int", string.rep("#", n) .. pw)
  print(n, (err:gsub("#+", "#*")))
end'
run_ferry --db "$url" exec "$D/long.lua" "$PW"
is "$RC" 0 "a long error with the password at the cut (exec)"
like "$OUT" $'\n1990\tquery failed: invalid input syntax for type integer: "#\\*\\.\\.\\. \\[SQLSTATE 22P02\\]' \
   "...cut with the SQLSTATE kept"
unlike "$OUT" "Sup|Su\\.|S\\.\\.\\." "...no part of the password before the cut"

# --- the server's notices are redacted as its errors are: a NOTICE or
# WARNING (and its DETAIL and HINT) that shows a value holding the password
# (data put it there) shows *** instead, on the main session, a session of
# the script's own and one opened with a conninfo of its own
put "$D/notice.lua" 'local pw = ...
db.exec([[SELECT set_config($$ferry.v$$, $1, false)]], pw)
db.exec([[DO $d$BEGIN RAISE NOTICE $m$value: %$m$, current_setting($m$ferry.v$m$);
  RAISE WARNING $m$w %$m$, current_setting($m$ferry.v$m$) USING DETAIL = current_setting($m$ferry.v$m$),
    HINT = $m$h $m$ || current_setting($m$ferry.v$m$); END$d$]])
local c = db.connect()
c:exec([[SELECT set_config($$ferry.v$$, $1, false)]], pw)
c:exec([[DO $d$BEGIN RAISE NOTICE $m$other session: %$m$, current_setting($m$ferry.v$m$); END$d$]])
c:close()'
run_ferry --db "$url" exec "$D/notice.lua" "$PW"
is "$RC|$ERR" "0|NOTICE:  value: ***
WARNING:  w ***
DETAIL:  ***
HINT:  h ***
NOTICE:  other session: ***" "a notice that shows the password shows *** (main session, db.connect())"
put "$D/notice2.lua" 'local pw, url = ...
local c = db.connect(url)
c:exec([[DO $d$BEGIN RAISE NOTICE $m$own conninfo: x]] .. pw .. [[$m$; END$d$]])
c:close()'
run_ferry exec "$D/notice2.lua" "$PW" "$url"
is "$RC|$ERR" "0|NOTICE:  own conninfo: x***" "...also on a session opened with db.connect(conninfo)"
# a repeated one is counted, and the line that says so at the end redacts it too
put "$D/notice3.lua" 'local pw = ...
db.exec([[SELECT set_config($$ferry.v$$, $1, false)]], pw)
for _ = 1, 5 do db.exec([[DO $d$BEGIN RAISE NOTICE $m$again: %$m$, current_setting($m$ferry.v$m$); END$d$]]) end'
run_ferry --db "$url" exec "$D/notice3.lua" "$PW"
is "$RC|$ERR" "0|NOTICE:  again: ***
NOTICE:  again: ***
NOTICE:  again: ***
note: the server sent this notice 2 more times (not shown): NOTICE:  again: ***" \
   "...and a repeated notice's closing count"

# --- a connection string put where ferry takes a command, a migration, a
# file or another option's value (--db left out, or given to the wrong
# option) is echoed in the usage error without its password
M=Misplaced-Secret-pw
mu="postgresql://app:$M@127.0.0.1:5/x"
run_ferry "$mu" status
is "$RC|$ERR" "2|ferry: unknown command postgresql://app:***@127.0.0.1:5/x (see 'ferry --help')" \
   "a URL in place of the command: its password is not echoed"
run_ferry --json "$mu" status
is "$RC|$OUT" "2|{\"ok\":false,\"error\":\"unknown command postgresql://app:***@127.0.0.1:5/x (see 'ferry --help')\"}" \
   "...nor in the JSON"
run_ferry --dir "$D" run "$mu"
is "$RC|$ERR" "2|ferry: unknown migration postgresql://app:***@127.0.0.1:5/x" "...in place of a migration"
run_ferry exec "host=127.0.0.1 password=$M"
is "$RC|$ERR" "2|ferry: cannot read host=127.0.0.1 password=***: No such file or directory" \
   "...a key=value string in place of exec's file"
run_ferry --dir "postgresql://127.0.0.1/x?user=app&password=$M" status
is "$RC|$ERR" "2|ferry: --dir postgresql://127.0.0.1/x?user=app&password=***: no such folder" "...as --dir's value"
run_ferry --dir "$D" --batch-size "$mu" up
is "$RC|$ERR" "2|ferry: --batch-size needs a whole number >= 1, not postgresql://app:***@127.0.0.1:5/x" "...as --batch-size's value"
run_ferry --db "$url" --dir "$D" --lock-timeout "$mu" status
is "$RC|$ERR" "2|ferry: --lock-timeout: invalid value for parameter \"lock_timeout\": \"postgresql://app:***@127.0.0.1:5/x\" [SQLSTATE 22023]" \
   "...as --lock-timeout's value (the server's error echoes it)"
run_ferry --dir "$D" new "$mu"
is "$RC|$ERR" "2|ferry: migration names use lowercase letters, digits and underscores, and begin with a letter or digit: postgresql://app:***@127.0.0.1:5/x" \
   "...as the name of a new migration"
# ...a URL whose password keyword is percent-encoded (libpq decodes a
# URL's keywords too): the value as written, which is not what libpq reads
run_ferry "postgresql://127.0.0.1/x?user=app&pass%77ord=Misplaced%2DSecret-pw&sslmode=disable" status
is "$RC|$ERR" "2|ferry: unknown command postgresql://127.0.0.1/x?user=app&pass%77ord=***&sslmode=disable (see 'ferry --help')" \
   "...a ?pass%77ord= value as written"
run_ferry --dir "$D" run 20250199_nosuch
is "$RC|$ERR" "2|ferry: unknown migration 20250199_nosuch" "(an argument that holds no password is shown whole)"
# ...a URL inside a connection string (a dbname= value: libpq expands one
# level only, and reads the URL as a database's name) or after other words
run_ferry --dir "$D" run "dbname=$mu"
is "$RC|$ERR" "2|ferry: unknown migration dbname=postgresql://app:***@127.0.0.1:5/x" "...a URL as a key=value string's dbname"
run_ferry --dir "$D" run "x $mu"
is "$RC|$ERR" "2|ferry: unknown migration x postgresql://app:***@127.0.0.1:5/x" "...a URL after another word"
# ...and as --db: the server's error quotes the database name it was given
# (its first 63 bytes, the password among them)
named=${url:0:63}
run_ferry --db "host=$PGHOST port=$PGPORT dbname=$url" --dir "$D" status
is "$RC|$ERR" "2|ferry: cannot connect to the database: connection to server on socket \"$PGHOST/.s.PGSQL.$PGPORT\" failed: FATAL:  database \"${named/$PW/***}\" does not exist [SQLSTATE 3D000]" \
   "--db with the URL as its dbname: the server's error, without the password"
# ...also when the server's cut of the name falls inside the password
run_ferry --db "host=$PGHOST port=$PGPORT dbname=postgresql://a_rather_long_application_user_name:$PW@127.0.0.1/x" --dir "$D" status
is "$RC|$ERR" "2|ferry: cannot connect to the database: connection to server on socket \"$PGHOST/.s.PGSQL.$PGPORT\" failed: FATAL:  database \"postgresql://a_rather_long_application_user_name:***\" does not exist [SQLSTATE 3D000]" \
   "...and without the beginning of it that a name cut at 63 bytes keeps"

# --- ferry's own lines (usage errors, error lines, notes, the status
# table, log lines, the --json object) never show the password of the
# command's connection (--db, DATABASE_URL, PGPASSWORD) when it is given
# where ferry takes something else: the same rule as the server's errors
# (a password of 8 bytes or more reads ***).  They echoed it whole.
own() {   # own EXPECTED-ERR ARGS...: as given with --db $url, and with --json
    local want=$1
    shift
    run_ferry --db "$url" --dir "$D" "$@"
    is "$RC|$OUT|$ERR" "2||ferry: $want" "ferry's own line, the password as an argument: $*"
    run_ferry --db "$url" --dir "$D" --json "$@"
    is "$RC|$OUT" "2|{\"ok\":false,\"error\":\"$want\"}" "...with --json"
}
own "unknown migration ***" run "$PW"
own "unknown migration ***" validate "$PW"
own "unknown migration ***" rollback "$PW"
own "migration names use lowercase letters, digits and underscores, and begin with a letter or digit: ***" new "$PW"
own "--to ***: no migration has that version" up --to "$PW"
own "baseline ***: no migration has that version" baseline "$PW"
own "cannot read ***: No such file or directory" exec "$PW"
own "--jobs needs a whole number from 1 to 100, not ***" --jobs "$PW" up
own "--max-errors needs a whole number >= 0, not ***" --max-errors "$PW" up
own "unknown command *** (see 'ferry --help')" "$PW"
own "up takes no arguments (did you mean 'ferry run ***'?)" up "$PW"
run_ferry --db "$url" --dir "$D" --lock-timeout "$PW" status
is "$RC|$ERR" "2|ferry: --lock-timeout: invalid value for parameter \"lock_timeout\": \"***\" [SQLSTATE 22023]" \
   "...a timeout's value the server echoes"
PGPASSWORD=$PW run_ferry --db "$kv" --dir "$D" run "$PW"
is "$RC|$ERR" "2|ferry: unknown migration ***" "...the password in PGPASSWORD"
DATABASE_URL=$url run_ferry --dir "$D" --json validate "$PW"
is "$RC|$OUT" "2|{\"ok\":false,\"error\":\"unknown migration ***\"}" "...the password in DATABASE_URL"
# a folder's name in the notes, the status table and --json's object
O=$TAP_TMPDIR/own
put "$O/migrations/20250199_x$PW/up.lua" 'log.info("the script logs", (...) or ctx.migration)
log.warn("warned " .. ctx.migration)'
mkdir -p "$O/migrations/$PW"
run_ferry --db "$url" --dir "$O" status
is "$RC|$ERR" "0|note: migrations/*** is not a migration folder (the name must be <version>_<name>): ignored" "a note names the folder without the password"
like "$OUT" $'\n20250199_x\\*\\*\\* +pending' "...the status table too"
run_ferry --db "$url" --dir "$O" --json status
is "$(json_eval "$OUT" '[m["migration"] for m in j["migrations"] if not m["missing"]]')" '["20250199_x***"]' "...and --json's object"
run_ferry --db "$url" --dir "$O" run 20250199
like "$OUT" "^==> 20250199_x\\*\\*\\*"$'\n'"the script logs 20250199_x\\*\\*\\*" "a run's heading and a script's log.info"
like "$ERR" "^warned 20250199_x\\*\\*\\*" "...its log.warn"
like "$OUT" $'\n\u2713 20250199_x\\*\\*\\* applied in' "...the closing line"
put "$O/x.lua" 'log.info("exec logs", ...)
print("print is the script\x27s own:", ...)'
run_ferry --db "$url" exec "$O/x.lua" "$PW"
is "$RC|$OUT" "0|exec logs ***"$'\n'"print is the script's own:	$PW" "exec: log.info redacts, the script's own print does not"
# both passwords (the connection's and PGPASSWORD's) in one line, after a
# NUL byte too (each piece between NULs is redacted on its own); the
# passwords are parsed once per run, each line only searched for them
put "$O/y.lua" 'log.info("both " .. arg[1] .. " and " .. arg[2] .. " \0after " .. arg[1])'
got=$(PGPASSWORD=another-long-pw "$FERRY" --db "$url" exec "$O/y.lua" "$PW" another-long-pw | tr '\0' '@')
is "$got" "both *** and *** @after ***" "exec: log.info redacts both passwords, a NUL byte before one too"
# a password shorter than 8 bytes is not redacted in ferry's own lines, as
# in the server's errors: it would garble ids, numbers and SQLSTATEs
PGPASSWORD=abc run_ferry --dir "$D" run abc
is "$RC|$ERR" "2|ferry: unknown migration abc" "a short password (PGPASSWORD=abc) is not redacted in ferry's own lines"
PGPASSWORD=20250101 run_ferry --dir "$D" run 20250199
is "$RC|$ERR" "2|ferry: unknown migration 20250199" "...nor is a longer one that is not there"
rm -rf "$O/migrations/20250199_x$PW"
# --json's object is redacted string by string, never in its numbers or its
# syntax: a password of digits that a count holds leaves valid JSON
N=$TAP_TMPDIR/numpw
put "$N/migrations/20250101_n/up.lua" 'stats.inc("rows", 123456789); stats.inc("x12345678", 1); log.info("done")'
dbn=$(fresh_db ferry_cli_security_numpw)
PGPASSWORD=12345678 run_ferry --db "$dbn" --dir "$N" --json run 20250101_n
is "$RC" 0 "a run with PGPASSWORD=12345678 (digits) and --json"
is "$(json_eval "$OUT" 'j["stats"]')" '{"rows":123456789,"x***":1}' \
   "...valid JSON: the count keeps its digits, a counter's name is redacted"

done_testing
