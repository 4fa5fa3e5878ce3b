#!/usr/bin/env bash
# ferry as a least-privilege role on a DBA-managed database: it owns
# nothing, and has only the grants README.md lists (Least privilege).  With
# them Batches 4 and 5 run, validate and roll back exactly as the tables'
# owner does; ferry's bookkeeping schema made beforehand by the DBA needs no
# CREATE on the database; a grant that is missing is said with the GRANT
# that gives it; a row-level security policy that applies to the role
# fails the run, nothing written, instead of hiding rows from it.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg
M4=20251110_backfill_conversations_messages
M5=20251115_backfill_memory_notes
LP=ferry_t_lp

if ! psql_val "$(db_uri postgres)" "DROP ROLE IF EXISTS $LP; CREATE ROLE $LP LOGIN" >/dev/null 2>&1; then
    skip_all "cannot create a role here"
fi
cleanup_role() {
    local d
    for d in ferry_cli_lp_ref ferry_cli_lp ferry_cli_lp_rls; do
        psql_val "$(db_uri postgres)" "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1
    done
    psql_val "$(db_uri postgres)" "DROP ROLE IF EXISTS $LP" >/dev/null 2>&1
}
trap 'in_test_shell && cleanup_role' EXIT

as_lp() { sed "s/user=[^&]*/user=$LP/" <<<"$1"; }
# Every row the two batches write, without the times a run stamps
rows() {
    psql_val "$1" "SELECT md5(string_agg(x, E'\n' ORDER BY x)) FROM (
      SELECT concat_ws('|', id, lead_id, channel, external_id, started_at, last_message_at, metadata - 'createdAt') x FROM \"Conversation\"
      UNION ALL SELECT concat_ws('|', id, conversation_id, role, content, metadata, created_at) FROM \"Message\"
      UNION ALL SELECT concat_ws('|', id, lead_id, kind, key, content, metadata - 'createdAt' - 'updatedAt') FROM \"MemoryNote\"
      UNION ALL SELECT concat_ws('|', lead_id, actor, action, payload) FROM \"Audit\") t"
}
# The grants README.md lists for the two batches (not ferry's schema)
GRANTS="GRANT USAGE ON SCHEMA public TO $LP;
GRANT SELECT ON \"Lead\", \"Audit\", \"Conversation\", \"Message\", \"MemoryNote\" TO $LP;
GRANT INSERT ON \"Conversation\", \"Message\", \"MemoryNote\", \"Audit\" TO $LP;
GRANT UPDATE (last_message_at, updated_at) ON \"Conversation\" TO $LP;
GRANT UPDATE (kind, content, customer_id, updated_at) ON \"MemoryNote\" TO $LP;
GRANT DELETE ON \"Message\", \"Conversation\", \"MemoryNote\", \"Audit\" TO $LP;"

