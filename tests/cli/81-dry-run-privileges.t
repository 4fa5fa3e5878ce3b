#!/usr/bin/env bash
# A dry run tells, before the real run, that the real run's batches would
# be refused for want of a right: db.pipeline in a dry run asks the server,
# once per COPY statement, whether the role may INSERT the columns it
# names (and use the sequences of the defaults it leaves to the server, and
# is not subject to a row-level security policy on the table), and fails,
# exit 1 as the real run would, with the GRANTs that are missing -- before
# it reports what it would create.  With the grants README.md lists, the
# dry run passes with the counts of the real run; the real run itself is
# as before.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg
M4=20251110_backfill_conversations_messages
M5=20251115_backfill_memory_notes
R=ferry_t_dp

if ! psql_val "$(db_uri postgres)" "DROP ROLE IF EXISTS $R; CREATE ROLE $R LOGIN" >/dev/null 2>&1; then
    skip_all "cannot create a role here"
fi
cleanup_role() {
    local d
    for d in ferry_cli_dp ferry_cli_dp_author; do
        psql_val "$(db_uri postgres)" "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1
    done
    psql_val "$(db_uri postgres)" "DROP ROLE IF EXISTS $R" >/dev/null 2>&1
}
trap 'in_test_shell && cleanup_role' EXIT
as_r() { sed "s/user=[^&]*/user=$R/" <<<"$1"; }

