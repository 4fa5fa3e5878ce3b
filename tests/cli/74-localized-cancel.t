#!/usr/bin/env bash
# A statement the server cancelled (SQLSTATE 57014) on a server whose
# messages are not in English (lc_messages 'de_DE.UTF-8', set by initdb from
# the locale of a German machine): ferry cannot tell a statement timeout
# from a pg_cancel_backend by the message's text, so it must not claim
# either; its line names both, with the flag's value, and says to re-run.
# (It used to say "another session cancelled the statement" for any
# 57014 whose text was not the English "statement timeout".)
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

D=$TAP_TMPDIR/proj
# the server's error as a German server sends it for a statement timeout
put "$D/migrations/20250101_de/up.lua" 'db.exec([[DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '"'query_canceled'"',
  MESSAGE = '"'storniere Anfrage wegen Zeitüberschreitung der Anweisung'"'; END $$]])'
mkdir -p "$D/rules"
db=$(fresh_db ferry_cli_cancel_l10n)

run_ferry --db "$db" --dir "$D" --statement-timeout 200ms run 20250101
err=$(printf '%s\n' "$ERR" | grep '^ferry:')
is "$RC" 1 "a cancelled statement, the server's message not in English: exit 1"
like "$err" "Anweisung \\[SQLSTATE 57014\\]; the server cancelled the statement: it ran longer than --statement-timeout 200ms \\(a streaming read .*\\), or another session cancelled it \\(pg_cancel_backend\\)" \
     "...the line names both causes and the flag's value ($err)"
unlike "$err" "; another session cancelled the statement" "...and does not claim it was another session"
like "$err" "give --statement-timeout more, or 0 \\(off, the default\\), and re-run" "...and says what to do"

# the flag off: a timeout set otherwise, or a cancel
run_ferry --db "$db" --dir "$D" run 20250101
err=$(printf '%s\n' "$ERR" | grep '^ferry:')
like "$err" "; the server cancelled the statement: it ran longer than a statement_timeout the migration set itself \\(SET statement_timeout.*--statement-timeout is 0, off\\), or another session cancelled it \\(pg_cancel_backend\\)" \
     "--statement-timeout off: the line names a timeout set otherwise, or a cancel ($err)"
unlike "$err" "give --statement-timeout more" "...and does not tell to give --statement-timeout more (it is 0, off)"

# ferry's own bookkeeping, the same
run_ferry --db "$db" --dir "$D" --statement-timeout 300ms exec /dev/stdin <<'LUA'
db.exec([[DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = 'query_canceled', MESSAGE = 'storniere Anfrage'; END $$]])
LUA
like "$ERR" "storniere Anfrage \\[SQLSTATE 57014\\]; the server cancelled the statement: it ran longer than --statement-timeout 300ms, or another session cancelled it" \
     "exec: the same ($ERR)"

# A real one, where the server has a German locale for its messages.
if psql_val "$db" "SET lc_messages = 'de_DE.UTF-8'; SELECT 1" >/dev/null 2>&1; then
    psql_val "$db" "ALTER DATABASE ferry_cli_cancel_l10n SET lc_messages = 'de_DE.UTF-8'" >/dev/null
    put "$D/migrations/20250102_slow/up.lua" 'db.one("SELECT pg_sleep(3)")'
    run_ferry --db "$db" --dir "$D" --statement-timeout 200ms run 20250102
    err=$(printf '%s\n' "$ERR" | grep '^ferry:')
    like "$err" "\\[SQLSTATE 57014\\]; the server cancelled the statement: it ran longer than --statement-timeout 200ms .*, or another session cancelled it" \
         "a real statement timeout on a German server: both causes named ($err)"
else
    skip "the server has no de_DE.UTF-8 locale" 1
fi

done_testing
