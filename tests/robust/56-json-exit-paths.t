#!/usr/bin/env bash
# --json: every invocation that gets as far as reading its command line
# prints exactly one JSON object on stdout, whatever ends it -- success,
# failure, a usage error, an interruption at any moment, a reader gone --
# and its "ok" agrees with the exit code: true exactly when ferry exits 0.
# (exec's stdout is its script's: its object comes only when it fails.)
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../cli/cli-lib.sh"
require_pg

db=$(fresh_db ferry_robust_json_exit_paths)
export DATABASE_URL=$db
D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_a/up.sql" 'CREATE TABLE a_t (x int);'
put "$D/migrations/20250102_b/up.sql" 'CREATE TABLE b_t (x int);'
put "$D/migrations/20250103_c/up.sql" 'CREATE TABLE c_t (x int);'
mkdir -p "$D/rules"
norm() { sed -E 's/"duration_ms":[0-9]+/"duration_ms":N/g' <<<"$1"; }
# one_object TEXT: "OK" when TEXT is exactly one JSON object, else why not
one_object() { json_eval "$1" '"OK"'; }

set -m            # (background jobs get SIGINT as an interactive shell's do)
start_ferry() {
    "$FERRY" "$@" >"$TAP_TMPDIR/bg.out" 2>"$TAP_TMPDIR/bg.err" &
    PID=$!
}
finish() {        # wait for the background ferry: $RC, $OUT, $ERR
    RC=0
    wait "$PID" || RC=$?
    OUT=$(cat "$TAP_TMPDIR/bg.out")
    ERR=$(cat "$TAP_TMPDIR/bg.err")
}
sleeping() {      # wait till a ferry session sleeps in a trigger below
    for _ in $(seq 1 200); do
        [ "$(psql_val "$db" "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'
                             AND application_name = 'ferry'")" != 0 ] && return 0
        sleep 0.05
    done
    return 1
}

run_ferry --dir "$D" up --to 20250101 -q
# --- baseline interrupted as it records a migration: before, its line was
# on stderr and stdout was empty; now the object says what it recorded
psql_val "$db" "CREATE FUNCTION slow_baseline() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
  IF NEW.migration = '20250103_c' THEN PERFORM pg_sleep(30); END IF;
  RETURN NEW;
END \$\$;
CREATE TRIGGER slow_baseline BEFORE INSERT ON ferry.history FOR EACH ROW EXECUTE FUNCTION slow_baseline()" >/dev/null
for sig in INT TERM; do
    [ "$sig" = TERM ] && code=143 || code=130
    start_ferry --dir "$D" --json baseline 20250103
    sleeping
    kill -"$sig" "$PID"
    finish
    is "$RC|$OUT" "$code|{\"ok\":false,\"baselined\":[\"20250102_b\"],\"error\":\"interrupted (SIG$sig) after baselining 1 of 2 migrations (the last: 20250102_b); run 'ferry baseline 20250103' again for the rest\"}" \
       "baseline --json, SIG$sig as it records the second: exit $code, one object: ok false, what it baselined, the line"
    is "$ERR" "ferry: interrupted (SIG$sig) after baselining 1 of 2 migrations (the last: 20250102_b); run 'ferry baseline 20250103' again for the rest" \
       "...and the line on stderr, as without --json"
    psql_val "$db" "DELETE FROM ferry.history WHERE operation = 'baseline'" >/dev/null
done
psql_val "$db" "DROP TRIGGER slow_baseline ON ferry.history" >/dev/null
run_ferry --dir "$D" --json baseline 20250102
is "$RC|$OUT" '0|{"ok":true,"baselined":["20250102_b"]}' "baseline --json: ok true when it ends well"
run_ferry --dir "$D" --json baseline 20250102
is "$RC|$OUT" '0|{"ok":true,"baselined":[]}' "...and with nothing to baseline"

# --- a migration that finished though interrupted (its script caught the
# signal): recorded applied, exit 130 -- and the object says ok false, with
# the line, not ok true
put "$D/migrations/20250104_caught/up.lua" '-- ferry: allow-shell
pcall(function()
  os.execute("(sleep 0.3; kill -INT $PPID) &")
  local t = os.clock()
  while os.clock() - t < 20 do end      -- the interruption is raised in here, and caught
end)
stats.inc("n")'
start_ferry --dir "$D" --json run 20250104
finish
is "$RC|$(norm "$OUT")" '130|{"migration":"20250104_caught","mode":"apply","ok":false,"status":"applied","stats":{"n":1},"errors":[],"duration_ms":N,"error":"interrupted (SIGINT) after 20250104_caught had finished (applied); nothing after it was run"}' \
   "run --json, finished though interrupted: exit 130, ok false, the line as its error"
