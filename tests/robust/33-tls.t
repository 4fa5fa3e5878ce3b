#!/usr/bin/env bash
# TLS: ferry connects its sessions its own way (started ahead, finished on
# first use: pgconn.c), so the TLS handshake goes through that code, for the
# main session, the ones a data migration opens and db.connect().  With a
# self-signed certificate on the server: sslmode=require and verify-full
# (with the CA) work on every session, with a password; verify-full without
# the CA or with another one, exit 2 with one line that says what to do;
# and a client certificate logs in with no password.
#
# The test turns ssl on for the shared test server (ALTER SYSTEM, reload)
# and adds a hostssl line to its pg_hba.conf, both undone at exit.  openssl
# is one of the test packages of scripts/deps.sh; without it the test is
# skipped.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../cli/cli-lib.sh"
require_pg
command -v openssl >/dev/null || skip_all "openssl is not installed (bash scripts/deps.sh test installs it, as root)"

PW='Sup3r-Secret-pw'
admin=$(db_uri postgres)
db=$(fresh_db ferry_tls)
psql_val "$admin" "ALTER DATABASE ferry_tls OWNER TO ferry_pw" >/dev/null
data=$(psql_val "$admin" "SHOW data_directory")
hba=$(psql_val "$admin" "SHOW hba_file")

# A CA, the server's certificate (localhost, 127.0.0.1) and ferry_pw's
# client certificate, all signed by it; another CA that signed nothing.
C=$TAP_TMPDIR/tls
mkdir -p "$C"
(
    cd "$C" || exit 1
    key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$1" 2>/dev/null; }
    key ca.key && key other.key && key server.key && key client.key
    openssl req -x509 -new -key ca.key -subj "/CN=ferry test CA" -days 2 -out ca.crt 2>/dev/null
    openssl req -x509 -new -key other.key -subj "/CN=another CA" -days 2 -out other.crt 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext
    openssl req -new -key server.key -subj "/CN=localhost" 2>/dev/null |
        openssl x509 -req -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.crt 2>/dev/null
    openssl req -new -key client.key -subj "/CN=ferry_pw" 2>/dev/null |
        openssl x509 -req -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -out client.crt 2>/dev/null
    chmod 600 client.key
) || bail_out "could not make the certificates"

cp "$C/server.crt" "$data/ferry_tls_server.crt"
cp "$C/server.key" "$data/ferry_tls_server.key"
cp "$C/ca.crt" "$data/ferry_tls_ca.crt"
chmod 600 "$data/ferry_tls_server.key"
if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$data"/ferry_tls_*; fi
cp "$hba" "$TAP_TMPDIR/pg_hba.conf.saved"
undo() {
    cat "$TAP_TMPDIR/pg_hba.conf.saved" >"$hba"
    psql_val "$admin" "ALTER SYSTEM RESET ssl" >/dev/null
    psql_val "$admin" "ALTER SYSTEM RESET ssl_cert_file" >/dev/null
    psql_val "$admin" "ALTER SYSTEM RESET ssl_key_file" >/dev/null
    psql_val "$admin" "ALTER SYSTEM RESET ssl_ca_file" >/dev/null
    psql_val "$admin" "SELECT pg_reload_conf()" >/dev/null
    rm -f "$data"/ferry_tls_*
    _tap_at_exit
}
trap 'in_test_shell && undo' EXIT
# (first: a client certificate, and nothing else, for one database)
{ printf 'hostssl ferry_tls_cert all 127.0.0.1/32 cert\n'; cat "$TAP_TMPDIR/pg_hba.conf.saved"; } >"$hba"
fresh_db ferry_tls_cert >/dev/null
psql_val "$admin" "ALTER DATABASE ferry_tls_cert OWNER TO ferry_pw" >/dev/null
psql_val "$admin" "ALTER SYSTEM SET ssl_cert_file = 'ferry_tls_server.crt'" >/dev/null
psql_val "$admin" "ALTER SYSTEM SET ssl_key_file = 'ferry_tls_server.key'" >/dev/null
psql_val "$admin" "ALTER SYSTEM SET ssl_ca_file = 'ferry_tls_ca.crt'" >/dev/null
psql_val "$admin" "ALTER SYSTEM SET ssl = on" >/dev/null
psql_val "$admin" "SELECT pg_reload_conf()" >/dev/null
wait_until 60 output_is on psql_val "$admin" "SHOW ssl"
is "$(psql_val "$admin" "SHOW ssl")" on "(the server has ssl on)"

