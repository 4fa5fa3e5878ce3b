#!/usr/bin/env bash
# An up.sql runs in one transaction that ferry begins and commits.  One
# holding its own BEGIN/COMMIT committed half a migration (the server only
# warned; the fixed re-run then failed with "already exists"): check, run
# and up refuse it, dry run or not, with exit 2 and one line naming file
# and line, before anything is written.  A rollback.sql may hold them.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_up_sql_tx)
export DATABASE_URL=$db
saved_url=$DATABASE_URL
check_nodb() {
    unset DATABASE_URL
    PGHOST=$TAP_TMPDIR/no-such-socket-dir PGPORT=1 run_ferry "$@"
    export DATABASE_URL=$saved_url
}

D=$TAP_TMPDIR/proj
V=20261207_vip
put "$D/migrations/20261201_lead/up.sql" 'CREATE TABLE "Lead" (id int PRIMARY KEY);
INSERT INTO "Lead" VALUES (1);
'
put "$D/migrations/$V/up.sql" 'BEGIN; ALTER TABLE "Lead" ADD COLUMN vip boolean; COMMIT; UPDATE "Lead" SET vip = tru;'
WHY="up.sql runs in one transaction that ferry begins and commits; leave BEGIN/COMMIT out (an up.lua can commit in steps)"
REFUSED="ferry: migrations/$V/up.sql:1: BEGIN: $WHY"

# --- check, without a database: a failing entry naming file and line
# (check reports every entry and goes on), exit 2 as for a syntax error
check_nodb --dir "$D" check
is "$RC|$(grep 'up.sql' <<<"$OUT")|$ERR" "2|FAIL migrations/$V/up.sql  migrations/$V/up.sql:1: BEGIN: $WHY|" \
   "check: an up.sql with BEGIN/COMMIT is refused, exit 2, one entry naming file and line"
check_nodb --dir "$D" --json check
is "$RC|$ERR" "2|" "check --json: exit 2"
is "$(json_eval "$OUT" '[j["ok"]] + [c for c in j["checks"] if c["name"].endswith("up.sql")]')" \
   "[false,{\"name\":\"migrations/$V/up.sql\",\"ok\":false,\"detail\":\"migrations/$V/up.sql:1: BEGIN: $WHY\"}]" \
   "check --json: {ok: false, checks: [... the up.sql entry]}"

# --- run and up, dry run or not: refused before anything runs or is recorded
before=$(db_snapshot "$db")
is "$before" "no tables" "a fresh database"
for cmd in "run $V" "run $V --dry-run" "up" "up --dry-run" "up --to $V"; do
    # shellcheck disable=SC2086
    run_ferry --dir "$D" $cmd
    is "$RC|$OUT|$ERR" "2||$REFUSED" "$cmd: refused, exit 2, one line"
    is "$(db_snapshot "$db")" "$before" "$cmd: nothing written (no table, no history)"
done
run_ferry --dir "$D" --json run "$V"
is "$RC|$ERR" "2|$REFUSED" "run --json: exit 2, the line on stderr"
is "$(json_eval "$OUT" '[j["ok"], j["error"]]')" "[false,\"migrations/$V/up.sql:1: BEGIN: $WHY\"]" \
   "run --json: {ok: false, error} on stdout"
is "$(db_snapshot "$db")" "$before" "run --json: nothing written"

# --- the migrations before it still run on their own
run_ferry --dir "$D" up --to 20261201
is "$RC|$ERR" "0|" "up --to the one before: runs"
is "$(history "$db")" "20261201_lead|up|applied" "history: only that one"
run_ferry --dir "$D" up
is "$RC|$OUT|$ERR" "2||$REFUSED" "up: the pending one refused"
is "$(psql_val "$db" "SELECT count(*) FROM information_schema.columns WHERE table_name = 'Lead' AND column_name = 'vip'")" \
   0 "...its column not added"
is "$(history "$db")" "20261201_lead|up|applied" "...and no history row"

# --- each command, at its line (comments, strings, CRLF, a BOM)
refused_at() { # CONTENT LINE COMMAND NAME
    printf '%s' "$1" >"$D/migrations/$V/up.sql"
    run_ferry --dir "$D" run "$V"
    is "$RC|$OUT|$ERR" "2||ferry: migrations/$V/up.sql:$2: $3: $WHY" "$4"
}
refused_at 'ALTER TABLE "Lead" ADD COLUMN vip boolean;
-- now commit: COMMIT;
commit;
UPDATE "Lead" SET vip = true;' 3 COMMIT "COMMIT on line 3 (after a comment naming it)"
refused_at $'\xef\xbb\xbfSELECT \'BEGIN;\';\r\n/* END; */\r\nEND;\r\n' 3 END "END after a BOM, CRLF lines, a string and a comment"
refused_at 'START TRANSACTION ISOLATION LEVEL SERIALIZABLE;
SELECT 1;' 1 "START TRANSACTION" "START TRANSACTION"
refused_at 'SAVEPOINT a;
ROLLBACK TO SAVEPOINT a;
ROLLBACK;' 3 ROLLBACK "ROLLBACK (ROLLBACK TO a savepoint is not refused)"
refused_at 'ALTER TABLE "Lead" ADD COLUMN vip boolean;
PREPARE TRANSACTION '"'x'"';' 2 "PREPARE TRANSACTION" "PREPARE TRANSACTION"
refused_at 'CREATE FUNCTION vip_of(id int) RETURNS boolean LANGUAGE sql
BEGIN ATOMIC
  SELECT CASE WHEN id > 0 THEN true ELSE false END;
