#!/usr/bin/env bash
# A dry run of a schema step (up.sql) tells in advance what its real run
# would meet on a database that already has what it creates (set up without
# ferry: a schema dump, the contract schema): the step would fail with
# "already exists", so the dry run fails too, with the same advice as the
# real run (ferry baseline).  It reads the names the script creates --
# tables, indexes, sequences, views, schemas, types, extensions, not with
# IF NOT EXISTS -- and looks them up where the CREATE would put them; only
# before the first statement that could change what exists or where names
# go (anything but CREATE, COMMENT, GRANT, REVOKE, INSERT), and not in a
# step after one that had such a statement: a dry run must never fail a
# script that would pass.  What is in comments, strings or dollar-quoted
# bodies does not count.  Nothing is run or written.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_dry_existing)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_t/up.sql" '-- the first table
CREATE TABLE t (x int);
CREATE INDEX t_x_idx ON t (x);
CREATE SCHEMA s;'
put "$D/migrations/20250102_u/up.sql" 'CREATE TABLE u (z int);'
psql_val "$db" "CREATE TABLE t (x int); CREATE INDEX t_x_idx ON t (x); CREATE SCHEMA s" >/dev/null

HINT="; the database already has what this migration creates: if it was set up without ferry (from a schema dump), record the migrations it already has as applied with 'ferry baseline VERSION' (the version of the last migration it has: 'ferry status' lists them), then run 'ferry up' again"
WOULD="ferry: migrations/20250101_t/up.sql: a dry run: the script would fail: relation \"t\" already exists (and 2 more of what it creates)"

run_ferry --dir "$D" up --dry-run
is "$RC" 1 "up --dry-run on a database that has what the first step creates: exit 1"
is "$ERR" "$WOULD$HINT" "...the first object that exists, how many more, and how to record what the database has"
like "$OUT" "Would run migrations/20250101_t/up.sql in one transaction" "...after the line saying what it would run"
unlike "$OUT" "20250102_u" "...and it stops there, as up would"
is "$(psql_val "$db" "SELECT to_regnamespace('ferry') IS NULL")" "t" "nothing written, not even ferry's schema"

run_ferry --dir "$D" --json up --dry-run
is "$RC" 1 "the same with --json: exit 1"
is "$(json_eval "$OUT" 'j["migrations"][0]["error"]')" "${WOULD#ferry: }" "...its result's error without the advice"
is "$(printf '%s\n' "$ERR" | tail -n 1)" "$WOULD$HINT" "...stderr ends with it, with the advice (the log goes there with --json)"

run_ferry --dir "$D" run 20250101 --dry-run
is "$RC|$ERR" "1|$WOULD$HINT" "run --dry-run of the step: the same"

# status says so beforehand, on the step's line (and "exists_already" in --json)
run_ferry --dir "$D" status
is "$RC|$OUT" "0|$STATUS_HEADER
$(status_line 20250101_t pending - "relation \"t\" (and 2 more it creates) exists already: set up without ferry? (see 'ferry baseline')")
$(status_line 20250102_u pending - -)" "status: the step whose objects exist is noted"
run_ferry --dir "$D" --json status
is "$(json_eval "$OUT" '[m.get("exists_already") for m in j["migrations"]]')" "[true,null]" \
   "...--json: exists_already on it, left out on the other"

# what does not count
put "$D/migrations/20250101_t/up.sql" "CREATE TABLE IF NOT EXISTS t (x int);
/* CREATE TABLE t (x int); */ -- CREATE TABLE t (y int);
SELECT 'CREATE TABLE t (x int)';
DO \$\$ BEGIN CREATE TABLE t (x int); EXCEPTION WHEN duplicate_table THEN NULL; END \$\$;
DROP INDEX t_x_idx;
CREATE INDEX t_x_idx ON t (x);
CREATE INDEX ON t (x);
ALTER SCHEMA s RENAME TO s_old;
CREATE SCHEMA s;
CREATE OR REPLACE VIEW v AS SELECT 1 AS one;
CREATE TEMP TABLE t (x int);
CREATE SCHEMA IF NOT EXISTS s2;"
psql_val "$db" "CREATE VIEW v AS SELECT 1 AS one; CREATE SCHEMA s2" >/dev/null
run_ferry --dir "$D" run 20250101 --dry-run
is "$RC|$ERR" "0|" "IF NOT EXISTS, comments, strings, DO bodies, dropped or renamed first, OR REPLACE, TEMP, no name: a dry run that passes"
run_ferry --dir "$D" run 20250101
is "$RC" 0 "...and indeed the real run passes"

# quoted and qualified names, as the server reads them; each kind
psql_val "$db" "CREATE TABLE \"T2\" (x int); CREATE SEQUENCE q; CREATE TYPE \"Mood\" AS ENUM ('ok');
                CREATE MATERIALIZED VIEW mv AS SELECT 1 AS one" >/dev/null
