#!/usr/bin/env bash
# make demo: Batches 1-3 on an empty database, demo data, then Batch 4 as a
# dry run, for real, again (nothing left to do) and validated; then Batch 5
# and a full-text search over its notes.  Uses DATABASE_URL (scripts/
# with-pg.sh points it at a private throwaway PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
FERRY=${FERRY:-bin/ferry}
PSQL=/usr/lib/postgresql/15/bin/psql
[ -x "$PSQL" ] || PSQL=psql
: "${DATABASE_URL:?DATABASE_URL is not set (run through make demo)}"

# Step headers in bold on a terminal; plain text into a file or a pager.
if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold= plain=; fi
step() { printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"; }
run() { step "$*"; "$@"; }

# The demo writes: Batches 1-3, its own leads and audits, Batches 4 and 5
# for real.  So only on an empty database: DATABASE_URL may be what a shell
# kept from other work, a CRM someone uses (the README's typical session
# exports one), and make demo uses it as it is.
holds=$("$PSQL" "$DATABASE_URL" -X -A -t -q -v ON_ERROR_STOP=1 -c "
  SELECT concat_ws(', ', CASE count(*) WHEN 0 THEN NULL WHEN 1 THEN '1 table' ELSE count(*) || ' tables' END,
                   CASE WHEN to_regnamespace('ferry') IS NOT NULL THEN 'the ferry schema' END)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'ferry')
     AND n.nspname !~ '^pg_(toast|temp)'")
if [ -n "$holds" ]; then
  name=$("$PSQL" "$DATABASE_URL" -X -A -t -q -c "SELECT current_database()")
  echo "demo/run.sh: the database of DATABASE_URL is not empty ($name: $holds): the demo applies Batches 1-3," \
       "loads its own demo data and runs Batches 4 and 5 for real; unset DATABASE_URL to have make demo start a" \
       "throwaway PostgreSQL of its own, or point it at an empty database" >&2
  exit 2
fi

run "$FERRY" status
run "$FERRY" up --to 20251108
step "psql -f demo/data.sql        # leads on four channels, audits of every shape, an orphan, a live conversation"
"$PSQL" "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -f demo/data.sql
run "$FERRY" run 20251110_backfill_conversations_messages --dry-run
run "$FERRY" run 20251110_backfill_conversations_messages
run "$FERRY" run 20251110_backfill_conversations_messages
run "$FERRY" validate 20251110_backfill_conversations_messages
step "psql: one lead's conversation, as the agents will now see it"
"$PSQL" "$DATABASE_URL" -X -P pager=off -c "
  SELECT m.created_at, m.role, left(m.content, 60) AS content
    FROM \"Message\" m JOIN \"Conversation\" c ON c.id = m.conversation_id
   WHERE c.lead_id = (SELECT lead_id FROM \"Conversation\" ORDER BY started_at LIMIT 1)
   ORDER BY m.created_at"
if [ -d migrations/20251115_backfill_memory_notes ]; then
  run "$FERRY" run 20251115_backfill_memory_notes --dry-run
  run "$FERRY" run 20251115_backfill_memory_notes
  run "$FERRY" validate 20251115_backfill_memory_notes
  step "psql: full-text search over the memory notes for 'budget'"
  "$PSQL" "$DATABASE_URL" -X -P pager=off -c "
    SELECT n.lead_id, n.kind, n.key, n.content,
           round(ts_rank(to_tsvector('english', COALESCE(n.content, '')), plainto_tsquery('english', 'budget'))::numeric, 3) AS rank
      FROM \"MemoryNote\" n
     WHERE to_tsvector('english', COALESCE(n.content, '')) @@ plainto_tsquery('english', 'budget')
     ORDER BY rank DESC, n.lead_id LIMIT 10"
fi
run "$FERRY" status

# What the demo did, counted on the database, and what is left of it: make
# demo's own server (scripts/with-pg.sh: DATABASE_URL is the one `pg.sh env`
# gives for FERRY_PG_DIR) is stopped and removed as make demo ends; a
# database of the user's own keeps everything.
step "what the demo did"
"$PSQL" "$DATABASE_URL" -X -A -t -q -v ON_ERROR_STOP=1 -F ' ' -c "
  SELECT (SELECT count(*) FROM \"Lead\"), (SELECT count(*) FROM \"Audit\" WHERE action NOT LIKE 'backfill_%'),
         (SELECT count(*) FROM \"Conversation\" WHERE metadata->>'createdBy' = '20251110_backfill_conversations_messages'),
         (SELECT count(*) FROM \"Message\" WHERE metadata->>'createdBy' = '20251110_backfill_conversations_messages'),
         (SELECT count(*) FROM \"MemoryNote\" WHERE metadata->>'createdBy' = '20251115_backfill_memory_notes')" |
  while read -r leads audits convs msgs notes; do
    echo "Batches 1-3: the schema, its full-text indexes and the customer links."
    echo "demo/data.sql: $leads leads, $audits audits."
    echo "Batch 4: $convs conversations and $msgs messages from the audits (a dry run first; the second run created nothing; validated)."
    echo "Batch 5: $notes memory notes from the leads' state_metadata (a dry run first; validated)."
  done
own=
if [ -n "${FERRY_PG_DIR:-}" ] && pgenv=$(bash scripts/pg.sh env "$FERRY_PG_DIR" 2>/dev/null); then
  own=$(eval "$pgenv" && printf '%s' "$DATABASE_URL")
fi
if [ "$own" = "$DATABASE_URL" ]; then
  echo "This database is make demo's own PostgreSQL ($FERRY_PG_DIR): it is stopped and removed now, as make demo ends."
  echo "To try the commands yourself, on a scratch database of your own: README.md, 'A typical session'."
else
  echo "The database of DATABASE_URL keeps all of it: 'bin/ferry status' and 'bin/ferry history' show it;" \
       "'bin/ferry rollback 20251115' then 'bin/ferry rollback 20251110' undo the backfills."
fi