# no password file, no root certificate of the user's own
export HOME=$TAP_TMPDIR/home PGPASSFILE=$TAP_TMPDIR/no-pgpass
mkdir -p "$HOME"
unset PGPASSWORD PGSSLMODE PGSSLROOTCERT PGSSLCERT PGSSLKEY

D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_t/up.sql" 'CREATE TABLE t (i int, ssl boolean);'
# every session the run opens, and its own, says whether it is encrypted
put "$D/migrations/20250102_d/up.lua" 'db.prestart(1)
local ahead, other = db.connect(), db.connect(ctx.conninfo_for_tests)
local mine = "INSERT INTO t SELECT $1, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
db.exec(mine, 1); ahead:exec(mine, 2); other:exec(mine, 3)
stats.inc("sessions", 3)'
sessions() { psql_val "$1" "SELECT string_agg(i || ':' || ssl, ' ' ORDER BY i) FROM t"; }
ssl_of() { # URL: whether ferry's session is encrypted
    run_ferry --db "$1" exec "$TAP_TMPDIR/ssl.lua"
    printf '%s|%s|%s' "$RC" "$OUT" "$ERR"
}
put "$TAP_TMPDIR/ssl.lua" 'print(db.one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").ssl)'
all_out=''
collect() { all_out+=$'\n'"$OUT"$'\n'"$ERR"; }

base="postgresql://ferry_pw:$PW@127.0.0.1:$FERRY_PG_TCP_PORT/ferry_tls"
# ctx has no conninfo: the up.lua's second connection string is the same
sed -i "s|ctx.conninfo_for_tests|'$base?sslmode=require'|" "$D/migrations/20250102_d/up.lua"
run_ferry --db "$base?sslmode=require" --dir "$D" up
is "$RC" 0 "sslmode=require: up applies both migrations" || diag "$ERR"
collect
is "$(sessions "$db")" "1:true 2:true 3:true" "...every session encrypted (the main one, one started ahead, db.connect)"
is "$(ssl_of "$base?sslmode=verify-full&sslrootcert=$C/ca.crt")" "0|true|" "verify-full with the CA (sslrootcert): connects, encrypted"
collect
is "$(ssl_of "postgresql://ferry_pw:$PW@localhost:$FERRY_PG_TCP_PORT/ferry_tls?sslmode=verify-full&sslrootcert=$C/ca.crt")" \
   "0|true|" "...by the host's name too"
collect
run_ferry --db "$base?sslmode=verify-full" status
is "$RC|$OUT|$ERR" "2||ferry: cannot connect to the database: connection to server at \"127.0.0.1\", port $FERRY_PG_TCP_PORT failed: root certificate file \"$HOME/.postgresql/root.crt\" does not exist; Either provide the file or change sslmode to disable server certificate verification." \
   "verify-full without the CA: exit 2, one line with libpq's advice"
collect
run_ferry --db "$base?sslmode=verify-full&sslrootcert=$C/other.crt" status
is "$RC" 2 "verify-full with another CA: exit 2"
like "$ERR" "^ferry: cannot connect to the database: connection to server at \"127.0.0.1\", port $FERRY_PG_TCP_PORT failed: SSL error: certificate verify failed" \
     "...saying the certificate does not verify"
