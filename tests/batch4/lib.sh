# shellcheck shell=bash
# tests/batch4/lib.sh - helpers shared by the Batch 4 tests (sourced, not run:
# tests/run.sh only runs *.t files).
#
#   . "$(dirname "$0")/lib.sh"        # also sources tests/lib/tap.sh
#
#   b4_db NAME [SQL_FILE...]   fresh database NAME, schema by `ferry up --to
#                              20251108`, then each SQL file loaded with psql;
#                              prints the URI
#   b4 ARGS...                 run_ferry --dir $REPO_ROOT --db $URI ARGS
#                              (so $OUT $ERR $RC), URI is the caller's variable
#   b4_run [ARGS...]           b4 run 20251110_backfill_conversations_messages ARGS
#   q URI SQL                  psql -XAtq: every row, fields split by |
#   stats_of TEXT              the "📊 Statistics:" block of TEXT
#   stats_block CC CS MC MS AP AS E
#                              the block those seven numbers must print
#   json_stats CC CS MC MS AP AS E
#                              the "stats" object --json must print
#   b4test.compact(jsonb)     (SQL, in every b4_db database) PostgreSQL's
#                              own compact JSON text of a value, uncut
#   b4_tables URI              every row of the five tables and ferry.*, as
#                              text (to prove that something wrote nothing)
#   broken_rules DIR PATTERN...  a copy of migrations/ and rules/ in DIR whose
#                              text rule raises for payloads holding a PATTERN
# shellcheck source=../lib/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"

require_pg

B4=20251110_backfill_conversations_messages
B4_PATH=$REPO_ROOT/migrations/$B4

q() {
    "$PSQL" -X -A -t -q -v ON_ERROR_STOP=1 -d "$1" -c "$2"
}

b4_db() {
    local uri
    uri=$(crm_db "$@") || return 1
    # b4test.compact(jsonb): the compact JSON of a value computed by
    # PostgreSQL alone (the oracle of rule 4.4): its text form with the
    # space after each "," and ":" between tokens removed; strings are
    # matched whole first, so separators inside them stay.
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$uri" >/dev/null <<'SQL' || return 1
CREATE SCHEMA b4test;
CREATE FUNCTION b4test.compact(j jsonb) RETURNS text LANGUAGE sql IMMUTABLE
  AS $$ SELECT regexp_replace(j::text, '("(?:[^"\\]|\\.)*")|([,:]) ', '\1\2', 'g') $$;
SQL
    printf '%s\n' "$uri"
}

b4() {
    run_ferry --dir "$REPO_ROOT" --db "$URI" "$@"
}

b4_run() {
    b4 run "$B4" "$@"
}

stats_of() {   # the first block only (ferry up may run more migrations)
    printf '%s\n' "$1" | sed -n '/^📊 Statistics:$/,/^   Errors:/{p;/^   Errors:/q}'
}

stats_block() {
    printf '📊 Statistics:\n'
    printf '   Conversations created:  %s\n' "$1"
    printf '   Conversations skipped:  %s\n' "$2"
    printf '   Messages created:       %s\n' "$3"
    printf '   Messages skipped:       %s\n' "$4"
    printf '   Audits processed:       %s\n' "$5"
    printf '   Audits skipped:         %s\n' "$6"
    printf '   Errors:                 %s\n' "$7"
}

json_stats() {
    printf '{"conversations_created":%s,"conversations_skipped":%s,"messages_created":%s,"messages_skipped":%s,"audits_processed":%s,"audits_skipped":%s,"errors":%s}' "$@"
}

# The run record payload's stats as "cc cs mc ms ap as e" (newest record, or
# the Nth newest with a second argument 2, 3, ...).
record_stats() {
    q "$1" "SELECT concat_ws(' ', s->>'conversations_created', s->>'conversations_skipped',
                s->>'messages_created', s->>'messages_skipped', s->>'audits_processed',
                s->>'audits_skipped', s->>'errors')
              FROM (SELECT payload->'stats' AS s FROM \"Audit\"
                     WHERE action = 'backfill_conversations_messages'
                     ORDER BY created_at DESC, id DESC OFFSET ${2:-1} - 1 LIMIT 1) r"
}

b4_tables() { db_snapshot "$1"; }   # every table's rows (tests/lib/tap.sh)

# The invariant of rule 6 on a "cc cs mc ms ap as e" line.
invariant_ok() {
    local cc cs mc ms ap as e
    read -r cc cs mc ms ap as e <<<"$1"
    [ -n "$e" ] && [ "$ap" -eq $((mc + ms + as + e)) ]
}

# broken_rules DIR PATTERN...: a copy of migrations/ and rules/ whose
# rules/text.lua raises for payloads holding any PATTERN
broken_rules() {
    local d=$1 p cond=''
    shift
    mkdir -p "$d"
    cp -R "$REPO_ROOT/migrations" "$REPO_ROOT/rules" "$d/"
    for p; do cond+="${cond:+ or }payload:find('$p', 1, true)"; done
    sed -i "s/^  if payload == nil then return nil end\$/&\n  if $cond then error('rule exploded on purpose') end/" "$d/rules/text.lua"
    grep -q 'exploded on purpose' "$d/rules/text.lua"
}
