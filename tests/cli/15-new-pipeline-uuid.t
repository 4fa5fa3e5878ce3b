#!/usr/bin/env bash
# ferry new NAME --pipeline, filled in as a second author would for uuid
# keys, one target row per key (conversations -> their message stats): the
# source LEFT JOINs so that a key with no source rows gets its row too; done
# counts a row anyone wrote (the target's key is unique, and the live system
# wrote one), so SOURCE_SQL has no $2; the rule leaves a NULL as nil, last
# in its row.  The run writes exactly the rows, its dry run's counts; a
# resumed run neither loses nor doubles a key.  And a schema step made the
# same day that sorts after the fill is named when the fill meets its
# missing table.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_newpipe_uuid)
export DATABASE_URL=$db
today=$(date -u +%Y%m%d)
N=$TAP_TMPDIR/proj
mkdir -p "$N"

# --- the scaffold's examples: uuid keys, a key of many source rows, a
# target whose key is unique
run_ferry --dir "$N" new conv_stats --pipeline
id=${today}_conv_stats
M=$N/migrations/$id
is "$RC" 0 "(new conv_stats --pipeline)"
like "$(cat "$M/up.lua")" 'count\(DISTINCT s\.source_id\)' \
     "KEYS_SQL's example counts keys, not source rows (count(DISTINCT ...) when a key has many rows)"
like "$(cat "$M/up.lua")" '\$1::uuid for uuid keys' "...and says to cast \$1 to the key's type"
like "$(cat "$M/up.lua")" 'unique key .*leave .*created_by' \
     "SOURCE_SQL's done: a target with a unique key counts a row the live system wrote as done"
like "$(cat "$M/up.lua")" 'passed when the query uses[[:space:]]+(-- )?them' "...\$2 (and \$1) passed only when used"
like "$(cat "$N/rules/conv_stats.lua")" 'a nil is NULL' "the rule's map: a nil is NULL (up.lua fills a row to its columns)"

# --- the schema: conversations (uuid keys), messages, the stats table; a
# stats row the live system wrote; two conversations without messages
put "$N/migrations/20200101_tables/up.sql" "CREATE TABLE conv (id uuid PRIMARY KEY);
CREATE TABLE msg (id bigint PRIMARY KEY, conv_id uuid NOT NULL REFERENCES conv, role text NOT NULL, at timestamptz NOT NULL);
CREATE TABLE conv_stats (conv_id uuid PRIMARY KEY REFERENCES conv, messages int NOT NULL, first_at timestamptz,
                         last_at timestamptz, created_by text NOT NULL, note text);
INSERT INTO conv SELECT md5(g::text)::uuid FROM generate_series(1, 30) g;
INSERT INTO msg SELECT g * 10 + k, md5(g::text)::uuid, CASE WHEN k % 2 = 1 THEN 'user' ELSE 'assistant' END,
                       timestamptz '2025-01-01' + (g * 10 + k) * interval '1 minute'
  FROM generate_series(1, 30) g, generate_series(1, 4) k WHERE k <= g % 5 AND g NOT IN (5, 10);
INSERT INTO conv_stats VALUES (md5('3')::uuid, 99, NULL, NULL, 'app', 'live');"
run_ferry --dir "$N" up --to 20200101
is "$RC|$ERR" "0|" "(the schema step applied)"

sed -i \
  -e 's/^local KEYS_SQL = TODO .*/local KEYS_SQL = [[SELECT count(*) AS n FROM conv c WHERE $1::uuid IS NULL OR c.id > $1]]/' \
  -e 's/^local SOURCE_SQL = TODO .*/local SOURCE_SQL = [[SELECT c.id AS key, m.role, m.at, EXISTS (SELECT 1 FROM conv_stats s WHERE s.conv_id = c.id) AS done FROM conv c LEFT JOIN msg m ON m.conv_id = c.id WHERE $1::uuid IS NULL OR c.id > $1 ORDER BY c.id, m.at, m.id]]/' \
  -e 's/^local TARGET_COPY = TODO .*/local TARGET_COPY = [[COPY conv_stats (conv_id, messages, first_at, last_at, created_by, note) FROM STDIN]]/' \
  "$M/up.lua"
sed -i \
  -e 's/^local MISSING_SQL = TODO .*/local MISSING_SQL = [[SELECT count(*) AS n FROM conv c WHERE NOT EXISTS (SELECT 1 FROM conv_stats s WHERE s.conv_id = c.id)]]/' \
  -e 's/^local TWICE_SQL = TODO .*/local TWICE_SQL = [[SELECT count(*) AS n FROM (SELECT conv_id FROM conv_stats WHERE created_by = $1 GROUP BY conv_id HAVING count(*) > 1) d]]/' \
  "$M/validate.lua"
sed -i -e "s/^DO .*RAISE EXCEPTION 'TODO left.*/DELETE FROM conv_stats WHERE created_by = '$id';/" "$M/rollback.sql"
# (the note, last, is nil but for busy conversations: up.lua makes it NULL)
put "$N/rules/conv_stats.lua" 'local t = require "ferry.testing"
local M = {}
function M.map(key, rows, ctx)
  local n, first, last = 0, nil, nil
  for _, r in ipairs(rows) do
    if r.role then n, first, last = n + 1, first or r.at, r.at end
  end
  return {{key, n, first, last, ctx.migration, n >= 3 and "busy" or nil}}
