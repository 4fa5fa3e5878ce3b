#!/usr/bin/env bash
# ferry history [MIGRATION]: the runs ferry.history records, oldest first --
# when, what, how it ended, how long, the counters, the error -- as a table
# or --json, for every migration or one (its id or name, a unique prefix of
# either, also one whose folder is gone).  Before, the record could only be
# read with SQL.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_history_cmd)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_table/up.sql" 'CREATE TABLE t (x int);'
put "$D/migrations/20250101_table/rollback.sql" 'DROP TABLE t;'
put "$D/migrations/20250102_fill/up.lua" 'stats.declare{"rows_seen", "rows_written"}
stats.inc("rows_seen", 3)
stats.inc("rows_written", 2)
if os.getenv("FAIL_FILL") then error("the fill failed on purpose") end
if os.getenv("ROW_ERR") then stats.error("row 7", "no text") end'
put "$D/migrations/20250103_other/up.lua" 'stats.inc("n")'

# nothing recorded yet (no schema ferry at all)
run_ferry --dir "$D" history
is "$RC|$OUT|$ERR" "0|no runs recorded on this database|" "history before any run: says so, exit 0"
run_ferry --dir "$D" --json history
is "$RC|$OUT" '0|{"runs":[]}' "...--json: an empty list"
is "$(psql_val "$db" "SELECT to_regclass('ferry.history') IS NULL")" "t" "...and it creates nothing"

run_ferry --dir "$D" up --to 20250102
is "$RC" 0 "up to 20250102"
FAIL_FILL=1 run_ferry --dir "$D" run 20250102
is "$RC" 1 "a failed re-run of the fill"
ROW_ERR=1 run_ferry --dir "$D" run 20250102
is "$RC" 1 "a run with a row error"
run_ferry --dir "$D" rollback 20250101 --force
is "$RC" 0 "a rollback"
run_ferry --dir "$D" baseline 20250103
is "$RC" 0 "a baseline"

norm() {   # times and durations out
    norm_times "$1" | sed -E 's/ [0-9]+\.[0-9]{2} s$/ N.NN s/'
}
HEAD=$(printf '%-21s %-45s %-9s %-12s %s' "STARTED AT" MIGRATION OPERATION STATUS TIME)
line() { printf '%-21s %-45s %-9s %-12s %s' "$TS" "$1" "$2" "$3" "N.NN s"; }
run_ferry --dir "$D" history
is "$RC|$ERR" "0|" "history: exit 0"
is "$(norm "$OUT")" "$HEAD
$(line 20250101_table up applied)
$(line 20250102_fill up applied)
    rows_seen 3, rows_written 2
$(line 20250102_fill run failed)
    rows_seen 3, rows_written 2
    error: migrations/20250102_fill/up.lua:4: the fill failed on purpose
$(line 20250102_fill run failed)
    errors 1, rows_seen 3, rows_written 2
    error: 1 row errors
$(line 20250101_table rollback "rolled back")
$(line 20250101_table baseline applied)
$(line 20250103_other baseline applied)" \
   "history: every run, oldest first, with its counters (by name) and the first line of its error"

# -v: the kept row errors and who ran it
run_ferry --dir "$D" -v history 20250102_fill
like "$OUT" $'\n    errors 1, rows_seen 3, rows_written 2\n    error: 1 row errors\n    row row 7: no text\n    by [^ ]+ pid [0-9]+, ferry [^ ]+, run [0-9a-f-]{36}' \
     "-v: the row errors it kept, and the host, pid, ferry version and run id"
like "$OUT" $'\n    error: migrations/20250102_fill/up.lua:4: the fill failed on purpose\n    stack traceback:\n' \
     "-v: the error's traceback as recorded"

# one migration: an id, a prefix of the id or of the name
for key in 20250102_fill 20250102 fill; do
    run_ferry --dir "$D" history "$key"
    is "$RC|$(norm "$OUT" | grep -c '^YYYY')|$(norm "$OUT" | grep -vc -e '^YYYY' -e '^    ' -e '^STARTED')" "0|3|0" \
       "history $key: the fill's three runs only"
done
run_ferry --dir "$D" history 2025010
is "$RC|$ERR" "2|ferry: ambiguous migration 2025010: 20250101_table, 20250102_fill, 20250103_other" "an ambiguous prefix: exit 2"
run_ferry --dir "$D" history nosuch
is "$RC|$ERR" "2|ferry: unknown migration nosuch" "an unknown migration: exit 2"
run_ferry --dir "$D" history 20250101 20250102
is "$RC|$ERR" "2|ferry: history takes at most one migration" "two migrations: exit 2"

# a migration whose folder is gone: its runs stay readable
mv "$D/migrations/20250103_other" "$TAP_TMPDIR/gone"
run_ferry --dir "$D" history 20250103_other
is "$RC|$(norm "$OUT")" "0|$HEAD
$(line 20250103_other baseline applied)" "a migration whose folder is gone: its runs"
run_ferry --dir "$D" history 20250104
is "$RC|$ERR" "2|ferry: unknown migration 20250104" "...(and still no other)"
mv "$TAP_TMPDIR/gone" "$D/migrations/20250103_other"

# a run left 'running' by a process that is gone reads as interrupted
psql_val "$db" "INSERT INTO ferry.history (migration, version, name, operation, status, run_id, backend_pid)
                VALUES ('20250103_other', '20250103', 'other', 'run', 'running', gen_random_uuid(), 2147483000)" >/dev/null
