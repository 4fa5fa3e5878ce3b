#!/usr/bin/env bash
# ferry's advice on a server whose messages are German (lc_messages
# 'de_DE.UTF-8', as initdb sets it on a German machine): the advice keys on
# what no translation changes -- the SQLSTATE, the routine that raised the
# error -- so it reads as on an English server.  It used to match the
# server's English words, and on this server it was silently missing:
#   - a session refused for want of a connection slot (53300: max_connections,
#     the superusers' share of it, the CONNECTION LIMIT of a role or of a
#     database): libpq gives no SQLSTATE for a session it could not open;
#     ferry asks libpq for it (PQERRORS_VERBOSE while connecting) and shows
#     it as for any other error, " [SQLSTATE 53300]";
#   - a tsvector over its 1 MB (54000, like other limits): the server's
#     routine (make_tsvector, tsvector_concat, tsvectorin) tells it;
#   - --lock-timeout with a value the server cannot read: the flag named;
#   - a row-level security policy that applies to ferry's role: the
#     routine (check_enable_rls) tells it.
# A statement the server cancelled (57014) is a statement timeout or
# another session's pg_cancel_backend, and only the message's words say
# which: here both are named (cli/74-localized-cancel.t).
# The server is this test's own (its lc_messages and max_connections are
# the whole server's, and the refusals happen before per-database or
# per-role settings apply); it needs the machine's de_DE.UTF-8 locale
# (scripts/deps.sh test makes it).
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"

if ! locale -a 2>/dev/null | grep -qix 'de_DE\.utf-\?8'; then
    skip_all "no de_DE.UTF-8 locale on this machine (as root: bash scripts/deps.sh test)"
fi
[ -x /usr/lib/postgresql/15/bin/postgres ] || skip_all "no PostgreSQL 15 server binaries"

PGDE=$TAP_TMPDIR/pg
mkdir -p "$PGDE"
stop_server() { bash "$REPO_ROOT/scripts/pg.sh" stop "$PGDE" --clean >/dev/null 2>&1; _tap_at_exit; }
trap 'in_test_shell && stop_server' EXIT
bash "$REPO_ROOT/scripts/pg.sh" start "$PGDE" 2>/dev/null || bail_out "cannot start a server of its own"
eval "$(bash "$REPO_ROOT/scripts/pg.sh" env "$PGDE")"
unset PGOPTIONS
psql_val "$(db_uri postgres)" "ALTER SYSTEM SET lc_messages = 'de_DE.UTF-8'" >/dev/null
psql_val "$(db_uri postgres)" "ALTER SYSTEM SET max_connections = 10" >/dev/null
bash "$REPO_ROOT/scripts/pg.sh" restart "$PGDE" || bail_out "cannot restart the server"
is "$("$PSQL" -X -A -t -q -d "$(db_uri postgres)" -c "SELECT 1/0" 2>&1)" "FEHLER:  Division durch Null" \
   "the server speaks German"
SOCK="connection to server on socket \"$PGHOST/.s.PGSQL.$PGPORT\" failed"

D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_p/up.lua" 'local pipe <close> = db.pipeline{jobs = ctx.jobs, dry_run = ctx.dry_run, checkpoint = ctx.checkpoint}
local buf = db.buffer()
for i = 1, 3 do
  buf:put(i)
  pipe:send{copies = {{sql = "COPY pt (i) FROM STDIN", buffer = buf}}, position = i}
  buf:clear()
  stats.inc("rows")
end
pipe:finish()'
# the run before's sessions gone: out of pg_stat_activity, and then their
# processes too -- a backend frees its connection slot after it leaves
# pg_stat_activity, a moment that a loaded machine makes long; the
# process's end is after it.  (A server whose processes are not ours to
# see: a fixed while instead.)
clients() { psql_val "$(db_uri postgres)" "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"; }
pm=$(head -n 1 "$(psql_val "$(db_uri postgres)" "SHOW data_directory")/postmaster.pid" 2>/dev/null)
backends_gone() { ! ps --ppid "$pm" -o args= | grep -q ' ferry_de '; }
settle() {
    wait_until 60 eval '[ "$(clients)" = 1 ]'
    if [ -n "$pm" ]; then wait_until 60 backends_gone; else sleep 0.2; fi
}