end
M.tests = {
  ["a key with messages, and one with none"] = function()
    t.eq(M.map("k", {{role = "user", at = "t1"}, {role = "assistant", at = "t2"}}, {migration = "m"}), {{"k", 2, "t1", "t2", "m"}})
    t.eq(M.map("k", {{}}, {migration = "m"})[1][2], 0)
  end,
}
return M
'
run_ferry --dir "$N" check
is "$RC|$ERR" "0|" "filled in, the scaffold passes check"

expected=$(psql_val "$db" "SELECT string_agg(l, E'\n' ORDER BY l) FROM (SELECT concat_ws('|', c.id, count(m.id),
    coalesce(min(m.at)::text, 'NULL'), coalesce(max(m.at)::text, 'NULL'), '$id',
    CASE WHEN count(m.id) >= 3 THEN 'busy' ELSE 'NULL' END) AS l
  FROM conv c LEFT JOIN msg m ON m.conv_id = c.id WHERE c.id <> md5('3')::uuid GROUP BY c.id) e")
rows() { psql_val "$db" "SELECT string_agg(concat_ws('|', conv_id, messages, coalesce(first_at::text, 'NULL'),
    coalesce(last_at::text, 'NULL'), created_by, coalesce(note, 'NULL')), E'\n' ORDER BY concat_ws('|', conv_id, messages,
    coalesce(first_at::text, 'NULL'), coalesce(last_at::text, 'NULL'), created_by, coalesce(note, 'NULL')))
  FROM conv_stats WHERE created_by <> 'app'"; }
is "$(grep -c . <<<"$expected")|$(grep -c '|0|NULL|NULL|' <<<"$expected")|$(grep -c '|busy$' <<<"$expected")" "29|6|11" \
   "(the expected rows: 29 conversations, 6 without messages, 11 busy)"
STATS='{"keys_processed":29,"keys_skipped":1,"rows_created":29,"errors":0}'

run_ferry --dir "$N" --json run "$id" --dry-run
is "$RC|$(json_eval "$OUT" 'j["stats"]')|$ERR" "0|$STATS|30 keys to fill, up to 1000 a batch" \
   "the dry run's counts; SOURCE_SQL without \$2 runs"
run_ferry --dir "$N" --json run "$id" --jobs 2 --batch-size 3
is "$RC|$(json_eval "$OUT" 'j["stats"]')|$ERR" "0|$STATS|30 keys to fill, up to 3 a batch" \
   "the run (--jobs 2, batches of 3): exactly the dry run's counts"
is "$(rows)" "$expected" "...exactly the expected rows: a NULL note left nil, keys without messages, none lost at batch edges"
is "$(psql_val "$db" "SELECT messages || '|' || created_by FROM conv_stats WHERE conv_id = md5('3')::uuid")" "99|app" \
   "...the live system's row untouched"
run_ferry --dir "$N" --json run "$id"
is "$RC|$(json_eval "$OUT" 'j["stats"]')" '0|{"keys_processed":0,"keys_skipped":30,"rows_created":0,"errors":0}' \
   "a re-run writes nothing"
run_ferry --dir "$N" validate "$id"
is "$RC" 0 "validate passes"

# --- an interrupted run resumes: no key skipped or doubled
run_ferry --dir "$N" rollback "$id"
is "$RC|$(psql_val "$db" "SELECT count(*) FROM conv_stats")" "0|1" "rollback removes the rows it wrote, not the live one"
psql_val "$db" "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN PERFORM pg_sleep(0.1); RETURN NULL; END \$\$;
CREATE TRIGGER slow AFTER INSERT ON conv_stats FOR EACH STATEMENT EXECUTE FUNCTION slow()" >/dev/null
checkpoint() { psql_val "$db" "SELECT coalesce((SELECT position #>> '{}' FROM ferry.checkpoint WHERE migration = '$id'), 'none')"; }
sigint_after_checkpoint "$db" "$id" --dir "$N" run "$id" --batch-size 4
rc=$RC
cp=$(checkpoint)
written=$(psql_val "$db" "SELECT count(*) FROM conv_stats WHERE created_by = '$id'")
ok "$([ "$rc" = 130 ] && [ "$written" -gt 0 ] && [ "$written" -lt 29 ] && echo 0 || echo 1)" \
   "the interrupted run (exit $rc) left part of the rows ($written) and a checkpoint ($cp)"
psql_val "$db" "DROP TRIGGER slow ON conv_stats" >/dev/null
run_ferry --dir "$N" --json run "$id" --batch-size 4
is "$RC|$(json_eval "$OUT" 'j["stats"]')" "0|$STATS" "the resumed run reports the uninterrupted run's totals"
is "$(rows)" "$expected" "...and the same rows"