collect
# a session started ahead and used after its connect_timeout ran out: its
# TLS handshake is given the time from then (robust/31-connect-hosts.t)
put "$TAP_TMPDIR/late.lua" 'db.prestart(1)
db.exec("SELECT pg_sleep(3)")
print(db.connect():one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").ssl)'
run_ferry --db "$base?sslmode=require&connect_timeout=2" exec "$TAP_TMPDIR/late.lua"
is "$RC|$OUT|$ERR" "0|true|" "sslmode=require, a session started ahead and used after its connect_timeout: encrypted"
collect
cert="postgresql://ferry_pw@127.0.0.1:$FERRY_PG_TCP_PORT/ferry_tls_cert?sslmode=verify-full&sslrootcert=$C/ca.crt"
is "$(ssl_of "$cert&sslcert=$C/client.crt&sslkey=$C/client.key")" "0|true|" "a client certificate, no password: connects"
run_ferry --db "$cert&sslcert=$C/client.crt&sslkey=$C/client.key" --dir "$D" -q up --to 20250101
is "$RC|$ERR" "0|" "...and applies a migration"
run_ferry --db "$cert" status
is "$RC|$ERR" "2|ferry: cannot connect to the database: connection to server at \"127.0.0.1\", port $FERRY_PG_TCP_PORT failed: FATAL:  connection requires a valid client certificate [SQLSTATE 28000]" \
   "without it: exit 2, one line"

# A host name of two addresses, the first silent: ferry goes on to the
# second itself, a hostaddr under that name, and says what libpq says of
# it -- here twice, as sslmode=prefer tries it twice (with TLS, refused
# for want of a client certificate; then without, refused by pg_hba.conf).
# (the name as robust/31-connect-hosts.t makes it: a hosts file of our own
# in a mount namespace, or else localhost; a listener that never answers
# on [::1] at the server's port)
cp /etc/hosts "$TAP_TMPDIR/hosts"
printf '::1 ferry-multi.test\n127.0.0.1 ferry-multi.test\n' >>"$TAP_TMPDIR/hosts"
addresses() { "$@" getent ahosts "$mname" 2>/dev/null | awk '$2 == "STREAM" {print $1}' | paste -sd,; }
ns() { unshare -m sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$TAP_TMPDIR/hosts" "$@"; }
plain() { "$@"; }
mname=ferry-multi.test wrap=ns
if [ "$(addresses ns)" != "::1,127.0.0.1" ]; then mname=localhost wrap=plain; fi
python3 - "$FERRY_PG_TCP_PORT" <<'PY' &
import socket, sys
try:
    s = socket.socket(socket.AF_INET6); s.bind(("::1", int(sys.argv[1]))); s.listen(8)
except OSError:
    sys.exit(0)                         # no IPv6 here: the test skips
held = []
while True: held.append(s.accept()[0])
PY
silent=$!
for _ in $(seq 50); do python3 -c "import socket; socket.create_connection(('::1', $FERRY_PG_TCP_PORT), 1)" 2>/dev/null && break; sleep 0.1; done
if ! python3 -c "import socket; socket.create_connection(('::1', $FERRY_PG_TCP_PORT), 1)" 2>/dev/null ||
   [ "$(addresses $wrap)" != "::1,127.0.0.1" ]; then
    skip "no name of two addresses here, ::1 then 127.0.0.1 (a mount namespace: unshare -m, as root; or localhost so in /etc/hosts)" 1
else
    { head -n 1 "$hba"; printf 'hostnossl ferry_tls_cert all 127.0.0.1/32 reject\n'; cat "$TAP_TMPDIR/pg_hba.conf.saved"; } >"$hba.new"
    mv "$hba.new" "$hba"
    psql_val "$admin" "SELECT pg_reload_conf()" >/dev/null
    twice="host=$mname port=$FERRY_PG_TCP_PORT dbname=ferry_tls_cert user=ferry_pw password=$PW sslmode=prefer connect_timeout=2"
    want=$("$wrap" "$PSQL" -X -A -t -d "$twice" -c 'SELECT 1' 2>&1 |
           sed 's/^psql: error: //' | awk 'NR > 1 {printf "; "} {gsub(/^[ \t]+|[ \t]+$/, ""); printf "%s", $0}')
    RC=0
    "$wrap" timeout 60 "$FERRY" --db "$twice" status >"$TAP_TMPDIR/out" 2>"$TAP_TMPDIR/err" || RC=$?
    OUT=$(cat "$TAP_TMPDIR/out") ERR=$(cat "$TAP_TMPDIR/err")
    collect
    is "$RC|$(sed 's/ \[SQLSTATE [0-9A-Z]\{5\}\]//g' "$TAP_TMPDIR/err")" "2|ferry: cannot connect to the database: $want" \
       "a name's silent address, then its second tried twice (sslmode=prefer): libpq's words" || diag "psql: $want"
fi
kill "$silent" 2>/dev/null
unlike "$all_out" "$PW" "the password is never printed"
done_testing
