#!/usr/bin/env bash
# A hot standby (a streaming replica, in recovery): what only reads works
# (status, history, a dry run, validate); a command that writes fails before
# writing anything, exit 2, and the line says the server is a standby and
# to connect to the primary -- not to have the DBA turn
# default_transaction_read_only off, which a standby does not let anyone
# do (ALTER DATABASE is a write) and which would not make it take writes.
# (A database set read-only on a primary: cli/76-read-only-database.t.)
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../cli/cli-lib.sh"

PGBIN=/usr/lib/postgresql/15/bin
[ -x "$PGBIN/pg_basebackup" ] || skip_all "no PostgreSQL 15 server binaries"
as_server() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# a primary of its own (the suite's server holds every test's databases:
# too much to copy), and its standby in a folder the server user owns
PGP=$TAP_TMPDIR/pg
mkdir -p "$PGP"
SB=$(mktemp -d /tmp/ferry-standby.XXXXXX)
stop_servers() {
    as_server "$PGBIN/pg_ctl" stop -D "$SB/data" -m immediate -s >/dev/null 2>&1
    rm -rf "$SB"
    bash "$REPO_ROOT/scripts/pg.sh" stop "$PGP" --clean >/dev/null 2>&1
    _tap_at_exit
}
trap 'in_test_shell && stop_servers' EXIT
bash "$REPO_ROOT/scripts/pg.sh" start "$PGP" 2>/dev/null || bail_out "cannot start a server of its own"
eval "$(bash "$REPO_ROOT/scripts/pg.sh" env "$PGP")"
unset PGOPTIONS
hba=$(psql_val "$(db_uri postgres)" "SHOW hba_file")
printf 'local replication all trust\n' >>"$hba"
psql_val "$(db_uri postgres)" "SELECT pg_reload_conf()" >/dev/null

D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_t/up.sql" 'CREATE TABLE t (i int);'
put "$D/migrations/20250101_t/rollback.sql" 'DROP TABLE t;'
put "$D/migrations/20250102_d/up.lua" 'if not ctx.dry_run then db.exec("INSERT INTO t VALUES (1)") end'
put "$D/migrations/20250102_d/validate.lua" 'check("t is there", function() return db.one("SELECT count(*) AS n FROM t").n >= 0 end)'
mkdir -p "$D/rules"
primary=$(fresh_db ferry_standby)
run_ferry --db "$primary" --dir "$D" -q up --to 20250101
is "$RC" 0 "on the primary: 20250101_t applied"

chmod 700 "$SB"
[ "$(id -u)" -eq 0 ] && chown postgres "$SB"
as_server "$PGBIN/pg_basebackup" -h "$PGHOST" -p "$PGPORT" -U postgres -D "$SB/data" -R -X stream >/dev/null 2>&1 ||
    bail_out "pg_basebackup failed"
mkdir -p "$SB/sock"
[ "$(id -u)" -eq 0 ] && chown postgres "$SB/sock"
SBPORT=$((PGPORT + 100))
sed -i -e "s|^port = .*|port = $SBPORT|" -e "s|^unix_socket_directories = .*|unix_socket_directories = '$SB/sock'|" \
    -e "s|^listen_addresses = .*|listen_addresses = ''|" "$SB/data/ferry.conf"
as_server "$PGBIN/pg_ctl" start -D "$SB/data" -l "$SB/log" -w -t 60 -s >/dev/null 2>&1 || bail_out "the standby did not start"
standby="postgresql:///ferry_standby?host=$(urlencode "$SB/sock")&port=$SBPORT&user=postgres"
is "$(psql_val "$standby" "SELECT pg_is_in_recovery()")" t "the standby is in recovery"

before=$(db_snapshot "$standby")
WHY="; the server is a standby (in recovery), which takes no writes whatever its settings: connect to the primary (with several hosts in the connection string, target_session_attrs=read-write picks it), and re-run"
run_ferry --db "$standby" --dir "$D" up
is "$RC|$OUT|$ERR" "2||ferry: query failed: cannot execute INSERT in a read-only transaction [SQLSTATE 25006]$WHY" \
   "up on the standby: exit 2, one line saying it is a standby and to connect to the primary"
run_ferry --db "$standby" --dir "$D" --json baseline 20250102
is "$RC|$OUT" "2|{\"ok\":false,\"error\":\"query failed: cannot execute INSERT in a read-only transaction [SQLSTATE 25006]$WHY\"}" \
   "baseline, --json: the same"
run_ferry --db "$standby" --dir "$D" rollback 20250101
is "$RC|$ERR" "2|ferry: query failed: cannot execute INSERT in a read-only transaction [SQLSTATE 25006]$WHY" "rollback: the same"
is "$(db_snapshot "$standby")" "$before" "...nothing written"

run_ferry --db "$standby" --dir "$D" status
is "$RC" 0 "status only reads: exit 0"
run_ferry --db "$standby" --dir "$D" -q up --dry-run
is "$RC|$ERR" "0|" "a dry run only reads: exit 0"
run_ferry --db "$standby" --dir "$D" -q validate 20250102
is "$RC" 0 "validate only reads: exit 0"
done_testing
