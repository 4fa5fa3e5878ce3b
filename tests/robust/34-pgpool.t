#!/usr/bin/env bash
# pgpool-II between ferry and the server (one backend, the test's
# PostgreSQL 15), in raw mode (backend_clustering_mode = 'raw', pgpool's
# mode without replication) and in streaming-replication mode, each with
# connection_cache and load_balance_mode on and off: ferry works as on the
# server itself -- status, Batch 4's dry run, a run with --jobs 2 (several
# sessions, COPY, the advisory lock, an exported snapshot, read-only
# readers), validate, Ctrl-C and the resumed run write exactly the
# server's rows; up applies schema steps.  In raw mode pgpool opens a
# transaction of its own before the first statement it takes for a write
# on a server session it has just opened, and never ends it: ferry said
# "the script left a transaction open on the main session" of an up.sql
# that had none, or failed a run in share_snapshot ("the other session is
# in a transaction already"), its writes rolled back.  ferry's settings
# now draw that transaction out and end it (tests: this file).
#
# pgpool2 is one of the test packages of scripts/deps.sh; without it the
# test is skipped.  Each pgpool runs in the foreground (-n) with its own
# config, ports and log in the test's folder, and is stopped at exit.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/backfill.sh"
. "$(dirname "$0")/../lib/ports.sh"
. "$(dirname "$0")/../cli/cli-lib.sh"
require_pg

PGPOOL=$(command -v pgpool || echo /usr/sbin/pgpool)
[ -x "$PGPOOL" ] || skip_all "pgpool is not installed (bash scripts/deps.sh test installs it, as root)"

PIDS=()
stop_pgpools() {
    local p
    # (SIGINT: pgpool's fast shutdown, which does not wait for its clients
    # to leave -- a test stopped part way may leave a ferry connected)
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    _tap_at_exit
}
trap 'in_test_shell && stop_pgpools' EXIT
# A pgpool (NAME) in front of the test's server, through its socket, no
# password (the server trusts its socket).  Sets PORT_<NAME>.  The port is
# one free a moment before, which something else (another suite's pooler)
# may take first: a pgpool that cannot bind it exits, and another port is
# tried.  Ready once its log says it started (its port is its own: a
# client that connects before is not known to reach it) and it answers.
start_pgpool() { # NAME [SETTING...]
    on_free_port pgpool_on "$@" || bail_out "pgpool $1 did not start"
}
pgpool_on() { # PORT NAME [SETTING...]: 0 once it listens on PORT
    local port=$1 name=$2 dir=$TAP_TMPDIR/pgpool-$2 pid
    shift 2
    mkdir -p "$dir"
    {
        printf "listen_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = ''\n" "$port"
        printf "pcp_listen_addresses = ''\npcp_port = %s\npcp_socket_dir = '%s'\n" "$(free_port)" "$dir"
        printf "backend_hostname0 = '%s'\nbackend_port0 = %s\nbackend_flag0 = 'DISALLOW_TO_FAILOVER'\n" "$PGHOST" "$PGPORT"
        printf "pid_file_name = '%s/pgpool.pid'\nlogdir = '%s'\n" "$dir" "$dir"
        printf "enable_pool_hba = off\nhealth_check_period = 0\nnum_init_children = 8\n"
        printf "sr_check_user = '%s'\nsr_check_period = 0\n" "${PGUSER:-postgres}"
        printf '%s\n' "$@"
    } >"$dir/pgpool.conf"
    : >"$dir/pcp.conf"
    "$PGPOOL" -n -f "$dir/pgpool.conf" -F "$dir/pcp.conf" >"$dir/pgpool.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    # shellcheck disable=SC2016  # (expanded by eval, in wait_until)
    if wait_until 120 eval '! kill -0 "$pid" 2>/dev/null ||
           { grep -q "pgpool-II successfully started" "$dir/pgpool.log" &&
             "$PSQL" -X -q -A -t -d "postgresql://${PGUSER:-postgres}@127.0.0.1:$port/postgres" -c "SELECT 1" >/dev/null 2>&1; }' &&
       kill -0 "$pid" 2>/dev/null; then
        printf -v "PORT_$name" '%s' "$port"
        return 0
    fi
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    diag "pgpool $name (port $port) did not start: $(grep -m1 -E 'FATAL|ERROR' "$dir/pgpool.log")"
    return 1
}
url() { # POOL DATABASE
    local port=PORT_$1
    printf 'postgresql://%s@127.0.0.1:%s/%s?sslmode=disable' "$(urlencode "${PGUSER:-postgres}")" "${!port}" "$2"
}

# Batch 4 on ~3000 audits, on the server itself: the rows to get
gen_db pgp_tpl 300 >/dev/null
ref=$(clone_db pgp_tpl pgp_ref 2>/dev/null)
run_ferry --db "$ref" --dir "$REPO_ROOT" run $M4 --dry-run --batch-size 100 --jobs 2
# (the time it took aside)
dry_out() { sed -E 's/ in [0-9.]+ s$/ in N s/' <<<"$OUT"; }
ref_dry=$(dry_out)
run_ferry --db "$ref" --dir "$REPO_ROOT" -q run $M4 --batch-size 100 --jobs 2
is "$RC|$ERR" "0|" "on the server itself, Batch 4 runs"
REF=$(rows_digest "$ref")

