#!/usr/bin/env bash
# tools/embed.c, the build tool that turns the Lua preludes into C: every
# byte of a prelude (a 0 byte, bytes above 127 whatever the signedness of
# char) comes out as it went in, as source and as bytecode; and a failure
# (a bad argument, a file it cannot read, a syntax error) leaves no
# half-written output for make to trust, and no memory behind.
# (Needs no database.)
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
cd "$REPO_ROOT" || exit 1

CC=${CC:-cc}
# shellcheck disable=SC2207
LUA_CFLAGS=($(pkg-config --cflags lua5.4)) LUA_LIBS=($(pkg-config --libs lua5.4))
T=$TAP_TMPDIR

# The tool built here with LeakSanitizer, so that a leak on any path fails
# (stderr must be empty where it succeeds, one line where it fails).  Where
# the sanitizer cannot run at all (no libasan, or a kernel or container it
# does not support: a program with nothing to leak fails), it is built
# plainly and every check below but the leak check still holds.
export ASAN_OPTIONS=detect_leaks=1
printf 'int main(void) { return 0; }\n' > "$T/probe.c"
if "$CC" -fsanitize=address -o "$T/probe" "$T/probe.c" 2>/dev/null && "$T/probe" 2>/dev/null; then
  "$CC" -O1 -g -fsanitize=address -fno-omit-frame-pointer -Wall -Wextra -Werror -Iinclude "${LUA_CFLAGS[@]}" \
      -o "$T/embed" tools/embed.c "${LUA_LIBS[@]}" -lm
  ok $? "tools/embed.c builds with ASan/LeakSanitizer"
else
  skip "AddressSanitizer/LeakSanitizer do not run on this machine: embed is checked without the leak check"
  "$CC" -O1 -g -Wall -Wextra -Werror -Iinclude "${LUA_CFLAGS[@]}" -o "$T/embed" tools/embed.c "${LUA_LIBS[@]}" -lm \
    || bail_out "tools/embed.c does not build"
fi

# ------------------------------------------------------------ every byte
# A prelude whose long string holds every byte from 0 to 255 (no "]]" in
# it), then bytes above 127 alone.
python3 - "$T/all.lua" <<'PY'
import sys
body = bytes(range(256)) + bytes(range(255, 127, -1))
open(sys.argv[1], "wb").write(b"return 'x' .. [[" + body + b"]]\n")
PY
printf 'return 1\n' > "$T/one.lua"
: > "$T/empty.lua"
(cd "$T" && ./embed gen.c all=all.lua one=one.lua empty=empty.lua)
ok $? "embed of three preludes: exit 0"

cat > "$T/check.c" <<'C'
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
const char *ferry_prelude(const char *name, size_t *len);
const char *ferry_prelude_bytecode(const char *name, size_t *len);
const char *ferry_prelude_name(int i);
/* For each prelude: its embedded source is FILE byte for byte; its
 * bytecode loads and returns what the source returns, under the same
 * chunk name. */
int main(int argc, char **argv) {
    int bad = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *name = argv[i];
        FILE *f = fopen(argv[i + 1], "rb");
        static char want[1 << 16];
        size_t want_n = fread(want, 1, sizeof want, f), n, bn;
        fclose(f);
        const char *src = ferry_prelude(name, &n), *bc = ferry_prelude_bytecode(name, &bn);
        if (!src || n != want_n || memcmp(src, want, n) != 0 || src[n] != 0) { printf("%s: source differs\n", name); bad = 1; continue; }
        lua_State *L = luaL_newstate();
        char chunk[64];
        snprintf(chunk, sizeof chunk, "=[ferry]/%s.lua", name);
        if (luaL_loadbufferx(L, src, n, chunk, "t") || lua_pcall(L, 0, 1, 0)) { printf("%s: %s\n", name, lua_tostring(L, -1)); bad = 1; }
        if (luaL_loadbufferx(L, bc, bn, "x", "b") || lua_pcall(L, 0, 1, 0)) { printf("%s: %s\n", name, lua_tostring(L, -1)); bad = 1; }
        else {
            lua_Debug ar;
            size_t a, b;
            const char *x = luaL_tolstring(L, -2, &a), *y = luaL_tolstring(L, -2, &b);
            if (a != b || memcmp(x, y, a) != 0) { printf("%s: bytecode returns other bytes\n", name); bad = 1; }
            luaL_loadbufferx(L, bc, bn, "x", "b");
            lua_getinfo(L, ">S", &ar);
            if (strcmp(ar.source, chunk) != 0) { printf("%s: chunk name %s\n", name, ar.source); bad = 1; }
            printf("%s: %zu bytes, returns %zu bytes\n", name, n, a);
        }
        lua_close(L);
    }
    for (int i = 0; ferry_prelude_name(i); i++) printf("%s ", ferry_prelude_name(i));
    printf("\n");
    return bad;
}
C
for sign in -fsigned-char -funsigned-char; do
  "$CC" -std=c11 -Wall -Wextra -Werror -Wno-overlength-strings "$sign" -Iinclude "${LUA_CFLAGS[@]}" \
      -o "$T/check$sign" "$T/check.c" "$T/gen.c" "${LUA_LIBS[@]}" -lm
  ok $? "the generated C compiles with -Werror and $sign"
  is "$("$T/check$sign" all "$T/all.lua" one "$T/one.lua" empty "$T/empty.lua")" "all: 403 bytes, returns 385 bytes
one: 9 bytes, returns 1 bytes
empty: 0 bytes, returns 3 bytes
all one empty " "$sign: every byte as it was, as source and as bytecode (a 0 byte, bytes above 127, an empty file)"
done

# ------------------------------------------------------------ failures
printf 'return (\n' > "$T/syntax.lua"
failing() {   # failing NAME EXPECTED-RC EXPECTED-STDERR ARGS...
  local name=$1 want_rc=$2 want_err=$3
  shift 3
  rm -f "$T/out.c"
  (cd "$T" && ./embed "$@") > "$T/stdout" 2> "$T/stderr"
  local rc=$?
  is "$rc|$(cat "$T/stdout")|$(cat "$T/stderr")" "$want_rc||$want_err" "$name: exit $want_rc, one line, no leak"
  is "$(test -e "$T/out.c" && echo left || echo none)" none "$name: no output file left"
}
failing "an argument without NAME=" 2 "embed: nonsense: expected NAME=FILE" out.c one=one.lua nonsense
failing "a file it cannot read" 1 "missing.lua: No such file or directory" out.c one=one.lua two=missing.lua
failing "a syntax error" 1 "embed: syntax.lua: [ferry]/two.lua:2: unexpected symbol near <eof>" out.c one=one.lua two=syntax.lua
failing "no prelude at all, no output named" 2 "usage: embed OUT.c NAME=FILE..."
failing "an output it cannot write" 1 "nodir/out.c: No such file or directory" nodir/out.c one=one.lua

done_testing