db=$(fresh_db ferry_de)
psql_val "$db" "CREATE TABLE pt (i int); GRANT ALL ON pt TO PUBLIC; CREATE ROLE ferry_t_de LOGIN CONNECTION LIMIT 1; ALTER DATABASE ferry_de OWNER TO ferry_t_de" >/dev/null
dbr=$(sed 's/user=[^&]*/user=ferry_t_de/' <<<"$db")

# a role's CONNECTION LIMIT
run_ferry --db "$dbr" --dir "$D" --jobs 3 run 20250101
is "$RC|$ERR" "1|ferry: 20250101_p: cannot connect to the database: $SOCK: FATAL:  zu viele Verbindungen von Rolle »ferry_t_de« [SQLSTATE 53300]$(connection_slot_hint 3)" \
   "a role's CONNECTION LIMIT: the server's German words, the SQLSTATE, the advice"

# a database's CONNECTION LIMIT
settle
psql_val "$db" "ALTER ROLE ferry_t_de CONNECTION LIMIT -1; ALTER DATABASE ferry_de CONNECTION LIMIT 1" >/dev/null
run_ferry --db "$dbr" --dir "$D" --jobs 3 run 20250101
is "$RC|$ERR" "1|ferry: 20250101_p: cannot connect to the database: $SOCK: FATAL:  zu viele Verbindungen für Datenbank »ferry_de« [SQLSTATE 53300]$(connection_slot_hint 3)" \
   "a database's CONNECTION LIMIT: the same"

# max_connections 10, 3 of them reserved for superusers: a role without
# that right is refused the 8th
settle
psql_val "$db" "ALTER DATABASE ferry_de CONNECTION LIMIT -1" >/dev/null
run_ferry --db "$dbr" --dir "$D" --jobs 8 run 20250101
is "$RC|$ERR" "1|ferry: 20250101_p: cannot connect to the database: $SOCK: FATAL:  die verbleibenden Verbindungen sind für Superuser auf Nicht-Replikationsverbindungen reserviert [SQLSTATE 53300]$(connection_slot_hint 8)" \
   "the superusers' share of max_connections: the same"

# ... and a superuser the 11th
settle
run_ferry --db "$db" --dir "$D" --jobs 11 run 20250101
is "$RC|$ERR" "1|ferry: 20250101_p: cannot connect to the database: $SOCK: FATAL:  tut mir leid, schon zu viele Verbindungen [SQLSTATE 53300]$(connection_slot_hint 11)" \
   "max_connections: the same"
settle

# A tsvector over its 1 MB: to_tsvector (make_tsvector), a text cast to
# one (tsvectorin), two joined (tsvector_concat)
TSV='; a text is too long for a full-text index (a tsvector holds at most 1 MB of words and their positions: some megabytes of text with many different words), and the same row stops every run: shorten that text in the data, or have the rule that makes it cut such text, then'
words() { echo "(SELECT string_agg(md5(g::text), ' ') FROM generate_series($1, $2) g)"; }
words=$(words 1 40000)
put "$D/migrations/20250201_tsv/up.lua" "db.exec(\"SELECT to_tsvector('simple', $words)\")"
run_ferry --db "$db" --dir "$D" run 20250201
is "$RC|$ERR" "1|ferry: migrations/20250201_tsv/up.lua:1: query failed: Zeichenkette ist zu lang für tsvector (1450948 Bytes, maximal 1048575 Bytes) [SQLSTATE 54000]$TSV re-run to resume (everything up to the last checkpoint is committed)" \
   "to_tsvector: the advice"