start_pgpool sr "backend_clustering_mode = 'streaming_replication'"
start_pgpool sr_plain "backend_clustering_mode = 'streaming_replication'" "connection_cache = off" "load_balance_mode = off"
start_pgpool raw "backend_clustering_mode = 'raw'"
start_pgpool raw_nocache "backend_clustering_mode = 'raw'" "connection_cache = off" "load_balance_mode = off"

# --- every mode: as on the server
for pool in sr sr_plain raw raw_nocache; do
    case $pool in
        sr)          mode="streaming replication (connection_cache, load_balance_mode on)" ;;
        sr_plain)    mode="streaming replication (connection_cache, load_balance_mode off)" ;;
        raw)         mode="raw mode (connection_cache, load_balance_mode on)" ;;
        raw_nocache) mode="raw mode (connection_cache, load_balance_mode off)" ;;
    esac
    db=$(clone_db pgp_tpl "pgp_$pool" 2>/dev/null)
    U=$(url $pool "pgp_$pool")
    run_ferry --db "$U" --dir "$REPO_ROOT" status
    is "$RC|$ERR|$(grep "^$M4" <<<"$OUT")" "0||$(status_line $M4 pending - -)" "$mode: status works"
    run_ferry --db "$U" --dir "$REPO_ROOT" run $M4 --dry-run --batch-size 100 --jobs 2
    is "$RC|$ERR|$(dry_out)" "0||$ref_dry" "$mode: the dry run says what it says on the server"
    is "$("$PSQL" -X -A -t -q -d "$U" -c "SHOW default_transaction_read_only")" off \
       "$mode: ...and leaves no read-only session in the pool"
    run_ferry --db "$U" --dir "$REPO_ROOT" -q run $M4 --batch-size 100 --jobs 2
    is "$RC|$ERR" "0|" "$mode: Batch 4 runs"
    is "$(rows_digest "$db")" "$REF" "$mode: ...writing exactly the server's rows"
    run_ferry --db "$U" --dir "$REPO_ROOT" -q validate $M4
    is "$RC|$ERR" "0|" "$mode: validate passes"
    run_ferry --db "$U" --dir "$REPO_ROOT" status
    is "$RC|$(norm_times "$(grep "^$M4" <<<"$OUT")")" "0|$(status_line $M4 applied $TS ok)" "$mode: status shows it applied"
done
# schema steps (up.sql) on an empty database
db=$(fresh_db pgp_up)
run_ferry --db "$(url raw_nocache pgp_up)" --dir "$REPO_ROOT" -q up --to 20251108
is "$RC|$ERR" "0|" "raw mode: up applies the schema steps"
is "$(history "$db")" $'20251101_schema|up|applied\n20251105_fts_indexes|up|applied\n20251108_link_customers|up|applied' \
   "...recorded applied"
is "$(psql_val "$db" "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")" \
   "$(psql_val "$ref" "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")" "...their tables made"

# Ctrl-C through pgpool, and the re-run resumes (a trigger slows the
# writes, so that batches remain after the first checkpoint).  (pgpool
# takes a second over each cancel it passes on, one per busy session.)
for pool in raw sr_plain; do
    mode="raw mode"
    [ $pool = sr_plain ] && mode="streaming replication"
    db=$(clone_db pgp_tpl "pgp_int_$pool" 2>/dev/null)
    U=$(url $pool "pgp_int_$pool")
    psql_val "$db" 'CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN PERFORM pg_sleep(0.002); RETURN NEW; END$$;
      CREATE TRIGGER slow BEFORE INSERT ON "Message" FOR EACH ROW EXECUTE FUNCTION slow()' >/dev/null
    sigint_after_checkpoint "$db" $M4 --db "$U" --dir "$REPO_ROOT" -q run $M4 --batch-size 100 --jobs 2
    like "$RC|$(cat "$TAP_TMPDIR/bg.err")" "^130\|ferry: $M4: interrupted \(SIGINT\); the run had got to: .*; re-run to resume$" \
       "$mode: Ctrl-C stops the run, exit 130, resumable"
    psql_val "$db" 'DROP TRIGGER slow ON "Message"' >/dev/null
    run_ferry --db "$U" --dir "$REPO_ROOT" run $M4 --batch-size 100 --jobs 2
    is "$RC|$ERR|$(grep -c '^   Resuming after lead' <<<"$OUT")" "0||1" "$mode: ...the re-run through pgpool resumes"
    is "$(rows_digest "$db")" "$REF" "$mode: ...and the rows are exactly the server's"
    run_ferry --db "$U" --dir "$REPO_ROOT" -q validate $M4
    is "$RC|$ERR" "0|" "$mode: ...validate passes"
    is "$(history "$db" "WHERE migration = '$M4'")" "$M4|run|failed"$'\n'"$M4|run|applied" \
       "$mode: ...history: the interrupted run, then the applied one"
done
is "$(psql_val "$ref" "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' AND datname LIKE 'pgp%'")" 0 \
   "no session left in a transaction on the server"
done_testing
