#!/usr/bin/env bash
# An allocation that fails while ferry sets itself up (malloc returning
# NULL) stops it with an error; it never goes on with a setting lost.  The
# database module's copy of the connection string lost meant libpq's
# defaults instead: PGDATABASE's database, where the script then ran; its
# copy of --lock-timeout lost meant the server's (none: a lock waited for
# without end).  An LD_PRELOAD shim makes the n-th malloc of one size fail
# (the size of the string copied, made unusual); a run where it cannot act
# (under valgrind or a sanitizer, which replace the allocator) skips.
. "$(dirname "$0")/../lib/tap.sh"
require_pg
plan 2

cat >"$TAP_TMPDIR/nth.c" <<'C'
/* FAIL_SIZE, FAIL_NTH: the FAIL_NTH-th malloc of FAIL_SIZE bytes returns
 * NULL, and FAIL_MARK (a file) is made when it does. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

void *malloc(size_t size) {
    static void *(*real)(size_t);
    static long want = -1, nth, seen;
    if (!real) real = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    if (want < 0) {
        const char *s = getenv("FAIL_SIZE"), *n = getenv("FAIL_NTH");
        want = s ? atol(s) : 0;
        nth = n ? atol(n) : 0;
    }
    if (want > 0 && (long)size == want && ++seen == nth) {
        const char *mark = getenv("FAIL_MARK");
        if (mark) { int fd = open(mark, O_WRONLY | O_CREAT, 0600); if (fd >= 0) close(fd); }
        return NULL;
    }
    return real(size);
}
C
if ! ${CC:-cc} -shared -fPIC -O1 -o "$TAP_TMPDIR/nth.so" "$TAP_TMPDIR/nth.c" -ldl 2>"$TAP_TMPDIR/cc.err"; then
    skip "cannot build the allocation shim: $(head -1 "$TAP_TMPDIR/cc.err")" 2
    exit 0
fi
# (the binary itself: the shim would fail the allocations of the shell
# that runs.sh's wrapper is)
bin=${FERRY_BIN:-$FERRY}
MARK=$TAP_TMPDIR/failed
# (the shim acts: a malloc of 24 bytes happens in any run)
FAIL_SIZE=24 FAIL_NTH=1 FAIL_MARK=$MARK LD_PRELOAD=$TAP_TMPDIR/nth.so "$bin" --version >/dev/null 2>&1
if [ ! -e "$MARK" ]; then
    skip "the allocation shim has no effect here (valgrind or a sanitizer replaces the allocator)" 2
    exit 0
fi

# Runs the script on stdin with the n-th malloc of $1 bytes failing, for n
# from 1 to 20; the rest are ferry's arguments.  Prints "n: first line" of
# each run (its output, else its error).
each_failure() {
    local size=$1 n line
    shift
    cat >"$TAP_TMPDIR/script.lua"
    for n in $(seq 1 20); do
        line=$(FAIL_SIZE=$size FAIL_NTH=$n LD_PRELOAD=$TAP_TMPDIR/nth.so \
               ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
               "$bin" "$@" exec "$TAP_TMPDIR/script.lua" 2>&1 | head -1)
        echo "$n: $line"
    done
}

target=$(fresh_db ferry_alloc_target)
# (an application_name makes the string's size one no other string has)
url="$target&application_name=$(printf 'x%.0s' $(seq 1 300))"
runs=$(DATABASE_URL=$url PGDATABASE=postgres each_failure $((${#url} + 1)) <<'LUA'
print(db.one("SELECT current_database() AS d").d)
LUA
)
is "$(printf '%s\n' "$runs" | grep -v -e ': ferry_alloc_target$' -e 'memory' || true)" "" \
   "a failed copy of the connection string: the run stops, never runs on PGDATABASE's database"

timeout=00000000000000000000000007s
runs=$(DATABASE_URL=$target each_failure $((${#timeout} + 1)) --lock-timeout "$timeout" <<'LUA'
print(db.one("SELECT current_setting('lock_timeout') AS v").v)
LUA
)
is "$(printf '%s\n' "$runs" | grep -v -e ': 7s$' -e 'memory' || true)" "" \
   "a failed copy of --lock-timeout: the run stops, never runs with the server's lock_timeout (none)"
