#!/usr/bin/env bash
# Per-command help: `ferry COMMAND --help` (or -h, anywhere among the
# command's words before `--`) and `ferry help COMMAND` print that
# command's own help -- its usage line, what it does, its arguments, the
# options that are its own and the common ones that apply, where the docs
# say more -- on stdout, exit 0, without reading the folder or connecting
# to a database; `ferry help` is `ferry --help`; an unknown command is a
# usage error naming it.  The texts live in one table (src/lua/ferry.help.lua):
# every command of the engine's command table has one, each lists exactly
# the options COMMANDS_WITH lets that command take (which the engine
# enforces: checked here on the binary too), its first line is the usage
# line the command's own usage error says, and its doc pointers name
# headings that exist.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

RUN_HELP="usage: ferry run MIGRATION [--dry-run]

Runs one migration, pending or already applied, and records the run in
ferry.history. A data migration that stopped part way (failed or
interrupted) resumes from its checkpoint. Only that migration runs: 'ferry
up' runs every pending one, in order.

arguments:
  MIGRATION     its id (its folder's name), its name (the id after the
                version), or a unique prefix of either

options:
  --dry-run     read-only session; report what a real run would do, and
                whether its COPYs would be refused for want of a right

common options (see 'ferry --help'):
  --db URL, --dir PATH, --batch-size N, --jobs N, --max-errors N,
  --lock-timeout T, --statement-timeout T, --json, -v, -q

more: docs/cli.md#migrations-and-their-history"

NEW_HELP="usage: ferry new NAME [--sql|--pipeline]

