#!/usr/bin/env bash
# Usage and configuration errors: exit code 2, one line on stderr, nothing
# on stdout, and nothing written to the database.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_usage)
D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_alpha/up.sql" 'CREATE TABLE alpha (x int);'
put "$D/migrations/20250102_beta/up.sql" 'CREATE TABLE beta (x int);'
put "$D/migrations/20250102_bravo/up.sql" 'CREATE TABLE bravo (x int);'
put "$D/migrations/20250102_bravo/validate.lua" 'check("ok", true)'
export DATABASE_URL=$db

# usage_is ARGS... : expect exit 2, empty stdout, stderr exactly $EXPECT
expect_usage() {
    local want=$1
    shift
    run_ferry "$@"
    is "$RC|$OUT|$ERR" "2||ferry: $want" "ferry $* -> exit 2: $want"
}

# --- no command, help, version
run_ferry
is "$RC" 2 "no command: exit 2"
is "$OUT" "" "no command: nothing on stdout"
like "$ERR" '^usage: ferry \[--db URL\] \[--dir PATH\]' "no command: usage on stderr"

run_ferry --help
is "$RC|$ERR" "0|" "--help: exit 0, no stderr"
for c in status up run rollback validate baseline new check exec; do
    like "$OUT" $'\n  '"$c " "--help lists $c"
done
like "$OUT" $'\n  --dry-run +read-only session; report what a real run would do, and\n +whether its COPYs would be refused for want of a right\n' "--help: --dry-run says it checks the COPYs' rights"
like "$OUT" $'\n  new NAME \\[--sql\\|--pipeline\\] +scaffold migrations/<today>_<name>/: up\\.lua, or up\\.sql with --sql,\n +or a streamed, pipelined fill \\(up\\.lua and rules/<name>\\.lua\\) with --pipeline\n' "--help: new takes --sql and --pipeline"
# README.md's usage block shows the same command lines as --help
help_cmds=$(sed -n '/^commands:$/,/^$/{/^  /p}' <<<"$OUT")
readme_cmds=$(sed -n '/^## Usage$/,/^## /p' "$REPO_ROOT/README.md" | sed -n '/^ferry \[--db/,/^ferry --version/{/^  /p}')
is "$readme_cmds" "$help_cmds" "README.md's usage block lists the commands as --help does"
like "$OUT" 'exit codes: 0 success; 1 .*; 2 usage or configuration error' "--help states the exit codes"
# README.md's example of how a MIGRATION is named, "its id (its folder's
# name, `ID`), its name (the id after the version, `NAME`)", is a folder of
# this project's migrations/ and its name, so a reader can type it
ex=$(sed -n '/^## Usage$/,/^## /p' "$REPO_ROOT/README.md" | tr '\n' ' ' |
     sed -nE "s/.*named by its id \(its folder's +name, +\`([^\`]*)\`\), +its name \(the id after the version, +\`([^\`]*)\`\).*/\\1 \\2/p")