# --- a schema step of the same version that sorts after the fill
S2=$N/migrations/99990105_stats_table
F2=$N/migrations/99990105_stats
put "$S2/up.sql" 'CREATE TABLE stats2 (conv_id uuid PRIMARY KEY, created_by text NOT NULL);'
put "$F2/up.lua" 'db.exec("SELECT count(*) FROM stats2")'
run_ferry --dir "$N" up
hint="; 99990105_stats_table, a schema step of the same version, sorts after it (migrations of one version run in name order) and is not applied here: if it makes what this one reads, rename the folders so that it sorts first (e.g. 99990105_1_stats_table, 99990105_2_stats; the id in their files with it), then run them in order"
is "$RC|$ERR" "1|ferry: migrations/99990105_stats/up.lua:1: query failed: relation \"stats2\" does not exist [SQLSTATE 42P01]$hint" \
   "up: the fill that meets the missing table names the schema step sorting after it"
run_ferry --dir "$N" run stats --dry-run
is "$RC|$ERR" "1|ferry: migrations/99990105_stats/up.lua:1: query failed: relation \"stats2\" does not exist [SQLSTATE 42P01]$hint" \
   "run: the same (its name, exactly, is no longer ambiguous with the prefix of stats_table's)"
run_ferry --dir "$N" --json run stats --dry-run
is "$RC|$(json_eval "$OUT" 'j["error"]')" "1|migrations/99990105_stats/up.lua:1: query failed: relation \"stats2\" does not exist [SQLSTATE 42P01]$hint" \
   "...--json's error carries the same advice"
run_ferry --dir "$N" run stat --dry-run
is "$RC|$ERR" "2|ferry: ambiguous migration stat: 99990105_stats, 99990105_stats_table" "...a prefix of both still is"
# ...only when that step's CREATEs name the missing table: one making
# another table is no reason to rename (the hint sent the author to the
# wrong step); IF NOT EXISTS, a schema and quotes are read as the server does
P=$TAP_TMPDIR/proj2
put "$P/migrations/99990201_fill/up.lua" 'db.exec("SELECT count(*) FROM nope2")'
put "$P/migrations/99990201_fill_table/up.sql" '-- nope2 is not made here
CREATE TABLE other2 (id int PRIMARY KEY); CREATE INDEX ON other2 (id);'
run_ferry --dir "$P" run 99990201_fill --dry-run
is "$RC|$ERR" "1|ferry: migrations/99990201_fill/up.lua:1: query failed: relation \"nope2\" does not exist [SQLSTATE 42P01]" \
   "a schema step sorting after the fill that makes another table: no hint"
put "$P/migrations/99990201_fill_table/up.sql" 'CREATE TABLE other2 (id int PRIMARY KEY);
CREATE TABLE IF NOT EXISTS public.NoPe2 (id int);'
run_ferry --dir "$P" run 99990201_fill --dry-run
is "$RC|$ERR" "1|ferry: migrations/99990201_fill/up.lua:1: query failed: relation \"nope2\" does not exist [SQLSTATE 42P01]; 99990201_fill_table, a schema step of the same version, sorts after it (migrations of one version run in name order) and is not applied here: if it makes what this one reads, rename the folders so that it sorts first (e.g. 99990201_1_fill_table, 99990201_2_fill; the id in their files with it), then run them in order" \
   "...one whose CREATE (IF NOT EXISTS, schema-qualified, folded) makes it: the hint"
put "$P/migrations/99990201_fill_table/up.sql" 'CREATE TABLE "NoPe2" (id int);'
run_ferry --dir "$P" run 99990201_fill --dry-run
is "$RC|$ERR" "1|ferry: migrations/99990201_fill/up.lua:1: query failed: relation \"nope2\" does not exist [SQLSTATE 42P01]" \
   "...a quoted name the server keeps in capitals is another table: no hint"

# --- TARGET_COPY's columns counted as the server reads them: a quoted
# name holds a comma or a parenthesis (the fill was 7 columns for 6, and
# every row's padding an 'extra data after last expected column')
Q=$N/migrations/99990106_quoted
mkdir -p "$Q"
sed -e 's/EXISTS (SELECT 1 FROM conv_stats s WHERE s.conv_id = c.id)/EXISTS (SELECT 1 FROM "q, stats" s WHERE s."conv,id" = c.id)/' \
    -e 's/^local TARGET_COPY = .*/local TARGET_COPY = [[COPY public."q, stats" ("conv,id", messages, first_at, last_at, "created (by)", "note") FROM STDIN WITH (FORMAT text)]]/' \
    "$M/up.lua" >"$Q/up.lua"
psql_val "$db" 'CREATE TABLE "q, stats" ("conv,id" uuid PRIMARY KEY, messages int, first_at timestamptz, last_at timestamptz,
                                        "created (by)" text, "note" text)' >/dev/null
run_ferry --dir "$N" --json run 99990106_quoted
is "$RC|$ERR" "0|30 keys to fill, up to 1000 a batch" "a TARGET_COPY with quoted names holding a comma and a parenthesis runs"
is "$(psql_val "$db" "SELECT count(*) || '|' || count(note) FROM \"q, stats\"")" "30|12" \
   "...every key's row (the live row's key too: not in this table), a nil note NULL (12 busy)"

done_testing
