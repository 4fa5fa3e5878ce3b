#!/usr/bin/env bash
# A statement's row count past 2^31 (an UPDATE or DELETE of a table of
# billions of rows) comes back whole from conn:exec, as a COPY's from
# w:finish.  No test can write that many rows: an LD_PRELOAD shim makes
# libpq's PQcmdTuples report 3,000,000,000 more than the server said for a
# count of 7,777 (a SELECT or COPY of 7,777 rows).
. "$(dirname "$0")/../lib/tap.sh"
require_pg
plan 3

cat >"$TAP_TMPDIR/counts.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
#include <libpq-fe.h>

char *PQcmdTuples(PGresult *res) {
    static char *(*real)(PGresult *);
    static char big[] = "3000007777";
    if (!real) real = (char *(*)(PGresult *))dlsym(RTLD_NEXT, "PQcmdTuples");
    char *t = real(res);
    return strcmp(t, "7777") == 0 ? big : t;
}
C
if ! ${CC:-cc} -shared -fPIC -O1 $(pkg-config --cflags libpq) -o "$TAP_TMPDIR/counts.so" "$TAP_TMPDIR/counts.c" -ldl \
     2>"$TAP_TMPDIR/cc.err"; then
    skip "cannot build the PQcmdTuples shim: $(head -1 "$TAP_TMPDIR/cc.err")" 3
    exit 0
fi

db=$(fresh_db ferry_counts)
LD_PRELOAD=$TAP_TMPDIR/counts.so ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
run_ferry --db "$db" exec /dev/stdin <<'LUA'
db.exec("CREATE TABLE t (a int)")
print(db.exec("SELECT generate_series(1, 7777)"))
local w = db.copy("COPY t (a) FROM STDIN")
for i = 1, 7777 do w:put(i) end
print(w:finish())
print(db.exec("SELECT generate_series(1, 7776)"))
LUA
is "$RC" 0 "the script ran ($ERR)"
is "$(printf '%s\n' "$OUT" | sed -n 1p)" "3000007777" "conn:exec returns a count past 2^31 whole (it was cut to a 32-bit int: -1294959519)"
is "$(printf '%s\n' "$OUT" | sed -n '2,3p' | tr '\n' ' ')" "3000007777 7776 " "w:finish returns one whole too, and other counts are as the server said"
