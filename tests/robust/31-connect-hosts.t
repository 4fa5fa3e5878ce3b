#!/usr/bin/env bash
# Connecting past a host that never answers (see robust/30-connect.t): ferry
# goes on to the hosts after it with a new connection built from libpq's
# view of the options, the host lists cut after the silent one.  Every form
# of host list libpq takes must come out as libpq's blocking connect would
# have it -- the next host tried, none twice, none skipped -- with the
# password never shown.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/ports.sh"
. "$(dirname "$0")/../cli/cli-lib.sh"
require_pg

PW='Sup3r-Secret-pw'
TCP=$FERRY_PG_TCP_PORT
sockdir=$(mktemp -d /tmp/ferry-silent.XXXXXX)
accepts=$TAP_TMPDIR/accepts
port='' port6='' slow=''    # (start_listeners sets them)
# Listeners that accept connections and never say a word: on 127.0.0.1:port,
# on [::1] at the server's own TCP port (the server listens on 127.0.0.1
# only), at port and at port6 (127.0.0.1:port6 held, not listened on:
# refused), and on a unix socket in sockdir; each connection logged.
start_listeners "$accepts" "silent4:127.0.0.1:=port" "silent6:::1:$TCP" "silent6:::1:=port" \
    "refuse4:127.0.0.1:=port6" "silent6:::1:=port6" "unix:$sockdir/.s.PGSQL.{port}"
trap 'in_test_shell && { stop_listeners; rm -rf "$sockdir"; _tap_at_exit; }' EXIT
have_v6=0
python3 -c "import socket; socket.create_connection(('::1', $TCP), 1)" 2>/dev/null && have_v6=1
: >"$accepts"
# The connections the silent listeners took since the last call, one word.
accepted() { local n; n=$(wc -l <"$accepts" 2>/dev/null || echo 0); : >"$accepts"; echo "$n"; }

fresh_db ferry_hosts >/dev/null
psql_val "$(db_uri ferry_hosts)" "ALTER DATABASE ferry_hosts OWNER TO ferry_pw" >/dev/null
D=$TAP_TMPDIR/proj
mkdir -p "$D/migrations/20250101_x"
printf 'SELECT 1;\n' >"$D/migrations/20250101_x/up.sql"
printf 'print(db.one("SELECT current_user AS u, inet_server_port() AS p").u)\n' >"$TAP_TMPDIR/who.lua"

# try NAME CONNINFO EXPECTED [ferry args]: runs `exec who.lua` (a session of
# ferry_pw over TCP, no password file) and checks "exit|out|err|accepts";
# (timeout 60 only stops a hang from stopping the suite)
try() {
    local name=$1 info=$2 want=$3
    shift 3
    RC=0
    PGPASSFILE=$TAP_TMPDIR/none timeout 60 "$FERRY" --dir "$D" --db "$info" "$@" exec "$TAP_TMPDIR/who.lua" \
        >"$TAP_TMPDIR/out" 2>"$TAP_TMPDIR/err" || RC=$?
    cat "$TAP_TMPDIR/out" "$TAP_TMPDIR/err" >>"$TAP_TMPDIR/all"
    is "$RC|$(cat "$TAP_TMPDIR/out")|$(cat "$TAP_TMPDIR/err")|$(accepted)" "$want" "$name"
}
CANNOT="ferry: cannot connect to the database:"
TIMEOUT="connection to server at \"127.0.0.1\", port $port failed: timeout expired"

try "a URI of two hosts, the first silent: the second used, the first tried once" \
    "postgresql://ferry_pw:$PW@127.0.0.1:$port,127.0.0.1:$TCP/ferry_hosts?connect_timeout=2&sslmode=disable" \
    "0|ferry_pw||1"
