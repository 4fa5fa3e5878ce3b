#!/usr/bin/env bash
# ferry new NAME --sql: a schema migration's scaffold (up.sql, rollback.sql,
# validate.lua, README.md) that passes check and runs as it is -- up
# --dry-run, run, validate, rollback (ferry's and psql's) -- changing
# nothing; its commented examples, uncommented, make a table, a column and
# an index, validate them and drop them again.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_newsql)
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

# --- --sql after NAME, and before it
id=${today}_add_things
nodb --dir "$N" new add_things --sql
is "$RC|$OUT|$ERR" "0|created migrations/$id/ (up.sql, rollback.sql, validate.lua, README.md)|" \
   "new NAME --sql: exit 0, naming the files it created"
is "$(cd "$N" && find . -type f | sort | tr '\n' ' ')" \
   "./migrations/$id/README.md ./migrations/$id/rollback.sql ./migrations/$id/up.sql ./migrations/$id/validate.lua " \
   "...exactly up.sql, rollback.sql, validate.lua, README.md (no up.lua)"
nodb --dir "$N" new --sql other_thing
is "$RC|$OUT|$ERR" "0|created migrations/${today}_other_thing/ (up.sql, rollback.sql, validate.lua, README.md)|" \
   "new --sql NAME: the same"
is "$(cd "$N/migrations/${today}_other_thing" && ls | tr '\n' ' ')" "README.md rollback.sql up.sql validate.lua " \
   "...the same files"
rm -rf "$N/migrations/${today}_other_thing"
nodb --dir "$N" --json new third_thing --sql
is "$RC|$OUT|$ERR" "0|{\"created\":\"migrations/${today}_third_thing\"}|" "new --sql --json: the folder, as without --sql"
rm -rf "$N/migrations/${today}_third_thing"

# --- usage errors
for args in "new --sql" "new a b --sql" "new --sql a b"; do
    # shellcheck disable=SC2086
    nodb --dir "$N" $args
    is "$RC|$OUT|$ERR" "2||ferry: usage: ferry new NAME [--sql|--pipeline]" "ferry $args: exit 2, the usage line"
done
nodb --dir "$N" new x --sql=yes
is "$RC|$OUT|$ERR" "2||ferry: option --sql takes no value" "--sql=yes: exit 2"
nodb --dir "$N" new x --sqll
is "$RC|$OUT|$ERR" "2||ferry: unknown option --sqll (see 'ferry --help')" "an unknown option beside new: still exit 2"
nodb --dir "$N" new Bad-Name --sql
is "$RC|$OUT|$ERR" "2||ferry: migration names use lowercase letters, digits and underscores, and begin with a letter or digit: Bad-Name" \
   "a bad name with --sql: exit 2"
nodb --dir "$N" new add_things --sql
is "$RC|$OUT|$ERR" "2||ferry: migrations/$id already exists" "an existing migration with --sql: exit 2"
is "$(ls "$N/migrations" | tr '\n' ' ')" "$id " "...none of those made a folder"

# --- the files
is "$(cat "$N/migrations/$id/up.sql")" "-- $id: a schema migration (a table, a column, an index).  Run it with
--   ferry run $id --dry-run     (runs nothing; fails if what it creates exists already)
--   ferry run $id               (or ferry up)
--
-- ferry runs this whole file in one transaction that it begins and commits:
-- leave BEGIN/COMMIT out, and with them CREATE INDEX CONCURRENTLY, VACUUM
-- and the rest that cannot run in a transaction (check, run and up refuse
-- them all; an up.lua runs those: docs/authoring.md, section 10).  When a
-- statement fails, everything before it is rolled back too and the run is
-- recorded failed: fix it and run again.  Each statement waits for a lock at
-- most --lock-timeout (default 5s; ALTER TABLE waits for every query on
-- its table to end): past that it fails, the whole file with it.
--
-- Write it so that running it again does no harm, e.g.:
-- CREATE TABLE IF NOT EXISTS my_table (
--   id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
--   note text NOT NULL
-- );
-- ALTER TABLE my_table ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now();
-- CREATE INDEX IF NOT EXISTS my_table_created_at_idx ON my_table (created_at);
--
-- Until then it changes nothing, so that it runs as it is:
DO \$\$ BEGIN RAISE NOTICE '$id: nothing to do yet'; END \$\$;" "up.sql: what the transaction and lock_timeout mean, an idempotent example, a harmless statement"

