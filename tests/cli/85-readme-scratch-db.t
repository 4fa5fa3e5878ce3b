#!/usr/bin/env bash
# README.md's scratch database for trying the typical session: the `psql`
# line it gives (Batches 1-3's up.sql, then demo/data.sql) is taken out of
# README.md as it stands -- the ```sh block that loads demo/data.sql -- and
# run as written, from the repository's folder, so that this test fails
# when that line breaks.  The one thing supplied is what the README says
# to supply: DATABASE_URL, pointing at an empty database (a fresh one on
# the harness's server); `psql` is the harness's (its folder first on
# PATH).  Then `ferry status` must print exactly the ```text block the
# README shows right after the line ("$ ferry status" and its output).
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

README=$REPO_ROOT/README.md

# readme_part WHAT: from README.md's fenced blocks (```KIND ... ```), the
# ```sh ones that load demo/data.sql: WHAT=count, how many; WHAT=cmd, the
# first's text; WHAT=next, the block after it, as its ```KIND line and text
readme_part() {
    python3 - "$README" "$1" <<'PY'
import re, sys
blocks = re.findall(r"^```(\S*)\n(.*?)^```$", open(sys.argv[1], encoding="utf-8").read(), re.M | re.S)
at = [i for i, (kind, text) in enumerate(blocks) if kind == "sh" and "demo/data.sql" in text]
if sys.argv[2] == "count":
    print(len(at))
elif sys.argv[2] == "cmd" and at:
    sys.stdout.write(blocks[at[0]][1])
elif sys.argv[2] == "next" and at and at[0] + 1 < len(blocks):
    sys.stdout.write("```%s\n%s" % blocks[at[0] + 1])
PY
}

is "$(readme_part count)" 1 "README.md has one \`\`\`sh block that loads demo/data.sql"
CMD=$(readme_part cmd)
# shellcheck disable=SC2016  # (a literal $DATABASE_URL)
like "$CMD" '^psql "\$DATABASE_URL" ' "...a psql line on \"\$DATABASE_URL\" (the only thing the test supplies)"
NEXT=$(readme_part next)
is "$(head -n 2 <<<"$NEXT")" '```text
$ ferry status' "...followed by a \`\`\`text block of \`ferry status\`"
WANT=$(tail -n +3 <<<"$NEXT")

db=$(fresh_db ferry_cli_readme_scratch)
RC=0
case $PSQL in */*) bin=$(dirname "$PSQL"):;; *) bin=;; esac
( cd "$REPO_ROOT" && PATH=$bin$PATH DATABASE_URL=$db bash -c "$CMD" ) \
    >"$TAP_TMPDIR/psql.out" 2>"$TAP_TMPDIR/psql.err" || RC=$?
is "$RC|$(cat "$TAP_TMPDIR/psql.out")|$(cat "$TAP_TMPDIR/psql.err")" "0||" \
   "README's psql line on an empty database: exit 0, nothing printed"
is "$(psql_val "$db" 'SELECT (SELECT count(*) FROM "Lead") || $$ leads, $$ || (SELECT count(*) FROM "Audit") || $$ audits$$')" \
   "$(psql_val "$(crm_db ferry_cli_readme_demo "$REPO_ROOT/demo/data.sql")" \
               'SELECT (SELECT count(*) FROM "Lead") || $$ leads, $$ || (SELECT count(*) FROM "Audit") || $$ audits$$')" \
   "...the demo's leads and audits, as make demo loads them"

( cd "$REPO_ROOT" && DATABASE_URL=$db "$FERRY" status ) >"$TAP_TMPDIR/status.out" 2>"$TAP_TMPDIR/status.err"
is "$?|$(cat "$TAP_TMPDIR/status.err")" "0|" "ferry status there: exit 0, nothing on stderr"
is "$(cat "$TAP_TMPDIR/status.out")" "$WANT" "...exactly what README.md shows after the line"

# --- no server at hand: the README's line that starts a private one (a
# ```sh block running scripts/pg.sh start), run as written from the
# repository's folder with none of the harness's variables, must leave
# DATABASE_URL on an empty database and `ferry` on PATH; the stop line
# the README gives must remove that server. Its folder is swapped for one
# of the test's own: a server a reader of the README left running in this
# checkout's folder is not this test's to stop.
readme_srv() {
    python3 - "$README" "$1" <<'PY'
import re, sys
blocks = re.findall(r"^```(\S*)\n(.*?)^```$", open(sys.argv[1], encoding="utf-8").read(), re.M | re.S)
at = [text for kind, text in blocks if kind == "sh" and "scripts/pg.sh start" in text]
if sys.argv[2] == "count":
    print(len(at))
elif at:
    sys.stdout.write(at[0])
PY
}
is "$(readme_srv count)" 1 "README.md has one \`\`\`sh block that starts a private server"
SRV=$(readme_srv cmd)
STOP=$(grep -oE 'bash scripts/pg\.sh stop [^ `]+ --clean' "$README" | sort -u)
is "$(printf '%s' "$STOP" | grep -c .)" 1 "...and one stop line for it"
srvdir=$(printf '%s\n' "$STOP" | awk '{ print $4 }')
case $srvdir in ''|build/pg|build/pg/) fail=1;; *) fail=0;; esac
is "$fail" 0 "...whose folder is not build/pg (make demo and make test start theirs there and remove it)"
mine=$TAP_TMPDIR/pg-try
SRV=${SRV//"$srvdir"/"$mine"} STOP=${STOP//"$srvdir"/"$mine"}
got=$(cd "$REPO_ROOT" && env -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE -u DATABASE_URL -u FERRY_PG_DIR \
      bash -c "$SRV"'
        echo "first on PATH: ${PATH%%:*}"
        [ -x "${PATH%%:*}/ferry" ] && echo "ferry on PATH: $(command -v ferry)"
        psql "$DATABASE_URL" -X -A -t -q -c "SELECT count(*) || \$\$ tables\$\$ FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = \$\$r\$\$ AND n.nspname NOT IN (\$\$pg_catalog\$\$, \$\$information_schema\$\$)"
        '"$STOP" 2>/dev/null)
# (make asan and make valgrind of a fresh clone build no bin/ferry: there
# the line is checked to put bin/ first on PATH)
want="first on PATH: $REPO_ROOT/bin"
[ -x "$REPO_ROOT/bin/ferry" ] && want="$want
ferry on PATH: $REPO_ROOT/bin/ferry"
is "$got" "$want
0 tables" "...run as written: bin/ first on PATH (ferry there), DATABASE_URL on an empty database; the stop line runs"
[ -n "$srvdir" ] && [ ! -e "$mine/data" ] && [ ! -e "$mine/location" ]
ok $? "...and the stop line removed the server"

done_testing