ex_id=${ex%% *} ex_name=${ex#* }
[ -n "$ex" ] && [ -d "$REPO_ROOT/migrations/$ex_id" ] && [ "${ex_id#*_}" = "$ex_name" ]
ok $? "README.md's example id and name ($ex) are a migration of migrations/ and its name"
like "$OUT" $'\n  --version ' "--help lists --version"
run_ferry -h
is "$RC" 0 "-h: exit 0"

run_ferry --version
is "$RC|$ERR" "0|" "--version: exit 0"
like "$OUT" '^ferry [0-9]+\.[0-9]+\.[0-9]+$' "--version prints 'ferry X.Y.Z'"

# --- unknown command / flag
expect_usage "unknown command bogus (see 'ferry --help')" --dir "$D" bogus
expect_usage "unknown option --bogus (see 'ferry --help')" --dir "$D" --bogus status
expect_usage "unknown option --bogus (see 'ferry --help')" --dir "$D" status --bogus
# no flag is accepted and ignored: --yes means nothing to ferry
expect_usage "unknown option --yes (see 'ferry --help')" --dir "$D" rollback 20250101 --yes
expect_usage "unknown option -x (see 'ferry --help')" --dir "$D" up -x
expect_usage "option --json takes no value" --dir "$D" --json=yes status
expect_usage "--verbose and --quiet exclude each other" --dir "$D" -v -q status

# --- missing arguments and values
expect_usage "usage: ferry run MIGRATION [--dry-run]" --dir "$D" run
expect_usage "usage: ferry run MIGRATION [--dry-run]" --dir "$D" run 20250101 20250102
expect_usage "usage: ferry rollback MIGRATION [--force]" --dir "$D" rollback
expect_usage "usage: ferry rollback MIGRATION [--force]" --dir "$D" rollback --force
expect_usage "usage: ferry validate MIGRATION" --dir "$D" validate
expect_usage "usage: ferry baseline VERSION" --dir "$D" baseline
expect_usage "usage: ferry new NAME [--sql|--pipeline]" --dir "$D" new
expect_usage "usage: ferry exec FILE.lua [ARG...]" --dir "$D" exec
expect_usage "usage: ferry exec FILE.lua [ARG...]" --dir "$D" exec ""
# (the file named once: it is the path io.open's message begins with)
expect_usage "cannot read $TAP_TMPDIR/nope.lua: No such file or directory" --dir "$D" exec "$TAP_TMPDIR/nope.lua"
expect_usage "option --db needs a value" --dir "$D" status --db
# an empty one (--db "$UNSET") must not fall back to the PG* variables' database
expect_usage "option --db is empty: give a connection string, or leave --db out (then DATABASE_URL, then libpq's PG* variables, are used)" --dir "$D" status --db ""
expect_usage "option --db is empty: give a connection string, or leave --db out (then DATABASE_URL, then libpq's PG* variables, are used)" --dir "$D" --db= up
expect_usage "option --to needs a value" --dir "$D" up --to
expect_usage "option --dir needs a value" --dir
# an option given no value takes the next word, the command itself: said so,
# not "no command given" or "unknown command" of the word after it
expect_usage "--jobs needs a whole number from 1 to 100, not run" --dir "$D" --jobs run 20250101
expect_usage "--batch-size needs a whole number >= 1, not up" --dir "$D" --batch-size up
expect_usage "no command given: --db took 'status' as its value (see 'ferry --help')" --dir "$D" --db status
expect_usage "unknown command 20250101: --to took 'up' as its value (see 'ferry --help')" --dir "$D" --to up 20250101
expect_usage "no command given: --dir took 'status' as its value (see 'ferry --help')" --dir status
run_ferry --json --dir "$D" --db status
is "$RC|$OUT" "2|{\"ok\":false,\"error\":\"no command given: --db took 'status' as its value (see 'ferry --help')\"}" \
   "--json --db status: the object says so too"
expect_usage "unknown command 20250101: --db took 'up' as its value (see 'ferry --help')" --dir "$D" --db up 20250101
# only --db's value taken from the next word, and only a bare word is ever
# shown: --db=status is meant as given, and a connection string (which may
# hold a password) is never echoed, whatever it holds
run_ferry --dir "$D" --db=status
like "$RC|$OUT|$ERR" '^2\|\|usage: ferry ' "--db=status (given with '='): no command, the usage, nothing of the value"
run_ferry --dir "$D" --db "postgresql://u:Sekr3tPw@h/status"
like "$RC|$OUT|$ERR" '^2\|\|usage: ferry ' "--db a connection string, no command: the usage, nothing of the value"
is "$(grep -c Sekr3tPw <<<"$ERR")" 0 "...nor its password"
expect_usage "up takes no arguments (did you mean 'ferry run 20250101'?)" --dir "$D" up 20250101
expect_usage "status takes no arguments" --dir "$D" status now
expect_usage "check takes no arguments" --dir "$D" check all

# --- --dry-run / --to where they do not apply
for c in status "rollback 20250101" "validate 20250102_bravo" "baseline 20250101" "new thing" check; do
    # shellcheck disable=SC2086
    expect_usage "--dry-run does not apply to '${c%% *}'" --dir "$D" $c --dry-run
done
expect_usage "--to does not apply to 'run'" --dir "$D" run 20250101 --to 20250101
expect_usage "--to does not apply to 'status'" --dir "$D" status --to 20250101
# --sql is new's alone
for c in status up "run 20250101" "rollback 20250101" "validate 20250102_bravo" "baseline 20250101" check "exec x.lua"; do
    # shellcheck disable=SC2086
    expect_usage "--sql does not apply to '${c%% *}'" --dir "$D" $c --sql
done

# --- unknown and ambiguous migrations
expect_usage "unknown migration 20259999" --dir "$D" run 20259999
expect_usage "unknown migration nope" --dir "$D" rollback nope
expect_usage "unknown migration 2024" --dir "$D" validate 2024
expect_usage "ambiguous migration 20250102: 20250102_beta, 20250102_bravo" --dir "$D" run 20250102
expect_usage "ambiguous migration 2025: 20250101_alpha, 20250102_beta, 20250102_bravo" --dir "$D" run 2025 --dry-run
expect_usage "ambiguous migration 20250102_b: 20250102_beta, 20250102_bravo" --dir "$D" validate 20250102_b
# an empty one ("$UNSET" in a script) is a prefix of every id: it named the
# only migration of a folder, which "ferry rollback ''" then rolled back
ONE=$TAP_TMPDIR/one
put "$ONE/migrations/20250101_only/up.sql" 'CREATE TABLE only_t (x int);'
put "$ONE/migrations/20250101_only/rollback.sql" 'DROP TABLE only_t;'
put "$ONE/migrations/20250101_only/validate.lua" 'check("ok", true)'
empty_mig="the migration given is empty: give its id or name, or a unique prefix of either ('ferry status' lists them)"
for c in run rollback validate history; do
    expect_usage "$empty_mig" --dir "$ONE" $c ""
    expect_usage "$empty_mig" --dir "$D" $c ""
done
expect_usage "$empty_mig" --dir "$ONE" rollback "" --force
expect_usage "--to is empty: give the version (or the id) of the last migration to apply" --dir "$ONE" up --to ""
expect_usage "--to is empty: give the version (or the id) of the last migration to apply" --dir "$D" up --to=
expect_usage "baseline: the version is empty: give the version (or the id) of the last migration to record" \
    --dir "$ONE" baseline ""
expect_usage "option --dir is empty: give a folder, or leave --dir out (then the current folder is used)" --dir "" status
run_ferry --dir "$ONE" --json run ""
is "$RC|$OUT" "2|{\"ok\":false,\"error\":\"$empty_mig\"}" "--json run '': exit 2, the line in the object"
expect_usage "--to 20250199: no migration has that version" --dir "$D" up --to 20250199
expect_usage "baseline 20250199: no migration has that version" --dir "$D" baseline 20250199
expect_usage "20250101_alpha has no rollback.sql or down.lua" --dir "$D" rollback 20250101
expect_usage "20250101_alpha has no validate.lua" --dir "$D" validate 20250101
# ...as the operator meets it: Batch 3 has neither (its README says why)
expect_usage "20251108_link_customers has no rollback.sql or down.lua" --dir "$REPO_ROOT" rollback 20251108
expect_usage "20251108_link_customers has no validate.lua" --dir "$REPO_ROOT" validate 20251108
for c in "rollback 20251108|20251108_link_customers has no rollback.sql or down.lua" \
         "validate 20251108|20251108_link_customers has no validate.lua"; do
    # shellcheck disable=SC2086
    run_ferry --dir "$REPO_ROOT" --json ${c%%|*}
    is "$RC|$OUT|$ERR" "2|{\"ok\":false,\"error\":\"${c#*|}\"}|ferry: ${c#*|}" "--json ${c%%|*}: exit 2, the line in the object"
done

# --- bad folders and numbers
expect_usage "--dir $TAP_TMPDIR/nowhere: no such folder" --dir "$TAP_TMPDIR/nowhere" status
mkdir -p "$TAP_TMPDIR/empty"
expect_usage "no migrations folder at $TAP_TMPDIR/empty/migrations (use --dir)" --dir "$TAP_TMPDIR/empty" up
expect_usage "--batch-size needs a whole number >= 1, not 0" --dir "$D" up --batch-size 0
expect_usage "--max-errors needs a whole number >= 0, not lots" --dir "$D" up --max-errors lots
# --jobs: each writer is a server session (db.prestart starts them ahead,
# bounded as it is): more than a server's default max_connections is refused
expect_usage "--jobs needs a whole number from 1 to 100, not 101" --dir "$D" up --jobs 101
expect_usage "--jobs needs a whole number from 1 to 100, not 2000" --dir "$D" run 20250101 --jobs 2000
# (a flag with a top says its whole range, whatever is wrong)
expect_usage "--jobs needs a whole number from 1 to 100, not 0" --dir "$D" up --jobs 0
expect_usage "--jobs needs a whole number from 1 to 100, not x" --dir "$D" up --jobs x
# digits only: what tonumber() also reads (1e3, 0x10, +5, " 5") is refused
for v in 1e3 0x10 +5 " 5" 5.0; do
    expect_usage "--batch-size needs a whole number >= 1, not $v" --dir "$D" up --batch-size "$v"
done
# a whole number too large for a 64-bit integer is said so, with the top
expect_usage "--batch-size needs a whole number from 1 to 9223372036854775807, not 99999999999999999999" \
    --dir "$D" up --batch-size 99999999999999999999
expect_usage "--max-errors needs a whole number from 0 to 9223372036854775807, not 9223372036854775808" \
    --dir "$D" up --max-errors 9223372036854775808
# timeouts the server cannot read: a configuration error, said cleanly
# (the flag given is named, not both)
expect_usage "--lock-timeout: invalid value for parameter \"lock_timeout\": \"banana\" [SQLSTATE 22023]" \
    --dir "$D" --lock-timeout banana status
expect_usage "--statement-timeout: invalid value for parameter \"statement_timeout\": \"5 fortnights\" [SQLSTATE 22023]" \
    --dir "$D" --statement-timeout "5 fortnights" up
expect_usage "--lock-timeout: -1 ms is outside the valid range for parameter \"lock_timeout\" (0 .. 2147483647) [SQLSTATE 22023]" \
    --dir "$D" --lock-timeout -1 status
expect_usage "--statement-timeout: -1 ms is outside the valid range for parameter \"statement_timeout\" (0 .. 2147483647) [SQLSTATE 22023]" \
    --dir "$D" --lock-timeout 2s --statement-timeout=-1 status

# nothing of the above touched the database
v=$(psql_val "$db" "SELECT to_regclass('ferry.history') IS NULL AND to_regclass('alpha') IS NULL AND to_regclass('only_t') IS NULL")
is "$v" "t" "usage errors write nothing (no ferry.history, no tables)"

# --- --json: a usage error is still one JSON object on stdout
for bad in "status --bogus" "status --batch-size" "--json=1 status"; do
    # shellcheck disable=SC2086
    run_ferry --dir "$D" --json $bad
    is "$RC|$(json_eval "$OUT" 'str(j["ok"]) + " " + j["error"]')" \
       "2|False $(case $bad in *bogus) echo "unknown option --bogus (see 'ferry --help')";;
                                *--batch-size) echo "option --batch-size needs a value";;
                                *) echo "option --json takes no value";; esac)" \
       "--json $bad: a command line ferry cannot read is one JSON object too"
