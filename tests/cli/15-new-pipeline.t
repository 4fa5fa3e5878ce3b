#!/usr/bin/env bash
# ferry new NAME --pipeline: a streamed, pipelined, resumable fill (up.lua,
# rollback.sql, validate.lua, README.md and rules/NAME.lua).  As scaffolded
# it says which TODO is left (check, run, validate, rollback); with the
# TODOs filled in for a tiny schema (orders and their items -> one summary
# row per order, many source rows per key) it passes check, dry-runs
# writing nothing with the real run's counts, writes exactly the rows,
# re-runs writing nothing, resumes an interrupted run to the same rows,
# validates and rolls back.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_newpipe)
export DATABASE_URL=$db
saved_url=$DATABASE_URL
today=$(date -u +%Y%m%d)

# (new and check need no database)
nodb() {
    unset DATABASE_URL
    PGHOST=$TAP_TMPDIR/no-such-socket-dir PGPORT=1 run_ferry "$@"
    export DATABASE_URL=$saved_url
}

N=$TAP_TMPDIR/proj
mkdir -p "$N"

# --- new --pipeline: the files, the messages, the refusals
id=${today}_order_summaries
M=$N/migrations/$id
nodb --dir "$N" new order_summaries --pipeline
is "$RC|$OUT|$ERR" "0|created migrations/$id/ (up.lua, rollback.sql, validate.lua, README.md) and rules/order_summaries.lua|" \
   "new NAME --pipeline: exit 0, naming the files and the rule module it created"
is "$(cd "$N" && find . -type f | sort | tr '\n' ' ')" \
   "./migrations/$id/README.md ./migrations/$id/rollback.sql ./migrations/$id/up.lua ./migrations/$id/validate.lua ./rules/order_summaries.lua " \
   "...exactly those files (rules/ made for it)"
lines=$(wc -l <"$M/up.lua")
ok "$([ "$lines" -lt 60 ] && echo 0 || echo 1)" "up.lua is short enough to read in one sitting ($lines lines)"
like "$(head -n 1 "$M/README.md")" "^# $id$" "README.md is titled with the id"
like "$(cat "$M/up.lua")" $'\n-- key: one column, never NULL \\(WHERE \\.\\.\\. IS NOT NULL when it may be\\); done: a\n-- boolean, EXISTS \\(\\.\\.\\.\\), not a count ' \
     "up.lua says the key is never NULL and done a boolean (a count's 0 skipped every key)"
like "$(cat "$N/rules/order_summaries.lua")" 'an array column takes'$'\n'' *-- db\.array\(t\)' \
     "the rule's comment says what a value is (a table is none)"
like "$(cat "$M/README.md")" $'\nStatistics: keys_processed, keys_skipped, rows_created, errors\\.$' "...and names the counters"

nodb --dir "$N" --json new --pipeline other_fill
is "$RC|$OUT|$ERR" "0|{\"created\":\"migrations/${today}_other_fill\",\"rule\":\"rules/other_fill.lua\"}|" \
   "--json new --pipeline NAME: the folder and the rule module"
rm -rf "$N/migrations/${today}_other_fill" "$N/rules/other_fill.lua"

nodb --dir "$N" new order_summaries --pipeline
is "$RC|$OUT|$ERR" "2||ferry: migrations/$id already exists" "an existing migration: exit 2"
put "$N/rules/taken.lua" 'return {}'
nodb --dir "$N" new taken --pipeline
is "$RC|$OUT|$ERR" "2||ferry: rules/taken.lua already exists: --pipeline writes the rule module of migrations/${today}_taken there (give the migration another name)" \
   "a rule module of that name exists: exit 2, saying so"
