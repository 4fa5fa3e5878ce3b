#!/usr/bin/env bash
# Settings a DBA puts on a production database or role (ALTER DATABASE /
# ALTER ROLE ... SET) that ferry's engine depends on the other way: each
# is set on the database of a copy of the same data, then Batches 4 and 5
# run (--jobs 2, small batches: the writers overlap) and must give exactly
# the rows of a run on the database as initdb left it, or fail with one
# line that says why, nothing half-written.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/backfill.sh"
require_pg
# (the test's own psql sessions, into databases set to debug1, take only
# warnings: their DEBUG lines would fill the suite's output)
REAL_PSQL=$PSQL
psql_quiet() { PGOPTIONS="${PGOPTIONS:+$PGOPTIONS }-c client_min_messages=warning" "$REAL_PSQL" "$@"; }
PSQL=psql_quiet
M5=20251115_backfill_memory_notes

# Batch 5's notes, without the times a run stamps
notes_digest() {
    psql_val "$1" "SELECT count(*) || ' ' || md5(coalesce(string_agg(concat_ws('|', id, lead_id, customer_id, kind, key,
                     content, metadata - 'createdAt' - 'updatedAt'), E'\n' ORDER BY id), '')) FROM \"MemoryNote\""
}
both() {   # URI [ARGS]: Batch 4 then Batch 5, as the settings' test runs them
    run_ferry --db "$1" -q run $M4 --batch-size 50 --jobs 2
    local rc4=$RC err4=$ERR
    run_ferry --db "$1" -q run $M5 --batch-size 50 --jobs 2
    RC="$rc4/$RC" ERR="$err4$ERR"
}
setting() {   # DB SQL...: ALTER DATABASE DB SET each (from another database)
    local db=$1 s
    shift
    for s in "$@"; do psql_val "$(db_uri postgres)" "ALTER DATABASE $db SET $s" >/dev/null; done
}

gen_db dba_tpl 300 >/dev/null
ref=$(clone_db dba_tpl dba_ref)
both "$ref"
is "$RC" "0/0" "the reference: Batches 4 and 5 on the database as initdb left it"
# (the digests read times as text: in one zone and style, whatever the
# database under test sets)
utc() { PGOPTIONS="-c search_path=public -c timezone=UTC -c datestyle=ISO,MDY -c intervalstyle=postgres -c extra_float_digits=1" "$@"; }
ref4=$(utc rows_digest "$ref")
ref5=$(utc notes_digest "$ref")

# --- default_transaction_isolation = serializable: ferry's writers take
# batches in turn and each moves the one resume point, which SERIALIZABLE
# (and REPEATABLE READ) transactions refuse to do after another writer
# did ("could not serialize access due to concurrent update"), on every
# re-run.  ferry's sessions run READ COMMITTED, what the engine is built
# for; the reader and validate ask for their snapshot themselves.
db=$(clone_db dba_tpl dba_serializable)
setting dba_serializable "default_transaction_isolation = 'serializable'"
both "$db"
is "$RC" "0/0" "default_transaction_isolation serializable: Batches 4 and 5 run through ($(printf '%s' "$ERR" | grep '^ferry:'))"
is "$(rows_digest "$db")" "$ref4" "...Batch 4's rows equal the reference"
is "$(notes_digest "$db")" "$ref5" "...Batch 5's notes too"
run_ferry --db "$db" exec /dev/stdin <<'LUA'
print(db.one("SHOW transaction_isolation").transaction_isolation)
local r <close> = db.reader()
print(r:one("SHOW transaction_isolation").transaction_isolation)
db.exec("BEGIN ISOLATION LEVEL SERIALIZABLE")
print(db.one("SHOW transaction_isolation").transaction_isolation)
db.exec("COMMIT")
LUA
is "$RC|$OUT" "0|read committed
repeatable read
serializable" "...a script's statements run READ COMMITTED, the reader REPEATABLE READ, an explicit level is kept"
is "$(psql_val "$db" "SHOW default_transaction_isolation")" "serializable" "...the database's setting is left as it is"
run_ferry --db "$db" validate $M4
is "$RC" 0 "...validate passes"
run_ferry --db "$db" -q up
is "$RC" 0 "...up afterwards: nothing to do ($ERR)"

# --- jit on with its thresholds at 0 (a DBA tuning for analytics): every
# statement is compiled, the foreign-key checks of each row a writer
# COPYs too -- a run hundreds of times slower.  JIT is off on ferry's
# sessions (its readers had it off already).
db=$(clone_db dba_tpl dba_jit)
setting dba_jit "jit = on" "jit_above_cost = 0" "jit_inline_above_cost = 0" "jit_optimize_above_cost = 0"
run_ferry --db "$db" exec /dev/stdin <<'LUA'
print(db.one("SHOW jit").jit, db.connect():one("SHOW jit").jit)
LUA
is "$RC|$OUT" "0|off	off" "jit on for the database: off on ferry's sessions"
both "$db"
is "$RC" "0/0" "jit on, thresholds 0: Batches 4 and 5 run through"
is "$(rows_digest "$db")|$(notes_digest "$db")" "$ref4|$ref5" "...the same rows"

