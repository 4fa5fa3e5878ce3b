#!/usr/bin/env bash
# The server out of disk space mid-run (SQLSTATE 53100, "could not extend
# file ...: No space left on device"): a QA helper filled a tmpfs under a
# run, and ferry's line said only the server's words.  It now says what
# happened and what to do: free space on the server, then re-run (a data
# migration resumes).  The server's error is raised here as the server
# raises it (ERRCODE disk_full), so that no disk needs filling.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

D=$TAP_TMPDIR/proj
FULL='DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '"'disk_full'"', MESSAGE = '"'could not extend file \"base/16384/16390\": No space left on device'"'; END $$'
put "$D/migrations/20250101_data/up.lua" "db.exec([[$FULL]])"
put "$D/migrations/20250102_schema/up.sql" "$FULL;"
mkdir -p "$D/rules"
db=$(fresh_db ferry_cli_disk_full)

HINT='; the server is out of disk space: free space on it (or have the DBA do so)'
run_ferry --db "$db" --dir "$D" run 20250101
err=$(printf '%s\n' "$ERR" | grep '^ferry:')
is "$RC" 1 "a data migration, the server's disk full: exit 1"
like "$err" "No space left on device \\[SQLSTATE 53100\\]$(sed 's/[][\\.*^$()|+?{}]/\\&/g' <<<"$HINT"), then re-run to resume \\(everything up to the last checkpoint is committed\\)\$" \
     "...says the disk is full, to free space and re-run to resume ($err)"
is "$(history "$db")" "20250101_data|run|failed" "...recorded failed"

run_ferry --db "$db" --dir "$D" run 20250102
err=$(printf '%s\n' "$ERR" | grep '^ferry:')
like "$err" "^ferry: migrations/20250102_schema/up.sql: .*No space left on device \\[SQLSTATE 53100\\].*$(sed 's/[][\\.*^$()|+?{}]/\\&/g' <<<"$HINT"), then re-run to try again\$" \
     "a schema step: the same, and to re-run ($err)"
# the same condition met by a rollback, and by a script under exec: the
# advice belongs to the server's error, whatever command met it
put "$D/migrations/20250103_undo/up.sql" 'CREATE TABLE undo_t (x int);'
put "$D/migrations/20250103_undo/rollback.sql" "$FULL;"
run_ferry --db "$db" --dir "$D" run 20250103
is "$RC" 0 "a migration to roll back"
run_ferry --db "$db" --dir "$D" rollback 20250103
err=$(printf '%s\n' "$ERR" | grep '^ferry:')
like "$err" "^ferry: 20250103_undo: rollback failed: .*No space left on device \\[SQLSTATE 53100\\]$(sed 's/[][\\.*^$()|+?{}]/\\&/g' <<<"$HINT"), then run \`ferry rollback 20250103_undo\` again\$" \
     "a rollback: the same advice, and to run the rollback again ($err)"
is "$RC" 1 "...exit 1"
put "$TAP_TMPDIR/full.lua" "db.exec([[$FULL]])"
run_ferry --db "$db" exec "$TAP_TMPDIR/full.lua"
like "$ERR" "No space left on device \\[SQLSTATE 53100\\]$(sed 's/[][\\.*^$()|+?{}]/\\&/g' <<<"$HINT"), then re-run\$" \
     "exec: the same advice ($ERR)"
done_testing