# rollback.sql: the lock block is the data scaffold's, to the letter
nodb --dir "$N" new data_thing
lock_block() { sed -n '/^BEGIN;$/,/^END \$\$;$/p' "$1"; }
lua_lock=$(lock_block "$N/migrations/${today}_data_thing/rollback.sql")
rm -rf "$N/migrations/${today}_data_thing"
like "$lua_lock" 'pg_try_advisory_xact_lock\(7366291803\)' "(the data scaffold's rollback.sql takes the lock)"
is "$(lock_block "$N/migrations/$id/rollback.sql")" "$lua_lock" "rollback.sql: the same lock block as the data scaffold's"
is "$(sed '/^BEGIN;$/,/^END \$\$;$/d' "$N/migrations/$id/rollback.sql")" "-- Rollback of $id.  Works with \`ferry rollback $id\` and on its own:
--   psql \"\$DATABASE_URL\" -v ON_ERROR_STOP=1 -f rollback.sql
-- Convention: drop only what this migration's up.sql made, with IF EXISTS
-- (so that it runs whether up.sql ran or not), newest first.  A DROP takes
-- the rows in it along: keep what you need before you run this.
-- DROP INDEX IF EXISTS my_table_created_at_idx;
-- ALTER TABLE IF EXISTS my_table DROP COLUMN IF EXISTS created_at;
-- DROP TABLE IF EXISTS my_table;
DO \$\$ BEGIN RAISE NOTICE 'rollback of $id: nothing to undo yet'; END \$\$;
COMMIT;" "rollback.sql: its own BEGIN/COMMIT, a commented DROP ... IF EXISTS example"