is "$(cat "$N/rules/taken.lua")|$(ls "$N/migrations" | tr '\n' ' ')" "return {}|$id " "...left as it was, no folder made"
rm "$N/rules/taken.lua"
nodb --dir "$N" new taken
is "$RC" 0 "(without --pipeline new writes no rule module, so no clash)"
rm -rf "$N/migrations/${today}_taken"
# rules there but a file, not a folder: said so, and nothing made (it
# was "rules/x.lua already exists", and a migrations/ folder was made
# before the refusal had it been reached)
F=$TAP_TMPDIR/rules-file
mkdir -p "$F" && : >"$F/rules"
nodb --dir "$F" new x --pipeline
is "$RC|$OUT|$ERR" "2||ferry: rules is not a folder: --pipeline writes the rule module rules/x.lua in it" \
   "rules is a file: exit 2, saying so"
is "$(cd "$F" && find . | sort | tr '\n' ' ')" ". ./rules " "...nothing made"
nodb --dir "$N" new x --sql --pipeline
is "$RC|$OUT|$ERR" "2||ferry: --sql and --pipeline exclude each other (usage: ferry new NAME [--sql|--pipeline])" \
   "--sql with --pipeline: exit 2"
nodb --dir "$N" new x --pipeline=yes
is "$RC|$OUT|$ERR" "2||ferry: option --pipeline takes no value" "--pipeline=yes: exit 2"
nodb --dir "$N" new --pipeline
is "$RC|$OUT|$ERR" "2||ferry: usage: ferry new NAME [--sql|--pipeline]" "no NAME: the usage line"
nodb --dir "$N" new Bad-Name --pipeline
is "$RC|$OUT|$ERR" "2||ferry: migration names use lowercase letters, digits and underscores, and begin with a letter or digit: Bad-Name" \
   "a bad name: exit 2"
nodb --dir "$N" check --pipeline
is "$RC|$OUT|$ERR" "2||ferry: --pipeline does not apply to 'check'" "--pipeline elsewhere: exit 2"
is "$(cd "$N" && find . -type f | wc -l)" 5 "none of those made a file"

# --- the schema step: a source (orders, their items) and a target
put "$N/migrations/20200101_tables/up.sql" 'CREATE TABLE orders (id bigint PRIMARY KEY);
CREATE TABLE order_items (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders, product text, qty int NOT NULL);
CREATE TABLE order_summary (order_id bigint NOT NULL, products text NOT NULL, quantity int NOT NULL, note text,
                            created_by text NOT NULL);
-- 40 orders of 1-3 items; the items of orders 7 and 14 name no product
INSERT INTO orders SELECT g FROM generate_series(1, 40) g;
INSERT INTO order_items
SELECT o * 10 + k, o, CASE WHEN o NOT IN (7, 14) THEN chr(96 + k) || o END, o % 7 + k
  FROM generate_series(1, 40) o, generate_series(1, 3) k WHERE k <= o % 3 + 1;'
run_ferry --dir "$N" up --to 20200101
is "$RC|$ERR" "0|" "(the schema step applied)"

# --- as scaffolded: every TODO left says so
nodb --dir "$N" check
is "$RC|$ERR" "1|" "the untouched scaffold fails check (exit 1)"
is "$OUT" "ok   migrations/$id/up.lua
ok   migrations/$id/validate.lua
FAIL rules.order_summaries test \"maps the rows of a key\"  rules/order_summaries.lua:14: TODO left in the scaffold: write rules.order_summaries's map, the target rows of one key" \
   "...its rule's test naming the TODO left"
run_ferry --dir "$N" validate "$id"
like "$RC|$OUT" "^1\\|==> validating $id
✗ FAIL validate.lua stopped: migrations/$id/validate.lua:11: TODO left in the scaffold: MISSING_SQL, the count of the keys without their rows" \
     "validate of the untouched scaffold: its TODO named"
for mode in --dry-run ""; do
    # shellcheck disable=SC2086
    run_ferry --dir "$N" run "$id" $mode
    is "$RC|$ERR" "1|ferry: migrations/$id/up.lua:23: TODO left in the scaffold: KEYS_SQL, the count of the keys left" \
       "run ${mode:-(real)} of the untouched scaffold: exit 1, the first TODO named at its line"