run_ferry --db "$db" exec /dev/stdin <<LUA
db.exec("SELECT ($words || ':1')::tsvector")
LUA
is "$RC|$ERR" "1|ferry: /dev/stdin:1: query failed: Zeichenkette ist zu lang für tsvector (1048576 Bytes, maximal 1048575 Bytes) [SQLSTATE 54000]$TSV re-run" \
   "a text cast to tsvector (exec): the advice"
run_ferry --db "$db" exec /dev/stdin <<LUA
db.exec("SELECT to_tsvector('simple', $(words 1 20000)) || to_tsvector('simple', $(words 20001 40000))")
LUA
is "$RC|$ERR" "1|ferry: /dev/stdin:1: query failed: Zeichenkette ist zu lang für tsvector (1428828 Bytes, maximal 1048575 Bytes) [SQLSTATE 54000]$TSV re-run" \
   "two tsvectors joined: the advice"
# the other limit of tsvectorin, one word over 2 KB: not that
run_ferry --db "$db" exec /dev/stdin <<'LUA'
db.exec("SELECT repeat('x', 3000)::tsvector")
LUA
is "$RC|$ERR" "1|ferry: /dev/stdin:1: query failed: Wort ist zu lang (3000 Bytes, maximal 2046 Bytes) [SQLSTATE 54000]" \
   "one word too long: no advice of the 1 MB"

# A statement timeout: named with another session's cancel, both
put "$D/migrations/20250301_slow/up.lua" 'db.one("SELECT pg_sleep(3)")'
run_ferry --db "$db" --dir "$D" --statement-timeout 200ms run 20250301
is "$RC|$ERR" "1|ferry: migrations/20250301_slow/up.lua:1: query failed: storniere Anfrage wegen Zeitüberschreitung der Anfrage [SQLSTATE 57014]; the server cancelled the statement: it ran longer than --statement-timeout 200ms (a streaming read is one statement that lasts as long as the run), or another session cancelled it (pg_cancel_backend): give --statement-timeout more, or 0 (off, the default), and re-run to resume (everything up to the last checkpoint is committed)" \
   "a statement timeout: both causes named, the flag's value"

# --lock-timeout the server cannot read: the flag named
run_ferry --db "$db" --dir "$D" --lock-timeout banana status
is "$RC|$ERR" "2|ferry: --lock-timeout: ungültiger Wert für Parameter »lock_timeout«: »banana« [SQLSTATE 22023]" \
   "--lock-timeout banana: the flag named"
run_ferry --db "$db" --dir "$D" --statement-timeout banana status
is "$RC|$ERR" "2|ferry: --statement-timeout: ungültiger Wert für Parameter »statement_timeout«: »banana« [SQLSTATE 22023]" \
   "--statement-timeout banana: the flag named"

# A row-level security policy that applies to ferry's role: ferry's
# sessions turn row_security off, so the read fails (42501, from
# check_enable_rls) rather than see part of the table -- and the advice is
# told by that routine, not the words
psql_val "$db" "CREATE TABLE rt (i int); INSERT INTO rt VALUES (1), (2); ALTER TABLE rt ENABLE ROW LEVEL SECURITY;
                CREATE POLICY rt_some ON rt USING (i > 1); GRANT SELECT ON rt TO ferry_t_de" >/dev/null
run_ferry --db "$dbr" exec /dev/stdin <<'LUA'
db.query("SELECT i FROM rt")
LUA
is "$RC|$ERR" "1|ferry: /dev/stdin:1: query failed: Policy für Sicherheit auf Zeilenebene für Tabelle »rt« würde Auswirkung auf die Anfrage haben [SQLSTATE 42501]; a row-level security policy on that table applies to this role, and ferry reads and writes whole tables (row_security is off on its sessions: a policy fails the statement rather than hide rows from the run, its checks or its rollback): run ferry as a role the policies do not apply to (the table's owner, or a role with BYPASSRLS), then re-run" \
   "a row-level security policy on a table read: the advice"

psql_val "$(db_uri postgres)" "DROP DATABASE ferry_de" >/dev/null
done_testing
