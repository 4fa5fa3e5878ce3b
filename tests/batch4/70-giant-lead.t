#!/usr/bin/env bash
# One lead far bigger than a batch: a batch is whole leads, so a lead of
# N audits is one batch of N messages, all of it held in memory -- twice:
# the COPY buffer, and libpq's copy of it handed over without waiting
# (200,000 audits on one lead: 127 MB; 400,000: 243 MB; a uniform run of
# the same size: 15 MB).  Now a db.buffer keeps at most 16 MB of rows in
# memory and the rest in a temporary file, sent waiting until the server
# has taken them: peak memory does not grow with the lead.  The rows are
# those of bench/backfill.sql (the set-based yardstick), whatever --jobs
# and --batch-size, and a Ctrl-C while the big lead is being stored, then
# a re-run, gives them too.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../cli/cli-lib.sh"

TIME=/usr/bin/time
# big_lead NAME N: a database with three leads: lead 1 has audit 1, lead 2
# audits 2 .. N-1, lead 3 audit N; customer, agent and system in turn (all
# processed), three audits a second (ties, resolved by id), each a text
# of 8,000 bytes (one word too long to be indexed: cheap to store)
big_lead() {
    local uri
    uri=$(b4_db "$1") || return 1
    q "$uri" "INSERT INTO \"Lead\" (id, channel, phone, stage, created_at) VALUES
                ('70000000-0000-4000-8000-000000000001', 'sms', '+1555', 'new', '2024-01-01'),
                ('70000000-0000-4000-8000-000000000002', 'sms', '+1556', 'new', '2024-01-01'),
                ('70000000-0000-4000-8000-000000000003', 'sms', '+1557', 'new', '2024-01-01');
              INSERT INTO \"Audit\" (id, lead_id, actor, action, payload, created_at)
              SELECT ('70a00000-0000-4000-8000-' || lpad(a::text, 12, '0'))::uuid,
                     ('70000000-0000-4000-8000-00000000000' || CASE WHEN a = 1 THEN 1 WHEN a = $2 THEN 3 ELSE 2 END)::uuid,
                     (ARRAY['customer', ' Agent ', 'SYSTEM'])[1 + a % 3], 'message_received',
                     jsonb_build_object('text', 'audit ' || a || ': ' || repeat('x', 8000)),
                     timestamptz '2024-01-02' + (a / 3) * interval '1 second'
                FROM generate_series(1, $2) a; ANALYZE" >/dev/null || return 1
    printf '%s\n' "$uri"
}
digest() { PGOPTIONS='-c timezone=UTC -c datestyle=ISO' q "$1" "$(cat "$REPO_ROOT/bench/digest.sql")"; }
clone() {   # clone FROM TO: a copy of database FROM, printed as a URI
    q "$(db_uri postgres)" "DROP DATABASE IF EXISTS $2 WITH (FORCE)" >/dev/null 2>&1
    q "$(db_uri postgres)" "CREATE DATABASE $2 TEMPLATE $1" >/dev/null && db_uri "$2"
}
# peak_kb ARGS...: b4_run -q ARGS under /usr/bin/time; its peak RSS in kB in $KB
# (0 when not measured), $RC
peak_kb() {
    RC=0 KB=0
    [ -z "$measure" ] && { b4_run -q "$@"; return; }
    "$TIME" -o "$TAP_TMPDIR/t.time" -f '%M' "$FERRY" --dir "$REPO_ROOT" --db "$URI" -q run "$B4" "$@" \
        >/dev/null 2>"$TAP_TMPDIR/t.err" || RC=$?
    KB=$(tail -n 1 "$TAP_TMPDIR/t.time")
}

small=$(big_lead b4_70_small 3000) || bail_out "cannot build the databases"
big=$(big_lead b4_70_big 9000) || bail_out "cannot build the databases"

# ------------------------------------------------------------ the yardstick
URI=$(clone b4_70_small b4_70_sql_small)
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" -f "$REPO_ROOT/bench/backfill.sql" >/dev/null 2>&1
want_small=$(digest "$URI")
URI=$(clone b4_70_big b4_70_sql_big)
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$URI" -f "$REPO_ROOT/bench/backfill.sql" >/dev/null 2>&1
want_big=$(digest "$URI")
is "${want_big%% *}" 9000 "(the yardstick writes a message for each of the 9000 audits)"