END;
ABORT;' 5 ABORT "ABORT after a BEGIN ATOMIC function body"
check_nodb --dir "$D" check
is "$RC|$(grep 'up.sql' <<<"$OUT")" "2|FAIL migrations/$V/up.sql  migrations/$V/up.sql:5: ABORT: $WHY" "check: the same place"
is "$(history "$db")" "20261201_lead|up|applied" "none of them wrote a history row"

# --- the fixed file: BEGIN and END inside a DO block, a function body, a
# savepoint, strings and quoted names -- runs, whole
# shellcheck disable=SC2016  # dollar quotes of SQL, not of the shell
put "$D/migrations/$V/up.sql" '-- no BEGIN/COMMIT here: ferry runs this in one transaction
ALTER TABLE "Lead" ADD COLUMN vip boolean;
SAVEPOINT s;
ROLLBACK TO SAVEPOINT s;
DO $$
BEGIN
  UPDATE "Lead" SET vip = true WHERE id = 1;
END
$$;
CREATE FUNCTION is_vip(l "Lead") RETURNS boolean LANGUAGE plpgsql AS $fn$
BEGIN
  RETURN l.vip;
END
$fn$;
CREATE FUNCTION lead_count() RETURNS bigint LANGUAGE sql
BEGIN ATOMIC
  SELECT count(*) FROM "Lead";
END;
COMMENT ON COLUMN "Lead".vip IS '"'COMMIT; -- not a statement'"';
SELECT 1 AS "END";
'
check_nodb --dir "$D" check
is "$RC|$ERR" "0|" "check: the fixed up.sql passes"
run_ferry --dir "$D" run "$V" --dry-run
is "$RC|$ERR" "0|" "run --dry-run: the fixed up.sql"
run_ferry --dir "$D" up
is "$RC|$ERR" "0|" "up: the fixed up.sql runs"
is "$(psql_val "$db" 'SELECT string_agg(id || $$:$$ || vip, $$ $$) FROM "Lead"')" "1:true" "...whole"
is "$(history "$db")" "20261201_lead|up|applied
$V|up|applied" "...and is recorded applied"

# --- rollback.sql runs outside a transaction: BEGIN/COMMIT are its own
put "$D/migrations/$V/rollback.sql" 'BEGIN;
DROP FUNCTION is_vip, lead_count;
ALTER TABLE "Lead" DROP COLUMN vip;
COMMIT;
'
check_nodb --dir "$D" check
is "$RC|$ERR" "0|" "check: BEGIN/COMMIT in rollback.sql are fine"
run_ferry --dir "$D" rollback "$V"
is "$RC|$ERR" "0|" "rollback with its own BEGIN/COMMIT runs"
is "$(psql_val "$db" "SELECT count(*) FROM information_schema.columns WHERE table_name = 'Lead' AND column_name = 'vip'")" \
   0 "...and rolls back"

# --- an up.sql applied before ferry refused them is not run by up again,
# so up does not refuse it; run (which would run it) does
put "$D/migrations/20261203_old/up.sql" 'BEGIN; CREATE TABLE old_t (x int); COMMIT;'
psql_val "$db" "INSERT INTO ferry.history (migration, version, name, operation, status, run_id, checksum)
    VALUES ('20261203_old', '20261203', 'old', 'up', 'applied', gen_random_uuid(), 'x')" >/dev/null
run_ferry --dir "$D" up
is "$RC|$ERR" "0|" "up: an applied up.sql holding COMMIT is not refused (it does not run)"
run_ferry --dir "$D" run 20261203_old
is "$RC|$OUT|$ERR" "2||ferry: migrations/20261203_old/up.sql:1: BEGIN: $WHY" "run: refused"
rm -r "$D/migrations/20261203_old"

# --- up.lua beside an up.sql: only up.lua runs, so the up.sql is not read
put "$D/migrations/20261209_both/up.sql" 'BEGIN; SELECT 1; COMMIT;'
put "$D/migrations/20261209_both/up.lua" 'stats.inc("ran")'
run_ferry --dir "$D" run 20261209_both
is "$RC|$ERR" "0|" "up.lua beside an up.sql with BEGIN: up.lua runs"
check_nodb --dir "$D" check
is "$RC" 1 "check: fails for the pair (exit 1), not for the up.sql"
like "$OUT" 'FAIL migrations/20261209_both  has both up\.lua and up\.sql' "...saying so"

