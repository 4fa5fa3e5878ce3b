# shellcheck shell=bash
# Helpers for tests that compare Batch 4 results across databases.
M4=20251110_backfill_conversations_messages

# clone_db TEMPLATE NAME -> URI of NAME, a fresh copy of TEMPLATE
clone_db() {
    "$PSQL" -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$2\"" -c "CREATE DATABASE \"$2\" TEMPLATE \"$1\"" >/dev/null
    db_uri "$2"
}

# gen_db NAME LEADS -> URI of a database with Batches 1-3 and generated data
gen_db() {
    local uri
    uri=$(fresh_db "$1")
    "$FERRY" --db "$uri" -q up --to 20251108 >/dev/null
    "$PSQL" "$uri" -X -q -v ON_ERROR_STOP=1 -v leads="$2" -v audits_per_lead=10 -f "$REPO_ROOT/bench/generate.sql" >/dev/null
    echo "$uri"
}

# rows_digest URI -> one line: counts and md5 of every row Batch 4 writes,
# without what differs between runs by design (now(), the run's time).
rows_digest() {
    "$PSQL" "$1" -X -A -t -q -c "
      SELECT (SELECT count(*) FROM \"Message\") || ' ' || (SELECT count(*) FROM \"Conversation\") || ' ' ||
        (SELECT md5(coalesce(string_agg(id || '|' || conversation_id || '|' || role || '|' || coalesce(content, '~')
                 || '|' || metadata::text || '|' || created_at, E'\n' ORDER BY id), '')) FROM \"Message\") || ' ' ||
        (SELECT md5(coalesce(string_agg(id || '|' || lead_id || '|' || coalesce(customer_id::text, '~') || '|' ||
                 coalesce(channel, '~') || '|' || coalesce(external_id, '~') || '|' || started_at || '|' ||
                 coalesce(last_message_at::text, '~') || '|' || (metadata - 'createdAt')::text, E'\n' ORDER BY id), ''))
           FROM \"Conversation\")"
}
