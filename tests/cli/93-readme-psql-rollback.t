#!/usr/bin/env bash
# Each migration README's "without ferry" rollback line (`psql ... -f
# migrations/ID/rollback.sql`), taken out of the README as it stands and run
# as written from the repository's folder, rolls back the migration on the
# database of DATABASE_URL -- the one the README's typical session exports
# and ferry uses. psql itself does not read DATABASE_URL: a line that does
# not pass it connects to whatever libpq's PG* variables name. Here
# PGDATABASE names a database that does not exist, so such a line fails
# instead of dropping tables somewhere else.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

PATH=$(dirname "$PSQL"):$PATH

# gone ID URI: what the migration made is gone ("t")
gone() {
    case $1 in
    20251101_schema) psql_val "$2" "SELECT to_regclass('public.\"Customer\"') IS NULL AND to_regclass('public.\"Message\"') IS NULL" ;;
    20251105_fts_indexes) psql_val "$2" "SELECT to_regclass('public.\"Message_content_fts_idx\"') IS NULL AND to_regclass('public.\"MemoryNote_content_fts_idx\"') IS NULL" ;;
    20251110_backfill_conversations_messages) psql_val "$2" "SELECT count(*) = 0 FROM \"Message\" WHERE metadata->>'createdBy' = '$1'" ;;
    20251115_backfill_memory_notes) psql_val "$2" "SELECT count(*) = 0 FROM \"MemoryNote\" WHERE metadata->>'createdBy' = '$1'" ;;
    *) echo "unknown $1" ;;
    esac
}

n=0
for readme in "$REPO_ROOT"/migrations/*/README.md; do
    id=$(basename "$(dirname "$readme")")
    line=$(grep -E "^psql .*-f migrations/$id/rollback\.sql\$" "$readme" | head -n 1)
    [ -n "$line" ] || continue
    n=$((n + 1))
    db=$(fresh_db "ferry_cli_93_$n")
    "$FERRY" --dir "$REPO_ROOT" --db "$db" -q up --to "${id%%_*}" >/dev/null 2>&1
    is "$?" 0 "$id: applied on a fresh database"
    if [ "$id" = 20251110_backfill_conversations_messages ] || [ "$id" = 20251115_backfill_memory_notes ]; then
        "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$REPO_ROOT/demo/data.sql" >/dev/null
        "$FERRY" --dir "$REPO_ROOT" --db "$db" -q run "$id" >/dev/null 2>&1
    fi
    out=$(cd "$REPO_ROOT" && DATABASE_URL=$db PGDATABASE=ferry_cli_93_no_such_database bash -c "$line" 2>&1)
    rc=$?
    is "$rc" 0 "$id: the README's psql rollback line runs on the database of DATABASE_URL"
    [ "$rc" = 0 ] || diag "$line: $out"
    is "$(gone "$id" "$db")" t "$id: ...and what the migration made is gone there"
done
is "$n" 4 "four migration READMEs give a psql rollback line (Batch 3 has no rollback)"

done_testing