# --- client_min_messages: debug1 on the database would show the server's
# DEBUG lines about ferry's own statements (its bookkeeping's CREATE
# TABLE, ...), warning would hide the NOTICE a rollback verifies itself
# with; ferry's sessions take notices as PostgreSQL does by default, so
# its output is the same whatever the application's sessions are told.
db=$(clone_db dba_tpl dba_debug)
psql_val "$db" "SET client_min_messages = warning; DROP SCHEMA ferry CASCADE" >/dev/null
setting dba_debug "client_min_messages = debug1"
run_ferry --db "$db" baseline 20251108
is "$RC" 0 "client_min_messages debug1: baseline (creating ferry's bookkeeping) exits 0"
unlike "$ERR" "DEBUG:" "...and ferry's output holds no DEBUG line"
run_ferry --db "$db" run $M4 --batch-size 50 --jobs 2
is "$RC" 0 "...Batch 4 runs"
unlike "$ERR" "DEBUG:" "...without a DEBUG line"
setting dba_debug "client_min_messages = warning"
run_ferry --db "$db" rollback $M4
like "$ERR" "NOTICE:  rollback of $M4 verified" "client_min_messages warning: a rollback's NOTICE is shown all the same"

# --- search_path = '' (a DBA's hardening: every name qualified): the
# migrations name the application's tables unqualified, so they are not
# found; ferry leaves search_path as the database, role or connection sets
# it (the application's tables are where its sessions find them), and the
# line says so and what to do; the connection string's options do it
db=$(clone_db dba_tpl dba_search_path)
setting dba_search_path "search_path = ''"
run_ferry --db "$db" run $M4
is "$RC" 1 "search_path '': exit 1"
is "$(grep '^ferry:' <<<"$ERR")" "ferry: migrations/$M4/up.lua:140: query failed: relation \"Message\" does not exist [SQLSTATE 42P01]; the session's search_path (\"\", as the database, the role or PGOPTIONS set it) names no schema that exists, so the names the script does not qualify are looked up nowhere: give ferry the application's search_path (in the connection string, options=-csearch_path%3Dpublic; or PGOPTIONS='-c search_path=public'), or have the DBA set it (ALTER ROLE ... SET search_path = ...), then re-run" \
   "...one line: the server's error, the session's search_path, what to do"
is "$(psql_val "$db" "SELECT count(*) FROM public.\"Message\"")" "$(psql_val "$(db_uri dba_tpl)" "SELECT count(*) FROM \"Message\"")" \
   "...nothing written"
both "$db&options=-csearch_path%3Dpublic"
is "$RC" "0/0" "...with options=-csearch_path=public in the connection string: Batches 4 and 5 run ($ERR)"
is "$(utc rows_digest "$db")|$(utc notes_digest "$db")" "$ref4|$ref5" "...the same rows"

# --- several at once, as a production database has them, and the app's
# trigger on "Message" (slow here: a batch takes a while), interrupted by
# Ctrl-C after its first checkpoint and resumed: the same rows, timestamps
# not shifted by the zone or the date style
db=$(clone_db dba_tpl dba_combined)
setting dba_combined "default_transaction_isolation = 'serializable'" "statement_timeout = '1s'" \
        "idle_in_transaction_session_timeout = '1s'" "lock_timeout = '1s'" "timezone = 'Pacific/Chatham'" \
        "datestyle = 'SQL, DMY'" "intervalstyle = 'sql_standard'" "extra_float_digits = 0" "bytea_output = 'escape'" \
        "jit = on" "jit_above_cost = 0" "client_min_messages = debug1" "work_mem = '64kB'" \
        "max_parallel_workers_per_gather = 4" "parallel_setup_cost = 0" "parallel_tuple_cost = 0" \
        "min_parallel_table_scan_size = 0"
psql_val "$db" "CREATE FUNCTION public.app_message_slow() RETURNS trigger LANGUAGE plpgsql AS \$\$
                BEGIN PERFORM pg_sleep(0.2); RETURN NULL; END \$\$;
                CREATE TRIGGER app_message_slow AFTER INSERT ON \"Message\" FOR EACH STATEMENT
                EXECUTE FUNCTION public.app_message_slow()" >/dev/null
sigint_after_checkpoint "$db" $M4 --db "$db" run $M4 --batch-size 50 --jobs 2
is "$RC" 130 "all of them at once: Ctrl-C after the first checkpoint, exit 130"
both "$db"
is "$RC" "0/0" "...the re-run resumes, and Batch 5 runs ($(grep '^ferry:' <<<"$ERR"))"
unlike "$ERR" "DEBUG:" "...no DEBUG line"
is "$(utc rows_digest "$db")|$(utc notes_digest "$db")" "$ref4|$ref5" "...the rows of an uninterrupted run on a plain database"
run_ferry --db "$db" -q validate $M4
is "$RC|$OUT" "0|" "...validate passes"
run_ferry --db "$db" -q up
is "$RC" 0 "...up: nothing left to do"

done_testing