# Batches 1-3 and ferry's bookkeeping made by the owner; the role has its
# rights on ferry's schema and, on the application's tables, SELECT only:
# what a dry run needed so far
db=$(crm_db ferry_cli_dp "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"
run_ferry --db "$db" --dir "$REPO_ROOT" -q baseline 20251108
psql_val "$db" "GRANT USAGE ON SCHEMA ferry TO $R; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ferry TO $R;
                GRANT USAGE ON ALL SEQUENCES IN SCHEMA ferry TO $R; GRANT USAGE ON SCHEMA public TO $R;
                GRANT SELECT ON \"Lead\", \"Audit\", \"Conversation\", \"Message\", \"MemoryNote\" TO $R" >/dev/null
r=$(as_r "$db")
before=$(db_snapshot "$db")

refused="a dry run: the real run's COPY would be refused:"
run_ferry --db "$r" --dir "$REPO_ROOT" run $M4 --dry-run
is "$RC" 1 "SELECT only: the dry run of Batch 4 fails, exit 1 (as the real run does)"
is "$(grep '^ferry:' <<<"$ERR")" "ferry: migrations/$M4/up.lua:220: $refused role $R has no INSERT on \"Conversation\" (GRANT INSERT ON \"Conversation\" TO $R); role $R has no INSERT on \"Message\" (GRANT INSERT ON \"Message\" TO $R)" \
   "...one line: every right its COPYs lack, with the GRANT that gives it"
unlike "$OUT" "to create|DRY RUN COMPLETE" "...before it says what it would create"
run_ferry --db "$r" --dir "$REPO_ROOT" --json run $M4 --dry-run
is "$RC|$(json_eval "$OUT" 'j["ok"]')|$(json_eval "$OUT" 'j["error"]')" \
   "1|false|migrations/$M4/up.lua:220: $refused role $R has no INSERT on \"Conversation\" (GRANT INSERT ON \"Conversation\" TO $R); role $R has no INSERT on \"Message\" (GRANT INSERT ON \"Message\" TO $R)" \
   "...--json: the same line in its \"error\""
run_ferry --db "$r" --dir "$REPO_ROOT" run $M5 --dry-run
is "$RC|$(grep '^ferry:' <<<"$ERR")" "1|ferry: migrations/$M5/up.lua:101: $refused role $R has no INSERT on \"MemoryNote\" (GRANT INSERT ON \"MemoryNote\" TO $R)" \
   "SELECT only: the dry run of Batch 5 fails the same way"
run_ferry --db "$r" --dir "$REPO_ROOT" up --dry-run
is "$RC|$(grep '^ferry:' <<<"$ERR")" "1|ferry: migrations/$M4/up.lua:220: $refused role $R has no INSERT on \"Conversation\" (GRANT INSERT ON \"Conversation\" TO $R); role $R has no INSERT on \"Message\" (GRANT INSERT ON \"Message\" TO $R)" \
   "ferry up --dry-run: stops at Batch 4, the same line"
is "$(db_snapshot "$db")" "$before" "...nothing written by any of them"

# the real run is as before: refused at its first batch's COPY, exit 1
run_ferry --db "$r" --dir "$REPO_ROOT" run $M4
is "$RC|$(grep '^ferry:' <<<"$ERR")" "1|ferry: migrations/$M4/up.lua:220: COPY failed to start: permission denied for table Conversation [SQLSTATE 42501]" \
   "the real run: exit 1, the server's refusal at the first COPY, as before"

# INSERT on some columns only: the columns missing, and their GRANT
psql_val "$db" "GRANT INSERT ON \"Message\" TO $R; GRANT INSERT (id, lead_id, customer_id, channel) ON \"Conversation\" TO $R" >/dev/null
run_ferry --db "$r" --dir "$REPO_ROOT" run $M4 --dry-run
is "$RC|$(grep '^ferry:' <<<"$ERR")" "1|ferry: migrations/$M4/up.lua:220: $refused role $R has no INSERT on columns external_id, started_at, last_message_at, metadata of \"Conversation\" (GRANT INSERT (external_id, started_at, last_message_at, metadata) ON \"Conversation\" TO $R)" \
   "INSERT on some of the columns: the others named, and the GRANT of those"

# with README.md's grants: the dry run passes, with the real run's counts
psql_val "$db" "GRANT INSERT ON \"Conversation\", \"Message\", \"MemoryNote\", \"Audit\" TO $R;
                GRANT UPDATE (last_message_at, updated_at) ON \"Conversation\" TO $R;
                GRANT UPDATE (kind, content, customer_id, updated_at) ON \"MemoryNote\" TO $R;
                GRANT DELETE ON \"Message\", \"Conversation\", \"MemoryNote\", \"Audit\" TO $R" >/dev/null
for m in $M4 $M5; do
    run_ferry --db "$r" --dir "$REPO_ROOT" --json run $m --dry-run
    dry_rc=$RC dry=$(json_eval "$OUT" 'j["stats"]')
    run_ferry --db "$r" --dir "$REPO_ROOT" --json run $m
    is "$dry_rc|$RC" "0|0" "README.md's grants: $m's dry run and its real run exit 0"
    is "$dry" "$(json_eval "$OUT" 'j["stats"]')" "...the dry run's counts are the real run's"
done
like "$dry" '"notes_created":[1-9]' "...(which created notes)"

# --- any author's migration, not only Batches 4 and 5
adb=$(fresh_db ferry_cli_dp_author) || bail_out "cannot build the database"
psql_val "$adb" "CREATE TABLE tag (id serial PRIMARY KEY, name text, n int GENERATED ALWAYS AS IDENTITY);
                 CREATE TABLE \"Odd \"\"Name\" (\"Key\" int, v text);
                 CREATE SCHEMA ferry AUTHORIZATION $R; GRANT SELECT ON tag, \"Odd \"\"Name\" TO $R;
                 GRANT INSERT (name) ON tag TO $R; GRANT INSERT ON \"Odd \"\"Name\" TO $R" >/dev/null
ar=$(as_r "$adb")
D=$TAP_TMPDIR/proj
# two COPYs into tag (one spelt otherwise, with comments), one into a table
# with a name to quote; a table the real run makes itself first, which the
# dry run does not have; one send per batch, the check asked once
put "$D/migrations/20990101_fill/up.lua" 'stats.declare{"batches"}
local pipe <close> = db.pipeline{jobs = 1, dry_run = ctx.dry_run, checkpoint = ctx.checkpoint}
if not ctx.dry_run then db.exec("CREATE TABLE IF NOT EXISTS made_here (x int)") end
local tags, odd, made = db.buffer(), db.buffer(), db.buffer()
for i = 1, 3 do
  tags:put("t" .. i); odd:put(i, "v"); made:put(i)
  pipe:send{copies = {{sql = "COPY tag (name) FROM STDIN", buffer = tags},
                      {sql = "COPY /* again */ public . tag(\"name\") FROM STDIN", buffer = tags},
                      {sql = [[COPY "Odd ""Name" FROM STDIN]], buffer = odd},
                      {sql = "COPY made_here (x) FROM STDIN", buffer = made}}, position = i}
  tags:clear(); odd:clear(); made:clear()
  stats.inc("batches")
end
pipe:finish()'
run_ferry --db "$ar" --dir "$D" run 20990101_fill --dry-run
is "$RC|$(grep '^ferry:' <<<"$ERR")" "1|ferry: migrations/20990101_fill/up.lua:7: $refused role $R has no USAGE on sequence tag_id_seq, which fills tag.id (GRANT USAGE ON SEQUENCE tag_id_seq TO $R)" \
   "an author's COPY leaving a serial column to its default: USAGE on its sequence (not the identity's), said once"
psql_val "$adb" "GRANT USAGE ON SEQUENCE tag_id_seq TO $R; GRANT CREATE ON SCHEMA public TO $R" >/dev/null
run_ferry --db "$ar" --dir "$D" -q run 20990101_fill --dry-run
is "$RC|$ERR" "0|" "...with it the dry run passes (a table the dry run does not have is not asked about)"
run_ferry --db "$ar" --dir "$D" -q run 20990101_fill
is "$RC|$ERR" "0|" "...and so does the real run"
is "$(psql_val "$adb" "SELECT (SELECT count(*) FROM tag) || ' ' || (SELECT count(*) FROM \"Odd \"\"Name\") || ' ' || (SELECT count(*) FROM made_here)")" \
   "6 3 3" "...which wrote its rows"
# a row-level security policy on a table the run only writes
psql_val "$adb" "ALTER TABLE \"Odd \"\"Name\" ENABLE ROW LEVEL SECURITY; CREATE POLICY p ON \"Odd \"\"Name\" USING (true)" >/dev/null
run_ferry --db "$ar" --dir "$D" run 20990101_fill --dry-run
is "$RC|$(grep '^ferry:' <<<"$ERR")" "1|ferry: migrations/20990101_fill/up.lua:7: $refused a row-level security policy on \"Odd \"\"Name\" applies to role $R: run ferry as a role the policies do not apply to (the table's owner, or a role with BYPASSRLS)" \
   "a row-level security policy on a table only written: the dry run says it"
run_ferry --db "$ar" --dir "$D" run 20990101_fill
is "$RC" 1 "...as the real run is refused ($(grep '^ferry:' <<<"$ERR"))"

# asked once per COPY statement, not once per batch: the main session's
# queries counted (its query method wrapped) over five sends, the first
# three of one statement, then a second statement beside it
put "$TAP_TMPDIR/asked.lua" 'local methods = getmetatable(db.open()).__index
local query, asked = methods.query, 0
methods.query = function(self, sql, ...)
  if type(sql) == "string" and sql:find("row_security_active", 1, true) then asked = asked + 1 end
  return query(self, sql, ...)
end
local pipe <close> = db.pipeline{jobs = 1, dry_run = true, checkpoint = ctx.checkpoint}
local b, counts = db.buffer(), {}
for i = 1, 3 do
  b:put(i)
  pipe:send{copies = {{sql = "COPY made_here (x) FROM STDIN", buffer = b}}, position = i}
  b:clear()
  counts[#counts + 1] = asked
end
pipe:send{copies = {{sql = "COPY made_here (x) FROM STDIN", buffer = b}, {sql = "COPY made_here FROM STDIN", buffer = b}}, position = 4}
pipe:send{copies = {{sql = "COPY made_here FROM STDIN", buffer = b}}, position = 5}
counts[#counts + 1] = asked
pipe:finish()
print(table.concat(counts, " "))'
run_ferry --db "$ar" exec "$TAP_TMPDIR/asked.lua"
is "$RC|$OUT|$ERR" "0|1 1 1 2|" "the rights asked once per COPY statement: three sends of one, 1 query; a second statement, 1 more"

# a qualified table in a schema the role may not use: to_regclass raised,
# the dry run failed with the query's error; it names the USAGE missing
psql_val "$adb" "CREATE SCHEMA hidden; CREATE TABLE hidden.t (x int); GRANT INSERT ON hidden.t TO $R" >/dev/null
put "$D/migrations/20990103_hidden/up.lua" 'local pipe <close> = db.pipeline{jobs = 1, dry_run = ctx.dry_run, checkpoint = ctx.checkpoint}
local b = db.buffer()
b:put(1)
pipe:send{copies = {{sql = "COPY hidden.t (x) FROM STDIN", buffer = b}}, position = 1}
pipe:finish()'
run_ferry --db "$ar" --dir "$D" run 20990103_hidden --dry-run
is "$RC|$(grep '^ferry:' <<<"$ERR")" "1|ferry: migrations/20990103_hidden/up.lua:4: $refused role $R has no USAGE on schema hidden (GRANT USAGE ON SCHEMA hidden TO $R)" \
   "a schema without USAGE: the dry run names it"
run_ferry --db "$ar" --dir "$D" run 20990103_hidden
is "$RC|$(grep '^ferry:' <<<"$ERR")" "1|ferry: migrations/20990103_hidden/up.lua:4: COPY failed to start: permission denied for schema hidden [SQLSTATE 42501]" \
   "...as the real run is refused"
psql_val "$adb" "GRANT USAGE ON SCHEMA hidden TO $R" >/dev/null
run_ferry --db "$ar" --dir "$D" -q run 20990103_hidden --dry-run
is "$RC|$ERR" "0|" "...with it the dry run passes"

done_testing