Scaffolds migrations/<today>_<NAME>/ (today's date in UTC, YYYYMMDD): an
up.lua that already runs, over a table every database has, with a
rollback.sql, a validate.lua and a README.md to make your own. Connects
to no database.

arguments:
  NAME          lowercase letters, digits and underscores, beginning with a
                letter or digit (not digits only: that reads as a version)

options:
  --sql         an up.sql in place of up.lua: a schema step
  --pipeline    a streamed, pipelined fill: up.lua and its rule module,
                rules/<NAME>.lua, with TODOs for what only you know (a
                run stops at the first one left); not with --sql

common options (see 'ferry --help'):
  --dir PATH, --json, -q

more: docs/authoring.md#3-scaffold-with-ferry-new"

D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_alpha/up.sql" 'CREATE TABLE help_alpha (x int);'
EMPTY=$TAP_TMPDIR/empty
mkdir -p "$EMPTY"
# (from a folder of no migrations: a help not given would run nothing)
cd "$EMPTY" || exit 1

# --- the exact texts: stdout alone, exit 0
run_ferry run --help
is "$RC|$ERR" "0|" "run --help: exit 0, nothing on stderr"
is "$OUT" "$RUN_HELP" "run --help: run's own help, exactly"
run_ferry new --help
is "$RC|$ERR" "0|" "new --help: exit 0, nothing on stderr"
is "$OUT" "$NEW_HELP" "new --help: new's own help, exactly"
# (byte for byte: the text, then one newline)
"$FERRY" run --help >"$TAP_TMPDIR/run.help"
printf '%s\n' "$RUN_HELP" | cmp -s - "$TAP_TMPDIR/run.help"
ok $? "run --help ends with its last line and one newline"

# the same text, however it is asked for
for args in "run -h" "help run" "-h run" "--help run" "run 20250101 --help" "run --help 20250101 extra words" \
            "--dir $EMPTY run --dry-run --help" "-v -q run --help" "run --jobs 0 --help" "run --help --to x --force"; do
    # shellcheck disable=SC2086
    run_ferry $args
    is "$RC|$ERR|$OUT" "0||$RUN_HELP" "ferry $args: run's help, exit 0, nothing else (the command not run, its options not checked)"
done
run_ferry help new
is "$RC|$ERR|$OUT" "0||$NEW_HELP" "help new: new's help"
run_ferry --dir "$D" new thing --sql --help
is "$RC|$ERR|$OUT" "0||$NEW_HELP" "new thing --sql --help: new's help, nothing scaffolded..."
[ ! -e migrations ] && ! ls -d "$D/migrations/"*_thing 2>/dev/null
ok $? "...no folder made"

# --- no database read, none connected to: a server that is no PostgreSQL,
# listening on a socket of its own, says whether anything connected
SOCKDIR=$TAP_TMPDIR/sock
mkdir -p "$SOCKDIR"
python3 - "$SOCKDIR/.s.PGSQL.5999" "$TAP_TMPDIR/connected" <<'PY' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(8)
s.settimeout(60)
try:
    while True:
        c, _ = s.accept()
        open(sys.argv[2], "a").write("connected\n")
        c.close()
except socket.timeout:
    pass
PY
LISTENER=$!
wait_until 10 test -S "$SOCKDIR/.s.PGSQL.5999"
ok $? "the listener is up"
TRAP="host=$SOCKDIR port=5999 dbname=none connect_timeout=2"
# (it works: a command that connects reaches it)
DATABASE_URL=$TRAP run_ferry --dir "$D" status
like "$RC|$(cat "$TAP_TMPDIR/connected" 2>/dev/null)" '^2\|connected' "status with the trap's connection string connects to it (and fails, exit 2)"
rm -f "$TAP_TMPDIR/connected"
for c in status history up run rollback validate baseline new check exec help; do
    DATABASE_URL=$TRAP run_ferry --dir "$D" "$c" --help
    is "$RC|$ERR" "0|" "DATABASE_URL to the trap: $c --help exits 0, nothing on stderr"
    like "$OUT" "^usage: ferry $c" "...and prints $c's usage line first"
done
run_ferry --db "$TRAP" --dir "$D" up --help
is "$RC|$ERR|${OUT%%$'\n'*}" "0||usage: ferry up [--to VERSION] [--dry-run]" "--db to the trap: up --help, exit 0"
run_ferry --db "$TRAP" --dir "$D" help rollback
is "$RC|$ERR|${OUT%%$'\n'*}" "0||usage: ferry rollback MIGRATION [--force]" "--db to the trap: help rollback, exit 0"
# no DATABASE_URL, no PG* variables, no server: the same
env -u DATABASE_URL -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE PGHOST="$EMPTY" "$FERRY" run --help >"$TAP_TMPDIR/o" 2>"$TAP_TMPDIR/e"
is "$?|$(cat "$TAP_TMPDIR/e")|$(cat "$TAP_TMPDIR/o")" "0||$RUN_HELP" "no DATABASE_URL, no server: run --help all the same"
# a folder that is not there is not read either
run_ferry --dir "$TAP_TMPDIR/nowhere" validate --help
is "$RC|$ERR|${OUT%%$'\n'*}" "0||usage: ferry validate MIGRATION" "--dir not there: validate --help all the same"
is "$(cat "$TAP_TMPDIR/connected" 2>/dev/null)" "" "nothing connected to the trap for any help"
kill "$LISTENER" 2>/dev/null
wait "$LISTENER" 2>/dev/null

# --- ferry help, ferry --help, --json
run_ferry --help
general=$OUT
run_ferry help
is "$RC|$ERR" "0|" "help: exit 0, nothing on stderr"
is "$OUT" "$general" "help: the text of --help"
like "$general" '^usage: ferry \[--db URL\] \[--dir PATH\] \[--verbose\|-v\] \[--quiet\|-q\] \[--json\] COMMAND \.\.\.' \
     "--help: still the general help"
run_ferry --json run --help
is "$RC|$ERR" "0|" "--json run --help: exit 0, nothing on stderr"
is "$(json_eval "$OUT" 'list(j.keys())')" '["usage"]' "--json run --help: one object {\"usage\": TEXT}"
is "$(json_eval "$OUT" 'j["usage"]')" "$RUN_HELP" "...holding run's help"
run_ferry --json help
is "$RC|$(json_eval "$OUT" 'j["usage"]')" "0|$general" "--json help: {\"usage\": the general help}"

# --- unknown commands: a usage error naming the command
run_ferry help bogus
is "$RC|$OUT|$ERR" "2||ferry: unknown command bogus (see 'ferry --help')" "help bogus: exit 2, the command named"
run_ferry bogus --help
is "$RC|$OUT|$ERR" "2||ferry: unknown command bogus (see 'ferry --help')" "bogus --help: the same"
run_ferry --json help bogus
is "$RC|$OUT" "2|{\"ok\":false,\"error\":\"unknown command bogus (see 'ferry --help')\"}" "--json help bogus: the error object"
run_ferry help run up
is "$RC|$OUT|$ERR" "2||ferry: usage: ferry help [COMMAND]" "help run up: one command at a time"
run_ferry --dir status --help
is "$RC|$OUT|$ERR" "2||ferry: no command given: --dir took 'status' as its value (see 'ferry --help')" \
   "--dir status --help: the command --dir took is said, as without --help"
run_ferry --to up 20250101 --help
is "$RC|$OUT|$ERR" "2||ferry: unknown command 20250101: --to took 'up' as its value (see 'ferry --help')" \
   "--to up 20250101 --help: the same"
run_ferry run --help --bogus
is "$RC|$OUT|$ERR" "2||ferry: unknown option --bogus (see 'ferry --help')" "an unknown option beside --help: still a usage error"
run_ferry run --help --version
like "$RC|$OUT" '^0\|ferry [0-9]+\.' "--version beside --help: the version, as before"

# --- after --, a word is an argument, never an option: --help there is no
# request for help but a migration's name or a script's argument
put "$D/migrations/20250102_--help/up.sql" 'CREATE TABLE help_dashes (x int);'
db=$(fresh_db ferry_cli_help)
run_ferry --db "$db" --dir "$D" run --help
is "$RC|${OUT%%$'\n'*}" "0|usage: ferry run MIGRATION [--dry-run]" "run --help beside a migration named --help: the help"
is "$(psql_val "$db" "SELECT to_regclass('help_dashes') IS NULL")" "t" "...and that migration not run"
run_ferry --db "$db" --dir "$D" -q run -- --help
is "$RC|$ERR" "0|" "run -- --help: runs the migration named --help"
is "$(history "$db")" "20250102_--help|run|applied" "...recorded as its run"
put "$TAP_TMPDIR/args.lua" 'print(table.concat(arg, " "))'
run_ferry exec "$TAP_TMPDIR/args.lua" -- --help -x
is "$RC|$ERR|$OUT" "0||--help -x" "exec FILE -- --help -x: the script gets --help and -x"
run_ferry exec "$TAP_TMPDIR/args.lua" --help
is "$RC|${OUT%%$'\n'*}" "0|usage: ferry exec FILE.lua [ARG...]" "exec FILE --help: exec's help, the script not run"

# --- the table and the engine agree.  The engine's commands: every
# `function commands.NAME(` of the engine
cmds=$(sed -nE 's/^function commands\.([a-z_]+)\(.*/\1/p; s/^commands\.([a-z_]+) *=.*/\1/p' \
       "$REPO_ROOT/src/lua/ferry.engine.lua" | sort -u | tr '\n' ' ')
cmds=${cmds% }
missing=
for c in status history up run rollback validate baseline new check exec; do
    [[ " $cmds " == *" $c "* ]] || missing+=" $c"
done
is "$missing" "" "the engine's commands, as this test finds them ($cmds), hold the ten known ones"
# shellcheck disable=SC2016
put "$TAP_TMPDIR/drift.lua" '
local help = require "ferry.help"
local cmds = {}
for _, c in ipairs(arg) do cmds[c] = true end
cmds.help = true                    -- (ferry help COMMAND: no entry of the command table)
local function sorted(set)
  local t = {}
  for k in pairs(set) do t[#t + 1] = k end
  table.sort(t)
  return table.concat(t, " ")
end
local texts = {}
for c in pairs(help.COMMANDS) do texts[c] = true end
print("keys|" .. sorted(texts) .. "|" .. sorted(cmds))
for _, c in ipairs((function() local t = {} for k in pairs(cmds) do t[#t + 1] = k end table.sort(t) return t end)()) do
  local text = help.COMMANDS[c] or ""
  -- the options of the "options:" part: its lines that begin with an option
  local listed, part = {}, nil
  for line in (text .. "\n"):gmatch("(.-)\n") do
    if line:match("^%S") then part = line end
    local opt = part == "options:" and line:match("^  (%-%-?[%w-]+)")
    if opt then listed[opt] = true end
  end
  local allowed = {}
  for flag, on in pairs(help.COMMANDS_WITH) do
    if on[c] then allowed["--" .. flag] = true end
  end
  -- a command-specific option named among the common ones would read as
  -- one the command takes
  local common = text:match("\ncommon options[^\n]*\n(.-)\n\n") or ""
  local stray = {}
  for word in common:gmatch("%-%-[%w-]+") do
    if help.COMMANDS_WITH[word:sub(3)] then stray[word] = true end
  end
  print(string.format("%s|%s|%s|%s|%s", c, sorted(listed), sorted(allowed), sorted(stray),
                      text:match("^[^\n]*") == help.usage(c) and "usage ok" or "usage differs"))
end
local flags = {}
for flag in pairs(help.COMMANDS_WITH) do flags[#flags + 1] = flag end
table.sort(flags)
print("flags|" .. table.concat(flags, " "))
'
# shellcheck disable=SC2086
run_ferry exec "$TAP_TMPDIR/drift.lua" $cmds
is "$RC|$ERR" "0|" "the drift check ran"
keys=$(grep '^keys|' <<<"$OUT")
is "$(cut -d'|' -f2 <<<"$keys")" "$(cut -d'|' -f3 <<<"$keys")" "ferry.help has a text for every command of the engine (and help), and none more"
while IFS='|' read -r c listed allowed stray usage; do
    [ "$c" = keys ] || [ "$c" = flags ] && continue
    is "$listed" "$allowed" "$c's help lists exactly the options COMMANDS_WITH lets it take (${allowed:-none})"
    is "$stray" "" "$c's common options name none of another command's own"
    is "$usage" "usage ok" "$c's help begins with its usage line (help.usage)"
done <<<"$OUT"
# the binary refuses just the options a command's help does not list
read -r -a flags <<<"$(grep '^flags|' <<<"$OUT" | cut -d'|' -f2)"
is "${flags[*]}" "dry-run force pipeline sql to" "the command-specific options"
for c in $cmds; do
    run_ferry "$c" --help
    text=$OUT
    opts=$(sed -n '/^options:$/,/^$/p' <<<"$text")
    for f in "${flags[@]}"; do
        val=()
        [ "$f" = to ] && val=(x)
        DATABASE_URL="host=$EMPTY port=1" run_ferry --dir "$EMPTY" "$c" "--$f" "${val[@]}"
        refused=no
        [ "$ERR" = "ferry: --$f does not apply to '$c'" ] && refused=yes
        listed=no
        grep -q -- "^  --$f\b" <<<"$opts" && listed=yes
        [ "$refused" != "$listed" ]
        ok $? "$c --$f: $([ "$listed" = yes ] && echo 'listed in its help, taken' || echo 'not in its help, refused') (refused=$refused listed=$listed)"
    done
done
# each usage error's line is its help's first line
for c in run rollback validate baseline new exec; do
    run_ferry "$c" --help
    first=${OUT%%$'\n'*}
    run_ferry --dir "$EMPTY" "$c"
    is "$RC|$ERR" "2|ferry: $first" "$c with no argument: the usage line of its help"
done
# every doc pointer names a file and a heading of it (87-doc-links' way of
# making an anchor)
for c in $cmds help; do
    run_ferry "$c" --help
    grep '^more: ' <<<"$OUT" | sed 's/^more: //' | tr ',' '\n' | sed 's/^ *//'
done >"$TAP_TMPDIR/pointers"
bad=$(python3 - "$REPO_ROOT" "$TAP_TMPDIR/pointers" <<'PY'
import os, re, sys
root = sys.argv[1]
sys.dont_write_bytecode = True    # (no __pycache__ in tests/lib)
sys.path.insert(0, os.path.join(root, "tests/lib"))
from anchors import anchors
n = 0
for p in open(sys.argv[2]).read().split():
    n += 1
    path, _, anchor = p.partition("#")
    f = os.path.join(root, path)
    if not os.path.isfile(f) or not anchor or anchor not in anchors(f):
        print("no such heading: " + p)
if n < 11:
    print("only %d pointers" % n)
PY
)
is "$bad" "" "every help's 'more:' pointers name a heading of a document"

done_testing