is "$(psql_val "$db" "SELECT status FROM ferry.history WHERE migration = '20250104_caught'")" applied "...recorded applied, as it is"
psql_val "$db" "DELETE FROM ferry.history WHERE migration = '20250104_caught'" >/dev/null
start_ferry --dir "$D" --json up
finish
is "$RC|$(norm "$OUT")" '130|{"ok":false,"migrations":[{"migration":"20250103_c","mode":"apply","ok":true,"status":"applied","stats":{},"errors":[],"duration_ms":N},{"migration":"20250104_caught","mode":"apply","ok":true,"status":"applied","stats":{"n":1},"errors":[],"duration_ms":N}],"error":"interrupted (SIGINT) after 20250104_caught had finished (applied); nothing after it was run"}' \
   "up --json, finished though interrupted: exit 130, each migration as it went, ok false and the line at the top"
put "$D/migrations/20250105_e/up.sql" 'CREATE TABLE e_t (x int);'
run_ferry --dir "$D" --json up
is "$RC|$(norm "$OUT")" '0|{"ok":true,"migrations":[{"migration":"20250105_e","mode":"apply","ok":true,"status":"applied","stats":{},"errors":[],"duration_ms":N}]}' \
   "up --json: ok true when every migration went well"
put "$D/migrations/20250106_f/up.sql" 'SELECT 1/0;'
run_ferry --dir "$D" --json up
is "$RC|$(norm "$OUT")" '1|{"ok":false,"migrations":[{"migration":"20250106_f","mode":"apply","ok":false,"status":"failed","stats":{},"errors":[],"duration_ms":N,"error":"migrations/20250106_f/up.sql: script failed: division by zero [SQLSTATE 22012]"}],"error":"migrations/20250106_f/up.sql: script failed: division by zero [SQLSTATE 22012]"}' \
   "up --json, a migration failed: ok false, its error at the top too"
rm -rf "$D/migrations/20250106_f"

# --- a rollback that finished though interrupted: Ctrl-C as its outcome
# is recorded (the history update waits)
put "$D/migrations/20250104_caught/down.lua" 'stats.inc("undone")'
psql_val "$db" "CREATE SEQUENCE hold_once; CREATE FUNCTION slow_finish() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
  IF NEW.status = 'rolled back' AND nextval('hold_once') = 1 THEN
    BEGIN PERFORM pg_sleep(30); EXCEPTION WHEN query_canceled THEN NULL; END;
  END IF;
  RETURN NEW;
END \$\$;
CREATE TRIGGER slow_finish BEFORE UPDATE ON ferry.history FOR EACH ROW EXECUTE FUNCTION slow_finish()" >/dev/null
start_ferry --dir "$D" --json rollback 20250104
sleeping
kill -INT "$PID"
finish
psql_val "$db" "DROP TRIGGER slow_finish ON ferry.history" >/dev/null
is "$RC|$(norm "$OUT")" '130|{"migration":"20250104_caught","mode":"rollback","ok":false,"status":"rolled back","stats":{"undone":1},"errors":[],"duration_ms":N,"error":"interrupted (SIGINT) after the rollback of 20250104_caught had finished (rolled back)"}' \
   "rollback --json, finished though interrupted: exit 130, ok false, the line as its error"
is "$(psql_val "$db" "SELECT status FROM ferry.history WHERE migration = '20250104_caught' ORDER BY id DESC LIMIT 1")" "rolled back" \
   "...recorded rolled back, as it is"

# --- every command stopped while it waits on the server: one object,
# ok false, the signal's code
put "$TAP_TMPDIR/q.lua" 'db.query("SELECT count(*) FROM ferry.history")'
for args in "status" "history" "up" "run 20250104" "rollback 20250104" "baseline 20250105" "validate 20250104" \
            "exec $TAP_TMPDIR/q.lua"; do
    [ "$args" = "validate 20250104" ] && put "$D/migrations/20250104_caught/validate.lua" \
        'check("h", function() return db.query("SELECT count(*) AS n FROM ferry.history")[1].n >= 0 end)'
    psql_val "$db" "BEGIN; LOCK TABLE ferry.history IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(30) /* held */; COMMIT" >/dev/null 2>&1 &
    holder=$!
    for _ in $(seq 1 200); do
        [ "$(psql_val "$db" "SELECT count(*) FROM pg_locks WHERE granted AND mode = 'AccessExclusiveLock'
                             AND relation = 'ferry.history'::regclass")" != 0 ] && break
        sleep 0.05
    done
    # shellcheck disable=SC2086
    start_ferry --dir "$D" --lock-timeout 0 --json $args
    for _ in $(seq 1 200); do
        [ "$(psql_val "$db" "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE NOT l.granted
                             AND a.application_name = 'ferry'")" != 0 ] && break
        sleep 0.05
    done
    kill -TERM "$PID"
    finish
    psql_val "$db" "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%/* held */%' AND pid <> pg_backend_pid()" >/dev/null
    wait "$holder" 2>/dev/null
    is "$RC|$(json_eval "$OUT" '[j["ok"], j["error"]]')" '143|[false,"interrupted (SIGTERM)"]' \
       "$args --json, SIGTERM while it waits on the server: exit 143, one object {ok: false, error}"
