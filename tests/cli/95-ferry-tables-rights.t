#!/usr/bin/env bash
# A role with rights on ferry.history but not all of them on
# ferry.checkpoint (the DBA's grants made table by table, one forgotten):
# every command that writes ferry's own tables says what the role lacks as
# cli/79 shows it -- exit 2, one line, the GRANTs -- before it runs
# anything of a migration, and leaves its history as it was.  A rollback
# deletes the migration's resume point as it starts (cli/89); a run saves
# one with each batch and deletes it as it records the migration applied.
# The server checks a statement's rights whether or not a row matches, so
# the right is needed (and asked for) also when there is no resume point.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg
LP=ferry_t_ckpt
PW=Ckpt-pw-7431xyz

if ! psql_val "$(db_uri postgres)" "DROP ROLE IF EXISTS $LP; CREATE ROLE $LP LOGIN PASSWORD '$PW'" >/dev/null 2>&1; then
    skip_all "cannot create a role here"
fi
cleanup_role() {
    psql_val "$(db_uri postgres)" "DROP DATABASE IF EXISTS ferry_cli_ckpt_rights WITH (FORCE)" >/dev/null 2>&1
    psql_val "$(db_uri postgres)" "DROP ROLE IF EXISTS $LP" >/dev/null 2>&1
}
trap 'in_test_shell && cleanup_role' EXIT

D=$TAP_TMPDIR/proj
# a: the tables; b: copies src into dst one row per committed batch, its
# position the last id copied (FAIL_AT stops it there), rollback.sql;
# c: the same into dst_c, with a down.lua
put "$D/migrations/20250101_a/up.sql" 'CREATE TABLE src (id int PRIMARY KEY);
INSERT INTO src SELECT generate_series(1, 10);
CREATE TABLE dst (id int PRIMARY KEY);
CREATE TABLE dst_c (id int PRIMARY KEY);'
put "$D/migrations/20250101_a/rollback.sql" 'DROP TABLE dst_c; DROP TABLE dst; DROP TABLE src;'
copy_to() {
    printf '%s' 'local from = ctx.checkpoint.get() or 0
for _, r in ipairs(db.query("SELECT id FROM src WHERE id > $1 ORDER BY id", from)) do
  if r.id == tonumber(os.getenv("FAIL_AT") or "-1") then error("stopped at " .. r.id) end
  if not ctx.dry_run then
    db.transaction(function()
      db.exec("INSERT INTO '"$1"' VALUES ($1) ON CONFLICT DO NOTHING", r.id)
      stats.inc("copied")
      ctx.checkpoint.save(r.id)
    end)
  end
end
'
}
put "$D/migrations/20250102_b/up.lua" "$(copy_to dst)"
put "$D/migrations/20250102_b/rollback.sql" 'DELETE FROM dst;'
put "$D/migrations/20250103_c/up.lua" "$(copy_to dst_c)"
put "$D/migrations/20250103_c/down.lua" 'db.exec("DELETE FROM dst_c")'
put "$D/migrations/20250104_d/up.sql" 'CREATE TABLE d (x int);'
mkdir -p "$D/rules"

db=$(fresh_db ferry_cli_ckpt_rights)
lp="$(sed "s/user=[^&]*/user=$LP/" <<<"$db")&password=$PW"
counts() { psql_val "$db" "SELECT (SELECT count(*) FROM dst) || ' ' || (SELECT count(*) FROM dst_c)"; }
checkpoints() { psql_val "$db" "SELECT coalesce(string_agg(migration || '@' || position, ' ' ORDER BY migration), '-') FROM ferry.checkpoint"; }
# the history as ferry shows it, and its rows as they are
state() {
    local s h
    s=$("$FERRY" --db "$db" --dir "$D" status 2>&1)
    h=$("$FERRY" --db "$db" --dir "$D" history 2>&1)
    printf '%s\n%s\n%s' "$(norm_times "$s")" "$(norm_times "$h")" \
        "$(psql_val "$db" "SELECT string_agg(concat_ws('|', id, migration, operation, status, finished_at, error), E'\n' ORDER BY id) FROM ferry.history")"
}
# the role's line (exit 2) for a right on ferry's tables it lacks
needs() {
    echo "ferry: cannot write ferry's history (schema ferry): permission denied for table checkpoint [SQLSTATE 42501]; this role needs USAGE on schema ferry, SELECT, INSERT, UPDATE, DELETE on its tables and USAGE on its sequence: GRANT USAGE ON SCHEMA ferry TO $LP; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ferry TO $LP; GRANT USAGE ON ALL SEQUENCES IN SCHEMA ferry TO $LP"
}
no_password() {   # DESCRIPTION
    case "$OUT$ERR" in
        *"$PW"*) fail "$1: the password is shown" ;;
        *) pass "$1: no password in the output" ;;
    esac
}