# (PGHOST would be a host list of one entry, against two hostaddr entries)
save=$PGHOST
unset PGHOST
try "hostaddr list, no host: the second used" \
    "hostaddr=127.0.0.1,127.0.0.1 port=$port,$TCP dbname=ferry_hosts user=ferry_pw password=$PW connect_timeout=2 sslmode=disable" \
    "0|ferry_pw||1"
export PGHOST=$save
try "host and hostaddr lists: the second used" \
    "host=a.invalid,b.invalid hostaddr=127.0.0.1,127.0.0.1 port=$port,$TCP dbname=ferry_hosts user=ferry_pw password=$PW connect_timeout=2 sslmode=disable" \
    "0|ferry_pw||1"
try "an empty host entry (the default socket directory) after the silent one: tried, then the third host" \
    "host=127.0.0.1,,127.0.0.1 port=$port,$port,$TCP dbname=ferry_hosts user=ferry_pw password=$PW connect_timeout=2 sslmode=disable" \
    "0|ferry_pw||1"
# An empty entry is libpq's default (5432, /var/run/postgresql), not
# PGPORT's or PGHOST's: cut to that one entry, the list was "", which libpq
# reads as no list at all -- and the test server's port or socket.
try "an empty port entry (5432) after the silent one" \
    "host=127.0.0.1,127.0.0.2 port=$port, dbname=ferry_hosts user=ferry_pw password=$PW connect_timeout=2 sslmode=disable" \
    "2||$CANNOT $TIMEOUT; connection to server at \"127.0.0.2\", port 5432 failed: Connection refused; Is the server running on that host and accepting TCP/IP connections?|1"
try "an empty host entry (the default socket directory) last, after the silent one" \
    "host=127.0.0.1, port=$port,$TCP dbname=ferry_hosts user=ferry_pw password=$PW connect_timeout=2 sslmode=disable" \
    "2||$CANNOT $TIMEOUT; connection to server on socket \"/var/run/postgresql/.s.PGSQL.$TCP\" failed: No such file or directory; Is the server running locally and accepting connections on that socket?|1"
try "one port for all hosts: the same silent host listed twice is tried twice, as libpq does" \
    "host=127.0.0.1,127.0.0.1 port=$port dbname=ferry_hosts user=ferry_pw password=$PW connect_timeout=2 sslmode=disable" \
    "2||$CANNOT $TIMEOUT; $TIMEOUT|2"
try "a silent unix socket, then the server over TCP" \
    "host=$sockdir,127.0.0.1 port=$port,$TCP dbname=ferry_hosts user=ferry_pw password=$PW connect_timeout=2 sslmode=disable" \
    "0|ferry_pw||1"
try "a silent host, then the server's unix socket" \
    "host=127.0.0.1,$PGHOST port=$port,$PGPORT dbname=ferry_hosts user=ferry_pw connect_timeout=2 sslmode=disable" \
    "0|ferry_pw||1"
# The same name twice, one address refusing and one silent: the silent one
# is the second entry, and must not be tried again as if it were the first.
try "the same host name twice with two addresses, the second silent: tried once" \
    "host=db.example,db.example hostaddr=127.0.0.2,127.0.0.1 port=$port dbname=ferry_hosts user=ferry_pw password=$PW connect_timeout=2 sslmode=disable" \
    "2||$CANNOT connection to server at \"127.0.0.2\", port $port failed: Connection refused; Is the server running on that host and accepting TCP/IP connections?; $TIMEOUT|1"

# ---- the password: never shown, whichever way it was given
try "a wrong password in the string on the host after a silent one: each host's words, no password" \
    "host=127.0.0.1,127.0.0.1 port=$port,$TCP dbname=ferry_hosts user=ferry_pw password=Wr0ng-pw connect_timeout=2 sslmode=disable" \
    "2||$CANNOT $TIMEOUT; connection to server at \"127.0.0.1\", port $TCP failed: FATAL:  password authentication failed for user \"ferry_pw\" [SQLSTATE 28P01]|1"
