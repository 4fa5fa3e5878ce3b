#!/usr/bin/env bash
# A database its DBA set read-only (ALTER DATABASE ... SET
# default_transaction_read_only = on; the same for a role, the server or
# PGOPTIONS): ferry keeps that setting (it used to turn it off on every
# session and write all the same), so a command that writes fails before
# writing anything, exit 2, with one line that says why and what to do;
# what only reads (status, a dry run, validate) still works.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_t/up.sql" 'CREATE TABLE t (i int);'
put "$D/migrations/20250102_d/up.lua" 'if not ctx.dry_run then db.exec("INSERT INTO t VALUES (1)") end'
put "$D/migrations/20250102_d/validate.lua" 'check("t is there", function() return db.one("SELECT count(*) AS n FROM t").n >= 0 end)'
mkdir -p "$D/rules"
db=$(fresh_db ferry_cli_read_only)
advice="; the session is read-only: default_transaction_read_only is on for this database, role or server (or in PGOPTIONS), or the server is a standby; ferry writes only where the server lets it (it sets that setting only for --dry-run): connect to the primary, or have the DBA turn it off (ALTER DATABASE ... SET default_transaction_read_only = off), and re-run"
esc() { sed 's/[][\\.*^$()|+?{}]/\\&/g' <<<"$1"; }

psql_val "$(db_uri postgres)" "ALTER DATABASE ferry_cli_read_only SET default_transaction_read_only = on" >/dev/null
before=$(db_snapshot "$db")
run_ferry --db "$db" --dir "$D" up
is "$RC" 2 "up on a read-only database: exit 2 (a configuration error)"
like "$ERR" "^ferry: .*cannot execute CREATE SCHEMA in a read-only transaction \\[SQLSTATE 25006\\]$(esc "$advice")\$" \
     "...one line: the server's refusal, why, and what to do ($ERR)"
is "$(db_snapshot "$db")" "$before" "...nothing written (no ferry schema, no table)"
run_ferry --db "$db" --dir "$D" --json baseline 20250101
is "$RC|$(json_eval "$OUT" 'j["ok"]')" "2|false" "baseline: exit 2, --json says ok false"
run_ferry --db "$db" --dir "$D" status
is "$RC" 0 "status only reads: exit 0"

# ferry's history there already (the database was set read-only later)
psql_val "$(db_uri postgres)" "ALTER DATABASE ferry_cli_read_only RESET default_transaction_read_only" >/dev/null
run_ferry --db "$db" --dir "$D" -q up --to 20250101
is "$RC" 0 "writable again: the schema step applies" || diag "$ERR"
psql_val "$(db_uri postgres)" "ALTER DATABASE ferry_cli_read_only SET default_transaction_read_only = on" >/dev/null
before=$(db_snapshot "$db")
run_ferry --db "$db" --dir "$D" up
is "$RC" 2 "read-only again, up: exit 2"
like "$ERR" "^ferry: .*cannot execute INSERT in a read-only transaction \\[SQLSTATE 25006\\]$(esc "$advice")\$" \
     "...the same line (the history row it could not write) ($ERR)"
is "$(db_snapshot "$db")" "$before" "...nothing written, the history as it was"
run_ferry --db "$db" --dir "$D" up --dry-run
is "$RC" 0 "a dry run only reads: exit 0" || diag "$ERR"
is "$(history "$db")" "20250101_t|up|applied" "...the history as it was"

# the same set for the role, and by PGOPTIONS on a writable database
psql_val "$(db_uri postgres)" "ALTER DATABASE ferry_cli_read_only RESET default_transaction_read_only" >/dev/null
PGOPTIONS="${PGOPTIONS:-} -c default_transaction_read_only=on" run_ferry --db "$db" --dir "$D" up
is "$RC" 2 "PGOPTIONS -c default_transaction_read_only=on: exit 2"
like "$ERR" "$(esc "$advice")\$" "...with the same advice"
run_ferry --db "$db" --dir "$D" -q up
is "$RC|$(psql_val "$db" "SELECT count(*) FROM t")" "0|1" "without it: up applies the data migration"
run_ferry --db "$db" --dir "$D" -q validate 20250102
is "$RC" 0 "validate runs read-only as before"

done_testing