done
is "$(psql_val "$db" "SELECT count(*) FROM order_summary")" 0 "...nothing written"
err=$("$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$M/rollback.sql" 2>&1 >/dev/null)
like "$err" "ERROR:  TODO left in the scaffold: rollback.sql of $id deletes nothing yet \\(nothing was rolled back\\)" \
     "rollback.sql untouched refuses, saying its TODO"

# --- the TODOs filled in, as an author would
sed -i \
  -e 's/^local KEYS_SQL = TODO .*/local KEYS_SQL = [[SELECT count(DISTINCT order_id) AS n FROM order_items WHERE $1::bigint IS NULL OR order_id > $1]]/' \
  -e 's/^local SOURCE_SQL = TODO .*/local SOURCE_SQL = [[SELECT i.order_id AS key, i.product, i.qty, EXISTS (SELECT 1 FROM order_summary s WHERE s.order_id = i.order_id AND s.created_by = $2) AS done FROM order_items i WHERE $1::bigint IS NULL OR i.order_id > $1 ORDER BY i.order_id, i.id]]/' \
  -e 's/^local TARGET_COPY = TODO .*/local TARGET_COPY = [[COPY order_summary (order_id, products, quantity, note, created_by) FROM STDIN]]/' \
  "$M/up.lua"
sed -i \
  -e 's/^local MISSING_SQL = TODO .*/local MISSING_SQL = [[SELECT count(DISTINCT i.order_id) AS n FROM order_items i WHERE i.product IS NOT NULL AND NOT EXISTS (SELECT 1 FROM order_summary s WHERE s.order_id = i.order_id AND s.created_by = $1)]]/' \
  -e 's/^local TWICE_SQL = TODO .*/local TWICE_SQL = [[SELECT count(*) AS n FROM (SELECT order_id FROM order_summary WHERE created_by = $1 GROUP BY order_id HAVING count(*) > 1) d]]/' \
  "$M/validate.lua"