done
run_ferry --dir "$D" --json run 20250102
is "$RC" 2 "--json ambiguous: exit 2"
is "$(json_eval "$OUT" 'j["ok"] is False and j["error"]')" \
   "ambiguous migration 20250102: 20250102_beta, 20250102_bravo" "--json ambiguous: {ok:false, error}"

# --- unreachable database: exit 2, one line
unreach='postgresql://nobody@127.0.0.1:1/nowhere?connect_timeout=5'
# (libpq's advice, on a line of its own in its message, goes on ferry's one line)
refused='ferry: cannot connect to the database: connection to server at "127.0.0.1", port 1 failed: Connection refused; Is the server running on that host and accepting TCP/IP connections?'
for c in status up "run 20250101" "validate 20250102_bravo" "baseline 20250101"; do
    # shellcheck disable=SC2086
    run_ferry --db "$unreach" --dir "$D" $c
    is "$RC|$OUT" "2|" "unreachable database: ferry $c exits 2, stdout empty"
    is "$ERR" "$refused" \
       "unreachable database: ferry $c says so in one line"
done
DATABASE_URL=$unreach run_ferry --dir "$D" up
is "$RC|$ERR" "2|$refused" \
   "unreachable DATABASE_URL: exit 2"
saved_url=$DATABASE_URL
unset DATABASE_URL
PGHOST=$TAP_TMPDIR/nosock PGPORT=1 run_ferry --dir "$D" status
export DATABASE_URL=$saved_url
is "$RC" 2 "unreachable PGHOST (no DATABASE_URL): exit 2"
like "$ERR" "^ferry: cannot connect to the database: connection to server on socket \"$TAP_TMPDIR/nosock/.s.PGSQL.1\" failed: No such file or directory" \
     "PG* variables are used when there is no --db or DATABASE_URL"