# --- a statement the server refuses inside any transaction block (CREATE
# INDEX CONCURRENTLY, VACUUM, ...) can never run in up.sql's: check and the
# dry run passed it and the real run failed.  Refused as BEGIN is, naming
# the way (an up.lua); the same words elsewhere are fine
C=$TAP_TMPDIR/conc
CI=20261210_idx
put "$C/migrations/20261201_lead/up.sql" 'CREATE TABLE "Lead" (id int PRIMARY KEY);'
put "$C/migrations/$CI/up.sql" '-- an index without blocking writes
CREATE INDEX IF NOT EXISTS lead_id_idx ON "Lead" (id);
DO $$ BEGIN PERFORM 1; END $$; -- VACUUM in a comment, '"'"'CREATE INDEX CONCURRENTLY'"'"' in a string
create unique index
  concurrently lead_id_uidx ON "Lead" (id);'
HOW="cannot run inside a transaction block, and up.sql runs in one that ferry begins and commits: run it from an up.lua with db.exec, outside the dry run (see docs/authoring.md, section 10)"
check_nodb --dir "$C" check
is "$RC|$(grep 'up.sql' <<<"$OUT")|$ERR" "2|FAIL migrations/$CI/up.sql  migrations/$CI/up.sql:4: CREATE UNIQUE INDEX CONCURRENTLY $HOW|" \
   "check: an up.sql with CREATE INDEX CONCURRENTLY is refused, exit 2, naming file and line"
run_ferry --dir "$C" up --to 20261201
before=$(db_snapshot "$db")
for cmd in "run $CI" "run $CI --dry-run" "up" "up --dry-run"; do
    # shellcheck disable=SC2086
    run_ferry --dir "$C" $cmd
    is "$RC|$OUT|$ERR" "2||ferry: migrations/$CI/up.sql:4: CREATE UNIQUE INDEX CONCURRENTLY $HOW" "$cmd: refused, exit 2, one line"
    is "$(db_snapshot "$db")" "$before" "$cmd: nothing written"
done
for stmt in 'VACUUM "Lead"|VACUUM' 'vacuum|VACUUM' 'DROP INDEX CONCURRENTLY IF EXISTS lead_id_idx|DROP INDEX CONCURRENTLY' \
            'REINDEX (VERBOSE) INDEX CONCURRENTLY lead_id_idx|REINDEX CONCURRENTLY' 'ALTER SYSTEM SET work_mem = 1|ALTER SYSTEM' \
            'CREATE DATABASE other|CREATE DATABASE' 'DROP DATABASE IF EXISTS other|DROP DATABASE' \
            'CREATE TABLESPACE t LOCATION '"'"'/x'"'"'|CREATE TABLESPACE' 'DROP TABLESPACE IF EXISTS t|DROP TABLESPACE' \
            'REINDEX (CONCURRENTLY) TABLE "Lead"|REINDEX CONCURRENTLY' 'reindex (verbose, concurrently true) index lead_id_idx|REINDEX CONCURRENTLY' \
            'REINDEX SCHEMA public|REINDEX SCHEMA' 'REINDEX (VERBOSE) DATABASE ferry|REINDEX DATABASE' 'reindex system|REINDEX SYSTEM' \
            'CLUSTER|CLUSTER' 'cluster verbose|CLUSTER' 'CLUSTER (VERBOSE)|CLUSTER'; do
    put "$C/migrations/$CI/up.sql" "SELECT 1;
${stmt%|*};"
    check_nodb --dir "$C" check
    is "$RC|$(grep 'up.sql' <<<"$OUT")" "2|FAIL migrations/$CI/up.sql  migrations/$CI/up.sql:2: ${stmt#*|} $HOW" "check: ${stmt%|*} refused"
done
# DISCARD ALL has no up.lua to go to (on ferry's session it releases the lock, which is refused there)
put "$C/migrations/$CI/up.sql" 'SELECT 1;
discard all;'
check_nodb --dir "$C" check
is "$RC|$(grep 'up.sql' <<<"$OUT")" "2|FAIL migrations/$CI/up.sql  migrations/$CI/up.sql:2: DISCARD ALL cannot run inside a transaction block, and up.sql runs in one that ferry begins and commits: leave it out (on ferry's session it would also release ferry's migration lock; DISCARD PLANS, SEQUENCES and TEMP run in a transaction)" \
   "check: DISCARD ALL refused, told to leave it out"
put "$C/migrations/$CI/up.sql" 'CREATE INDEX IF NOT EXISTS lead_id_idx ON "Lead" (id);
CREATE INDEX "concurrently" ON "Lead" (id); ALTER TABLE "Lead" ADD COLUMN system text; CREATE INDEX concurrently_idx ON "Lead" (system);
REINDEX TABLE "Lead"; REINDEX (CONCURRENTLY false) INDEX lead_id_idx; reindex (concurrently off) table "Lead";
CLUSTER "Lead" USING lead_id_idx; CLUSTER "Lead"; DISCARD PLANS;'
run_ferry --dir "$C" run "$CI"
is "$RC|$ERR" "0|" "an index without CONCURRENTLY, the words as names, REINDEX and CLUSTER of a table, run"

done_testing
