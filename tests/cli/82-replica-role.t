#!/usr/bin/env bash
# session_replication_role = replica set by the DBA on the database or the
# role (or in PGOPTIONS): the rows a run writes or deletes then fire none
# of the tables' ordinary triggers, and no foreign-key check or cascade (a
# bulk load may want exactly that).  ferry does not change it (only a
# superuser may), but says so once, before the first migration it runs or
# rolls back, so that an operator who did not mean it knows why the
# application's triggers stayed quiet.  Without it, no note.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_t/up.sql" 'CREATE TABLE t (i int);
CREATE TABLE fired (n int);
CREATE FUNCTION t_fired() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO fired VALUES (NEW.i); RETURN NEW; END $$;
CREATE TRIGGER t_fired AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION t_fired();'
put "$D/migrations/20250102_d/up.lua" 'if not ctx.dry_run then db.exec("INSERT INTO t VALUES (1), (2)") end'
put "$D/migrations/20250102_d/rollback.sql" 'DELETE FROM t;'
put "$D/migrations/20250103_e/up.lua" 'db.exec("INSERT INTO t VALUES (3)")'
mkdir -p "$D/rules"
db=$(fresh_db ferry_cli_replica)
note="note: session_replication_role is replica on ferry's sessions (set for this database or role, or in PGOPTIONS): the rows a migration writes or deletes fire none of the tables' ordinary triggers, and no foreign-key check or cascade"

run_ferry --db "$db" --dir "$D" -q up --to 20250101
is "$RC|$ERR" "0|" "the default (origin): no note"

psql_val "$(db_uri postgres)" "ALTER DATABASE ferry_cli_replica SET session_replication_role = replica" >/dev/null
# (-q leaves notes out, as any warning)
notes() { grep -c '^note: session_replication_role' <<<"$ERR"; }
run_ferry --db "$db" --dir "$D" run 20250102 --dry-run
is "$RC|$(notes)|$(grep '^note: session' <<<"$ERR")" "0|1|$note" "replica, a dry run: the note, once"
run_ferry --db "$db" --dir "$D" up
is "$RC|$(notes)|$(grep '^note: session' <<<"$ERR")|$(grep -c '^==> ' <<<"$OUT")" "0|1|$note|2" \
   "replica, up of two migrations: the note, once"
is "$(psql_val "$db" "SELECT (SELECT count(*) FROM t) || '/' || (SELECT count(*) FROM fired)")" "3/0" \
   "...and it is so: three rows written, the trigger fired for none"
run_ferry --db "$db" --dir "$D" rollback 20250102
is "$RC|$(notes)|$(grep '^note: session' <<<"$ERR")" "0|1|$note" "replica, rollback: the note"
run_ferry --db "$db" --dir "$D" run 20250102
is "$RC|$(notes)|$(grep '^note: session' <<<"$ERR")" "0|1|$note" "replica, run: the note"
run_ferry --db "$db" --dir "$D" status
is "$RC|$(notes)" "0|0" "status writes nothing: no note"

psql_val "$(db_uri postgres)" "ALTER DATABASE ferry_cli_replica RESET session_replication_role" >/dev/null
run_ferry --db "$db" --dir "$D" -q rollback 20250102
run_ferry --db "$db" --dir "$D" up
is "$RC|$(notes)|$(psql_val "$db" "SELECT count(*) FROM fired")" "0|0|2" "reset: no note, the trigger fires"
done_testing
