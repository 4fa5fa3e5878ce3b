#!/usr/bin/env bash
# db.fill{count =, source =, copy =, map = [, after =, label =]}: the
# streamed, pipelined, resumable fill of `ferry new --pipeline` as one call.
# A migration in a temp --dir writes exactly the rows mapped (a trailing
# nil NULL, keys without source rows, keys done skipped), its dry run
# writes nothing with the same counts, a re-run writes nothing; a run
# stopped by --max-errors (an error in map) commits the batches before it
# and the next run resumes to the same rows and totals; several COPY
# targets with an `after` per batch (SQL and function: the keys it wrote);
# and each option error's exact message at the line that called db.fill.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../cli/cli-lib.sh"
require_pg

db=$(fresh_db ferry_lua_fill)
export DATABASE_URL=$db
d=$TAP_TMPDIR
N=$d/proj

# keys 1-20; key k has k % 4 source rows (none for 4, 8, ...: the LEFT
# JOIN gives them one row without values); key 3's rows say "bad" until
# the data is fixed
psql_val "$db" "CREATE TABLE keys (k int PRIMARY KEY, filled bool NOT NULL DEFAULT false);
CREATE TABLE src (id int PRIMARY KEY, k int NOT NULL REFERENCES keys, v text NOT NULL);
CREATE TABLE summary (k int PRIMARY KEY REFERENCES keys, n int NOT NULL, vs text NOT NULL, note text, created_by text NOT NULL);
CREATE TABLE item (k int NOT NULL REFERENCES summary, v text NOT NULL);
INSERT INTO keys SELECT g FROM generate_series(1, 20) g;
INSERT INTO src SELECT k * 10 + j, k, 'v' || k || '.' || j FROM generate_series(1, 20) k, generate_series(1, 3) j WHERE j <= k % 4;" >/dev/null

COUNT='[[SELECT count(*) AS n FROM keys WHERE $1::int IS NULL OR k > $1]]'
SOURCE='[[SELECT c.k AS key, s.v, EXISTS (SELECT 1 FROM summary t WHERE t.k = c.k) AS done
            FROM keys c LEFT JOIN src s ON s.k = c.k WHERE $1::int IS NULL OR c.k > $1 ORDER BY c.k, s.id]]'
