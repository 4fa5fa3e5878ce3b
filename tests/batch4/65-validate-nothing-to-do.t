#!/usr/bin/env bash
# validate on a database with nothing to backfill -- no audits, or only
# audits the rules skip (an ignored actor, no text, no lead) -- passes:
# "backfilled messages exist" asks for messages only when some audit
# should have one.  With audits to backfill and no run yet it fails as
# before.
. "$(dirname "$0")/lib.sh"

check2() { printf '%s\n' "$OUT" | grep 'backfilled messages exist'; }

# no audits at all
URI=$(b4_db b4_65_empty) || bail_out "cannot build the database"
b4 validate "$B4"
is "$RC" 0 "no audits: validate passes"
is "$(check2)" "✓ PASS backfilled messages exist  (0 messages, 0 backfilled, in 0 conversations; nothing to backfill: no processed audit of an existing lead has text)" \
   "...check 2 says there is nothing to backfill"
is "$(printf '%s\n' "$OUT" | tail -n 1)" "8 check(s), 0 failed" "...all eight pass"

# only audits the rules skip: an ignored actor, no text, an orphan lead
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" >/dev/null <<'SQL'
INSERT INTO "Lead" (id, channel) VALUES ('1ead0000-0000-0000-0000-000000000001', 'web');
INSERT INTO "Audit" (lead_id, actor, action, payload) VALUES
  ('1ead0000-0000-0000-0000-000000000001', 'webhook', 'message_received', '{"text": "ignored actor"}'),
  ('1ead0000-0000-0000-0000-000000000001', 'customer', 'message_received', '{}'),
  ('1ead0000-0000-0000-0000-000000000001', 'agent', 'message_sent', NULL),
  ('1ead0000-0000-0000-0000-0000000000ff', 'customer', 'message_received', '{"text": "no such lead"}');
SQL
b4 validate "$B4"
is "$(check2)" "✓ PASS backfilled messages exist  (0 messages, 0 backfilled, in 0 conversations; nothing to backfill: no processed audit of an existing lead has text)" \
   "only audits the rules skip: no message to backfill"
is "$RC|$(printf '%s\n' "$OUT" | grep -c FAIL)|$(printf '%s\n' "$OUT" | grep FAIL)" \
   "1|1|✗ FAIL every lead with processed audits has a conversation  (0 of 1 leads; 0 backfilled conversations)" \
   "...but the lead's (empty) conversation is still to create: check 1 fails, alone"
b4_run -q
is "$RC" 0 "the run creates it"
b4 validate "$B4"
is "$RC|$(check2)" "0|✓ PASS backfilled messages exist  (0 messages, 0 backfilled, in 0 conversations; nothing to backfill: no processed audit of an existing lead has text)" \
   "...then validate passes, with no message"

# one audit with text, not backfilled yet: fails as before
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" \
  -c "INSERT INTO \"Audit\" (lead_id, actor, action, payload) VALUES ('1ead0000-0000-0000-0000-000000000001', 'customer', 'message_received', '{\"text\": \"hello\"}')" >/dev/null
b4 validate "$B4"
is "$RC" 1 "an audit with text and no run: validate fails"
is "$(check2)" "✗ FAIL backfilled messages exist  (0 messages, 0 backfilled, in 0 conversations)" "...check 2 fails"

# after the run it passes
b4_run -q
is "$RC" 0 "the run"
b4 validate "$B4"
is "$RC|$(check2)" "0|✓ PASS backfilled messages exist  (1 messages, 1 backfilled, in 1 conversations)" "...then validate passes"

done_testing