sed -i -e "s/^DO .*RAISE EXCEPTION 'TODO left.*/DELETE FROM order_summary WHERE created_by = '$id';/" "$M/rollback.sql"
put "$N/rules/order_summaries.lua" 'local t = require "ferry.testing"
local json = require "json"
local M = {}
-- one summary per order: its products in item order, the quantity, "bulk"
-- from 10 items on; an order whose items name no product gets none
function M.map(key, rows, ctx)
  local products, qty = {}, 0
  for _, r in ipairs(rows) do
    if r.product then products[#products + 1] = r.product end
    qty = qty + r.qty
  end
  if #products == 0 then return {} end
  return {{key, table.concat(products, ", "), qty, qty >= 10 and "bulk" or json.null, ctx.migration}}
end
M.tests = {
  ["maps the rows of a key"] = function()
    t.eq(M.map(1, {{product = "a", qty = 2}, {qty = 9}}, {migration = "m"}), {{1, "a", 11, "bulk", "m"}})
    t.eq(M.map(2, {{product = "b", qty = 1}}, {migration = "m"}), {{2, "b", 1, json.null, "m"}})
    t.eq(M.map(3, {{qty = 1}}, {migration = "m"}), {})
  end,
}
return M
'
nodb --dir "$N" check
is "$RC|$ERR" "0|" "filled in, the scaffold passes check"
is "$OUT" "ok   migrations/$id/up.lua
ok   migrations/$id/validate.lua
ok   rules.order_summaries  1 tests passed" "...its rule's test passing"

# the rows the fill must write, computed apart from it
expected=$(psql_val "$db" "SELECT string_agg(concat_ws('|', order_id, products, quantity, coalesce(note, 'NULL'), created_by), E'\n' ORDER BY order_id)
  FROM (SELECT order_id, string_agg(product, ', ' ORDER BY id) AS products, sum(qty) AS quantity,
               CASE WHEN sum(qty) >= 10 THEN 'bulk' END AS note, '$id' AS created_by
          FROM order_items GROUP BY order_id HAVING count(product) > 0) e")
rows() { psql_val "$db" "SELECT string_agg(concat_ws('|', order_id, products, quantity, coalesce(note, 'NULL'), created_by), E'\n' ORDER BY order_id, products) FROM order_summary"; }
like "$expected" "^1\\|a1, b1\\|5\\|NULL\\|$id
2\\|a2, b2, c2\\|12\\|bulk\\|$id
3\\|a3\\|4\\|NULL\\|$id
" "(the expected rows: one per order, products in item order, NULL notes)"
is "$(grep -c . <<<"$expected")" 38 "(38 of them: orders 7 and 14 get none)"
STATS='{"keys_processed":38,"keys_skipped":2,"rows_created":38,"errors":0}'

# --- dry run, run, re-run
before=$(history "$db")
run_ferry --dir "$N" --json run "$id" --dry-run
is "$RC|$(json_eval "$OUT" '[j["mode"], j["stats"]]')" "0|[\"dry-run\",$STATS]" "the dry run reports the counts"
is "$(psql_val "$db" "SELECT count(*) FROM order_summary")|$(history "$db")" "0|$before" \
   "...writes nothing, records nothing"
run_ferry --dir "$N" -v run "$id" --dry-run --batch-size 10
like "$OUT" $'\nwould create 1 row for key 40\n' "-v: a line per key, 'would create' in a dry run"

run_ferry --dir "$N" --json run "$id"
is "$RC|$(json_eval "$OUT" '[j["mode"], j["stats"]]')" "0|[\"apply\",$STATS]" "the run: exactly the dry run's counts"
is "$(rows)" "$expected" "...and exactly the expected rows"
is "$(psql_val "$db" "SELECT count(*) FROM ferry.checkpoint")" 0 "...its checkpoint cleared"

run_ferry --dir "$N" --json run "$id"
is "$RC|$(json_eval "$OUT" 'j["stats"]')" '0|{"keys_processed":0,"keys_skipped":40,"rows_created":0,"errors":0}' \
   "a re-run writes nothing: every key skipped"
is "$(rows)" "$expected" "...the rows as they were"

run_ferry --dir "$N" validate "$id"
is "$RC|$OUT" "0|==> validating $id
✓ PASS every source key has its target rows  (0 keys without them)
✓ PASS no key has its target rows twice  (0 keys written twice)
2 check(s), 0 failed" "validate passes"

run_ferry --dir "$N" rollback "$id"
is "$RC|$(psql_val "$db" "SELECT count(*) FROM order_summary")" "0|0" "rollback removes the rows"
run_ferry --dir "$N" validate "$id"
is "$RC" 1 "...after which validate fails"
like "$OUT" $'\n✗ FAIL every source key has its target rows  \\(38 keys without them\\)\n' "...naming the keys without rows"

# --- an interrupted run resumes to the same rows: batches of 4 keys, each
# commit slowed by a statement trigger, SIGINT after the first checkpoint
psql_val "$db" "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN PERFORM pg_sleep(0.1); RETURN NULL; END \$\$;
CREATE TRIGGER slow AFTER INSERT ON order_summary FOR EACH STATEMENT EXECUTE FUNCTION slow()" >/dev/null
checkpoint() { psql_val "$db" "SELECT coalesce((SELECT position #>> '{}' FROM ferry.checkpoint WHERE migration = '$id'), 'none')"; }
sigint_after_checkpoint "$db" "$id" --dir "$N" run "$id" --batch-size 4
rc=$RC
cp=$(checkpoint)
written=$(psql_val "$db" "SELECT count(*) FROM order_summary")
is "$rc" 130 "the interrupted run exits 130"
ok "$([ "$cp" != none ] && [ "$written" -gt 0 ] && [ "$written" -lt 38 ] && echo 0 || echo 1)" \
   "...leaving a checkpoint ($cp) and part of the rows ($written)"
is "$(psql_val "$db" "SELECT count(*) FROM order_summary WHERE order_id > $cp")" 0 \
   "...none past the checkpoint: batches hold whole keys"
psql_val "$db" "DROP TRIGGER slow ON order_summary" >/dev/null
run_ferry --dir "$N" --json run "$id" --batch-size 4
is "$RC|$(json_eval "$OUT" 'j["stats"]')" "0|$STATS" "the next run resumes and reports an uninterrupted run's totals"
like "$ERR" "(^|"$'\n'")resuming after key $cp"$'\n' "...saying where it resumes"
is "$(rows)" "$expected" "...the same rows as the uninterrupted run: none lost, none twice"
run_ferry --dir "$N" validate "$id"
is "$RC" 0 "validate passes after the resumed run"
run_ferry --dir "$N" rollback "$id"
is "$RC|$(psql_val "$db" "SELECT count(*) FROM order_summary")|$(psql_val "$db" "SELECT count(*) FROM ferry.checkpoint")" "0|0|0" \
   "rollback removes them again"

# --jobs 1 writes the same rows
run_ferry --dir "$N" -q run "$id" --jobs 1 --batch-size 3
is "$RC|$(rows)" "0|$expected" "--jobs 1, batches of 3: the same rows"

# --- a KEYS_SQL or SOURCE_SQL that is wrong fails the run, not a run
# recorded applied that wrote nothing: both read one snapshot, so their
# counts agree unless one of them is wrong
cp "$M/up.lua" "$TAP_TMPDIR/up.lua.good"
fill_line=$(grep -n '^db\.fill{' "$M/up.lua" | cut -d: -f1)   # (the line they name: the call of db.fill)
run_ferry --dir "$N" -q rollback "$id"
sed -i 's/ FROM order_items i WHERE $1::bigint IS NULL OR i.order_id > $1 ORDER BY/ FROM order_items i WHERE i.order_id > $1 ORDER BY/' "$M/up.lua"
for mode in --dry-run ""; do
    # shellcheck disable=SC2086
    run_ferry --dir "$N" -q run "$id" $mode
    is "$RC|$ERR" "1|ferry: migrations/$id/up.lua:$fill_line: db.fill: count counted 40 keys, source gave 0: read in one snapshot, they agree unless one is wrong: source leaves keys out (on a fresh start \$1 is NULL: WHERE \$1::type IS NULL OR key > \$1; a key without source rows is not in a JOIN: LEFT JOIN its rows to the keys, or count only the keys with rows); what was written is kept" \
       "SOURCE_SQL that gives nothing on a fresh start (${mode:-real run}): exit 1, both counts named"
done
is "$(psql_val "$db" "SELECT count(*) FROM order_summary")|$(psql_val "$db" "SELECT status FROM ferry.history WHERE migration = '$id' ORDER BY id DESC LIMIT 1")" \
   "0|failed" "...nothing written, the run recorded failed"
cp "$TAP_TMPDIR/up.lua.good" "$M/up.lua"
sed -i 's/^local KEYS_SQL = \[\[SELECT count(DISTINCT order_id) AS n /local KEYS_SQL = [[SELECT count(DISTINCT order_id) /' "$M/up.lua"
run_ferry --dir "$N" -q run "$id" --dry-run
is "$RC|$ERR" "1|ferry: migrations/$id/up.lua:$fill_line: db.fill: count gave no n: its one row's column n (SELECT count(...) AS n ...)" \
   "KEYS_SQL without its column n: exit 1, saying so"
cp "$TAP_TMPDIR/up.lua.good" "$M/up.lua"

done_testing