run_ferry --db "$unreach" --dir "$D" --json up
is "$RC" 2 "--json unreachable: exit 2"
is "$(json_eval "$OUT" 'str(j["ok"]) + " " + j["error"][:30]')" "False cannot connect to the database" \
   "--json unreachable: {ok:false, error}"
run_ferry --db 'postgresql://nobody@127.0.0.1:1/x?bogus=1' --dir "$D" status
is "$RC|$ERR" '2|ferry: cannot connect to the database: invalid URI query parameter: "bogus"' "malformed URL: exit 2"

# --- an option given twice: the last one counts, for every option (an alias
# or wrapper that adds --db A, then --db B on the command line: B)
run_ferry --db "$unreach" --db "$DATABASE_URL" --dir "$D" status
is "$RC|$ERR" "0|" "--db given twice: the last one is used"
run_ferry --db "$DATABASE_URL" --db "$unreach" --dir "$D" status
is "$RC|$ERR" "2|$refused" \
   "...also when it is the one that cannot be reached"
put "$TAP_TMPDIR/lt.lua" 'print(db.one("SHOW lock_timeout").lock_timeout)'
run_ferry --lock-timeout bogus --lock-timeout 2s --dir "$D" exec "$TAP_TMPDIR/lt.lua"
is "$RC|$OUT|$ERR" "0|2s|" "--lock-timeout given twice: the last one is the sessions'"
put "$TAP_TMPDIR/st.lua" 'print(db.one("SHOW statement_timeout").statement_timeout)'
run_ferry --statement-timeout 3s --statement-timeout=4s --dir "$D" exec "$TAP_TMPDIR/st.lua"
is "$RC|$OUT|$ERR" "0|4s|" "--statement-timeout given twice (once with =): the last one"

done_testing
