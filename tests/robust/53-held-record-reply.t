#!/usr/bin/env bash
# Ctrl-C that comes while the BEGIN of a transaction waits for the
# server's reply: the BEGIN goes through (the server had run it when the
# cancel came, and ignores a cancel between statements), and the
# interruption is raised at the first Lua instruction after it.
#
# Before, that instruction came before db.transaction's guard knew of the
# transaction, which was left open, with no ROLLBACK.  When it was the
# BEGIN of the transaction recording a run that had finished, close_history
# wrote the outcome again -- inside that open transaction, as a savepoint
# -- and ferry said "interrupted (SIGINT) after X had finished (applied)",
# exit 130, while nothing committed the row: the session closed at exit
# rolled it back, and the row was left 'running' (seen once in a full-suite
# run of robust/52, whose Ctrl-C could then come at any moment of that
# transaction).
#
# The window is one round trip wide.  A proxy on a Unix socket in front of
# the server holds the server's reply to the first BEGIN sent after the
# migration's own statement (its table's name marks it) until ferry's
# Ctrl-C has sent its cancel -- through the proxy too, whose end releases
# the reply.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../cli/cli-lib.sh"
require_pg

db=$(fresh_db ferry_robust_interrupt_begin)
D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_first/up.sql" 'CREATE TABLE first_t (x int);'
run_ferry --db "$db" --dir "$D" up
is "$RC" 0 "set-up: the history exists"

HELD_DB=ferry_robust_interrupt_begin
. "$(dirname "$0")/held-lib.sh"
norm_json() { sed -E 's/"duration_ms":[0-9]+/"duration_ms":N/g' <<<"$1"; }
rows_of() { history_errors "$db" "$1"; }

# --- the BEGIN of the transaction that records a run that had finished
put "$D/migrations/20250102_done/up.lua" 'db.exec("CREATE TABLE begin_marker_t (x int)")'
held begin_marker_t BEGIN run 20250102
is "$RC" 130 "BEGIN of the record: exit 130"
is "$ERR" "ferry: interrupted (SIGINT) after 20250102_done had finished (applied); nothing after it was run" \
   "BEGIN of the record: the line says the migration had finished"
is "$(rows_of 20250102_done)" "run|applied|" "BEGIN of the record: the run is recorded applied, as ferry said"

# --- the COMMIT of that transaction, gone through when the cancel came:
# the outcome written again finds it written
put "$D/migrations/20250103_again/up.lua" 'db.exec("CREATE TABLE commit_marker_t (x int)")'
held commit_marker_t COMMIT run 20250103
is "$RC" 130 "COMMIT of the record: exit 130"
is "$ERR" "ferry: interrupted (SIGINT) after 20250103_again had finished (applied); nothing after it was run" \
   "COMMIT of the record: the line says the migration had finished"
is "$(rows_of 20250103_again)" "run|applied|" "COMMIT of the record: the run is recorded applied, as ferry said"

# --- the BEGIN of the transaction that records a rollback that had finished
put "$D/migrations/20250103_again/rollback.sql" 'DROP TABLE commit_marker_t;'
held "DROP TABLE commit_marker_t" BEGIN rollback 20250103
is "$RC" 130 "BEGIN of a rollback's record: exit 130"
is "$ERR" "ferry: interrupted (SIGINT) after the rollback of 20250103_again had finished (rolled back)" \
   "BEGIN of a rollback's record: the line says the rollback had finished"
is "$(rows_of 20250103_again)" "run|applied| / rollback|rolled back|" \
   "BEGIN of a rollback's record: the rollback is recorded, as ferry said"

# --- the COMMIT of a baseline's row (written and closed in one transaction)
put "$D/migrations/20250104_baselined/up.sql" 'CREATE TABLE baselined_t (x int);'
held 20250104_baselined COMMIT baseline 20250104
is "$RC" 130 "COMMIT of a baseline: exit 130"
is "$ERR" "ferry: interrupted (SIGINT) after baselining 2 of 2 migrations (the last: 20250104_baselined); run 'ferry baseline 20250104' again for the rest" \
   "COMMIT of a baseline: the line counts the one its COMMIT recorded"
is "$(rows_of 20250104_baselined)" "baseline|applied|" "COMMIT of a baseline: recorded applied, as ferry said"

# --- the connection lost as the COMMIT of the record went through (the
# server committed it; its reply never came): the row, read on a new
# session, says applied, and so does ferry
put "$D/migrations/20250105_lost/up.lua" 'db.exec("CREATE TABLE lost_marker_t (x int)")'
HELD_MODE=cut held lost_marker_t COMMIT --json run 20250105
is "$RC" 1 "lost at the record's COMMIT: exit 1"
is "$ERR" "ferry: 20250105_lost: the connection was lost as the COMMIT recording its run went through: it is applied (its history row, read on a new session, says so); nothing after it was run" \
   "lost at the record's COMMIT: the line says it is applied"
