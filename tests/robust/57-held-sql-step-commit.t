#!/usr/bin/env bash
# A schema step (up.sql) records itself applied inside its own
# transaction, so that a COMMIT that goes through is recorded whatever
# comes after it.  A script that makes that transaction read-only, or
# switches to a role that cannot write ferry's history, leaves the row to
# be written after the COMMIT, as for any migration.  Interrupted as that
# COMMIT went through (Ctrl-C while it waited for its reply), or its
# connection lost then, ferry found the row still 'running' and said
# "nothing of it is committed (...); re-run to apply it" -- while the
# step was applied, and its re-run would fail on what it had created.
# ferry now asks the server whether the step's transaction committed (on
# the session, or, that one lost, on a new one).
#
# A proxy in front of the server (held-lib.sh) holds the reply to the
# step's COMMIT until the Ctrl-C's cancel has gone through it, or drops
# the connection instead.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../cli/cli-lib.sh"
require_pg

db=$(fresh_db ferry_robust_held_sql_step)
D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_first/up.sql" 'CREATE TABLE first_t (x int);'
run_ferry --db "$db" --dir "$D" up
is "$RC" 0 "set-up: the history exists"
HELD_DB=ferry_robust_held_sql_step
. "$(dirname "$0")/held-lib.sh"
rows_of() { history_errors "$db" "$1"; }
has_table() { psql_val "$db" "SELECT to_regclass('$1') IS NOT NULL"; }

# --- made read-only: Ctrl-C as its COMMIT went through
put "$D/migrations/20250102_ro/up.sql" 'CREATE TABLE ro_marker_t (x int);
SET LOCAL transaction_read_only = on;'
put "$D/migrations/20250103_next/up.sql" 'CREATE TABLE next_t (x int);'
held ro_marker_t COMMIT up
is "$RC" 130 "read-only step, Ctrl-C at its COMMIT: exit 130"
is "$ERR" "ferry: interrupted (SIGINT) after 20250102_ro had finished (applied); nothing after it was run" \
   "read-only step, Ctrl-C at its COMMIT: the line says it had finished (applied)"
is "$(has_table ro_marker_t)|$(rows_of 20250102_ro)" "t|up|applied|" \
   "read-only step, Ctrl-C at its COMMIT: it is applied, and recorded so"
is "$(has_table next_t)|$(rows_of 20250103_next)" "f|" "read-only step, Ctrl-C at its COMMIT: nothing after it ran"

# --- another role: the connection lost as its COMMIT went through
role=ferry_robust_57_nobody
psql_val "$db" "SET client_min_messages = warning; DROP ROLE IF EXISTS $role; CREATE ROLE $role" >/dev/null
rm -r "$D/migrations/20250103_next"
put "$D/migrations/20250104_role/up.sql" "CREATE TABLE role_marker_t (x int);
SET LOCAL ROLE $role;"
put "$D/migrations/20250105_next/up.sql" 'CREATE TABLE next_t (x int);'
HELD_MODE=cut held role_marker_t COMMIT --json up
is "$RC" 1 "another role, lost at its COMMIT: exit 1"
is "$ERR" "ferry: 20250104_role: the connection was lost as its COMMIT went through: it is applied (the server, asked on a new session, says its transaction committed; its history row is written now); nothing after it was run" \
   "another role, lost at its COMMIT: the line says it is applied"
is "$(has_table role_marker_t)|$(rows_of 20250104_role)" "t|up|applied|" \
   "another role, lost at its COMMIT: it is applied, and recorded so"
is "$(has_table next_t)|$(rows_of 20250105_next)" "f|" "another role, lost at its COMMIT: nothing after it ran"
is "$(json_eval "$(cat "$TAP_TMPDIR/bg.out")" '[j["ok"], [[m["migration"], m["ok"], m["status"]] for m in j["migrations"]]]')" \
   '[false,[["20250104_role",true,"applied"]]]' "another role, lost at its COMMIT: --json says it is applied"

# --- the same step, its COMMIT refused: nothing of it is committed, as said
put "$D/migrations/20250106_refused/up.sql" "CREATE TABLE refused_t (x int PRIMARY KEY);
CREATE TABLE refused_ref_t (x int REFERENCES refused_t DEFERRABLE INITIALLY DEFERRED);
INSERT INTO refused_ref_t VALUES (1);
SET LOCAL transaction_read_only = on;"
rm -r "$D/migrations/20250105_next"
run_ferry --db "$db" --dir "$D" up
is "$RC|$(has_table refused_t)|$(rows_of 20250106_refused | cut -d'|' -f1,2)" "1|f|up|failed" \
   "a read-only step whose COMMIT fails: not applied, recorded failed"

psql_val "$db" "DROP ROLE $role" >/dev/null
is "$(psql_val "$db" "SELECT count(*) FROM ferry.history WHERE status = 'running'")" 0 "no history row is left running"
done_testing