run_ferry --dir "$D" history other
is "$(norm "$OUT" | tail -n 1)" "$(printf '%-21s %-45s %-9s %-12s %s' "$TS" 20250103_other run interrupted -)" \
   "a 'running' row whose session is gone: interrupted, no time"

# --json: every field, stats and row errors as recorded
run_ferry --dir "$D" --json history fill
is "$RC" 0 "--json history: exit 0"
is "$(json_eval "$OUT" '[[r["migration"], r["operation"], r["status"], r["stats"], r["errors"], r.get("error")] for r in j["runs"]]')" \
   '[["20250102_fill","up","applied",{"rows_seen":3,"rows_written":2},[],null],["20250102_fill","run","failed",{"rows_seen":3,"rows_written":2},[],"migrations/20250102_fill/up.lua:4: the fill failed on purpose"],["20250102_fill","run","failed",{"errors":1,"rows_seen":3,"rows_written":2},[{"key":"row 7","message":"no text"}],"1 row errors"]]' \
   "--json: migration, operation, status, stats, errors, error of each run"
like "$(json_eval "$OUT" 'j["runs"][1]["traceback"]')" $'^stack traceback:\n\t\\[C\\]: in function .error.\n\tmigrations/20250102_fill/up.lua:4: in main chunk\n' \
     "--json: a script error's traceback apart"
is "$(json_eval "$OUT" 'sorted(j["runs"][0].keys())')" \
   '["duration_ms","errors","ferry_version","finished_at","host","id","migration","operation","pid","run_id","started_at","stats","status"]' \
   "--json: the keys of a run ('error' only when it has one)"
run_ferry --dir "$D" --json history other
is "$(json_eval "$OUT" '[sorted(r.keys()) for r in j["runs"] if r["status"] == "interrupted"]')" \
   '[["errors","id","migration","operation","run_id","started_at","stats","status"]]' \
   "...'finished_at' and 'duration_ms' only when it finished (host, pid and version when recorded)"
run_ferry --dir "$D" --json history fill
is "$(json_eval "$OUT" 'all(isinstance(r["duration_ms"], int) and r["duration_ms"] >= 0 for r in j["runs"])')" "true" \
   "--json: duration_ms a whole number"
# a row error's key and message, and a script's error, are a script's text:
# shown as the run's own summary shows them (control characters escaped),
# not written raw -- an escape sequence kept in the history would clear or
# recolour the terminal of whoever reads it
put "$D/migrations/20250104_esc/up.lua" 'stats.error("k\27[2J", "bad \27[31mred\27[0m value")
error("the fill\27]0;owned\7 failed")'
run_ferry --dir "$D" run 20250104_esc
is "$RC" 1 "a run whose row error and error hold escape sequences"
run_ferry --dir "$D" -v history 20250104_esc
is "$(grep -c $'\x1b' <<<"$OUT")" 0 "-v history: no raw escape character written"
like "$OUT" $'\n    row k\\\\x1b\\[2J: bad \\\\x1b\\[31mred\\\\x1b\\[0m value\n' "...the row error escaped, as the run's summary shows it"
like "$OUT" $'\n    error: migrations/20250104_esc/up.lua:2: the fill\\\\x1b\\]0;owned\\\\x07 failed\n    stack traceback:\n' \
     "...the error escaped, the traceback still on lines of its own"
run_ferry --dir "$D" --json history 20250104_esc
is "$(json_eval "$OUT" 'j["runs"][0]["errors"][0]["message"]')" $'bad \x1b[31mred\x1b[0m value' "--json: the text as recorded"
rm -r "$D/migrations/20250104_esc"

# no migrations folder at all (history read from elsewhere): a migration
# only the history knows is still found, as with its folder alone gone
mkdir -p "$TAP_TMPDIR/elsewhere"
run_ferry --dir "$TAP_TMPDIR/elsewhere" history 20250103
is "$RC|$ERR|$(norm "$OUT" | sed -n 2p)" "0||$(line 20250103_other baseline applied)" \
   "history MIGRATION with no migrations folder: the history's runs of it"
run_ferry --dir "$TAP_TMPDIR/elsewhere" history nosuch
is "$RC|$ERR" "2|ferry: unknown migration nosuch" "...an unknown one: exit 2"

# a row whose stats are not ferry's shape (edited by hand, or by another
# tool): read as no counters and no row errors, never a Lua error
psql_val "$db" "INSERT INTO ferry.history (migration, version, name, operation, status, run_id, stats, finished_at)
                VALUES ('20250103_other', '20250103', 'other', 'run', 'failed', gen_random_uuid(),
                        '{\"stats\": null, \"errors\": [\"x\", 3]}', now()),
                       ('20250103_other', '20250103', 'other', 'run', 'failed', gen_random_uuid(), '[1, 2]', now()),
                       ('20250103_other', '20250103', 'other', 'run', 'failed', gen_random_uuid(),
                        '{\"stats\": {\"n\": \"many\"}, \"errors\": {\"key\": 1}}', now())" >/dev/null
run_ferry --dir "$D" -v history other
is "$RC|$ERR" "0|" "odd stats: history reads them, exit 0"
is "$(norm "$OUT" | grep -c '^YYYY')|$(grep -c '^    n many$' <<<"$OUT")" "5|1" "...each run listed, a counter that is no number as it is"
run_ferry --dir "$D" --json history other
is "$(json_eval "$OUT" '[[r["stats"], r["errors"]] for r in j["runs"]][2:]')" '[[{},[]],[{},[]],[{"n":"many"},[]]]' \
   "...--json: no counters and no row errors where the shape is not ferry's"
done_testing
