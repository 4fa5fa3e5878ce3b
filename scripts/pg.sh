#!/usr/bin/env bash
# scripts/pg.sh - a private, throwaway PostgreSQL 15 cluster for ferry's tests.
#
#   scripts/pg.sh start  DIR           init (first time) and start; idempotent
#   scripts/pg.sh stop   DIR [--clean] pg_ctl stop -m fast; --clean removes it all
#   scripts/pg.sh env    DIR           print `export ...` lines (eval them)
#   scripts/pg.sh status DIR           exit 0 if the cluster is running
#
# DIR is a folder of the build tree, e.g. build/pg.  Layout (in DIR, or in a
# /tmp fallback whose path is recorded in DIR/location):
#   data/            PGDATA (server log: data/server.log)
#   sock/            private unix socket folder
#   port             the port the cluster listens on (socket and 127.0.0.1)
#
# As root the server runs as the `postgres` user (initdb refuses root); as any
# other user it runs as that user.  If DIR is not reachable by the server user
# (e.g. the checkout is under /root, mode 700) or its path is too long for a
# unix socket, the cluster lives in a mktemp folder under /tmp instead.
#
# Roles/databases made on start: superuser `postgres` (trust over the socket),
# login role `ferry_pw` (password 'Sup3r-Secret-pw', CREATEDB; scram-sha-256
# over TCP 127.0.0.1), database `ferry`.
#
# The Debian system cluster (15/main, port 5432, /var/run/postgresql) is never
# used or touched.
set -euo pipefail

PGBIN=/usr/lib/postgresql/15/bin
FIRST_PORT=54320
PORT_TRIES=200
SERVER_USER=postgres
FERRY_PW_ROLE=ferry_pw
FERRY_PW_PASSWORD='Sup3r-Secret-pw'
DBNAME=ferry

log() { echo "pg.sh: $*" >&2; }
die() { echo "pg.sh: error: $*" >&2; exit 1; }