ref=$(crm_db ferry_cli_lp_ref "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the reference database"
run_ferry --db "$ref" --dir "$REPO_ROOT" -q up
is "$RC" 0 "reference: Batches 4 and 5 as the tables' owner"
want=$(rows "$ref")

# The contract's way: a database set up without ferry, the role granted
# only what README.md lists; no CREATE on the database (PUBLIC has none).
db=$(crm_db ferry_cli_lp "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"
psql_val "$db" "SET client_min_messages = warning; DROP SCHEMA ferry CASCADE; $GRANTS" >/dev/null
lp=$(as_lp "$db")

# --- ferry's schema: made by the DBA beforehand, with no right for the
# role but USAGE: what it needs is CREATE on that schema, not the database
psql_val "$db" "CREATE SCHEMA ferry; GRANT USAGE ON SCHEMA ferry TO $LP" >/dev/null
run_ferry --db "$lp" --dir "$REPO_ROOT" baseline 20251108
is "$RC|$ERR" "2|ferry: cannot create ferry's history (schema ferry): permission denied for schema ferry [SQLSTATE 42501]; this role needs CREATE on schema ferry once, to make its tables there (GRANT CREATE ON SCHEMA ferry TO $LP), or have the schema's owner run ferry first" \
   "schema ferry made by the DBA, only USAGE for the role: exit 2, the GRANT it needs"
# made for the role: nothing more is needed (CREATE SCHEMA IF NOT EXISTS
# would ask for CREATE on the database first)
psql_val "$db" "DROP SCHEMA ferry; CREATE SCHEMA ferry AUTHORIZATION $LP" >/dev/null
run_ferry --db "$lp" --dir "$REPO_ROOT" baseline 20251108
is "$RC" 0 "schema ferry made by the DBA for the role, no CREATE on the database: baseline exits 0 ($ERR)"
is "$(psql_val "$db" "SELECT string_agg(tablename || ' ' || tableowner, ', ' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'ferry'")" \
   "checkpoint $LP, history $LP" "...its tables made in it"

# --- ferry's tables made by their owner, the role granted rights on them
# but not on the history's sequence: the GRANTs it needs, all of them
psql_val "$db" "SET client_min_messages = warning; DROP SCHEMA ferry CASCADE" >/dev/null
run_ferry --db "$db" --dir "$REPO_ROOT" -q baseline 20251108
psql_val "$db" "GRANT USAGE ON SCHEMA ferry TO $LP; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ferry TO $LP" >/dev/null
run_ferry --db "$lp" --dir "$REPO_ROOT" up
is "$RC|$ERR" "2|ferry: cannot write ferry's history (schema ferry): permission denied for sequence history_id_seq [SQLSTATE 42501]; this role needs USAGE on schema ferry, SELECT, INSERT, UPDATE, DELETE on its tables and USAGE on its sequence: GRANT USAGE ON SCHEMA ferry TO $LP; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ferry TO $LP; GRANT USAGE ON ALL SEQUENCES IN SCHEMA ferry TO $LP" \
   "no USAGE on the history's sequence: exit 2, the GRANTs it needs"
is "$(psql_val "$db" "SELECT count(*) FROM \"Message\"")" 1 "...nothing written"
psql_val "$db" "GRANT USAGE ON ALL SEQUENCES IN SCHEMA ferry TO $LP" >/dev/null

# --- with README.md's grants: the same as the owner
run_ferry --db "$lp" --dir "$REPO_ROOT" up --jobs 2
is "$RC" 0 "README.md's grants: ferry up (Batches 4 and 5, --jobs 2) exits 0 ($ERR)"
is "$(rows "$db")" "$want" "...the owner's rows, exactly"
run_ferry --db "$lp" --dir "$REPO_ROOT" -q validate $M4
is "$RC|$OUT" "0|" "...validate of Batch 4 passes"
run_ferry --db "$lp" --dir "$REPO_ROOT" -q validate $M5
is "$RC|$OUT" "0|" "...validate of Batch 5 passes"
run_ferry --db "$lp" --dir "$REPO_ROOT" -q rollback $M5
is "$RC" 0 "...rollback of Batch 5 ($ERR)"
run_ferry --db "$lp" --dir "$REPO_ROOT" -q rollback $M4
is "$RC" 0 "...rollback of Batch 4 ($ERR)"
is "$(psql_val "$db" "SELECT (SELECT count(*) FROM \"Message\") || ' ' || (SELECT count(*) FROM \"Conversation\") || ' ' || (SELECT count(*) FROM \"MemoryNote\")")" \
   "1 1 0" "...back to the live conversation and its message"
run_ferry --db "$lp" --dir "$REPO_ROOT" -q up
is "$RC" 0 "...up again"
is "$(rows "$db")" "$want" "...the owner's rows again"

# --- row-level security on a table the run reads: with the database's
# row_security on (the default) the run would skip the leads the policy
# hides (their audits taken for orphans) and pass its checks; ferry's
# sessions turn it off, so the statement fails, nothing written
db=$(crm_db ferry_cli_lp_rls "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"
psql_val "$db" "GRANT USAGE ON SCHEMA ferry TO $LP; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ferry TO $LP;
                GRANT USAGE ON ALL SEQUENCES IN SCHEMA ferry TO $LP; $GRANTS
                ALTER TABLE \"Lead\" ENABLE ROW LEVEL SECURITY;
                CREATE POLICY app_leads ON \"Lead\" USING (channel IS DISTINCT FROM 'sms')" >/dev/null
lp=$(as_lp "$db")
rls_advice="; a row-level security policy on that table applies to this role, and ferry reads and writes whole tables (row_security is off on its sessions: a policy fails the statement rather than hide rows from the run, its checks or its rollback): run ferry as a role the policies do not apply to (the table's owner, or a role with BYPASSRLS), then"
run_ferry --db "$lp" --dir "$REPO_ROOT" run $M4
is "$RC" 1 "a policy on Lead that applies to the role: the run fails, exit 1"
like "$(grep '^ferry:' <<<"$ERR")" "query would be affected by row-level security policy for table \"Lead\" \\[SQLSTATE 42501\\]$(sed 's/[][\\.*^$()|+?{}]/\\&/g' <<<"$rls_advice") re-run to resume" \
     "...one line: the server's error, why, and what to do"
is "$(psql_val "$db" "SELECT (SELECT count(*) FROM \"Message\") || ' ' || (SELECT count(*) FROM \"Conversation\")")" "1 1" \
   "...nothing written"
# on a table the run writes: the same advice
psql_val "$db" "DROP POLICY app_leads ON \"Lead\"; ALTER TABLE \"Lead\" DISABLE ROW LEVEL SECURITY;
                ALTER TABLE \"MemoryNote\" ENABLE ROW LEVEL SECURITY;
                CREATE POLICY app_notes ON \"MemoryNote\" USING (true) WITH CHECK (true)" >/dev/null
run_ferry --db "$lp" --dir "$REPO_ROOT" run $M5
is "$RC" 1 "a policy on MemoryNote (written by Batch 5) that applies to the role: exit 1"
like "$(grep '^ferry:' <<<"$ERR")" "row-level security policy for table \"MemoryNote\" \\[SQLSTATE 42501\\]$(sed 's/[][\\.*^$()|+?{}]/\\&/g' <<<"$rls_advice") re-run to resume" \
     "...the same advice"
is "$(psql_val "$db" "SELECT count(*) FROM \"MemoryNote\"")" 0 "...nothing written"
# the table's owner is not subject to it: the run goes through
run_ferry --db "$db" --dir "$REPO_ROOT" -q run $M5
is "$RC" 0 "as the table's owner the same run goes through ($ERR)"

done_testing