# As the owner: a applied, b stopped at row 5 (its resume point after row
# 4), c applied (no resume point)
run_ferry --db "$db" --dir "$D" -q up --to 20250101
FAIL_AT=5 run_ferry --db "$db" --dir "$D" -q run 20250102
run_ferry --db "$db" --dir "$D" -q run 20250103
is "$(counts)|$(checkpoints)" "4 10|20250102_b@4" "b part way (4 rows, its resume point), c applied (10 rows, none)"
# the role: everything on ferry's tables but DELETE on ferry.checkpoint
psql_val "$db" "GRANT USAGE ON SCHEMA ferry TO $LP; GRANT SELECT, INSERT, UPDATE, DELETE ON ferry.history TO $LP;
                GRANT SELECT, INSERT, UPDATE ON ferry.checkpoint TO $LP; GRANT USAGE ON ALL SEQUENCES IN SCHEMA ferry TO $LP;
                GRANT USAGE, CREATE ON SCHEMA public TO $LP; GRANT SELECT, INSERT, DELETE ON src, dst, dst_c TO $LP" >/dev/null
before=$(state)

# --- rollback of b, which has a resume point
run_ferry --db "$lp" --dir "$D" rollback 20250102
is "$RC|$ERR" "2|$(needs)" "rollback of b (a resume point), no DELETE on ferry.checkpoint: exit 2, the GRANTs"
is "$OUT" "" "...nothing on stdout (no '==> rolling back')"
is "$(counts)|$(checkpoints)" "4 10|20250102_b@4" "...its rollback.sql not run, its resume point kept"
is "$(state)" "$before" "...status, history and ferry.history as before: no rollback recorded"
no_password "rollback of b"
run_ferry --db "$lp" --dir "$D" --json rollback 20250102
is "$RC|$ERR" "2|$(needs)" "--json: exit 2, the line on stderr as without it"
is "$(json_eval "$OUT" 'str(j["ok"]) + "|" + j["error"]')" "False|$(needs | sed 's/^ferry: //')" \
   "...the one object: ok false, the same line"
is "$(state)" "$before" "...the history as before"

# --- rollback of c, which has none (a down.lua)
run_ferry --db "$lp" --dir "$D" rollback 20250103
is "$RC|$OUT|$ERR" "2||$(needs)" "rollback of c (no resume point: the server checks the right all the same): exit 2, the GRANTs"
is "$(counts)|$(checkpoints)" "4 10|20250102_b@4" "...its down.lua not run"
is "$(state)" "$before" "...the history as before"
no_password "rollback of c"

# --- a run: the resume point it saves and deletes, checked before it starts
run_ferry --db "$lp" --dir "$D" run 20250102
is "$RC|$OUT|$ERR" "2||$(needs)" "run of b, no DELETE on ferry.checkpoint: exit 2 before it starts"
is "$(counts)|$(checkpoints)" "4 10|20250102_b@4" "...nothing run, its resume point as it was"
is "$(state)" "$before" "...the history as before"
run_ferry --db "$lp" --dir "$D" run 20250104
is "$RC|$OUT|$ERR" "2||$(needs)" "run of the schema step d (its record deletes a resume point too): exit 2 before it starts"
is "$(psql_val "$db" "SELECT to_regclass('d') IS NULL")|$(state)" "t|$before" "...its up.sql not run, the history as before"
no_password "run of d"
psql_val "$db" "GRANT DELETE ON ferry.checkpoint TO $LP; REVOKE INSERT ON ferry.checkpoint FROM $LP" >/dev/null
run_ferry --db "$lp" --dir "$D" run 20250102
is "$RC|$OUT|$ERR" "2||$(needs)" "no INSERT on ferry.checkpoint (the run saves its resume point): exit 2 before it starts"
is "$(counts)|$(checkpoints)|$(state)" "4 10|20250102_b@4|$before" "...nothing run, the history as before"

