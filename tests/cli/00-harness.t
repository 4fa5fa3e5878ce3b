#!/usr/bin/env bash
# The test harness itself: private PostgreSQL 15 cluster, tap.sh helpers.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"

require_pg

# --- the cluster behind DATABASE_URL
v=$(psql_val "$DATABASE_URL" "SELECT 1" 2>&1)
is "$v" "1" "DATABASE_URL reaches a server"

v=$(psql_val "$DATABASE_URL" "SELECT current_database()||' '||current_user" 2>&1)
is "$v" "ferry postgres" "DATABASE_URL is database ferry as user postgres"

v=$(psql_val "$DATABASE_URL" "SHOW server_version_num" 2>&1)
like "$v" '^15[0-9]{4}$' "server is PostgreSQL 15"

v=$(psql_val "$DATABASE_URL" "SELECT rolsuper FROM pg_roles WHERE rolname = current_user" 2>&1)
is "$v" "t" "postgres is a superuser"

v=$(psql_val "$DATABASE_URL" "SHOW fsync" 2>&1)
is "$v" "off" "it is the private cluster (fsync=off), not the system one"

# --- private socket folder
like "$PGHOST" '^/' "PGHOST is a socket folder"
unlike "$PGHOST" '^(/var)?/run/postgresql/?$' "socket folder is not the system one"
isnt "$PGPORT" "5432" "port is not the system cluster's"
test -d "$PGHOST" && test -S "$PGHOST/.s.PGSQL.$PGPORT"
ok $? "socket $PGHOST/.s.PGSQL.$PGPORT exists"
v=$(psql_val "$DATABASE_URL" "SHOW unix_socket_directories" 2>&1)
is "$v" "$PGHOST" "server listens only in the private socket folder"
like "$DATABASE_URL" "^postgresql:///ferry\?host=.*&port=$PGPORT&user=postgres$" "DATABASE_URL is a libpq URI to the socket"
is "$FERRY_PG_TCP_PORT" "$PGPORT" "FERRY_PG_TCP_PORT is set"
v=$(psql_val "$DATABASE_URL" "SELECT count(*) FROM pg_available_extensions WHERE name = 'pgtap'" 2>&1)
is "$v" "1" "pgtap extension is available"

# --- fresh_db
db=$(fresh_db ferry_harness_t)
ok $? "fresh_db succeeds"
like "$db" '^postgresql:///ferry_harness_t\?host=' "fresh_db prints a URI"
v=$(psql_val "$db" "CREATE TABLE t (x int); INSERT INTO t VALUES (42); SELECT current_database(), x FROM t" 2>&1)
is "$v" "ferry_harness_t|42" "fresh_db's database is usable"
db=$(fresh_db ferry_harness_t)
v=$(psql_val "$db" "SELECT count(*) FROM pg_class WHERE relname = 't'" 2>&1)
is "$v" "0" "fresh_db drops an existing database"
v=$(psql_val "$db" "SELEC oops" 2>&1)
ok $(( $? == 0 )) "psql_val fails on an SQL error"
psql_val "$DATABASE_URL" 'DROP DATABASE ferry_harness_t WITH (FORCE)' >/dev/null
ok $? "dropping the test database"

# --- TCP login with a password (scram-sha-256)
tcp="host=127.0.0.1 port=$FERRY_PG_TCP_PORT user=ferry_pw dbname=ferry sslmode=disable"
v=$(PGPASSFILE=/dev/null PGPASSWORD='Sup3r-Secret-pw' psql_val "$tcp" "SELECT current_user" 2>&1)
is "$v" "ferry_pw" "TCP login as ferry_pw with PGPASSWORD"
v=$(PGPASSFILE=/dev/null PGPASSWORD='Sup3r-Secret-pw' psql_val "$tcp" \
    "SELECT rolcreatedb::text || ' ' || rolsuper::text FROM pg_roles WHERE rolname = current_user" 2>&1)
is "$v" "true false" "ferry_pw may create databases and is no superuser"
v=$(PGPASSFILE=/dev/null PGPASSWORD='wrong' psql_val "$tcp" "SELECT 1" 2>&1)
like "$v" 'password authentication failed' "TCP login with a wrong password fails"
v=$(unset PGPASSWORD; PGPASSFILE=/dev/null "$PSQL" -X -w -d "$tcp" -c "SELECT 1" 2>&1)
like "$v" 'no password supplied' "TCP login without a password fails"

# --- run_ferry
fake=$TAP_TMPDIR/fake-ferry
printf '#!/bin/sh\necho "out:$*"\necho "err:$1" >&2\nexit 3\n' >"$fake"
chmod +x "$fake"
saved_ferry=$FERRY
FERRY=$fake
run_ferry a 'b c'
is "$RC|$OUT|$ERR" "3|out:a b c|err:a" "run_ferry captures RC, OUT and ERR"
FERRY=$saved_ferry
like "$FERRY" '/ferry$' "FERRY names a ferry binary"

done_testing
