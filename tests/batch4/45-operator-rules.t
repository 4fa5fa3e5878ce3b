#!/usr/bin/env bash
# Issue 3 rule 1 ("adding a key to the map adds that actor, with no code
# change") and the rules' promise that an operator may edit them without
# rebuilding: a copy of migrations/ and rules/ in a temp --dir, edited, run
# by the same bin/ferry.
. "$(dirname "$0")/lib.sh"

D=$TAP_TMPDIR/op
mkdir -p "$D"
cp -R "$REPO_ROOT/migrations" "$REPO_ROOT/rules" "$D/"
ferry_sum=$(sha256sum "$FERRY" "$(readlink -f "$REPO_ROOT/bin/ferry")" | sha256sum)

URI=$(b4_db b4_45_ops "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"
b4_run -q
is "$RC" 0 "first run with the shipped rules"
is "$(q "$URI" "SELECT count(*) FROM \"Message\" m JOIN \"Audit\" a ON m.metadata->>'auditId' = a.id::text WHERE a.actor = 'webhook'")" 0 \
   "webhook audits are not processed by the shipped map"

# The operator adds an actor: one line in rules/roles.lua.
sed -i 's/^  tool      = "tool",$/  tool      = "tool",\n  webhook = "tool",/' "$D/rules/roles.lua"
grep -q '^  webhook = "tool",$' "$D/rules/roles.lua"
ok $? "rules/roles.lua edited: webhook = \"tool\""

run_ferry --dir "$D" --db "$URI" run "$B4"
is "$RC" 0 "re-run with the edited map exits 0"
# 010 (L1, {text}) goes into L1's conversation; 030 (L4, {text}) gives L4 its first one
is "$(stats_of "$OUT")" "$(stats_block 1 5 2 31 35 2 0)" "the two webhook audits are now processed and get messages"
is "$(q "$URI" "SELECT right(a.id::text, 3) || ' ' || m.role || ' ' || (m.metadata->>'auditActor') || ' ' || right(c.lead_id::text, 1) || ' ' || m.content
                  FROM \"Message\" m JOIN \"Audit\" a ON m.metadata->>'auditId' = a.id::text
                  JOIN \"Conversation\" c ON c.id = m.conversation_id
                 WHERE a.actor = 'webhook' ORDER BY a.id")" \
   "010 tool webhook 1 delivery status: shipped
030 tool webhook 4 web form: name=Fay, wants a gate" "webhook audits mapped to role tool, into the lead's conversation"
is "$(sha256sum "$FERRY" "$(readlink -f "$REPO_ROOT/bin/ferry")" | sha256sum)" "$ferry_sum" "no rebuild: the same binary"

run_ferry --dir "$D" --db "$URI" validate "$B4"
is "$RC" 0 "validate with the edited rules passes"
run_ferry --dir "$D" check
is "$RC" 0 "ferry check still passes after the operator's documented edit"
[ "$RC" = 0 ] || diag "$OUT"

# The mapping changed again after the messages exist: a re-run creates
# nothing (the messages are there), and validate reports every message
# whose role the rules now give differently -- not a sample of the ten
# oldest audits, which missed them.
sed -i 's/^  webhook = "tool",$/  webhook = "system",/' "$D/rules/roles.lua"
run_ferry --dir "$D" --db "$URI" validate "$B4"
is "$RC" 1 "validate after the map changed under existing messages: exit 1"
like "$OUT" "FAIL every message has the role the rules give its audit's actor  \\([0-9]+ messages checked, 2 with another role: actor \"webhook\" has \"tool\" where the rules give \"system\" \\(2\\); roll back and run again to remap them\\)" \
     "...naming the actor, the role it has, the role the rules give, and what to do"
sed -i 's/^  webhook = "system",$/  webhook = "tool",/' "$D/rules/roles.lua"

