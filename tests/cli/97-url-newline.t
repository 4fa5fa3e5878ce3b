#!/usr/bin/env bash
# A DATABASE_URL that ends with a newline -- read from a file or a secret
# written with `echo` -- makes libpq take the newline as part of the
# database's name, and the server's refusal quotes the name across two
# lines.  ferry's one line put the SQLSTATE inside the quotes and cut the
# name there: `FATAL:  database "ferry_url_nl [SQLSTATE 3D000]; " does
# not exist`, which hides what is wrong.  Now the break reads \n inside
# the name and the SQLSTATE comes after the whole message; --json says the
# same; and the line says what is wrong, since what libpq says of a
# parameter's value with the newline in it (`invalid sslmode value:
# "disable; "`) does not show it.  The password is never shown.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_url_nl)
D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_alpha/up.sql" 'CREATE TABLE alpha (x int);'
PW='Sup3r-Secret-pw'
url="postgresql://ferry_pw:$PW@127.0.0.1:$FERRY_PG_TCP_PORT/ferry_url_nl"
BREAK="; the connection string ends with a line break (read from a file or a secret with its newline?), which libpq takes as part of its last value: remove it"
WANT="ferry: cannot connect to the database: connection to server at \"127.0.0.1\", port $FERRY_PG_TCP_PORT failed: FATAL:  database \"ferry_url_nl\\n\" does not exist [SQLSTATE 3D000]$BREAK"

DATABASE_URL="$url"$'\n' run_ferry --dir "$D" status
is "$RC|$OUT|$ERR" "2||$WANT" "a URL ending with a newline: the name with \\n, the SQLSTATE after the message"
unlike "$ERR" "$PW" "...no password"

DATABASE_URL="$url"$'\r\n' run_ferry --dir "$D" up
is "$RC|$OUT|$ERR" "2||ferry: cannot connect to the database: connection to server at \"127.0.0.1\", port $FERRY_PG_TCP_PORT failed: FATAL:  database \"ferry_url_nl\\r\\n\" does not exist [SQLSTATE 3D000]$BREAK" \
   "one ending with CR LF: \\r\\n"

DATABASE_URL="$url"$'\n' run_ferry --json --dir "$D" status
is "$RC|$(json_eval "$OUT" 'j["error"]')" "2|${WANT#ferry: }" "--json: the same line"

run_ferry --db "$url"$'\n' --dir "$D" history
is "$RC|$OUT|$ERR" "2||$WANT" "--db too"

# the newline in a parameter's value: libpq's own words, and the advice
DATABASE_URL="$url?sslmode=disable"$'\n' run_ferry --dir "$D" status
is "$RC|$OUT|$ERR" "2||ferry: cannot connect to the database: invalid sslmode value: \"disable; \"$BREAK" \
   "a parameter's value with the newline: libpq's words, and what is wrong"
# a key=value string with a newline after it connects (libpq ignores it)
DATABASE_URL="host=127.0.0.1 port=$FERRY_PG_TCP_PORT user=ferry_pw password=$PW dbname=ferry_url_nl"$'\n' run_ferry --dir "$D" -q up --dry-run
is "$RC|$OUT|$ERR" "0||" "a key=value string ending with a newline: works as before"
# a URL without the newline, whose database is missing: no such advice
DATABASE_URL="${url}x" run_ferry --dir "$D" status
is "$RC|$ERR" "2|ferry: cannot connect to the database: connection to server at \"127.0.0.1\", port $FERRY_PG_TCP_PORT failed: FATAL:  database \"ferry_url_nlx\" does not exist [SQLSTATE 3D000]" \
   "no newline: the server's message alone"
is "$(psql_val "$db" "SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry'")" 0 "nothing written"
done_testing
