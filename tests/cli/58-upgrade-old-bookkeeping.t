#!/usr/bin/env bash
# Upgrading ferry: a database whose bookkeeping (schema ferry) an older
# ferry created and filled -- written here in plain SQL as the first
# version (0.1.0 of 2026-11-29) wrote it: its DDL, its history rows, a run
# killed mid-way with its checkpoint (counters as [name, value] pairs and
# an "errors" list; no sums of up.lua and the rules, which ferry records
# since 2026-12-06), a failed run.  This ferry reads it as it is: no step,
# no CHANGED for unchanged scripts (the checksum scheme is the first
# one's), the killed run resumed with its counters; a run resuming such a
# checkpoint says what it can of edits since, from the checksum the killed
# run's history row holds.  And the bookkeeping this ferry creates is the
# first version's, column for column, so that older ferrys of a team read
# it (README "Upgrading ferry").
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

D=$TAP_TMPDIR/proj
put "$D/rules/scale.lua" 'return {factor = 2}'
put "$D/migrations/20250101_items/up.sql" 'CREATE TABLE items (n int PRIMARY KEY, v int);'
put "$D/migrations/20250101_items/rollback.sql" 'DROP TABLE items;'
# 5 batches of 2 rows, a checkpoint after each
FILL_UP='local scale = require "rules.scale"
stats.declare{"rows_created"}
for b = (ctx.checkpoint.get() or 0) + 1, 5 do
  db.transaction(function()
    for n = b * 2 - 1, b * 2 do
      db.exec("INSERT INTO items VALUES ($1, $2)", n, n * scale.factor)
      stats.inc("rows_created")
    end
    ctx.checkpoint.save(b)
  end)
end'
put "$D/migrations/20250102_fill/up.lua" "$FILL_UP"
put "$D/migrations/20250102_fill/rollback.sql" 'DELETE FROM items;'
put "$D/migrations/20250102_fill/validate.lua" 'check("ten items", function()
  local c = db.one("SELECT count(*)::int AS c FROM items").c
  return c == 10, c .. " items"
end)'
put "$D/migrations/20250103_gate/up.sql" 'DO $$ BEGIN
  IF to_regclass('"'"'public.gate_ok'"'"') IS NULL THEN RAISE EXCEPTION '"'"'gate: table gate_ok missing'"'"'; END IF;
END $$;'

# The checksum as every ferry so far computes it: SHA-256 over each script
# (up.lua, up.sql, down.lua, rollback.sql, validate.lua), then each rule file
# its run loaded (sorted), as "path NUL text NUL".
sum_of() { # MIGRATION [RULE...]
    python3 - "$D" "$@" <<'PY'
import hashlib, os, sys
root, mig, rules = sys.argv[1], sys.argv[2], sys.argv[3:]
files = ["migrations/%s/%s" % (mig, f) for f in ("up.lua", "up.sql", "down.lua", "rollback.sql", "validate.lua")
         if os.path.exists(os.path.join(root, "migrations", mig, f))]
h = hashlib.sha256()
for f in files + sorted(rules):
    h.update(f.encode() + b"\0" + open(os.path.join(root, f), "rb").read().replace(b"\r\n", b"\n") + b"\0")
print(h.hexdigest())
PY
}

