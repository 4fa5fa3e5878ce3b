#!/usr/bin/env bash
# make demo's script (demo/run.sh) on the database of DATABASE_URL: the
# whole story on an empty database; and a refusal, before anything is
# written, on one that is not empty -- the demo loads its own leads and
# audits and runs Batches 4 and 5 for real, which has no place in a
# database someone uses (the README's typical session exports
# DATABASE_URL=<the CRM>, and the same shell may then type make demo).
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

# demo URI: runs demo/run.sh on URI; $OUT $ERR $RC
demo() {
    RC=0
    DATABASE_URL=$1 bash "$REPO_ROOT/demo/run.sh" >"$TAP_TMPDIR/demo.out" 2>"$TAP_TMPDIR/demo.err" || RC=$?
    OUT=$(cat "$TAP_TMPDIR/demo.out")
    ERR=$(cat "$TAP_TMPDIR/demo.err")
}
REFUSED="demo/run.sh: the database of DATABASE_URL is not empty"

# --- an empty database: the whole story
db=$(fresh_db ferry_cli_demo)
demo "$db"
is "$RC" 0 "an empty database: the demo runs, exit 0"
like "$OUT" $'\n8 check\\(s\\), 0 failed\n' "...Batch 4 validated"
like "$OUT" $'\n6 check\\(s\\), 0 failed\n' "...Batch 5 validated"
is "$(printf '%s' "$OUT" | grep -c $'\033')" 0 "...its output to a file holds no terminal escape codes (the step headers bold only on a terminal)"
# it ends saying what it did, with the demo data's counts, and what is
# left: on a database of DATABASE_URL, everything it wrote, and how to undo
# the backfills (on make demo's own server: that the server is removed)
like "$OUT" $'\\$ what the demo did.{0,8}\nBatches 1-3: the schema, its full-text indexes and the customer links\\.\ndemo/data\\.sql: 7 leads, 38 audits\\.\nBatch 4: 4 conversations and 21 messages from the audits \\(a dry run first; the second run created nothing; validated\\)\\.\nBatch 5: 14 memory notes from the leads\' state_metadata \\(a dry run first; validated\\)\\.\n' \
     "...it ends saying what it did, with the counts"
like "$OUT" $'\nThe database of DATABASE_URL keeps all of it: \'bin/ferry status\' and \'bin/ferry history\' show it; \'bin/ferry rollback 20251115\' then \'bin/ferry rollback 20251110\' undo the backfills\\.$' \
     "...and, on the database of DATABASE_URL, that it keeps it and how to undo the backfills"

# --- run again there: it is not empty any more
before=$(db_snapshot "$db")
demo "$db"
is "$RC" 2 "the demo's database, a second time: refused, exit 2"
is "$OUT" "" "...before its first step"
like "$ERR" "^$REFUSED \\(ferry_cli_demo: 6 tables, the ferry schema\\): the demo applies Batches 1-3, loads its own demo data and runs Batches 4 and 5 for real; unset DATABASE_URL to have make demo start a throwaway PostgreSQL of its own, or point it at an empty database$" \
     "...one line saying why and what to do"
is "$(db_snapshot "$db")" "$before" "...nothing written"

# --- a CRM set up without ferry (the contract schema) and a row of its own
crm=$(fresh_db ferry_cli_demo_crm)
psql_val "$crm" 'CREATE TABLE "Lead" (id int); INSERT INTO "Lead" VALUES (1)' >/dev/null
before=$(db_snapshot "$crm")
demo "$crm"
is "$RC|$OUT" "2|" "a database with a table of its own: refused, exit 2, nothing on stdout"
like "$ERR" "^$REFUSED \\(ferry_cli_demo_crm: 1 table\\): " "...naming what it holds"
is "$(db_snapshot "$crm")" "$before" "...nothing written"

done_testing