# -------------------------------------------------------- memory stays flat
# 3,000 audits on one lead (24 MB of messages) and 9,000 (72 MB): before,
# 59 MB and 156 MB at their peak; now both about 27 MB.  (The peaks are
# not compared under valgrind or a sanitizer: they keep freed memory
# aside, so theirs grows with what the run allocates, not what it holds.)
measure=
[ -x "$TIME" ] && [ -z "${FERRY_WRAPPER:-}" ] && [ -z "${ASAN_OPTIONS:-}" ] && measure=1
URI=$(clone b4_70_small b4_70_m1); peak_kb --batch-size 100; kb_small=$KB
is "$RC|$(digest "$URI")" "0|$want_small" "3,000 audits on one lead, --batch-size 100: the yardstick's rows"
URI=$(clone b4_70_big b4_70_m2); peak_kb --batch-size 100; kb_big=$KB
is "$RC|$(digest "$URI")" "0|$want_big" "9,000 audits on one lead, --batch-size 100: the yardstick's rows"
if [ -n "$measure" ]; then
    growth=$(( (kb_big - kb_small) / 1024 ))
    ok "$([ "$growth" -lt 16 ] && echo 0 || echo 1)" "peak memory does not grow with the lead: $((kb_small / 1024)) MB, then $((kb_big / 1024)) MB (less than 16 MB more for 48 MB more of messages)"
else
    skip "no /usr/bin/time here, or a wrapper or sanitizer that keeps freed memory aside" 1
fi

# ------------------------------------------- --jobs and the default batch
for jobs in 1 4; do
    URI=$(clone b4_70_small b4_70_j$jobs)
    b4_run -q --jobs "$jobs"
    is "$RC|$(digest "$URI")" "0|$want_small" "--jobs $jobs, default batch size: the yardstick's rows"
done
b4_run
is "$(stats_of "$OUT")" "$(stats_block 0 3 0 3000 3000 0 0)" "a re-run creates nothing"

# ---------------------------------------- no room for the temporary file
# The run stops at once, saying so; before, each message put after the
# first failure was counted as a row error, up to --max-errors, and the
# run ended with "too many row errors ... fix the rule and re-run".
URI=$(clone b4_70_small b4_70_tmp)
TMPDIR=/nonexistent/ferry b4_run --batch-size 100
is "$RC|$(printf '%s\n' "$ERR" | grep -c 'too many row errors')" "1|0" "no temporary file: exit 1, no row errors"
is "$(printf '%s\n' "$ERR" | grep '^ferry:')" \
   "ferry: $B4: db.buffer: more than 16 MB of rows, and no temporary file for them in /nonexistent/ferry: No such file or directory (set TMPDIR to a folder with room for them, then re-run)" \
   "... and the one line says why"
b4_run -q --batch-size 100
is "$RC|$(digest "$URI")" "0|$want_small" "the re-run with a temporary folder: the yardstick's rows"

# -------------------------------- Ctrl-C while the big lead is being stored
# A trigger stops the server at the big lead's 4,500th message (the rows
# after it stay unread, the client waits to send them); Ctrl-C then.
URI=$(clone b4_70_big b4_70_int)
q "$URI" "CREATE FUNCTION b4test.stall() RETURNS trigger LANGUAGE plpgsql AS \$\$
            BEGIN IF NEW.content LIKE 'audit 4500:%' THEN PERFORM pg_sleep(60); END IF; RETURN NEW; END \$\$;
          CREATE TRIGGER stall BEFORE INSERT ON \"Message\" FOR EACH ROW EXECUTE FUNCTION b4test.stall()" >/dev/null
set -m
"$FERRY" --dir "$REPO_ROOT" --db "$URI" run "$B4" --batch-size 100 >"$TAP_TMPDIR/bg.out" 2>"$TAP_TMPDIR/bg.err" &
PID=$!
stalled() { q "$URI" "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND datname = current_database()"; }
wait_until 60 output_is 1 stalled
kill -INT "$PID"
RC=0; wait "$PID" || RC=$?
set +m
is "$RC|$(grep '^ferry:' "$TAP_TMPDIR/bg.err" | sed 's/ (everything.*//')" \
   "130|ferry: $B4: interrupted (SIGINT); the run had got to: conversations_created=1, messages_created=1, audits_processed=1" \
   "Ctrl-C in the middle of the big lead: exit 130, lead 1 committed (before the big batch was sent), the big lead rolled back"
is "$(q "$URI" "SELECT string_agg(left(content, 8), ',') FROM \"Message\"")" "audit 1:" "... only lead 1's message is committed"
q "$URI" "DROP TRIGGER stall ON \"Message\"" >/dev/null
b4_run -q --batch-size 100
is "$RC|$(digest "$URI")" "0|$want_big" "the re-run: the yardstick's rows"
is "$(record_stats "$URI")" "3 0 9000 0 9000 0 0" "... and an uninterrupted run's totals"
done_testing
