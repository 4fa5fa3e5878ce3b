#!/usr/bin/env bash
# standard_conforming_strings = off, set by a DBA on the database or role
# (an old application's setting): ferry reads every SQL file as the server's
# default reads it -- a backslash escapes only in E'...' -- to find a
# BEGIN/COMMIT before it is sent and to check a COPY, so its sessions run
# with it on, and what the scripts write is what they say.  Left off, 'a\b'
# was stored as 'a' and a backspace, with the server's warning about a
# nonstandard backslash, and a string ferry's scanner reads as ended at its
# backslash went on for the server.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_s/up.sql" "CREATE TABLE s (src text, t text);
INSERT INTO s VALUES ('up.sql', 'a\\b');"
put "$D/migrations/20250102_l/up.lua" "db.exec([[INSERT INTO s VALUES ('up.lua', 'a\\b')]])"
mkdir -p "$D/rules"
db=$(fresh_db ferry_cli_scs)
psql_val "$(db_uri postgres)" "ALTER DATABASE ferry_cli_scs SET standard_conforming_strings = off" >/dev/null
is "$(psql_val "$db" "SHOW standard_conforming_strings")" off "set-up: the database's sessions read backslashes as escapes"

run_ferry --db "$db" --dir "$D" -q up
is "$RC|$ERR" "0|" "up: exit 0, no warning"
is "$(psql_val "$db" "SELECT string_agg(src || '=' || encode(convert_to(t, 'UTF8'), 'hex'), ' ' ORDER BY src) FROM s")" \
   "up.lua=615c62 up.sql=615c62" "up.sql and up.lua store a, a backslash, b: what they say"
printf 'print(db.one([[SELECT current_setting(%s) AS s]]).s)\n' "'standard_conforming_strings'" >"$TAP_TMPDIR/show.lua"
run_ferry --db "$db" exec "$TAP_TMPDIR/show.lua"
is "$RC|$OUT" "0|on" "ferry's sessions run with it on"
done_testing