try_step() { # up.sql text -> RC|ERR of its dry run
  put "$D/migrations/20250103_w/up.sql" "$1"
  run_ferry --dir "$D" run 20250103 --dry-run
  printf '%s|%s' "$RC" "$ERR"
}
PFX="1|ferry: migrations/20250103_w/up.sql: a dry run: the script would fail:"
is "$(try_step 'CREATE TABLE public."T2" (x int);')" "$PFX relation \"T2\" already exists$HINT" "a quoted, qualified table"
is "$(try_step 'CREATE TABLE "t2" (x int); CREATE TABLE T3 (x int);')" "0|" "\"t2\" is not \"T2\", nor T3 (folded to t3)"
is "$(try_step 'CREATE TABLE Public.T (x int);')" "$PFX relation \"t\" already exists$HINT" "unquoted names fold to lower case"
is "$(try_step 'CREATE UNLOGGED TABLE x (a int); CREATE SEQUENCE IF NOT EXISTS q; CREATE SEQUENCE q;')" \
   "$PFX relation \"q\" already exists$HINT" "a sequence (after what does not exist, or says IF NOT EXISTS)"
is "$(try_step 'CREATE UNIQUE INDEX IF NOT EXISTS t_x_idx ON t (x); CREATE MATERIALIZED VIEW mv AS SELECT 2;')" \
   "$PFX relation \"mv\" already exists$HINT" "a materialized view"
is "$(try_step 'CREATE TYPE "Mood" AS ENUM ('"'"'ok'"'"');')" "$PFX type \"Mood\" already exists$HINT" "a type"
is "$(try_step 'CREATE TYPE t AS (a int);')" "$PFX type \"t\" already exists$HINT" "a type named as a table (its row type)"
is "$(try_step 'CREATE EXTENSION plpgsql;')" "$PFX extension \"plpgsql\" already exists$HINT" "an extension"
is "$(try_step 'CREATE SCHEMA s2 CREATE TABLE z (a int);')" "$PFX schema \"s2\" already exists$HINT" "a schema"
is "$(try_step 'DROP TABLE IF EXISTS x, "T2"; CREATE TABLE "T2" (x int); ALTER TABLE IF EXISTS q RENAME TO q2; CREATE SEQUENCE q;')" \
   "0|" "dropped (one of a list) or renamed first: no failure"
is "$(try_step 'CREATE TABLE too.many.dots.here (a int);')" "0|" "a name the server cannot look up: left to the real run"
is "$(try_step "COMMENT ON TABLE t IS 'x'; GRANT SELECT ON t TO PUBLIC; INSERT INTO t VALUES (1); CREATE TABLE t (x int);")" \
   "$PFX relation \"t\" already exists$HINT" "after COMMENT, GRANT, INSERT: still read"
# what could change what exists, or where names go, ends the reading: no
# failure of a script that would pass
is "$(try_step 'CREATE TYPE point AS (x int, y int);')" "0|" "a type named as one of pg_catalog's: looked up where it goes (public)"
is "$(try_step 'CREATE SCHEMA app; CREATE TABLE app.t (x int); CREATE INDEX t_x_idx ON app.t (x);')" "0|" \
   "an index goes in its table's schema (t_x_idx is public's)"
is "$(try_step 'SET search_path = app; CREATE TABLE t (x int);')" "0|" "after SET: not read"
is "$(try_step 'DROP TABLE t; CREATE TABLE t (x int); CREATE INDEX t_x_idx ON t (x);')" "0|" \
   "after DROP (which takes the index with it): not read"
is "$(try_step "DO \$\$ BEGIN EXECUTE 'DROP TABLE t'; END \$\$; CREATE TABLE t (x int);")" "0|" "after a DO block: not read"
is "$(try_step '(SELECT 1); CREATE TABLE t (x int);')" "0|" "after a statement in parentheses: not read"
is "$(try_step 'CREATE TABLE U&"t" (x int);')" "0|" "a name the tokens do not take whole (U&\"...\"): left to the real run"
# ... nor in a step after one with such a statement (up --dry-run runs none of them)
put "$D/migrations/20250103_w/up.sql" 'DROP TABLE "T2";'
put "$D/migrations/20250104_x/up.sql" 'CREATE TABLE "T2" (x int);'
run_ferry --dir "$D" up --dry-run
is "$RC|$ERR" "0|" "a step that drops a table, then one that creates it: the second is not read"
rm -r "$D/migrations/20250104_x"
rm -r "$D/migrations/20250103_w"

# an applied step run again as a dry run: it would fail, with no advice to
# baseline it
run_ferry --dir "$D" up
is "$RC" 0 "up applies the rest"
run_ferry --dir "$D" run 20250102 --dry-run
is "$RC|$ERR" "1|ferry: migrations/20250102_u/up.sql: a dry run: the script would fail: relation \"u\" already exists" \
   "a dry run of an applied step again: it would fail, no advice"

# a data migration's dry run is its own script's: nothing read from it
put "$D/migrations/20250105_data/up.lua" 'log.info("data")'
run_ferry --dir "$D" run 20250105 --dry-run
is "$RC" 0 "a data migration's dry run: as before"

done_testing