try "a wrong password in a URI" \
    "postgresql://ferry_pw:Wr0ng-pw@127.0.0.1:$port,127.0.0.1:$TCP/ferry_hosts?connect_timeout=2&sslmode=disable" \
    "2||$CANNOT $TIMEOUT; connection to server at \"127.0.0.1\", port $TCP failed: FATAL:  password authentication failed for user \"ferry_pw\" [SQLSTATE 28P01]|1"
PGPASSWORD=Wr0ng-pw try "a wrong PGPASSWORD" \
    "host=127.0.0.1,127.0.0.1 port=$port,$TCP dbname=ferry_hosts user=ferry_pw connect_timeout=2 sslmode=disable" \
    "2||$CANNOT $TIMEOUT; connection to server at \"127.0.0.1\", port $TCP failed: FATAL:  password authentication failed for user \"ferry_pw\" [SQLSTATE 28P01]|1"
PGPASSWORD=$PW try "PGPASSWORD, right, after a silent host" \
    "host=127.0.0.1,127.0.0.1 port=$port,$TCP dbname=ferry_hosts user=ferry_pw connect_timeout=2 sslmode=disable" \
    "0|ferry_pw||1"
# (a password that is the name of a host: shown as ***, wherever it is)
try "a password that is also the silent host's address: the address is redacted, as libpq's own text is" \
    "host=127.0.0.1,127.0.0.1 port=$port,$TCP dbname=ferry_hosts user=ferry_pw password=127.0.0.1 connect_timeout=2 sslmode=disable" \
    "2||$CANNOT connection to server at \"***\", port $port failed: timeout expired; connection to server at \"***\", port $TCP failed: FATAL:  password authentication failed for user \"ferry_pw\" [SQLSTATE 28P01]|1"

# ---- target_session_attrs across a silent host
try "target_session_attrs=read-write: a silent host, then the primary" \
    "host=127.0.0.1,127.0.0.1 port=$port,$TCP dbname=ferry_hosts user=ferry_pw password=$PW target_session_attrs=read-write connect_timeout=2 sslmode=disable" \
    "0|ferry_pw||1"
try "target_session_attrs=standby: a silent host, then no standby" \
    "host=127.0.0.1,127.0.0.1 port=$port,$TCP dbname=ferry_hosts user=ferry_pw password=$PW target_session_attrs=standby connect_timeout=2 sslmode=disable" \
    "2||$CANNOT $TIMEOUT; connection to server at \"127.0.0.1\", port $TCP failed: server is not in hot standby mode|1"

# ---- connect_timeout from the environment, and its odd values
PGCONNECT_TIMEOUT=2 try "PGCONNECT_TIMEOUT=2: a silent host, then the server" \
    "host=127.0.0.1,127.0.0.1 port=$port,$TCP dbname=ferry_hosts user=ferry_pw password=$PW sslmode=disable" \
    "0|ferry_pw||1"
t0=$(now_ms)
try "connect_timeout=1 in a URI counts as 2 s (libpq's floor): one attempt" \
    "postgresql://ferry_pw:$PW@127.0.0.1:$port/ferry_hosts?connect_timeout=1&sslmode=disable" \
    "2||$CANNOT $TIMEOUT|1"
MS=$(( $(now_ms) - t0 ))
ok $(( MS >= 1900 ? 0 : 1 )) "... after 2 s, not 1 (${MS} ms)"
# (libpq's blocking connect refuses these; its non-blocking one does not
# read connect_timeout at all: ferry waited for ever)
for v in x 2s 99999999999; do
    try "connect_timeout=$v: refused as libpq refuses it" \
        "host=127.0.0.1 port=$TCP dbname=ferry_hosts user=ferry_pw password=$PW connect_timeout=$v sslmode=disable" \
        "2||$CANNOT connection to server at \"127.0.0.1\", port $TCP failed: invalid integer value \"$v\" for connection option \"connect_timeout\"|0"