usage() {
    echo "usage: $0 start DIR | stop DIR [--clean] | env DIR | status DIR" >&2
    exit 2
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# Run a command as the server user, from / (the caller's cwd may be
# unreadable for postgres), without our lock fd (the postmaster must not
# inherit it).
as_server() {
    if is_root; then
        ( cd / && exec runuser -u "$SERVER_USER" -- "$@" ) 9<&-
    else
        ( cd / && exec "$@" ) 9<&-
    fi
}

give_to_server() {
    if is_root; then chown "$SERVER_USER:$SERVER_USER" "$@"; fi
}

server_can_use() { # DIR: can the server user create files in DIR?
    if is_root; then
        runuser -u "$SERVER_USER" -- test -w "$1" -a -x "$1" 2>/dev/null
    else
        test -w "$1" -a -x "$1"
    fi
}

# unix socket paths are limited to 107 bytes: SOCKDIR/.s.PGSQL.NNNNN
sock_path_ok() { [ $(( ${#1} + 17 )) -le 100 ]; }

# urlencode STRING
. "$(dirname "${BASH_SOURCE[0]}")/urlencode.sh"

print_export() { # NAME VALUE -> export NAME='VALUE' (shell-quoted)
    local q=\'\\\'\'
    printf "export %s='%s'\n" "$1" "${2//\'/$q}"
}

port_in_use() { # something accepts TCP connections on 127.0.0.1:PORT
    ( exec 3<>"/dev/tcp/127.0.0.1/$1" ) 2>/dev/null
}

# Sets BASE to where the cluster of DIR lives, or to '' if there is none.
find_base() {
    BASE=''
    if [ -f "$DIR/location" ]; then
        local loc
        loc=$(cat "$DIR/location")
        if [ -n "$loc" ] && [ -d "$loc" ]; then BASE=$loc; fi
    elif [ -d "$DIR/data" ] || [ -f "$DIR/port" ]; then
        BASE=$DIR
    fi
}

# Like find_base, but makes a new home for the cluster if there is none.
make_base() {
    find_base
    [ -z "$BASE" ] || return 0
    rm -f "$DIR/location"
    give_to_server "$DIR"
    if server_can_use "$DIR" && sock_path_ok "$DIR/sock"; then
        BASE=$DIR
        return 0
    fi
    if is_root; then chown root:root "$DIR"; fi
    BASE=$(mktemp -d /tmp/ferry-pg.XXXXXXXX)
    give_to_server "$BASE"
    printf '%s\n' "$BASE" >"$DIR/location"
    if sock_path_ok "$DIR/sock"; then
        local who
        if is_root; then who=$SERVER_USER; else who=$(id -un); fi
        log "$DIR is not usable by user $who; cluster lives in $BASE"
    else
        log "$DIR is too long a path for a unix socket; cluster lives in $BASE"
    fi
}

is_running() {
    [ -f "$BASE/data/PG_VERSION" ] || return 1
    as_server "$PGBIN/pg_ctl" status -D "$BASE/data" >/dev/null 2>&1
}

write_conf() { # PORT
    local sock=${BASE}/sock
    # FERRY_PG_DURABLE=1 (make bench): a server that flushes commits like a
    # production one; tests run without, for speed.
    local durable=off
    [ "${FERRY_PG_DURABLE:-0}" = 1 ] && durable=on
    cat >"$BASE/data/ferry.conf" <<EOF
# written by scripts/pg.sh - private test cluster, do not use for real data
listen_addresses = '127.0.0.1'
port = $1
unix_socket_directories = '${sock//\'/\'\'}'
max_connections = 50
shared_buffers = 256MB
fsync = $durable
synchronous_commit = $durable
full_page_writes = $durable
password_encryption = 'scram-sha-256'
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_timezone = 'UTC'
timezone = 'UTC'
EOF
    give_to_server "$BASE/data/ferry.conf"
}

init_cluster() {
    mkdir -p "$BASE/sock"
    chmod 700 "$BASE/sock"
    give_to_server "$BASE/sock"
    [ -f "$BASE/data/PG_VERSION" ] && return 0
    rm -rf "$BASE/data"
    log "initdb $BASE/data"
    if ! as_server "$PGBIN/initdb" -D "$BASE/data" -U postgres -E UTF8 --no-locale \
            --auth-local=trust --auth-host=scram-sha-256 --no-sync \
            >"$BASE/initdb.log" 2>&1; then
        cat "$BASE/initdb.log" >&2
        die "initdb failed"
    fi
    cat >"$BASE/data/pg_hba.conf" <<'EOF'
# written by scripts/pg.sh
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  trust
host    all       all   127.0.0.1/32   scram-sha-256
EOF
    give_to_server "$BASE/data/pg_hba.conf"
    printf "\ninclude = 'ferry.conf'\n" >>"$BASE/data/postgresql.conf"
}

start_server() {
    local logf=$BASE/data/server.log port first try size
    first=$FIRST_PORT
    if [ -f "$BASE/port" ]; then first=$(cat "$BASE/port"); fi
    for (( try = 0; try < PORT_TRIES; try++ )); do
        port=$(( first + try ))
        port_in_use "$port" && continue
        write_conf "$port"
        size=0
        [ -f "$logf" ] && size=$(stat -c %s "$logf")
        if as_server "$PGBIN/pg_ctl" start -D "$BASE/data" -l "$logf" -w -t 120 -s >&2; then
            printf '%s\n' "$port" >"$BASE/port"
            return 0
        fi
        # Lost a race for the port (or a socket lock)? Try the next one.
        if tail -c +"$((size + 1))" "$logf" 2>/dev/null |
                grep -qE 'could not bind|could not create any TCP/IP sockets|Address already in use|lock file .* already exists'; then
            continue
        fi
        tail -n 30 "$logf" >&2 2>/dev/null || true
        die "could not start PostgreSQL (log: $logf)"
    done
    die "no free port found in $first..$((first + PORT_TRIES - 1))"
}

wait_ready() {
    local port i
    port=$(cat "$BASE/port")
    for (( i = 0; i < 240; i++ )); do
        if "$PGBIN/pg_isready" -q -h "$BASE/sock" -p "$port" -U postgres -d postgres; then
            return 0
        fi
        sleep 0.5
    done
    die "server in $BASE did not become ready"
}

setup_roles() {
    local port
    port=$(cat "$BASE/port")
    "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 \
        -h "$BASE/sock" -p "$port" -U postgres -d postgres >/dev/null <<EOF
SET client_min_messages = warning;
SET log_statement = 'none';
SELECT 'CREATE ROLE $FERRY_PW_ROLE'
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$FERRY_PW_ROLE') \gexec
ALTER ROLE $FERRY_PW_ROLE LOGIN CREATEDB PASSWORD '$FERRY_PW_PASSWORD';
SELECT 'CREATE DATABASE $DBNAME'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DBNAME') \gexec
EOF
}

lock_dir() { exec 9<"$DIR"; flock 9; }

cmd_start() {
    [ -x "$PGBIN/postgres" ] || die "$PGBIN/postgres not found; run: bash scripts/deps.sh test"
    if is_root && ! id "$SERVER_USER" >/dev/null 2>&1; then
        die "user $SERVER_USER does not exist (install postgresql-15: bash scripts/deps.sh test)"
    fi
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd -P)
    lock_dir
    make_base
    if is_running && [ -f "$BASE/port" ]; then
        wait_ready
        return 0
    fi
    init_cluster
    start_server
    wait_ready
    setup_roles || die "could not create the roles and database (log: $BASE/data/server.log)"
    log "PostgreSQL 15 running in $BASE (port $(cat "$BASE/port"), socket $BASE/sock)"
}

cmd_stop() {
    local clean=$1
    if [ ! -d "$DIR" ]; then return 0; fi
    DIR=$(cd "$DIR" && pwd -P)
    lock_dir
    find_base
    if [ -z "$BASE" ]; then
        rm -f "$DIR/location"
        return 0
    fi
    local did=""
    if is_running; then
        if ! as_server "$PGBIN/pg_ctl" stop -D "$BASE/data" -m fast -w -t 60 -s >&2; then
            log "fast shutdown failed; trying immediate"
            as_server "$PGBIN/pg_ctl" stop -D "$BASE/data" -m immediate -w -t 60 -s >&2 ||
                die "could not stop the server in $BASE/data"
        fi
        did=stopped
    fi
    # Said as start says its "running": make demo's reader sees the server go.
    if [ "$clean" = 1 ]; then
        log "PostgreSQL 15 in $BASE ${did:+stopped and }removed"
    elif [ -n "$did" ]; then
        log "PostgreSQL 15 in $BASE stopped"
    fi
    if [ "$clean" = 1 ]; then
        rm -rf "$BASE/data" "$BASE/sock" "$BASE/port" "$BASE/initdb.log"
        if [ "$BASE" != "$DIR" ]; then
            rmdir "$BASE" 2>/dev/null || true
            rm -f "$DIR/location"
        fi
        if is_root; then chown root:root "$DIR" 2>/dev/null || true; fi
        rmdir "$DIR" 2>/dev/null || true
    fi
}

cmd_env() {
    [ -d "$DIR" ] || die "no cluster in $DIR (run: $0 start $DIR)"
    DIR=$(cd "$DIR" && pwd -P)
    find_base
    if [ -z "$BASE" ] || [ ! -f "$BASE/port" ]; then
        die "no cluster in $DIR (run: $0 start $DIR)"
    fi
    local port sock
    port=$(cat "$BASE/port")
    sock=$BASE/sock
    print_export PGHOST "$sock"
    print_export PGPORT "$port"
    print_export PGUSER postgres
    print_export PGDATABASE "$DBNAME"
    print_export FERRY_PG_TCP_PORT "$port"
    print_export FERRY_PG_DIR "$DIR"
    print_export DATABASE_URL \
        "postgresql:///$DBNAME?host=$(urlencode "$sock")&port=$port&user=postgres"
}

cmd_status() {
    [ -d "$DIR" ] || return 1
    DIR=$(cd "$DIR" && pwd -P)
    find_base
    [ -n "$BASE" ] && is_running
}

[ $# -ge 2 ] || usage
action=$1
DIR=$2
shift 2
case "$action" in
    start)  [ $# -eq 0 ] || usage; cmd_start ;;
    stop)
        clean=0
        for a in "$@"; do
            case "$a" in --clean) clean=1 ;; *) usage ;; esac
        done
        cmd_stop "$clean" ;;
    env)    [ $# -eq 0 ] || usage; cmd_env ;;
    status) [ $# -eq 0 ] || usage; cmd_status ;;
    restart)   # for tests of a server restart under a running ferry
        [ $# -eq 0 ] || usage
        DIR=$(cd "$DIR" && pwd -P); find_base
        [ -n "$BASE" ] || die "no cluster in $DIR"
        as_server "$PGBIN/pg_ctl" restart -D "$BASE/data" -m fast -w -l "$BASE/data/server.log" >/dev/null ;;
    *) usage ;;
esac
