#!/usr/bin/env bash
# validate on a database with nothing to backfill -- no lead with
# state_metadata, or only leaves that live notes already cover -- passes:
# "backfilled notes exist" asks for notes only when some leaf should have
# one.  With a leaf to backfill and no run yet it fails as before.
. "$(dirname "$0")/lib.sh"

check6() { printf '%s\n' "$OUT" | grep 'backfilled notes exist'; }
NOTHING="✓ PASS backfilled notes exist  (no backfilled notes; nothing to backfill: every leaf of state_metadata has a live note, or there is none)"

URI=$(b5_db b5_65_empty) || bail_out "cannot build the database"
b5 validate "$B5"
is "$RC|$(check6)" "0|$NOTHING" "no leads: validate passes, nothing to backfill"
is "$(printf '%s\n' "$OUT" | tail -n 1)" "6 check(s), 0 failed" "...all six pass"

# a lead whose only leaf a live note covers, and one with an empty state
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" >/dev/null <<'SQL'
INSERT INTO "Lead" (id, channel, state_metadata) VALUES
  ('1ead0000-0000-4000-8000-000000000001', 'web', '{"language": "fr"}'),
  ('1ead0000-0000-4000-8000-000000000002', 'web', '{}');
INSERT INTO "MemoryNote" (lead_id, kind, key, content)
  VALUES ('1ead0000-0000-4000-8000-000000000001', 'fact', 'language', 'Speaks French');
SQL
b5 validate "$B5"
is "$RC|$(check6)" "0|$NOTHING" "only leaves live notes cover: validate passes, nothing to backfill"

# a leaf without a note, no run yet: fails as before
q "$URI" "UPDATE \"Lead\" SET state_metadata = '{\"budget\": 500}' WHERE id = '1ead0000-0000-4000-8000-000000000002'" >/dev/null
b5 validate "$B5"
is "$RC|$(check6)" "1|✗ FAIL backfilled notes exist  (no backfilled notes)" "a leaf to backfill and no run: check 6 fails"

b5_run -q
is "$RC" 0 "the run"
b5 validate "$B5"
is "$RC|$(check6)" "0|✓ PASS backfilled notes exist  (fact 1)" "...then validate passes"

done_testing
