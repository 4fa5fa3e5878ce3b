# shellcheck shell=bash
# tests/batch5/lib.sh - helpers shared by the Batch 5 tests (sourced, not run:
# tests/run.sh only runs *.t files).
#
#   . "$(dirname "$0")/lib.sh"        # also sources tests/lib/tap.sh
#
#   b5_db NAME [SQL_FILE...]   fresh database NAME, schema by `ferry up --to
#                              20251108`, then each SQL file loaded with psql;
#                              prints the URI
#   b5 ARGS...                 run_ferry --dir $B5_DIR --db $URI ARGS
#                              (so $OUT $ERR $RC); B5_DIR defaults to the repo
#   b5_run [ARGS...]           b5 run 20251115_backfill_memory_notes ARGS
#   q URI SQL                  psql -XAtq: every row, fields split by |
#   stats_of TEXT              the "📊 Statistics:" block of TEXT
#   stats_block LP LS NC NU NS E   the block those six numbers must print
#   json_stats LP LS NC NU NS E    the "stats" object --json must print
#   record_stats URI [N]       the Nth newest run record's stats, "lp ls nc nu ns e"
#   notes URI [WHERE]          every note as lead#|key|kind|content|customer#
#                              (lead and customer by their last digits)
#   b5_tables URI              a digest of every table and ferry.* (to prove
#                              that something wrote nothing)
#   b5_scratch                 a copy of migrations/ and rules/ in
#                              $TAP_TMPDIR/tree, printed (an operator's tree)
# shellcheck source=../lib/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"

require_pg

B5=20251115_backfill_memory_notes
B5_DIR=${B5_DIR:-$REPO_ROOT}
# shellcheck disable=SC2034  # for the tests that source this file
NS5=aec333ca-70f2-4c3c-9212-e94f50c534f5     # namespace of Batch 5's note ids

q() {
    "$PSQL" -X -A -t -q -v ON_ERROR_STOP=1 -d "$1" -c "$2"
}

b5_db() { crm_db "$@"; }

b5() {
    run_ferry --dir "$B5_DIR" --db "$URI" "$@"
}

b5_run() {
    b5 run "$B5" "$@"
}

stats_of() {
    printf '%s\n' "$1" | sed -n '/^📊 Statistics:$/,/^   Errors:/p'
}

stats_block() {
    printf '📊 Statistics:\n'
    printf '   Leads processed:  %s\n' "$1"
    printf '   Leads skipped:    %s\n' "$2"
    printf '   Notes created:    %s\n' "$3"
    printf '   Notes updated:    %s\n' "$4"
    printf '   Notes skipped:    %s\n' "$5"
    printf '   Errors:           %s\n' "$6"
}

json_stats() {
    printf '{"leads_processed":%s,"leads_skipped":%s,"notes_created":%s,"notes_updated":%s,"notes_skipped":%s,"errors":%s}' "$@"
}

record_stats() {
    q "$1" "SELECT concat_ws(' ', s->>'leads_processed', s->>'leads_skipped', s->>'notes_created',
                s->>'notes_updated', s->>'notes_skipped', s->>'errors')
              FROM (SELECT payload->'stats' AS s FROM \"Audit\"
                     WHERE action = 'backfill_memory_notes'
                     ORDER BY created_at DESC, id DESC OFFSET ${2:-1} - 1 LIMIT 1) r"
}

notes() {
    q "$1" "SELECT right(lead_id::text, 2) || '|' || key || '|' || kind || '|' || content || '|'
                   || coalesce(right(customer_id::text, 1), '-')
              FROM \"MemoryNote\" WHERE ${2:-true} ORDER BY lead_id, key COLLATE \"C\", content"
}

b5_tables() { db_snapshot "$1"; }   # every table's rows (tests/lib/tap.sh)

b5_scratch() {
    local d=$TAP_TMPDIR/tree
    rm -rf "$d"
    mkdir -p "$d"
    cp -R "$REPO_ROOT/migrations" "$REPO_ROOT/rules" "$d/"
    printf '%s\n' "$d"
}