is "$(rows_of 20250105_lost)" "run|applied|" "lost at the record's COMMIT: the row says applied"
# (--json: "ok" false, the command stopped -- its session and lock gone;
# "status" what the row holds, which a program reads to know it applied)
is "$(norm_json "$(cat "$TAP_TMPDIR/bg.out")")" \
   '{"migration":"20250105_lost","mode":"apply","ok":false,"status":"applied","stats":{},"errors":[],"duration_ms":N,"error":"the connection was lost as the COMMIT recording its run went through: it is applied (its history row, read on a new session, says so); nothing after it was run"}' \
   "lost at the record's COMMIT: --json says it is applied (status), ok false, the error line"

# --- the same for a rollback
put "$D/migrations/20250105_lost/rollback.sql" 'DROP TABLE lost_marker_t;'
HELD_MODE=cut held "DROP TABLE lost_marker_t" COMMIT rollback 20250105
is "$RC" 1 "lost at a rollback's record's COMMIT: exit 1"
is "$ERR" "ferry: 20250105_lost: the connection was lost as the COMMIT recording it went through: it is rolled back (its history row, read on a new session, says so)" \
   "lost at a rollback's record's COMMIT: the line says it is rolled back"
is "$(rows_of 20250105_lost)" "run|applied| / rollback|rolled back|" "lost at a rollback's record's COMMIT: the row says rolled back"

# --- the same in 'up --json': the migration's entry is that of one applied
# (as when a Ctrl-C stops the command after it); the command's "ok" is
# false and its "error" the line
run_ferry --db "$db" --dir "$D" run 20250105
is "$RC" 0 "set-up: 20250105 applied again"
put "$D/migrations/20250106_lostup/up.lua" 'db.exec("CREATE TABLE lostup_marker_t (x int)")'
HELD_MODE=cut held lostup_marker_t COMMIT --json up
is "$RC" 1 "up, lost at the record's COMMIT: exit 1"
is "$(rows_of 20250106_lostup)" "up|applied|" "up, lost at the record's COMMIT: the row says applied"
is "$(norm_json "$(cat "$TAP_TMPDIR/bg.out")")" \
   '{"ok":false,"migrations":[{"migration":"20250106_lostup","mode":"apply","ok":true,"status":"applied","stats":{},"errors":[],"duration_ms":N}],"error":"20250106_lostup: the connection was lost as the COMMIT recording its run went through: it is applied (its history row, read on a new session, says so); nothing after it was run"}' \
   "up, lost at the record's COMMIT: its entry says applied, the command ok false with the line"

# --- a schema step (up.sql) lost as its own COMMIT went through: its row,
# written in that transaction, says applied
put "$D/migrations/20250107_lostsql/up.sql" 'CREATE TABLE lostsql_marker_t (x int);'
put "$D/migrations/20250108_after/up.sql" 'CREATE TABLE after_t (x int);'
HELD_MODE=cut held lostsql_marker_t COMMIT --json up
is "$RC" 1 "up, lost at an up.sql's COMMIT: exit 1"
is "$(rows_of 20250107_lostsql)|$(rows_of 20250108_after)" "up|applied||" \
   "up, lost at an up.sql's COMMIT: the row says applied, nothing after it ran"
is "$(norm_json "$(cat "$TAP_TMPDIR/bg.out")")" \
   '{"ok":false,"migrations":[{"migration":"20250107_lostsql","mode":"apply","ok":true,"status":"applied","stats":{},"errors":[],"duration_ms":N}],"error":"20250107_lostsql: the connection was lost as its COMMIT went through: it is applied (its history row, written in that transaction, says so); nothing after it was run"}' \
   "up, lost at an up.sql's COMMIT: its entry says applied, the command ok false with the line"

# --- a rollback's --json: "status" what its row holds
put "$D/migrations/20250107_lostsql/rollback.sql" 'DROP TABLE lostsql_marker_t;'
HELD_MODE=cut held "DROP TABLE lostsql_marker_t" COMMIT --json rollback 20250107
is "$RC" 1 "rollback --json, lost at its record's COMMIT: exit 1"
is "$(norm_json "$(cat "$TAP_TMPDIR/bg.out")")" \
   '{"migration":"20250107_lostsql","mode":"rollback","ok":false,"status":"rolled back","stats":{},"errors":[],"duration_ms":N,"error":"the connection was lost as the COMMIT recording it went through: it is rolled back (its history row, read on a new session, says so)"}' \
   "rollback --json, lost at its record's COMMIT: status rolled back, ok false, the line"

is "$(psql_val "$db" "SELECT count(*) FROM ferry.history WHERE status = 'running'")" 0 "no history row is left running"
done_testing