# one summary row per key with values: their count, the values, a note only
# for 3 of them (a trailing nil, NULL: the row is filled up to the columns)
MAP='function(key, rows, ctx)
  if rows[1].v == nil then return {} end
  local vs = {}
  for _, r in ipairs(rows) do
    if r.v == "bad" then error("bad value in key " .. key) end
    vs[#vs + 1] = r.v
  end
  return {{key, #rows, table.concat(vs, ","), #rows == 3 and "three" or nil, ctx.migration}}
end'
put "$N/migrations/20250101_fill/up.lua" "db.fill{count = $COUNT,
        source = $SOURCE,
        copy = [[COPY summary (k, n, vs, created_by, note) FROM STDIN]],
        map = function(key, rows, ctx)
          local r = ($MAP)(key, rows, ctx)
          if r[1] then r[1][4], r[1][5] = r[1][5], r[1][4] end   -- (created_by before note: the nil last)
          return r
        end,
        label = 'summaries'}
"
rows() { psql_val "$db" "SELECT coalesce(string_agg(concat_ws('|', k, n, vs, coalesce(note, 'NULL'), created_by), ' ' ORDER BY k), 'none') FROM summary"; }
expected=$(psql_val "$db" "SELECT string_agg(l, ' ' ORDER BY k) FROM (SELECT k, concat_ws('|', k, count(*), string_agg(v, ',' ORDER BY id),
    CASE WHEN count(*) = 3 THEN 'three' ELSE 'NULL' END, '20250101_fill') AS l FROM src GROUP BY k) e")
is "$(cut -d' ' -f1-3 <<<"$expected")" "1|1|v1.1|NULL|20250101_fill 2|2|v2.1,v2.2|NULL|20250101_fill 3|3|v3.1,v3.2,v3.3|three|20250101_fill" \
   "(the expected rows: one per key with source rows)"
STATS='{"keys_processed":15,"keys_skipped":5,"rows_created":15,"errors":0}'

# --- dry run: the counts, nothing written
run_ferry --dir "$N" --json run 20250101_fill --dry-run
is "$RC|$(json_eval "$OUT" 'j["stats"]')|$ERR" "0|$STATS|20 keys to fill, up to 1000 a batch" \
   "dry run: the counts, the log line"
is "$(rows)|$(psql_val "$db" "SELECT to_regclass('ferry.checkpoint') IS NULL")" "none|t" "...nothing written (no checkpoint either)"
run_ferry --dir "$N" -v run 20250101_fill --dry-run --batch-size 3
like "$OUT" $'\nwould create 1 row for key 3\n' "-v: 'would create' a line per key written"

# --- the run, and a re-run
run_ferry --dir "$N" --json run 20250101_fill --batch-size 3
is "$RC|$(json_eval "$OUT" 'j["stats"]')|$ERR" "0|$STATS|20 keys to fill, up to 3 a batch" \
   "the run: the dry run's counts"
is "$(rows)" "$expected" "...exactly the rows mapped (a trailing nil NULL, no row for keys without source rows)"
run_ferry --dir "$N" --json run 20250101_fill
is "$RC|$(json_eval "$OUT" 'j["stats"]')" '0|{"keys_processed":0,"keys_skipped":20,"rows_created":0,"errors":0}' \
   "a re-run skips every key done"
is "$(rows)" "$expected" "...the rows as they were"

# --- an error in map past --max-errors: the batches before it commit, the
# checkpoint stays before it; fixed, the next run resumes to the same rows
run_ferry --dir "$N" -q rollback 20250101_fill 2>/dev/null
psql_val "$db" "DELETE FROM summary" >/dev/null
psql_val "$db" "UPDATE src SET v = 'bad' WHERE k = 7" >/dev/null
run_ferry --dir "$N" run 20250101_fill --batch-size 2 --jobs 1 --max-errors 0
is "$RC" 1 "map raising past --max-errors 0: exit 1"
like "$ERR" "too many row errors \\(1, more than --max-errors 0\\)" "...the --max-errors stop"
is "$(psql_val "$db" "SELECT string_agg(k::text, ',' ORDER BY k) FROM summary")|$(psql_val "$db" "SELECT position FROM ferry.checkpoint")" \
   "1,2,3,5,6|6" "...the batches before key 7 committed (keys 1-6), the checkpoint at their last key"
psql_val "$db" "UPDATE src SET v = 'v7.' || (id % 10) WHERE k = 7" >/dev/null
run_ferry --dir "$N" --json run 20250101_fill --batch-size 2
is "$RC|$(json_eval "$OUT" 'j["stats"]')" "0|$STATS" "fixed, the next run: an uninterrupted run's totals"
like "$ERR" "(^|"$'\n'")resuming after key 6"$'\n' "...resuming after the checkpoint"
is "$(rows)" "$expected" "...the same rows: none lost, none twice"

# --- several targets: map returns one list of rows per COPY (parent
# first); after runs in each batch's transaction with the keys it wrote
psql_val "$db" "TRUNCATE item, summary" >/dev/null
put "$N/migrations/20250102_two/up.lua" "local keys, rows = db.fill{count = $COUNT,
  source = $SOURCE,
  copy = {[[COPY summary (k, n, vs, created_by) FROM STDIN]], [[COPY item (k, v) FROM STDIN]]},
  map = function(key, rows, ctx)
    if rows[1].v == nil then return {} end
    if key == 2 then return {{{key, 0, '', ctx.migration}}} end      -- (no list for item: none)
    local items = {}
    for _, r in ipairs(rows) do items[#items + 1] = {key, r.v} end
    return {{{key, #rows, 'x', ctx.migration}}, items}
  end,
  after = [[UPDATE keys SET filled = true WHERE k = ANY(\$1::int[])]]}
log.info(string.format('db.fill read %d keys, mapped %d rows', keys, rows))
"
run_ferry --dir "$N" --json run 20250102_two --dry-run --batch-size 4
is "$RC|$(json_eval "$OUT" 'j["stats"]')" '0|{"keys_processed":15,"keys_skipped":5,"rows_created":43,"errors":0}' \
   "several targets, dry run: rows_created counts the rows of every target"
is "$(psql_val "$db" "SELECT count(*) FROM summary")|$(psql_val "$db" "SELECT count(*) FROM item")|$(psql_val "$db" "SELECT count(*) FROM keys WHERE filled")" \
   "0|0|0" "...nothing written, after not run"
run_ferry --dir "$N" -v run 20250102_two --dry-run
like "$OUT" $'(^|\n)would create 2 rows for key 1\nwould create 1 row for key 2\nwould create 4 rows for key 3\n' \
     "-v: the rows of every target, 1 row, N rows"
run_ferry --dir "$N" --json run 20250102_two --batch-size 4
is "$RC|$(json_eval "$OUT" 'j["stats"]')" '0|{"keys_processed":15,"keys_skipped":5,"rows_created":43,"errors":0}' \
   "several targets: the dry run's counts"
like "$ERR" $'\ndb.fill read 20 keys, mapped 43 rows$' "...db.fill returns the keys read and the rows mapped"
is "$(psql_val "$db" "SELECT count(*) || '|' || sum(n) FROM summary")|$(psql_val "$db" "SELECT count(*) FROM item")" \
   "15|28|28" "...every parent row, every child row (none for key 2)"
is "$(psql_val "$db" "SELECT string_agg(k::text, ',' ORDER BY k) FROM item WHERE v <> ALL (SELECT v FROM src)")" "" \
   "...the child rows are the source's values"
is "$(psql_val "$db" "SELECT string_agg(k::text, ',' ORDER BY k) FROM keys WHERE filled")" \
   "$(psql_val "$db" "SELECT string_agg(k::text, ',' ORDER BY k) FROM summary")" \
   "...after's UPDATE: exactly the keys written (\$1 their array)"

# --- under ferry exec: after as a function gets (conn, keys) per batch,
# inside the batch's transaction; label names the bar
psql_val "$db" "TRUNCATE item, summary; UPDATE keys SET filled = false" >/dev/null
cat >"$d/after.lua" <<EOF
local seen = {}
db.fill{count = $COUNT, source = $SOURCE,
  copy = [[COPY summary (k, n, vs, created_by) FROM STDIN]],
  map = function(key, rows) if rows[1].v == nil or key > 9 then return {} end return {{key, #rows, "x", "t"}} end,
  after = function(conn, keys) seen[#seen + 1] = (conn:in_transaction() and "tx:" or "no tx:") .. table.concat(keys, ",") end}
print(table.concat(seen, " "))
EOF
run_ferry --dir "$N" -q exec "$d/after.lua"
is "$RC|$OUT" "0|tx:1,2,3,5,6,7,9" "exec: after(conn, keys) in the batch's transaction, the keys written"
psql_val "$db" "TRUNCATE item, summary" >/dev/null
run_ferry --dir "$N" -q --batch-size 3 exec "$d/after.lua"
is "$RC|$OUT|$(psql_val "$db" "SELECT count(*) FROM summary")" "0|tx:1,2,3 tx:5,6 tx:7,9|7" \
   "...per batch of 3 keys (a batch that wrote none runs no after); rows_created"

# --- wrong queries and a wrong map: stopped, saying which
psql_val "$db" "TRUNCATE item, summary" >/dev/null
fail_case() { # NAME OPTIONS  -> RC and ERR of a script calling db.fill{OPTIONS} on line 2
    printf 'local x = 1\ndb.fill{%s}\n' "$2" >"$d/$1.lua"
    run_ferry --dir "$N" exec "$d/$1.lua"
}
OK_COPY='copy = [[COPY summary (k, n, vs, created_by) FROM STDIN]]'
OK_MAP='map = function(key) return {} end'
fail_case nocount "count = [[SELECT 1 AS x]], source = $SOURCE, $OK_COPY, $OK_MAP"
is "$RC|$ERR" "1|ferry: $d/nocount.lua:2: db.fill: count gave no n: its one row's column n (SELECT count(...) AS n ...)" \
   "count without its column n"
fail_case nokey "count = $COUNT, source = [[SELECT k AS id, false AS done FROM keys]], $OK_COPY, $OK_MAP"
is "$RC|$ERR" "1|ferry: $d/nokey.lua:2: db.fill: source gave a row without a key or a done column (name them AS key, AS done; never NULL)" \
   "source without a key column"
fail_case nodone "count = $COUNT, source = [[SELECT k AS key FROM keys]], $OK_COPY, $OK_MAP"
is "$RC|$ERR" "1|ferry: $d/nodone.lua:2: db.fill: source gave a row without a key or a done column (name them AS key, AS done; never NULL)" \
   "source without a done column"
fail_case fewer "count = $COUNT, source = [[SELECT k AS key, false AS done FROM keys WHERE k > \$1 ORDER BY k]], $OK_COPY, $OK_MAP"
is "$RC|$ERR" "1|ferry: $d/fewer.lua:2: db.fill: count counted 20 keys, source gave 0: read in one snapshot, they agree unless one is wrong: source leaves keys out (on a fresh start \$1 is NULL: WHERE \$1::type IS NULL OR key > \$1; a key without source rows is not in a JOIN: LEFT JOIN its rows to the keys, or count only the keys with rows); what was written is kept" \
   "count and source that disagree: source gives fewer (WHERE key > \$1 on a fresh start)"
fail_case joined "count = $COUNT, source = [[SELECT c.k AS key, false AS done FROM keys c JOIN src s ON s.k = c.k WHERE \$1::int IS NULL OR c.k > \$1 ORDER BY c.k, s.id]], $OK_COPY, $OK_MAP"
is "$RC|$ERR" "1|ferry: $d/joined.lua:2: db.fill: count counted 20 keys, source gave 15: read in one snapshot, they agree unless one is wrong: source leaves keys out (on a fresh start \$1 is NULL: WHERE \$1::type IS NULL OR key > \$1; a key without source rows is not in a JOIN: LEFT JOIN its rows to the keys, or count only the keys with rows); what was written is kept" \
   "...source gives fewer (a JOIN leaves out the keys without rows)"
fail_case unordered "count = $COUNT, source = [[SELECT c.k AS key, false AS done FROM keys c JOIN src s ON s.k = c.k WHERE \$1::int IS NULL OR c.k > \$1 ORDER BY s.id % 10, c.k]], $OK_COPY, $OK_MAP"
is "$RC|$ERR" "1|ferry: $d/unordered.lua:2: db.fill: source is not ordered by key: key 2 came after key 19 (ORDER BY the key first, then a tie-breaker: a run resumes after the last key of its last committed batch, and would skip the keys that came after it in a different order); what was written before it is kept" \
   "source not ordered by key (integer keys met twice): stopped where a key goes back"
fail_case unordered1 "count = $COUNT, source = [[SELECT k AS key, false AS done FROM keys WHERE \$1::int IS NULL OR k > \$1 ORDER BY k::text]], $OK_COPY, $OK_MAP"
is "$RC|$ERR" "1|ferry: $d/unordered1.lua:2: db.fill: source is not ordered by key: key 2 came after key 19 (ORDER BY the key first, then a tie-breaker: a run resumes after the last key of its last committed batch, and would skip the keys that came after it in a different order); what was written before it is kept" \
   "...each key once, but ordered by something else (a resume would skip keys): stopped too"
fail_case countfewer "count = [[SELECT count(*) AS n FROM keys WHERE k <= 10 AND (\$1::int IS NULL OR k > \$1)]], source = [[SELECT k AS key, false AS done FROM keys WHERE \$1::int IS NULL OR k > \$1 ORDER BY k]], $OK_COPY, $OK_MAP"
is "$RC|$ERR" "1|ferry: $d/countfewer.lua:2: db.fill: count counted 10 keys, source gave 20: read in one snapshot, they agree unless one is wrong: source gives a key more than once when it is not ordered by key first (ORDER BY key, then a tie-breaker), or count leaves keys out (count the keys source reads); what was written is kept" \
   "...source gives more than count counted (count leaves keys out)"
printf 'local function map(key, rows)\n  return nil\nend\ndb.fill{count = %s, source = %s, %s, map = map}\n' "$COUNT" "$SOURCE" "$OK_COPY" >"$d/mapnil.lua"
run_ferry --dir "$N" exec "$d/mapnil.lua"
is "$RC|$ERR" "1|ferry: $d/mapnil.lua:4: db.fill: map ($d/mapnil.lua:1) returned nil, not a list of target rows ({} skips the key)" \
   "a map that returns no table: stopped, naming where map is"
fail_case maprow "count = $COUNT, source = $SOURCE, $OK_COPY, map = function(key) return {'x'} end"
is "$RC|$ERR" "1|ferry: $d/maprow.lua:2: db.fill: map ($d/maprow.lua:3) returned a row that is a string, not a list of values (key 1)" \
   "a map that returns a row that is no list"
fail_case mapnum "count = $COUNT, source = $SOURCE, copy = {[[COPY summary (k, n, vs, created_by) FROM STDIN]]}, map = function(key) return {5} end"
is "$RC|$ERR" "1|ferry: $d/mapnum.lua:2: db.fill: map ($d/mapnum.lua:3) returned number for copy[1], not a list of its rows (copy is a list: map returns one list of rows per COPY)" \
   "copy a list, map returning a number where a list of rows goes: said"
fail_case maplists "count = $COUNT, source = $SOURCE, copy = {[[COPY summary (k, n, vs, created_by) FROM STDIN]]}, map = function(key) return {{key, 1, 'x', 't'}} end"
is "$RC|$ERR" "1|ferry: $d/maplists.lua:2: db.fill: map ($d/maplists.lua:3) returned a row that is a number, not a list of values (key 1, copy[1]: copy is a list, so map returns one list of rows per COPY)" \
   "copy a list, map returning rows: said"
# a row with more values than copy's columns (the server would say "extra
# data after last expected column" of a line of the batch, naming no key)
fail_case toomany "count = $COUNT, source = $SOURCE, $OK_COPY, map = function(key) return {{key, 1, 'x', 't', 'extra'}} end"
is "$RC|$ERR" "1|ferry: $d/toomany.lua:2: db.fill: map ($d/toomany.lua:3) returned a row of 5 values for copy's 4 columns (k, n, vs, created_by) (key 1)" \
   "a row with more values than copy's columns: stopped, naming the key and the columns"
fail_case toomany2 "count = $COUNT, source = $SOURCE, copy = {[[COPY summary (k, n, vs, created_by) FROM STDIN]], [[COPY item (k, v) FROM STDIN]]}, map = function(key) return {{{key, 1, 'x', 't'}}, {{key, 'v', n = 3}}} end"
is "$RC|$ERR" "1|ferry: $d/toomany2.lua:2: db.fill: map ($d/toomany2.lua:3) returned a row of 3 values for copy[2]'s 2 columns (k, v) (key 1)" \
   "...copy a list: naming which COPY (a row's n counts)"
# a value that is no SQL value (a Lua table for an array or a json column)
fail_case tablevalue "count = $COUNT, source = $SOURCE, $OK_COPY, map = function(key) return {{key, 1, {'x', 'y'}, 't'}} end"
is "$RC|$ERR" "1|ferry: $d/tablevalue.lua:2: db.fill: map ($d/tablevalue.lua:3) returned a row whose value 3 (vs) is a table, not a SQL value (key 1): an array column takes db.array(t), a json one json.encode(t)" \
   "a table as a value: stopped, naming the key, the column and what to write"
# done that is no boolean: a count is a number, and 0 is true in Lua (every
# key was skipped, nothing written, the run said applied)
fail_case doneint "count = $COUNT, source = [[SELECT k AS key, (SELECT count(*) FROM summary t WHERE t.k = keys.k) AS done FROM keys WHERE \$1::int IS NULL OR k > \$1 ORDER BY k]], $OK_COPY, map = function(key) return {{key, 1, 'x', 't'}} end"
is "$RC|$ERR" "1|ferry: $d/doneint.lua:2: db.fill: source's done at key 1 is the number 0, not a boolean: true when the target has the key's rows already (EXISTS (SELECT 1 FROM target ...) AS done); in Lua a 0 or a 'f' is true, and would skip the key" \
   "done a number: stopped (it skipped every key)"
fail_case donenull "count = $COUNT, source = [[SELECT k AS key, CASE WHEN k < 3 THEN false END AS done FROM keys WHERE \$1::int IS NULL OR k > \$1 ORDER BY k]], $OK_COPY, $OK_MAP"
is "$RC|$ERR" "1|ferry: $d/donenull.lua:2: db.fill: source's done at key 3 is NULL, not a boolean: true when the target has the key's rows already (EXISTS (SELECT 1 FROM target ...) AS done); in Lua a 0 or a 'f' is true, and would skip the key" \
   "done NULL past the first row: the key named"
fail_case donetext "count = $COUNT, source = [[SELECT k AS key, 'f'::text AS done FROM keys WHERE \$1::int IS NULL OR k > \$1 ORDER BY k]], $OK_COPY, $OK_MAP"
is "$RC|$ERR" "1|ferry: $d/donetext.lua:2: db.fill: source's done at key 1 is the string 'f', not a boolean: true when the target has the key's rows already (EXISTS (SELECT 1 FROM target ...) AS done); in Lua a 0 or a 'f' is true, and would skip the key" \
   "done a text: the text shown"
# a NULL key: it sorts last, and no resume (key > \$1) reaches it
fail_case nullkey "count = $COUNT, source = [[SELECT CASE WHEN k < 20 THEN k END AS key, false AS done FROM keys WHERE \$1::int IS NULL OR k > \$1 ORDER BY k]], $OK_COPY, $OK_MAP"
is "$RC|$ERR" "1|ferry: $d/nullkey.lua:2: db.fill: source gave a row whose key is NULL (after key 19): no resume point reaches it (key > \$1 is never true): leave such rows out of count and source (WHERE key IS NOT NULL), or give them a key" \
   "a NULL key after others: stopped, saying what to do"
# a key rows() gives as a float with a fraction (a numeric's 0.5, a
# float8, NaN, Infinity): the resume point (\$1, its text) would not be the key, and a
# key could be read twice or left out; a whole one (a numeric(10,1)'s 1.0)
# is exact and taken
fail_case floatkey "count = $COUNT, source = [[SELECT k * 0.5 AS key, false AS done FROM keys WHERE \$1::numeric IS NULL OR k * 0.5 > \$1 ORDER BY 1]], $OK_COPY, $OK_MAP"
is "$RC|$ERR" "1|ferry: $d/floatkey.lua:2: db.fill: source's key 0.5 is a float that is not a whole number (a numeric with a fraction, or a float column's value), which the resume point (key > \$1) would not give back exactly: key the fill by a bigint or a text (cast the key in source and count: key::text AS key, ordered and compared as text)" \
   "a float key with a fraction: refused, saying to cast it"
fail_case float8key "count = $COUNT, source = [[SELECT CASE WHEN k < 20 THEN k::float8 ELSE 'Infinity' END AS key, false AS done FROM keys WHERE \$1::float8 IS NULL OR k > \$1 ORDER BY 1]], $OK_COPY, $OK_MAP"
is "$RC|$ERR" "1|ferry: $d/float8key.lua:2: db.fill: source's key inf is a float that is not a whole number (a numeric with a fraction, or a float column's value), which the resume point (key > \$1) would not give back exactly: key the fill by a bigint or a text (cast the key in source and count: key::text AS key, ordered and compared as text)" \
   "...an infinite float8 too (whole float8 keys before it taken)"
fail_case wholekey "count = $COUNT, source = [[SELECT k::numeric(10,1) AS key, false AS done FROM keys WHERE \$1::numeric IS NULL OR k > \$1 ORDER BY 1]], $OK_COPY, $OK_MAP"
is "$RC|$ERR" "0|" "...a whole one (a numeric(10,1)'s 1.0) is exact: taken"
# which of db.fill's statements the server refused: count's or after's
# (they said the same "query failed: ..."; source's says "while reading rows")
fail_case countbad "count = [[SELECT count(*) AS n FROM nope]], source = $SOURCE, $OK_COPY, $OK_MAP"
is "$RC|$ERR" "1|ferry: $d/countbad.lua:2: db.fill: count: query failed: relation \"nope\" does not exist [SQLSTATE 42P01]" \
   "count refused by the server: said to be count's"
fail_case afterbad "count = $COUNT, source = $SOURCE, $OK_COPY, map = function(key) return {{key, 1, 'x', 't'}} end, after = [[UPDATE keys SET filled = true WHERE k = ANY(\$1::uuid[])]]"
is "$RC|$ERR" "1|ferry: $d/afterbad.lua:2: db.fill: after: query failed: operator does not exist: integer = uuid [SQLSTATE 42883]" \
   "after's SQL refused: said to be after's"
TAB=$'\t'
# a COPY the server refuses names a line of a batch, not a key: said with
# the batch's first and last keys -- raised at its writer's next turn (the
# third batch's send with --jobs 2), where the batch sent is another one
psql_val "$db" "CREATE TABLE checked (k int, n int NOT NULL CHECK (n > 0))" >/dev/null
printf 'local x = 1\ndb.fill{count = %s, source = %s, copy = [[COPY checked (n) FROM STDIN]],\n  map = function(key) return {{key == 3 and -1 or 1}} end}\n' "$COUNT" "$SOURCE" >"$d/copybad.lua"
run_ferry --dir "$N" --batch-size 5 --jobs 2 exec "$d/copybad.lua"
is "$RC|$ERR" "1|ferry: $d/copybad.lua:2: db.fill: in the batch of keys 1 .. 5: COPY failed: new row for relation \"checked\" violates check constraint \"checked_n_check\" (Failing row contains (null, -1).) (COPY checked, line 3: \"-1\") [SQLSTATE 23514]" \
   "a COPY refused at a later send: the batch's keys, the server's words and SQLSTATE"
printf 'local x = 1\ndb.fill{count = %s, source = %s, copy = {[[COPY checked (k, n) FROM STDIN]], [[COPY item (k, v) FROM STDIN]]},\n  map = function(key) return {{{key, key == 13 and -1 or 1}}, {}} end}\n' "$COUNT" "$SOURCE" >"$d/copybad2.lua"
run_ferry --dir "$N" --batch-size 5 exec "$d/copybad2.lua"
is "$RC|$ERR" "1|ferry: $d/copybad2.lua:2: db.fill: in the batch of keys 11 .. 15: COPY failed: new row for relation \"checked\" violates check constraint \"checked_n_check\" (Failing row contains (13, -1).) (COPY checked, line 3: \"13${TAB}-1\") [SQLSTATE 23514]" \
   "...copy a list, its first COPY refused (at the batch's own send)"
psql_val "$db" "TRUNCATE checked" >/dev/null
printf 'local x = 1\ndb.fill{count = %s, source = %s, copy = [[COPY checked (k, n) FROM STDIN]],\n  map = function(key) return {{key, key == 20 and -1 or 1}} end}\n' "$COUNT" "$SOURCE" >"$d/copybad3.lua"
run_ferry --dir "$N" --batch-size 50 exec "$d/copybad3.lua"
is "$RC|$ERR|$(psql_val "$db" "SELECT count(*) FROM checked")" "1|ferry: $d/copybad3.lua:2: db.fill: in the batch of keys 1 .. 20: COPY failed: new row for relation \"checked\" violates check constraint \"checked_n_check\" (Failing row contains (20, -1).) (COPY checked, line 20: \"20${TAB}-1\") [SQLSTATE 23514]|0" \
   "...the last batch, refused at finish; nothing written"
# a deferred constraint is checked at the batch's COMMIT, not in its COPY:
# the refusal names the batch's keys too
psql_val "$db" "CREATE TABLE deferred (k int UNIQUE DEFERRABLE INITIALLY DEFERRED)" >/dev/null
printf 'local x = 1\ndb.fill{count = %s, source = %s, copy = [[COPY deferred (k) FROM STDIN]],\n  map = function(key) return {{key == 7 and 6 or key}} end}\n' "$COUNT" "$SOURCE" >"$d/commitbad.lua"
run_ferry --dir "$N" --batch-size 5 exec "$d/commitbad.lua"
is "$RC|$ERR|$(psql_val "$db" "SELECT string_agg(k::text, ',' ORDER BY k) FROM deferred")" "1|ferry: $d/commitbad.lua:2: db.fill: in the batch of keys 6 .. 10: query failed: duplicate key value violates unique constraint \"deferred_k_key\" (Key (k)=(6) already exists.) [SQLSTATE 23505]|1,2,3,4,5" \
   "...a COMMIT refused (a deferred constraint): the batch's keys, the server's words and SQLSTATE; the batch before it kept"
is "$(psql_val "$db" "SELECT count(*) FROM summary")" 0 "(none of those wrote a row)"

# --- the options: refused before anything is read, at the calling line
fail_case none ""
is "$RC|$ERR" "1|ferry: $d/none.lua:2: db.fill: count is missing: the SQL that counts the keys left (SELECT count(...) AS n ...; \$1 the resume key)" \
   "no options: count missing"
printf 'db.fill("SELECT 1")\n' >"$d/str.lua"
run_ferry --dir "$N" exec "$d/str.lua"
is "$RC|$ERR" "1|ferry: $d/str.lua:1: db.fill: its options are a table {count =, source =, copy =, map = [, after =, label =]}, not a string" \
   "options not a table"
fail_case misspelt "count = $COUNT, sorce = $SOURCE, $OK_COPY, $OK_MAP"
is "$RC|$ERR" "1|ferry: $d/misspelt.lua:2: db.fill: unknown option 'sorce' (its options are count, source, copy, map, after, label)" \
   "a misspelt option: named, with the valid ones"
fail_case nosource "count = $COUNT, $OK_COPY, $OK_MAP"
is "$RC|$ERR" "1|ferry: $d/nosource.lua:2: db.fill: source is missing: the SQL of the source rows ordered by key (SELECT ... AS key, ... AS done, ... ORDER BY key)" \
   "source missing"
fail_case nocopy "count = $COUNT, source = $SOURCE, $OK_MAP"
is "$RC|$ERR" "1|ferry: $d/nocopy.lua:2: db.fill: copy is missing: the COPY of the target rows (COPY target (columns) FROM STDIN), or a list of them" \
   "copy missing"
fail_case nomap "count = $COUNT, source = $SOURCE, $OK_COPY"
is "$RC|$ERR" "1|ferry: $d/nomap.lua:2: db.fill: map is missing: a function (key, rows, ctx) that returns the key's target rows" \
   "map missing"
fail_case countnum "count = 5, source = $SOURCE, $OK_COPY, $OK_MAP"
is "$RC|$ERR" "1|ferry: $d/countnum.lua:2: db.fill: count must be the SQL that counts the keys left (SELECT count(...) AS n ...; \$1 the resume key), not a number" \
   "count not a string"
fail_case copyempty "count = $COUNT, source = $SOURCE, copy = {}, $OK_MAP"
is "$RC|$ERR" "1|ferry: $d/copyempty.lua:2: db.fill: copy must be the COPY of the target rows (COPY target (columns) FROM STDIN), or a list of them, not an empty table" \
   "copy an empty list"
fail_case copynum "count = $COUNT, source = $SOURCE, copy = {[[COPY item (k, v) FROM STDIN]], 5}, $OK_MAP"
is "$RC|$ERR" "1|ferry: $d/copynum.lua:2: db.fill: copy[2] must be a COPY statement (a string), not a number" \
   "a copy in the list that is not a string"
fail_case mapstr "count = $COUNT, source = $SOURCE, $OK_COPY, map = 'rule.map'"
is "$RC|$ERR" "1|ferry: $d/mapstr.lua:2: db.fill: map must be a function (key, rows, ctx) that returns the key's target rows, not a string" \
   "map not a function"
fail_case afternum "count = $COUNT, source = $SOURCE, $OK_COPY, $OK_MAP, after = 5"
is "$RC|$ERR" "1|ferry: $d/afternum.lua:2: db.fill: after must be an SQL string or a function (conn, keys), not a number" \
   "after neither SQL nor a function"
fail_case labelnum "count = $COUNT, source = $SOURCE, $OK_COPY, $OK_MAP, label = 5"
is "$RC|$ERR" "1|ferry: $d/labelnum.lua:2: db.fill: label must be a string (the progress bar's), not a number" \
   "label not a string"
printf 'db.fill{count = %s, source = %s, %s, %s}\ndb.fill{count = %s, source = %s, %s, %s}\n' \
       "$COUNT" "$SOURCE" "$OK_COPY" "$OK_MAP" "$COUNT" "$SOURCE" "$OK_COPY" "$OK_MAP" >"$d/twice.lua"
run_ferry --dir "$N" exec "$d/twice.lua"
is "$RC|$ERR" "1|ferry: $d/twice.lua:3: db.fill: called a second time in this run: the migration's checkpoint, where a fill keeps its resume point, is the first fill's (one db.fill per migration: give the second one a migration of its own)" \
   "a second db.fill in one run: refused (it would resume after the first one's last key)"
put "$N/migrations/20250103_check/up.lua" 'db.exec("SELECT 1")'
put "$N/migrations/20250103_check/validate.lua" "check('fill', function() db.fill{count = $COUNT, source = $SOURCE, $OK_COPY, $OK_MAP} return true end)"
run_ferry --dir "$N" validate 20250103_check
like "$OUT" "FAIL fill .*db.fill: runs in a migration's up.lua \\(or under ferry exec\\), where ctx.checkpoint keeps its resume point" \
     "in validate.lua (no checkpoint): refused, saying where it runs"
is "$(psql_val "$db" "SELECT count(*) FROM summary")" 0 "(nothing written by any of them)"

done_testing