done

# --- the reader of stdout gone before the object is written: the work is
# done, so that is the reader's choice (as without --json): nothing said,
# the command's own exit code -- not 141 and "interrupted (SIGPIPE: output
# closed)" said after the work, because the write of the object raised it
closed() {      # ARGS...: ferry started once its stdout's reader is gone
    # (a pipe whose read end is closed before ferry starts -- not a time
    # given a reader to go; SIGPIPE as a shell leaves it, python ignores it)
    python3 - "$FERRY" "$@" 2>"$TAP_TMPDIR/closed.err" <<'PY'
import os, signal, sys
r, w = os.pipe()
os.close(r)
os.dup2(w, 1)
os.close(w)
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])
PY
    RC=$?
    ERR=$(cat "$TAP_TMPDIR/closed.err")
}
closed --dir "$D" --json bogus
is "$RC|$ERR" "2|ferry: unknown command bogus (see 'ferry --help')" "a usage error, stdout closed: exit 2, its line alone"
closed --json --version
is "$RC|$ERR" "0|" "--version, stdout closed: exit 0, nothing said"
closed --json
like "$RC|$ERR" "^2\\|usage: " "no command, stdout closed: exit 2, the usage text alone"
unlike "$ERR" "ferry: interrupted" "...no 'ferry: interrupted' line"
closed --dir "$D" --json check
is "$RC|$ERR" "0|" "check, stdout closed: exit 0, nothing said"
closed --dir "$D" --json status
is "$RC|$ERR" "0|" "status, stdout closed: exit 0, nothing said"

# --- a signal at any moment of a short command's life, from its start to
# its exit: whenever ferry got to say anything (its line on stderr, or
# its object), stdout holds exactly one object, ok true only with exit 0.
# (A signal before ferry has read its command line kills it, as it kills
# any program then: no line, no object.)
mkdir -p "$TAP_TMPDIR/empty/migrations"
# (the binary itself: $FERRY is tests/run.sh's wrapper script, which execs
# it -- compared with the wrapper, the wait below lasted till ferry had
# exited, and no run was ever signalled)
exe=$(readlink -f "${FERRY_BIN:-$FERRY}")
bad=0 seen=0 stopped=0
for i in $(seq 1 150); do
    start_ferry --dir "$TAP_TMPDIR/empty" --json check
    # (once it runs ferry: a signal to the shell that forks it is no test of ferry's)
    while [ "$(readlink "/proc/$PID/exe" 2>/dev/null)" != "$exe" ] && kill -0 "$PID" 2>/dev/null; do :; done
    for ((k = 0; k < (i % 50) * 160; k++)); do :; done    # (from none to some milliseconds: its whole life)
    kill -TERM "$PID" 2>/dev/null
    finish 2>/dev/null     # (not bash's "Terminated" of a run the signal killed)
    [ "$RC" = 143 ] && stopped=$((stopped + 1))
    [ -z "$OUT$ERR" ] && continue
    seen=$((seen + 1))
    verdict=$(python3 - "$OUT" "$RC" <<'PY'
import json, sys
try:
    j = json.loads(sys.argv[1])
except ValueError as e:
    print("not one JSON document: %r" % sys.argv[1]); sys.exit()
rc = int(sys.argv[2])
print("ok" if isinstance(j, dict) and j.get("ok") == (rc == 0) else "ok is %r, exit %d" % (j.get("ok"), rc))
PY
)
    if [ "$verdict" != ok ]; then
        bad=$((bad + 1))
        diag "signal after ${i}: exit $RC, stdout [$OUT], stderr [$ERR]: $verdict"
    fi
done
is "$bad" 0 "a signal at any moment ($seen of 150 runs got to say something): one object each time, ok agreeing with the exit code"
# (the runs signalled at once once ferry runs, i = 50, 100, 150, are
# stopped by it: ferry does not get through check in the time bash takes
# from one command to the next.  Under FERRY_WRAPPER -- make valgrind --
# the process is valgrind's, never the binary: the loop then waits for
# each run to end, and signals none.)
if [ -n "${FERRY_WRAPPER:-}" ]; then
    skip "FERRY_WRAPPER: the process is not ferry's binary"
else
    ok "$([ "$stopped" -gt 0 ]; echo $?)" "...the signal came while ferry ran ($stopped of 150 runs stopped by it, exit 143)"
fi

done_testing