# A fresh database with the edited map from the start: the dry run and the
# run agree, with 35 processed audits.
URI=$(b4_db b4_45_ops2 "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"
run_ferry --dir "$D" --db "$URI" run "$B4" --dry-run
is "$(stats_of "$OUT")" "$(stats_block 5 1 23 10 35 2 0)" "edited map from the start: dry run"
run_ferry --dir "$D" --db "$URI" run "$B4"
is "$(stats_of "$OUT")" "$(stats_block 5 1 23 10 35 2 0)" "edited map from the start: real run, same counts"

# The operator sends note_added bodies too (rules/text.lua), and a mapped
# role the Message table refuses is a per-row error, not a crash.
sed -i 's/^M.body_actions = {message_sent = true, message_received = true}$/M.body_actions = {message_sent = true, message_received = true, note_added = true}/' "$D/rules/text.lua"
grep -q 'note_added = true' "$D/rules/text.lua"
ok $? "rules/text.lua edited: body of note_added counts"
URI=$(b4_db b4_45_ops3 "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"
run_ferry --dir "$D" --db "$URI" run "$B4" -q
is "$(q "$URI" "SELECT (m.metadata->>'textSource') || ' ' || m.content FROM \"Message\" m
                 WHERE m.metadata->>'auditId' = 'a0000000-0000-4000-8000-000000000007'")" \
   "payload.body Customer prefers mornings" "the text.lua edit applies: 007 now takes its body"

sed -i 's/^  webhook = "tool",$/  webhook = "bot",/' "$D/rules/roles.lua"
URI=$(b4_db b4_45_ops4 "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"
run_ferry --dir "$D" --db "$URI" run "$B4"
is "$RC" 1 "a map to a role Message does not allow: exit 1"
is "$(stats_of "$OUT")" "$(stats_block 5 1 21 10 35 2 2)" "... two per-row errors, the rest written"
like "$OUT" 'a0000000-0000-4000-8000-000000000010: .*rules\.roles maps "webhook" to "bot", which Message\.role does not allow' \
    "... each error names the audit and the reason"

# A rule that raises an error object (a table, a common Lua idiom) fails
# that row like any error: a per-row error naming the audit and showing the
# object, the run goes on.
D3=$TAP_TMPDIR/op3
mkdir -p "$D3"
cp -R "$REPO_ROOT/migrations" "$REPO_ROOT/rules" "$D3/"
sed -i 's/^function M.extract(payload, action)$/&\n  if payload and payload:find("delivery status", 1, true) then error({reason = "unsupported"}) end/' \
    "$D3/rules/text.lua"
grep -q 'error({reason = "unsupported"})' "$D3/rules/text.lua"
ok $? "rules/text.lua edited to raise a table for one audit"
sed -i 's/^  tool      = "tool",$/  tool      = "tool",\n  webhook = "tool",/' "$D3/rules/roles.lua"
URI=$(b4_db b4_45_ops6 "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"
run_ferry --dir "$D3" --db "$URI" run "$B4"
is "$RC" 1 "a rule raising a table for one row: exit 1 (a row error), not a crash"
is "$(stats_of "$OUT")" "$(stats_block 5 1 22 10 35 2 1)" "... one per-row error, the rest written"
like "$OUT" 'a0000000-0000-4000-8000-000000000010: error object \{"reason":"unsupported"\}' \
    "... the error names the audit and shows the object"
like "$ERR" '1 row error\(s\) recorded' "... and stderr says so (no 'nil')"

# A key not in normal form ("Webhook") can never match: actors are lower-
# cased and trimmed before the lookup.  The SQL side must agree (the audit
# is not processed, no row error), and `ferry check` says what is wrong.
D2=$TAP_TMPDIR/op2
mkdir -p "$D2"
cp -R "$REPO_ROOT/migrations" "$REPO_ROOT/rules" "$D2/"
sed -i 's/^  tool      = "tool",$/  tool      = "tool",\n  Webhook = "tool",/' "$D2/rules/roles.lua"
URI=$(b4_db b4_45_ops5 "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"
q "$URI" "INSERT INTO \"Audit\" (id, lead_id, actor, action, payload)
          SELECT 'a0000000-0000-4000-8000-0000000000f1', lead_id, 'Webhook', 'message_received', '{\"text\": \"hi\"}'
            FROM \"Audit\" WHERE id = 'a0000000-0000-4000-8000-000000000010'" >/dev/null
run_ferry --dir "$D2" --db "$URI" run "$B4"
is "$RC" 0 "a map key not in normal form: the run exits 0"
like "$OUT" "Errors: +0" "... no row error (SQL and Lua agree: the key matches nothing)"
is "$(q "$URI" "SELECT count(*) FROM \"Message\" WHERE metadata->>'auditId' = 'a0000000-0000-4000-8000-0000000000f1'")" 0 \
   "... and the 'Webhook' audit is not processed"
run_ferry --dir "$D2" check
is "$RC" 1 "ferry check fails on it"
like "$OUT$ERR" 'Webhook' "... naming the key"

done_testing