is "$(cat "$N/migrations/$id/validate.lua")" "-- Checks for $id: \`ferry validate $id\` prints each with PASS/FAIL and exits
-- 1 if any fails.  check(name, fn): fn returns ok [, detail].  Every check
-- reads one snapshot (the script runs in one read-only transaction).
check(\"the database answers\", function()
  local r = db.one(\"SELECT 1 AS one\")
  return r.one == 1
end)

-- What up.sql made is there, e.g.:
-- check(\"my_table has created_at\", function()
--   local r = db.one([[SELECT count(*) AS n FROM information_schema.columns
--                       WHERE table_name = 'my_table' AND column_name = 'created_at']])
--   return r.n == 1, r.n .. \" column(s)\"
-- end)" "validate.lua: a check that passes, a commented schema check"

is "$(cat "$N/migrations/$id/README.md")" "# $id

What this migration does, why, and what it changes.

- Apply: \`ferry run $id --dry-run\`, then \`ferry run $id\` (or \`ferry up\`)
- Validate: \`ferry validate $id\`
- Roll back: \`ferry rollback $id\` (or \`psql \"\$DATABASE_URL\" -v ON_ERROR_STOP=1 -f rollback.sql\`)" \
   "README.md: apply, validate, roll back; no statistics line"

# --- check, up --dry-run, run, validate, rollback, as it is
nodb --dir "$N" check
is "$RC|$OUT|$ERR" "0|ok   migrations/$id/validate.lua|" "the SQL scaffold passes check (no BEGIN/COMMIT of its own)"

objects="SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
is "$(psql_val "$db" "$objects")" 0 "(the database has no table of its own)"
run_ferry --db "$db" --dir "$N" up --dry-run
is "$RC|$ERR" "0|" "up --dry-run runs the scaffold as it is"
like "$OUT" "^==> $id \\(dry run\\)
   \\[DRY RUN\\] Would run migrations/$id/up\\.sql in one transaction
✓ $id dry run finished in [0-9.]+ s$" "...saying it would run up.sql in one transaction"
is "$(psql_val "$db" "SELECT to_regclass('ferry.history') IS NULL")" t "...recording nothing"
run_ferry --db "$db" --dir "$N" up
is "$RC|$ERR" "0|NOTICE:  $id: nothing to do yet" "up applies it: exit 0, its notice on stderr"
like "$OUT" "^==> $id"$'\n'"✓ $id applied in [0-9.]+ s$" "...and says it applied"
is "$(history "$db")" "$id|up|applied" "history: applied"
run_ferry --db "$db" --dir "$N" run "$id"
is "$RC|$ERR" "0|NOTICE:  $id: nothing to do yet" "run applies it again as it is"
is "$(psql_val "$db" "$objects")" 0 "it made nothing"

run_ferry --db "$db" --dir "$N" validate "$id"
is "$RC|$OUT" "0|==> validating $id
✓ PASS the database answers
1 check(s), 0 failed" "its validate.lua passes"

run_ferry --db "$db" --dir "$N" rollback "$id"
is "$RC|$ERR" "0|NOTICE:  rollback of $id: nothing to undo yet" "ferry rollback runs its rollback.sql as it is"
is "$(history "$db" "WHERE operation = 'rollback'")" "$id|rollback|rolled back" "history: rolled back"
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$N/migrations/$id/rollback.sql" >/dev/null 2>&1
is "$?" 0 "the rollback.sql runs under psql -f too"
psql_val "$db" "CREATE TABLE keep (x int); INSERT INTO keep VALUES (1)" >/dev/null
run_ferry --db "$db" --dir "$N" rollback "$id"
is "$RC|$(psql_val "$db" "SELECT count(*) FROM keep")" "0|1" "the rollback as it is deletes nothing"
psql_val "$db" "DROP TABLE keep" >/dev/null

# --- the commented examples, uncommented: they run, validate, roll back
uncomment() { sed -i '/e\.g\.:$/,/^--$/{/e\.g\.:$/!{/^--$/!s/^-- //}}' "$1"; }
sed -i 's/^-- \(DROP\|ALTER\)/\1/' "$N/migrations/$id/rollback.sql"
uncomment "$N/migrations/$id/up.sql"
sed -i '/e\.g\.:$/,${/e\.g\.:$/!s/^-- //}' "$N/migrations/$id/validate.lua"
nodb --dir "$N" check
is "$RC|$OUT|$ERR" "0|ok   migrations/$id/validate.lua|" "uncommented, the examples pass check"
run_ferry --db "$db" --dir "$N" run "$id"
is "$RC|$ERR" "0|NOTICE:  $id: nothing to do yet" "...up.sql runs"
cols="SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 'my_table'"
is "$(psql_val "$db" "$cols")|$(psql_val "$db" "SELECT to_regclass('my_table_created_at_idx') IS NOT NULL")" \
   "id,note,created_at|t" "...making the table, its column and its index"
run_ferry --db "$db" --dir "$N" run "$id"
is "$RC|$(psql_val "$db" "$cols")" "0|id,note,created_at" "...and again, doing no harm"
run_ferry --db "$db" --dir "$N" validate "$id"
is "$RC|$OUT" "0|==> validating $id
✓ PASS the database answers
✓ PASS my_table has created_at  (1 column(s))
2 check(s), 0 failed" "...validate.lua's example passes"
run_ferry --db "$db" --dir "$N" rollback "$id"
is "$RC|$(psql_val "$db" "SELECT to_regclass('my_table') IS NULL")" "0|t" "...rollback.sql's drops it all"
run_ferry --db "$db" --dir "$N" rollback "$id"
is "$RC" 0 "...and runs again with nothing to drop"
run_ferry --db "$db" --dir "$N" validate "$id"
is "$RC" 1 "...after which validate fails"

done_testing