done
try "connect_timeout=' 3 ' (blanks around it): read as 3, as libpq does" \
    "host=127.0.0.1 port=$TCP dbname=ferry_hosts user=ferry_pw password=$PW connect_timeout=' 3 ' sslmode=disable" \
    "0|ferry_pw||0"

# ---- a host name with several addresses, the first silent: libpq gives
# each address connect_timeout and goes on to the next; so must ferry.
# (a name that resolves so needs a hosts file of our own: a mount namespace;
# without one -- a container without CAP_SYS_ADMIN -- localhost, where the
# machine's hosts file gives it ::1 and then 127.0.0.1, as Debian's does)
cp /etc/hosts "$TAP_TMPDIR/hosts"
printf '::1 ferry-multi.test\n127.0.0.1 ferry-multi.test\n' >>"$TAP_TMPDIR/hosts"
printf '::1 ferry-three.test\n127.0.0.1 ferry-three.test\n127.0.0.2 ferry-three.test\n' >>"$TAP_TMPDIR/hosts"
addresses() { local n=$1; shift; "$@" getent ahosts "$n" 2>/dev/null | awk '$2 == "STREAM" {print $1}' | paste -sd,; }
ns() { unshare -m sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$TAP_TMPDIR/hosts" "$@"; }
plain() { "$@"; }
mname=ferry-multi.test wrap=ns
if [ "$(addresses $mname ns)" != "::1,127.0.0.1" ]; then mname=localhost wrap=plain; fi
if [ "$have_v6" = 0 ] || [ "$(addresses $mname $wrap)" != "::1,127.0.0.1" ]; then
    skip "no name of two addresses here, ::1 then 127.0.0.1 (a mount namespace: unshare -m, as root; or localhost so in /etc/hosts)" 10
else
    in_ns() { "$wrap" "$@"; }
    multi="host=$mname port=$TCP dbname=ferry_hosts user=ferry_pw password=$PW connect_timeout=2 sslmode=disable"
    is "$(PGPASSFILE=$TAP_TMPDIR/none in_ns "$PSQL" -X -A -t -d "$multi" -c 'SELECT current_user' 2>&1)|$(accepted)" "ferry_pw|1" \
       "(psql, libpq's blocking connect: the silent address, then the next)"
    RC=0
    PGPASSFILE=$TAP_TMPDIR/none in_ns timeout 60 "$FERRY" --dir "$D" --db "$multi" exec "$TAP_TMPDIR/who.lua" \
        >"$TAP_TMPDIR/out" 2>"$TAP_TMPDIR/err" || RC=$?
    is "$RC|$(cat "$TAP_TMPDIR/out")|$(cat "$TAP_TMPDIR/err")|$(accepted)" "0|ferry_pw||1" \
       "a name of two addresses, the first silent: ferry goes on to the second"
    # ferry_in_ns CONNINFO: `exec who.lua` with it in the namespace; $RC,
    # out and err in TAP_TMPDIR
    ferry_in_ns() {
        RC=0
        PGPASSFILE=$TAP_TMPDIR/none in_ns timeout 60 "$FERRY" --dir "$D" --db "$1" exec "$TAP_TMPDIR/who.lua" \
            >"$TAP_TMPDIR/out" 2>"$TAP_TMPDIR/err" || RC=$?
        cat "$TAP_TMPDIR/out" "$TAP_TMPDIR/err" >>"$TAP_TMPDIR/all"
    }
    # (a FATAL from a server ends libpq's connect: the third host is not
    # tried.  ferry gives the name's second address to libpq as a hostaddr
    # under that name, which libpq calls '"127.0.0.1"': ferry names it as
    # libpq does an address it resolved the name to)
    ferry_in_ns "host=$mname,127.0.0.1 port=$TCP,$port dbname=ferry_hosts user=ferry_pw password=Wr0ng-pw connect_timeout=2 sslmode=disable"
    is "$RC|$(cat "$TAP_TMPDIR/out")|$(cat "$TAP_TMPDIR/err")|$(accepted)" \
       "2||$CANNOT connection to server at \"$mname\" (::1), port $TCP failed: timeout expired; connection to server at \"$mname\" (127.0.0.1), port $TCP failed: FATAL:  password authentication failed for user \"ferry_pw\" [SQLSTATE 28P01]|1" \
       "... a wrong password at its second address: each address's words, as libpq's, no password"
    # as_libpq NAME CONNINFO: ferry fails to connect with psql's words (its
    # lines joined by '; ', a server's message with its SQLSTATE after it),
    # the silent listeners taking as many connections
    as_libpq() {
        local want n
        want=$(PGPASSFILE=$TAP_TMPDIR/none in_ns "$PSQL" -X -A -t -d "$2" -c 'SELECT 1' 2>&1 |
               sed 's/^psql: error: //' | awk 'NR > 1 {printf "; "} {gsub(/^[ \t]+|[ \t]+$/, ""); printf "%s", $0}')
        n=$(accepted)
        ferry_in_ns "$2"
        is "$RC|$(sed 's/ \[SQLSTATE [0-9A-Z]\{5\}\]//g' "$TAP_TMPDIR/err")|$(accepted)" "2|$CANNOT $want|$n" "$1"
    }
    base="dbname=ferry_hosts user=ferry_pw password=$PW connect_timeout=2 sslmode=disable"
    as_libpq "as libpq: a name's second address refuses" "host=$mname port=$port6 $base"
    as_libpq "as libpq: a name's two addresses both silent" "host=$mname port=$port $base"
    as_libpq "as libpq: a name's second address is no standby" "host=$mname port=$TCP $base target_session_attrs=standby"
    as_libpq "as libpq: a name's second address, then the same address given as a host" \
        "host=$mname,127.0.0.1 port=$port6 $base"
    as_libpq "as libpq: a name twice, each address of each in turn" \
        "host=$mname,$mname port=$port6,$TCP dbname=ferry_hosts user=ferry_pw password=Wr0ng-pw connect_timeout=2 sslmode=disable"
    as_libpq "as libpq: a name's second address, a wrong password, as a URI" \
        "postgresql://ferry_pw:Wr0ng-pw@$mname:$TCP/ferry_hosts?connect_timeout=2&sslmode=disable"
    if [ "$wrap" = ns ] && [ "$(addresses ferry-three.test ns)" = "::1,127.0.0.1,127.0.0.2" ]; then
        as_libpq "as libpq: a name of three addresses, two silent" "host=ferry-three.test port=$port $base"
    else
        skip "no name of three addresses here (a mount namespace)" 1
    fi
fi

# ---- a session started ahead (db.prestart), the first host silent: used
# long after it was started, it still reaches the second host -- without
# trying the silent one again (its time ran out while ferry did other
# work: it had as long as libpq would have given it), and at once.
cat >"$TAP_TMPDIR/late.lua" <<'LUA'
db.prestart(1)
db.exec("SELECT pg_sleep(3)")            -- longer than connect_timeout
local t0 = os.time()
local other = db.connect()
print("late session: " .. other:one("SELECT current_user AS u").u)
print("waited: " .. (os.time() - t0 <= 1 and "no" or (os.time() - t0) .. " s"))
other:close()
LUA
RC=0
PGPASSFILE=$TAP_TMPDIR/none timeout 60 "$FERRY" --dir "$D" \
    --db "host=127.0.0.1,127.0.0.1 port=$port,$TCP dbname=ferry_hosts user=ferry_pw password=$PW connect_timeout=2 sslmode=disable" \
    exec "$TAP_TMPDIR/late.lua" >"$TAP_TMPDIR/out" 2>"$TAP_TMPDIR/err" || RC=$?
is "$RC|$(cat "$TAP_TMPDIR/out")|$(cat "$TAP_TMPDIR/err")|$(accepted)" "0|late session: ferry_pw"$'\n'"waited: no||2" \
   "a session started ahead, the first host silent: the main one and the late one both reach the second host, each trying the silent one once"

unlike "$(cat "$TAP_TMPDIR/all")" "$PW|Wr0ng" "(no password in any of the output above)"
# Each host's connect_timeout is its own, counted from when it is tried, as
# in libpq's blocking connect: a host libpq gives up on slowly itself (the
# server reached through a slow link, then refused as no standby) leaves
# the next host its whole time -- it was given what was left of the first
# one's, and declared silent early.  A proxy in front of the server holds
# each of the server's answers 0.8 s (SCRAM: three of them).
start_listeners "$TAP_TMPDIR/proxied" "proxy4:127.0.0.1:=slow:$TCP:0.8"
t0=$(now_ms)
try "a slow host refused (not a standby), then a silent one: each host's words" \
    "host=127.0.0.1,127.0.0.1 port=$slow,$port dbname=ferry_hosts user=ferry_pw password=$PW connect_timeout=4 target_session_attrs=standby sslmode=disable" \
    "2||$CANNOT connection to server at \"127.0.0.1\", port $slow failed: server is not in hot standby mode; $TIMEOUT|1"
MS=$(( $(now_ms) - t0 ))
# (a lower bound only: a loaded machine makes it longer, never shorter)
ok $(( MS >= 5500 ? 0 : 1 )) "... the silent host given its whole 4 s after the slow one's 2.4 s (${MS} ms)"
# The same host listed twice, one port for both: two entries, each given
# its own connect_timeout, as libpq's blocking connect gives them.  (ferry
# told entries apart by host, address and port alone: the second, called
# as the first, was left what the slow first one had not used -- declared
# silent after 1.6 s, and then tried a third time.)
: >"$TAP_TMPDIR/proxied"
try "the same slow host listed twice, one port, no standby: each entry its whole connect_timeout, as libpq" \
    "host=127.0.0.1,127.0.0.1 port=$slow dbname=ferry_hosts user=ferry_pw password=$PW connect_timeout=4 target_session_attrs=standby sslmode=disable" \
    "2||$CANNOT connection to server at \"127.0.0.1\", port $slow failed: server is not in hot standby mode; connection to server at \"127.0.0.1\", port $slow failed: server is not in hot standby mode|0"
is "$(wc -l <"$TAP_TMPDIR/proxied")" 2 "... each entry tried once"
# A session started ahead through the slow link, used after its
# connect_timeout ran out: the server's first answer waits in its socket,
# and it goes on from there, its time counted from then.  (It was given
# no time for the password exchange's next answer, and ferry connected
# again: a session the server set up for nothing, through the pooler or
# firewall in between, and the whole exchange again.)
cat >"$TAP_TMPDIR/late1.lua" <<'LUA'
db.prestart(1)
db.exec("SELECT pg_sleep(5)")           -- longer than connect_timeout
local other = db.connect()
print(other:one("SELECT current_user AS u").u)
other:close()
LUA
: >"$TAP_TMPDIR/proxied"
RC=0
PGPASSFILE=$TAP_TMPDIR/none timeout 60 "$FERRY" --dir "$D" \
    --db "host=127.0.0.1 port=$slow dbname=ferry_hosts user=ferry_pw password=$PW connect_timeout=4 sslmode=disable" \
    exec "$TAP_TMPDIR/late1.lua" >"$TAP_TMPDIR/out" 2>"$TAP_TMPDIR/err" || RC=$?
is "$RC|$(cat "$TAP_TMPDIR/out")|$(cat "$TAP_TMPDIR/err")|$(wc -l <"$TAP_TMPDIR/proxied")" "0|ferry_pw||2" \
   "a session started ahead, used after its connect_timeout ran out: it goes on (two connections: the main one and it)"
unlike "$(cat "$TAP_TMPDIR/all")" "$PW" "(no password in any output)"
done_testing
