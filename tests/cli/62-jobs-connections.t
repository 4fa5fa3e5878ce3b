#!/usr/bin/env bash
# --jobs more than the server has connections for: the session it refuses
# (SQLSTATE 53300: "sorry, too many clients already", "too many connections
# for role ...") fails the run with a hint to lower --jobs or to ask for
# more connections; nothing is left half-done (the run is recorded failed,
# nothing of it committed, no session left), and a re-run with fewer jobs
# applies it.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_p/up.lua" 'db.exec("CREATE TABLE IF NOT EXISTS pt (i int)")
local pipe <close> = db.pipeline{jobs = ctx.jobs, dry_run = ctx.dry_run, checkpoint = ctx.checkpoint}
local buf = db.buffer()
for i = 1, 3 do
  buf:put(i)
  pipe:send{copies = {{sql = "COPY pt (i) FROM STDIN", buffer = buf}}, position = i}
  buf:clear()
  stats.inc("rows")
end
pipe:finish()'
esc() { sed 's/[][\\.*^$()|+?{}]/\\&/g' <<<"$1"; }
# ferry's sessions on the server: none once their backends are gone (a
# backend ends a moment after its client closed it -- dozens of them at
# once, under make asan, took longer than the check: waited for, up to 10 s)
left() {
    local n
    for _ in $(seq 1 100); do
        n=$(psql_val "$1" "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ferry'")
        [ "$n" = 0 ] && break
        sleep 0.1
    done
    echo "$n"
}

# a role's CONNECTION LIMIT: 3 sessions, --jobs 5 wants 6
db=$(fresh_db ferry_cli_jobs)
if psql_val "$db" "DROP ROLE IF EXISTS ferry_t_jobs; CREATE ROLE ferry_t_jobs LOGIN CONNECTION LIMIT 3; ALTER DATABASE ferry_cli_jobs OWNER TO ferry_t_jobs" >/dev/null 2>&1; then
    dbj=$(sed 's/user=[^&]*/user=ferry_t_jobs/' <<<"$db")
    run_ferry --db "$dbj" --dir "$D" --jobs 5 run 20250101
    is "$RC|$OUT" "1|==> 20250101_p" "--jobs 5 beyond the role's CONNECTION LIMIT 3: exit 1"
    like "$ERR" "^ferry: 20250101_p: cannot connect to the database: .*FATAL:  too many connections for role \"ferry_t_jobs\" \\[SQLSTATE 53300\\]$(esc "$(connection_slot_hint 5)")\$" \
         "...the server's refusal, then the hint: lower --jobs or ask for more connections"
    is "$(history "$db")" "20250101_p|run|failed" "...the run is recorded failed"
    is "$(psql_val "$db" "SELECT count(*) FROM pt")|$(psql_val "$db" "SELECT count(*) FROM ferry.checkpoint")" "0|0" \
       "...nothing of it committed, no resume point"
    is "$(left "$db")" 0 "...no session of ferry left"
    run_ferry --db "$dbj" --dir "$D" --jobs 2 run 20250101
    is "$RC|$(psql_val "$db" "SELECT count(*) FROM pt")" "0|3" "a re-run with --jobs 2 applies it"
    is "$(history "$db")" "20250101_p|run|failed
20250101_p|run|applied" "...recorded applied"
    # --jobs 1 and still refused (its reader): no "lower --jobs", which
    # cannot go lower
    D1=$TAP_TMPDIR/proj1
    put "$D1/migrations/20250201_r/up.lua" 'local r <close> = db.reader()
stats.inc("rows", r:one("SELECT 1 AS n").n)'
    psql_val "$db" "ALTER ROLE ferry_t_jobs CONNECTION LIMIT 1" >/dev/null
    # (the sessions of the run before hold their slots a moment after it
    # exits -- a backend leaves pg_stat_activity before it frees its slot
    # -- so the main session of this one can be refused the one slot:
    # that is not what this case is about, and it is tried again)
    for _ in $(seq 1 100); do
        run_ferry --db "$dbj" --dir "$D1" --jobs 1 run 20250201
        [ "$RC" = 2 ] && [[ "$ERR" == "ferry: cannot connect to the database: "* ]] || break
        sleep 0.05
    done
    like "$ERR" "^ferry: 20250201_r: cannot connect to the database: .*FATAL:  too many connections for role \"ferry_t_jobs\" \\[SQLSTATE 53300\\]$(esc "$(connection_slot_hint 1)")\$" \
         "--jobs 1 refused its reader: the hint asks for more connections only" || diag "RC=$RC ERR=$ERR"
    psql_val "$db" "ALTER DATABASE ferry_cli_jobs OWNER TO CURRENT_USER" >/dev/null
    psql_val "$(db_uri postgres)" "DROP DATABASE ferry_cli_jobs" >/dev/null 2>&1
    psql_val "$db" "DROP ROLE ferry_t_jobs" >/dev/null 2>&1
else
    skip "cannot create a role here" 8
fi

# the server's max_connections: "sorry, too many clients already"
db=$(fresh_db ferry_cli_jobs_max)
max=$(psql_val "$db" "SHOW max_connections")
if [ "$max" -le 200 ]; then
    jobs=$((max + 10))
    run_ferry --db "$db" --dir "$D" --jobs "$jobs" up
    is "$RC" 1 "--jobs $jobs beyond max_connections $max: exit 1"
    like "$ERR" "^ferry: 20250101_p: cannot connect to the database: .*FATAL:  sorry, too many clients already \\[SQLSTATE 53300\\]$(esc "$(connection_slot_hint "$jobs")")\$" \
         "...the server's refusal, then the hint"
    is "$(history "$db")|$(psql_val "$db" "SELECT count(*) FROM pt")" "20250101_p|up|failed|0" \
       "...recorded failed, nothing committed"
    is "$(left "$db")" 0 "...no session of ferry left"
    run_ferry --db "$db" --dir "$D" up
    is "$RC|$(psql_val "$db" "SELECT count(*) FROM pt")" "0|3" "a re-run with the default --jobs applies it"
else
    skip "max_connections $max: too many sessions to open here" 5
fi

done_testing
