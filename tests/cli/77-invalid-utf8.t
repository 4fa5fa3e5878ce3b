#!/usr/bin/env bash
# Text that is not valid UTF-8 in a SQL_ASCII database (which stores any
# bytes unchecked): ferry's sessions read UTF-8, so the server refuses to
# send such a row (SQLSTATE 22021, 'invalid byte sequence for encoding
# "UTF8": 0xe9 0x20 0x68').  A QA helper found the line said only that;
# it now says where such bytes come from and what to do.  The server's
# error is raised here as the server raises it (ERRCODE 22021).
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_read/up.lua" 'db.exec([[DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '"'character_not_in_repertoire'"',
  MESSAGE = '"'invalid byte sequence for encoding \"UTF8\": 0xe9 0x20 0x68'"'; END $$]])'
mkdir -p "$D/rules"
db=$(fresh_db ferry_cli_invalid_utf8)

run_ferry --db "$db" --dir "$D" run 20250101
err=$(printf '%s\n' "$ERR" | grep '^ferry:')
is "$RC" 1 "bytes that are not UTF-8: exit 1"
like "$err" '0xe9 0x20 0x68 \[SQLSTATE 22021\]; the database holds text that is not valid UTF-8 \(a SQL_ASCII database stores any bytes unchecked\), and ferry reads it as UTF-8: correct those bytes \(or convert the database to UTF8\), then re-run to resume \(everything up to the last checkpoint is committed\)$' \
     "...says where such bytes come from and what to do ($err)"
is "$(history "$db")" "20250101_read|run|failed" "...recorded failed"
# the other way: a rule's text that is not UTF-8, sent in a COPY (a
# character cut in two): the server refuses it with the same SQLSTATE
put "$D/migrations/20250102_write/up.lua" 'db.exec("CREATE TABLE IF NOT EXISTS u8 (t text)")
local w <close> = db.copy("COPY u8 (t) FROM STDIN")
w:put(("caf\u{e9}"):sub(1, 4) .. " x")
w:finish()'
run_ferry --db "$db" --dir "$D" run 20250102
err=$(printf '%s\n' "$ERR" | grep '^ferry:')
is "$RC" 1 "a COPY of text that is not UTF-8: exit 1"
like "$err" '\[SQLSTATE 22021\]; what the run wrote holds bytes that are not valid UTF-8 \(a rule that cut a character in two, or built text from bytes\): correct the rule, then re-run to resume \(everything up to the last checkpoint is committed\)$' \
     "...says the run's own text is at fault, not the database's ($err)"
done_testing