# old_state DB: the bookkeeping ferry 0.1.0 left: 20250101_items applied,
# 20250102_fill killed after its second batch (its row still 'running', its
# session gone), 20250103_gate failed.
old_state() {
    psql_val "$1" "
CREATE SCHEMA IF NOT EXISTS ferry;
CREATE TABLE IF NOT EXISTS ferry.history (
  id            bigserial PRIMARY KEY,
  migration     text NOT NULL,
  version       text NOT NULL,
  name          text NOT NULL,
  operation     text NOT NULL CHECK (operation IN ('up', 'run', 'rollback', 'baseline')),
  status        text NOT NULL CHECK (status IN ('running', 'applied', 'failed', 'rolled back')),
  run_id        uuid NOT NULL,
  checksum      text,
  rules         text[] NOT NULL DEFAULT '{}',
  started_at    timestamptz NOT NULL DEFAULT now(),
  finished_at   timestamptz,
  stats         jsonb,
  error         text,
  host          text,
  pid           integer,
  backend_pid   integer,
  ferry_version text
);
CREATE INDEX IF NOT EXISTS history_migration_idx ON ferry.history (migration, id);
CREATE TABLE IF NOT EXISTS ferry.checkpoint (
  migration  text PRIMARY KEY,
  run_id     uuid NOT NULL,
  position   jsonb,
  stats      jsonb,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE items (n int PRIMARY KEY, v int);
INSERT INTO items SELECT n, n * 2 FROM generate_series(1, 4) n;
INSERT INTO ferry.history (migration, version, name, operation, status, run_id, checksum, rules,
                           started_at, finished_at, stats, error, host, pid, backend_pid, ferry_version) VALUES
  ('20250101_items', '20250101', 'items', 'up', 'applied', '11111111-1111-4111-8111-111111111111',
   '$(sum_of 20250101_items)', '{}', '2026-11-29 10:00:00Z', '2026-11-29 10:00:01Z',
   '{\"stats\": {}, \"errors\": []}', NULL, 'oldhost', 4242, 2147483001, '0.1.0'),
  ('20250102_fill', '20250102', 'fill', 'run', 'running', '22222222-2222-4222-8222-222222222222',
   '$(sum_of 20250102_fill)', '{}', '2026-11-29 10:01:00Z', NULL, NULL, NULL, 'oldhost', 4243, 2147483002, '0.1.0'),
  ('20250103_gate', '20250103', 'gate', 'run', 'failed', '33333333-3333-4333-8333-333333333333',
   '$(sum_of 20250103_gate)', '{}', '2026-11-29 10:02:00Z', '2026-11-29 10:02:01Z',
   '{\"stats\": {}, \"errors\": []}', 'migrations/20250103_gate/up.sql: script failed: gate: table gate_ok missing [SQLSTATE P0001]',
   'oldhost', 4244, 2147483003, '0.1.0');
INSERT INTO ferry.checkpoint (migration, run_id, position, stats, updated_at) VALUES
  ('20250102_fill', '22222222-2222-4222-8222-222222222222', '2',
   '{\"errors\": [], \"counters\": [[\"rows_created\", 4], [\"errors\", 0]]}', '2026-11-29 10:01:02Z');" >/dev/null
}

db=$(fresh_db ferry_cli_upgrade)
export DATABASE_URL=$db
old_state "$db"

# status and history read the old rows as they are
run_ferry --dir "$D" status
is "$RC|$(norm_times "$OUT")" "0|$STATUS_HEADER
$(status_line 20250101_items applied "$TS" ok)
$(status_line 20250102_fill interrupted - "process gone; the next run resumes from its checkpoint")
$(status_line 20250103_gate failed - -)" \
   "status: the applied migration ok (no CHANGED: same checksum scheme), the killed run interrupted, the failed one failed"
run_ferry --dir "$D" --json status
is "$RC|$(json_eval "$OUT" '[(m["migration"], m["status"], m.get("checksum_changed"), m["checkpoint"]) for m in j["migrations"]]')" \
   '0|[["20250101_items","applied",false,false],["20250102_fill","interrupted",null,true],["20250103_gate","failed",null,false]]' \
   "status --json: the same"
run_ferry --dir "$D" history
is "$RC|$OUT" "0|STARTED AT            MIGRATION                                     OPERATION STATUS       TIME
2026-11-29T10:00:00Z  20250101_items                                up        applied      1.00 s
2026-11-29T10:01:00Z  20250102_fill                                 run       interrupted  -
    errors 0, rows_created 4
2026-11-29T10:02:00Z  20250103_gate                                 run       failed       1.00 s
    error: migrations/20250103_gate/up.sql: script failed: gate: table gate_ok missing [SQLSTATE P0001]" \
   "history: the old rows, the killed run's counters from its old checkpoint"
run_ferry --dir "$D" --json history
is "$RC|$(json_eval "$OUT" '[(r["migration"], r["status"], r["stats"], r["ferry_version"]) for r in j["runs"]]')" \
   '0|[["20250101_items","applied",{},"0.1.0"],["20250102_fill","interrupted",{"errors":0,"rows_created":4},"0.1.0"],["20250103_gate","failed",{},"0.1.0"]]' \
   "history --json: the same"
run_ferry --dir "$D" validate 20250102
is "$RC" 1 "validate of the killed migration fails its check"
like "$ERR" "^note: the last run of 20250102_fill was interrupted \\(started 2026-11-29T10:01:00Z;" "...with the note that its last run was interrupted"

# resumed: unchanged scripts; the rules cannot be compared (not recorded)
run_ferry --dir "$D" run 20250102
is "$RC" 0 "run resumes the killed run"
like "$ERR" "note: the checkpoint this run resumes was saved by an older ferry, which kept no sums of the files: the scripts of migrations/20250102_fill are as its run started them; whether a rule file they load was edited since cannot be told" \
     "...saying the scripts are unchanged and the rules cannot be told"
unlike "$ERR" "note: changed since" "...and no change named"
is "$(psql_val "$db" "SELECT string_agg(n || ':' || v, ',' ORDER BY n) FROM items")" "1:2,2:4,3:6,4:8,5:10,6:12,7:14,8:16,9:18,10:20" \
   "the rows: the old run's 4 and the rest"
is "$(psql_val "$db" "SELECT stats->'stats'->>'rows_created' FROM ferry.history WHERE migration = '20250102_fill' AND status = 'applied'")" 10 \
   "the applied row counts all 10 (the old checkpoint's counters restored)"
is "$(psql_val "$db" "SELECT status || '|' || (stats->'stats'->>'rows_created') FROM ferry.history WHERE run_id = '22222222-2222-4222-8222-222222222222'")" "failed|4" \
   "the killed row closed failed, with its counters"
run_ferry --dir "$D" validate 20250102
is "$RC|$ERR" "0|" "validate passes, no note"

# up: the failed migration runs again, and is applied once it can be
run_ferry --dir "$D" up
is "$RC" 1 "up: the gate fails again"
psql_val "$db" "CREATE TABLE gate_ok ()" >/dev/null
run_ferry --dir "$D" up
is "$RC" 0 "up applies it"
run_ferry --dir "$D" status
is "$RC|$(norm_times "$OUT")" "0|$STATUS_HEADER
$(status_line 20250101_items applied "$TS" ok)
$(status_line 20250102_fill applied "$TS" ok)
$(status_line 20250103_gate applied "$TS" ok)" "status: all applied, checksums ok"
run_ferry --dir "$D" rollback 20250102
is "$RC|$(psql_val "$db" "SELECT count(*) FROM items")" "0|0" "rollback of the resumed migration"
run_ferry --dir "$D" rollback 20250101
is "$RC|$(psql_val "$db" "SELECT to_regclass('items') IS NULL")" "0|t" "rollback of the one the old ferry applied (no --force: ferry applied it here)"
run_ferry --dir "$D" baseline 20250102
is "$RC|$OUT" "0|baselined 20250101_items (recorded as applied, not run)
baselined 20250102_fill (recorded as applied, not run)" "baseline of both"
is "$(history "$db")" "20250101_items|up|applied
20250102_fill|run|failed
20250103_gate|run|failed
20250102_fill|run|applied
20250103_gate|up|failed
20250103_gate|up|applied
20250102_fill|rollback|rolled back
20250101_items|rollback|rolled back
20250101_items|baseline|applied
20250102_fill|baseline|applied" "every row kept, the old ones first"

# A run resuming an old checkpoint after its up.lua was edited: named
db2=$(fresh_db ferry_cli_upgrade_edited)
old_state "$db2"
printf '\n-- edited\n' >>"$D/migrations/20250102_fill/up.lua"
run_ferry --dir "$D" --db "$db2" run 20250102
is "$RC" 0 "an edited migration resumes its old checkpoint"
like "$ERR" "note: changed since the interrupted run this one resumes: the scripts of migrations/20250102_fill \\(its checkpoint, saved by an older ferry, holds no sums of its files: which of them, and whether a rule file they load was edited too, cannot be told\\); the rows it committed were made by the earlier version, the rest by this one \\(to have every row made by this one, roll back the migration and run it again\\)" \
     "...and says its scripts changed since the killed run"
# ... and with no history row for that checkpoint (deleted by hand): nothing to compare
db3=$(fresh_db ferry_cli_upgrade_norow)
old_state "$db3"
psql_val "$db3" "DELETE FROM ferry.history WHERE migration = '20250102_fill'" >/dev/null
run_ferry --dir "$D" --db "$db3" run 20250102
is "$RC" 0 "an old checkpoint whose run has no history row resumes"
like "$ERR" "note: the checkpoint this run resumes was saved by an older ferry, which kept no sums of the files, and no history row of its run is left: whether the scripts of migrations/20250102_fill or a rule file they load were edited since cannot be told" \
     "...saying nothing can be compared"
put "$D/migrations/20250102_fill/up.lua" "$FILL_UP"

# The bookkeeping this ferry creates is the first version's: what an older
# ferry of the same team reads and writes.  (A change here needs an upgrade
# of existing databases, and README "Upgrading ferry".)
cols() {
    psql_val "$1" "SELECT string_agg(format('%s.%s %s %s %s', table_name, column_name, data_type, is_nullable, coalesce(column_default, '-')),
                                     E'\n' ORDER BY table_name, ordinal_position)
                     FROM information_schema.columns WHERE table_schema = 'ferry'"
}
defs() {
    psql_val "$1" "SELECT string_agg(d, E'\n' ORDER BY d) FROM (
                     SELECT c.relname || ' ' || pg_get_constraintdef(k.oid) AS d
                       FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = 'ferry'
                     UNION ALL
                     SELECT indexdef FROM pg_indexes WHERE schemaname = 'ferry'
                     UNION ALL
                     SELECT 'relation ' || c.relname || ' ' || c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = 'ferry') x"
}
db4=$(fresh_db ferry_cli_upgrade_new)
run_ferry --dir "$D" --db "$db4" up --to 20250101
is "$RC" 0 "a new database: this ferry creates its bookkeeping"
is "$(cols "$db4")" "$(cols "$db2")" "...the columns of the first version's, with their types and defaults"
is "$(defs "$db4")" "$(defs "$db2")" "...its tables, sequence, keys, checks and index"

done_testing