# --- no SELECT on ferry.checkpoint: a dry run, which writes nothing but
# reads the resume point, says the read's GRANT
psql_val "$db" "GRANT INSERT ON ferry.checkpoint TO $LP; REVOKE SELECT ON ferry.checkpoint FROM $LP" >/dev/null
run_ferry --db "$lp" --dir "$D" run 20250102 --dry-run
is "$RC|$OUT|$ERR" "2|==> 20250102_b (dry run)|ferry: cannot read ferry's history (schema ferry): permission denied for table checkpoint [SQLSTATE 42501]; this role needs USAGE on schema ferry and SELECT on its tables (to run migrations, also INSERT, UPDATE, DELETE on them and USAGE on its sequence): GRANT USAGE ON SCHEMA ferry TO $LP; GRANT SELECT ON ALL TABLES IN SCHEMA ferry TO $LP" \
   "no SELECT on ferry.checkpoint: a dry run of b, exit 2, the GRANT"
run_ferry --db "$lp" --dir "$D" run 20250102
is "$RC|$OUT|$ERR" "2||$(needs)" "...the run: exit 2 before it starts"
is "$(counts)|$(checkpoints)|$(state)" "4 10|20250102_b@4|$before" "...nothing run, the history as before"
psql_val "$db" "GRANT SELECT ON ferry.checkpoint TO $LP" >/dev/null

# --- no UPDATE on ferry.checkpoint: the run's upsert of its resume point
# (ON CONFLICT DO UPDATE) needs it, also for a first one
psql_val "$db" "REVOKE UPDATE ON ferry.checkpoint FROM $LP" >/dev/null
run_ferry --db "$lp" --dir "$D" run 20250102
is "$RC|$OUT|$ERR" "2||$(needs)" "no UPDATE on ferry.checkpoint: exit 2 before it starts"
is "$(counts)|$(checkpoints)|$(state)" "4 10|20250102_b@4|$before" "...nothing run, the history as before"
psql_val "$db" "GRANT UPDATE ON ferry.checkpoint TO $LP" >/dev/null

# --- the right given: the rollback goes through, as the owner's does
run_ferry --db "$lp" --dir "$D" -q rollback 20250102
is "$RC|$OUT|$ERR|$(counts)|$(checkpoints)" "0||note: applied after 20250102_b, and left applied: 20250103_c (if it stands on it, roll it back first, newest first)|0 10|-" \
   "with the GRANT: the rollback of b, its resume point gone (-q: the note on c said)"
run_ferry --db "$lp" --dir "$D" -q rollback 20250103
is "$RC|$OUT|$ERR|$(counts)" "0|||0 0" "...and of c"
run_ferry --db "$lp" --dir "$D" -q run 20250102
is "$RC|$OUT|$ERR|$(counts)|$(checkpoints)" "0|||10 0|-" "...a run of b, recorded applied"

# --- the rights on ferry.checkpoint granted column by column:
# has_table_privilege says no (it asks for the table's), the statements'
# own check passes -- a run and a rollback go through as with the table's
cols="migration, run_id, position, stats, updated_at"
psql_val "$db" "REVOKE SELECT, INSERT, UPDATE ON ferry.checkpoint FROM $LP;
                GRANT SELECT ($cols), INSERT ($cols), UPDATE ($cols) ON ferry.checkpoint TO $LP" >/dev/null
is "$(psql_val "$db" "SELECT has_table_privilege('$LP', 'ferry.checkpoint', 'SELECT')")" "f" "(the rights are the columns')"
FAIL_AT=5 run_ferry --db "$lp" --dir "$D" -q run 20250103
is "$RC|$(counts)|$(checkpoints)" "1|10 4|20250103_c@4" "column grants: a run of c goes, saves its resume point, stops at FAIL_AT"
run_ferry --db "$lp" --dir "$D" -q run 20250103
is "$RC|$OUT|$ERR|$(counts)|$(checkpoints)" "0|||10 10|-" "...resumes, is recorded applied, its resume point gone"
run_ferry --db "$lp" --dir "$D" -q rollback 20250103
is "$RC|$OUT|$ERR|$(counts)" "0|||10 0" "...and is rolled back"
done_testing
