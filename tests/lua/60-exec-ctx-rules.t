#!/usr/bin/env bash
# ferry exec (arguments, exit codes, errors, lazy connection, --dry-run),
# ctx (exec and a real migration), ctx.checkpoint get/save/clear, rules
# (require "rules.x", M.tests under `ferry check`), the shell sandbox, and
# the output of ferry.testing's tap() when a test fails.
. "$(dirname "$0")/../lib/tap.sh"
require_pg

d=$TAP_TMPDIR
uuid_re='^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'
iso_re='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$'

# ------------------------------------------------------------------ exec
cat >"$d/args.lua" <<'EOF'
local a, b = ...
io.write(table.concat({tostring(a), tostring(b), #arg, arg[1], ctx.args[2]}, " "), "\n")
return tonumber(a)
EOF
run_ferry exec "$d/args.lua" 3 x
is "$RC|$OUT" "3|3 x 2 3 x" "exec: arguments as ..., arg and ctx.args; an integer result is the exit code"
run_ferry exec "$d/args.lua" -- -5x y
is "$RC|$OUT" "0|-5x y 2 -5x y" "exec: arguments after -- may start with '-'; a non-number result exits 0"

printf 'local x = 1\nerror("it broke")\n' >"$d/err.lua"
run_ferry exec "$d/err.lua"
is "$RC" 1 "exec: a Lua error exits 1"
is "$ERR" "ferry: $d/err.lua:2: it broke" "exec: one line, file:line: message"
run_ferry -v exec "$d/err.lua"
like "$ERR" "^ferry: $d/err.lua:2: it broke"$'\n'"stack traceback:" "exec -v: the traceback follows"

printf 'local x = = 1\n' >"$d/syntax.lua"
run_ferry exec "$d/syntax.lua"
is "$RC" 2 "exec: a syntax error exits 2"
like "$ERR" "^ferry: $d/syntax.lua:1: unexpected symbol near '='\$" "exec: the syntax error with file:line"
run_ferry exec "$d/none.lua"
is "$RC" 2 "exec: a missing file exits 2"
like "$ERR" "^ferry: cannot read $d/none.lua" "exec: says it cannot read it"
run_ferry exec
is "$RC" 2 "exec without a file: usage error"

printf '#!/usr/bin/env ferry exec\nreturn 4\n' >"$d/shebang.lua"
run_ferry exec "$d/shebang.lua"
is "$RC" 4 "exec: a #! first line is allowed"

printf 'io.write("no db needed\\n")\n' >"$d/nodb.lua"
printf 'db.exec("SELECT 1")\n' >"$d/db.lua"
DATABASE_URL="postgresql:///nope?host=/nonexistent-ferry-dir" run_ferry exec "$d/nodb.lua"
is "$RC|$OUT" "0|no db needed" "exec: the database is connected on first use only"
DATABASE_URL="postgresql:///nope?host=/nonexistent-ferry-dir" run_ferry exec "$d/db.lua"
is "$RC" 2 "exec: a database that cannot be reached exits 2"
like "$ERR" "^ferry: cannot connect to the database: " "and says so"

# ------------------------------------------------------------------ ctx in exec
cat >"$d/ctx.lua" <<'EOF'
for _, k in ipairs{"migration", "version", "operation", "dry_run", "verbose", "quiet", "json",
                   "batch_size", "jobs", "max_errors"} do
  io.write(k, "=", tostring(ctx[k]), "\n")
end
io.write("run_id=", ctx.run_id, "\nstarted_at=", ctx.started_at, "\n")
io.write("cp=", tostring(ctx.checkpoint.get()), "\n")
local snap = ctx.checkpoint.snapshot()
io.write("snapshot=", snap.errors, " ", type(snap.counters), " #", #snap.counters, " ", snap.payload, "\n")
io.write("for=", ctx.batch_size_for(1000000), ",", ctx.batch_size_for(40000), ",", ctx.batch_size_for(12000), ",",
         ctx.batch_size_for(300), ",", ctx.batch_size_for(0), "\n")
io.write("taper=", ctx.batch_size_for(12000, 12000), ",", ctx.batch_size_for(12000, 4000), ",",
         ctx.batch_size_for(12000, 600), ",", ctx.batch_size_for(1000000, 30000), ",",
         ctx.batch_size_for(1000000, 8000), "\n")
io.write("text=", ctx.batch_size_for("12000", "600"), " bad=", select(2, pcall(ctx.batch_size_for, 100, "x")), "\n")
EOF
run_ferry exec "$d/ctx.lua"
is "$RC" 0 "ctx script runs"
is "$(grep -v -e ^run_id= -e ^started_at= <<<"$OUT")" "migration=exec
version=0
operation=exec
dry_run=false
verbose=false
quiet=false
json=false
batch_size=5000
jobs=2
max_errors=100
cp=nil
snapshot=0 table #0 {}
for=5000,5000,1500,1000,1000
taper=1500,1000,250,5000,2000
text=250 bad=ctx.batch_size_for(total [, left]): numbers, not number, string" "exec: ctx fields (defaults); batch_size_for lowers the default for small runs, not below 1000, and the last batches (left < 2 x writers x size) to left / (2 x writers), not below 250; counts as text are read, other values refused"
like "$(sed -n 's/^run_id=//p' <<<"$OUT")" "$uuid_re" "ctx.run_id is a v4 UUID"
like "$(sed -n 's/^started_at=//p' <<<"$OUT")" "$iso_re" "ctx.started_at is ISO-8601 UTC with milliseconds"
first_id=$(sed -n 's/^run_id=//p' <<<"$OUT")
run_ferry exec "$d/ctx.lua"
isnt "$(sed -n 's/^run_id=//p' <<<"$OUT")" "$first_id" "every run has its own run_id"
run_ferry -v --batch-size 10 --jobs 3 --max-errors 7 exec --dry-run "$d/ctx.lua"
like "$OUT" $'dry_run=true\nverbose=true' "exec --dry-run -v: ctx.dry_run and ctx.verbose"
like "$OUT" $'batch_size=10\njobs=3\nmax_errors=7' "ctx.batch_size, ctx.jobs, ctx.max_errors from the flags"
like "$OUT" $'\nfor=10,10,10,10,10\ntaper=10,10,10,10,10' "ctx.batch_size_for: a --batch-size given is used as it is, whatever the total and what is left"
run_ferry --jobs 1 exec "$d/ctx.lua"
like "$OUT" $'\nfor=5000,5000,3000,1000,1000\ntaper=3000,2000,300,5000,4000' "ctx.batch_size_for: four batches per writer, here one writer (and the taper for one)"
# (10 is below every size batch_size_for picks by itself, so the run above
# cannot tell a given --batch-size from the default lowered: the default's
# own value, given, can)
run_ferry --batch-size 5000 --jobs 1 exec "$d/ctx.lua"
like "$OUT" $'\nfor=5000,5000,5000,5000,5000\ntaper=5000,5000,5000,5000,5000' \
     "ctx.batch_size_for: --batch-size 5000 given is not lowered for small runs nor tapered, as the default 5000 is"

# ------------------------------------------------------------------ dry run: read-only sessions
db=$(fresh_db ferry_lua_exec)
psql_val "$db" "CREATE TABLE t (v int)" >/dev/null
cat >"$d/ro.lua" <<'EOF'
io.write("read_only=", tostring(db.read_only), "\n")
io.write("setting=", db.one("SHOW default_transaction_read_only").default_transaction_read_only, "\n")
local ok, err = pcall(db.exec, "INSERT INTO t VALUES (1)")
io.write("insert=", tostring(ok), " ", tostring(err):match("cannot execute INSERT in a read%-only transaction %[SQLSTATE 25006%]") or tostring(err), "\n")
local c = db.connect()
ok = pcall(c.exec, c, "INSERT INTO t VALUES (2)")
io.write("second=", tostring(ok), " ", c:one("SHOW default_transaction_read_only").default_transaction_read_only, "\n")
ok = pcall(db.transaction, function() db.exec("INSERT INTO t VALUES (3)") end)
io.write("transaction=", tostring(ok), "\n")
io.write("count=", db.one("SELECT count(*) AS n FROM t").n, "\n")
EOF
run_ferry --db "$db" exec --dry-run "$d/ro.lua"
is "$OUT" "read_only=true
setting=on
insert=false cannot execute INSERT in a read-only transaction [SQLSTATE 25006]
second=false on
transaction=false
count=0" "--dry-run: every session is read-only (db.read_only, db.connect() too, transactions)"
run_ferry --db "$db" exec "$d/ro.lua"
like "$OUT" $'read_only=false\nsetting=off\ninsert=true' "without --dry-run the session writes"

# ------------------------------------------------------------------ sandbox
printf 'io.write(tostring(os.execute), " ", tostring(io.popen), "\\n")\n' >"$d/noshell.lua"
run_ferry exec "$d/noshell.lua"
is "$OUT" "nil nil" "sandbox: no os.execute or io.popen by default"
printf -- '-- ferry: allow-shell\nlocal p = io.popen("echo hi")\nio.write(p:read("a"))\np:close()\nio.write(tostring(os.execute("true")), "\\n")\n' >"$d/shell.lua"
run_ferry exec "$d/shell.lua"
is "$RC|$OUT" $'0|hi\ntrue' "sandbox: '-- ferry: allow-shell' allows them"

# The marker counts only as a comment line of the file's header: the
# comments and blank lines before its first code, not inside a block
# comment; a mention anywhere else (a string, a comment after code) is not it.
shell_case() {   # NAME EXPECTED(function|nil) SCRIPT-TEXT
  printf '%s\nio.write(type(os.execute), " ", type(io.popen), "\\n")\n' "$3" >"$d/marker.lua"
  run_ferry exec "$d/marker.lua"
  is "$RC|$OUT" "0|$2 $2" "allow-shell: $1"
}
shell_case "a comment line among the first lines" function $'-- a script\n\n  -- ferry: allow-shell  \n-- more'
shell_case "after a #! line, a closed block comment and a blank line" function \
  $'#!/bin/sh\n--[[ 2>/dev/null; exec ferry exec "$0"; ]]\n\n--ferry:allow-shell'
shell_case "with CRLF line ends" function $'-- a script\r\n-- ferry: allow-shell\r\nlocal x = 1\r'
shell_case "not inside a long string" nil $'local s = [[\n-- ferry: allow-shell\n]]'
shell_case "not inside a long string opened on the first line" nil $'local s = [==[\n-- ferry: allow-shell\n]==] -- x'
shell_case "not inside a long string opened after a CR line end" nil $'-- a script\rlocal s = [[\n-- ferry: allow-shell\n]]'
shell_case "not inside a quoted string" nil $'local s = "-- ferry: allow-shell"'
shell_case "not inside a quoted string continued on the next line" nil $'local s = "a\\\n-- ferry: allow-shell"'
shell_case "not after code (on the next line)" nil $'local x = 1\n-- ferry: allow-shell'
shell_case "not after code (on its line)" nil $'local x = 1 -- ferry: allow-shell'
shell_case "not in a block comment" nil $'--[[\n-- ferry: allow-shell\n]]'
shell_case "not in a block comment with level" nil $'--[==[ notes\n-- ferry: allow-shell ]]\n]==]'
shell_case "not after a block comment on the same line" nil $'--[[ x ]] -- ferry: allow-shell'
shell_case "not with other text on the line" nil $'-- ferry: allow-shell, please'

# ------------------------------------------------------------------ rules
proj=$d/proj
mkdir -p "$proj/migrations/20250101_ctx" "$proj/rules"
cat >"$proj/rules/greet.lua" <<'EOF'
local t = require "ferry.testing"
local M = {}
M.greeting = "hello"
function M.hello(name) return M.greeting .. " " .. name end
M.tests = {
  ["says hello"] = function() t.eq(M.hello("x"), "hello x") end,
  ["raises on nil"] = function() t.raises(function() M.hello(nil) end, "concatenate") end,
}
return M
EOF
cat >"$proj/migrations/20250101_ctx/up.lua" <<'EOF'
local greet = require "rules.greet"
log.info(greet.hello("migration"))
for _, k in ipairs{"migration", "version", "name", "operation", "dry_run", "resumed"} do
  log.info(k .. "=" .. tostring(ctx[k]))
end
log.info("run_id_valid=" .. tostring(uuid.valid(ctx.run_id)))
EOF
printf 'local g = require "rules.greet"\nio.write(g.hello("exec"), "\\n")\nlocal ok, e = pcall(require, "rules.nope")\nio.write(tostring(ok), " ", e:match("module .rules.nope. not found") or e, "\\n")\n' >"$d/rule.lua"
run_ferry --dir "$proj" exec "$d/rule.lua"
is "$OUT" $'hello exec\nfalse module \'rules.nope\' not found' "require \"rules.x\" loads <dir>/rules/x.lua; a missing rule raises"

run_ferry --dir "$proj" check
is "$RC" 0 "check: the rule's tests pass"
like "$OUT" 'ok   rules\.greet  2 tests passed' "check runs M.tests"
cat >"$proj/rules/bad.lua" <<'EOF'
local t = require "ferry.testing"
return {tests = {["wrong sum"] = function() t.eq(1 + 1, 3, "sum") end}}
EOF
run_ferry --dir "$proj" check
is "$RC" 1 "check: a failing rule test exits 1"
like "$OUT" 'FAIL rules\.bad test "wrong sum"  .*sum: expected 3, got 2' "check names the failing test and the eq message"
rm "$proj/rules/bad.lua"

mdb=$(fresh_db ferry_lua_ctx)
run_ferry --db "$mdb" --dir "$proj" run 20250101_ctx
is "$RC" 0 "a migration using a rule runs"
like "$OUT" $'hello migration\nmigration=20250101_ctx\nversion=20250101\nname=ctx\noperation=run\ndry_run=false\nresumed=false\nrun_id_valid=true' \
     "ctx in a migration: migration, version, name, operation, dry_run, resumed, run_id"
run_ferry --db "$mdb" --dir "$proj" run 20250101_ctx --dry-run
like "$OUT" $'dry_run=true' "ctx.dry_run in a dry run"

# ------------------------------------------------------------------ ctx.checkpoint
cdb=$(fresh_db ferry_lua_checkpoint)
mkdir -p "$proj/migrations/20250102_cp"
cat >"$proj/migrations/20250102_cp/up.lua" <<'EOF'
local pos = ctx.checkpoint.get()
log.info("resumed=" .. tostring(ctx.resumed) .. " pos=" .. (pos and json.encode(pos) or "nil")
         .. " seen=" .. stats.get("seen"))
stats.inc("seen", 5)
db.transaction(function() ctx.checkpoint.save({last = (pos and pos.last or 0) + 7}) end)
log.info("after save: " .. json.encode(ctx.checkpoint.get()))
if os.getenv("CP_CLEAR") then
  ctx.checkpoint.clear()
  log.info("after clear: " .. tostring(ctx.checkpoint.get()))
end
if os.getenv("CP_FAIL") then error("stop here") end
EOF
CP_FAIL=1 run_ferry --db "$cdb" --dir "$proj" run 20250102_cp
is "$RC" 1 "checkpoint: the first run fails after saving"
like "$OUT" 'resumed=false pos=nil seen=0' "first run: get() is nil, ctx.resumed false"
like "$OUT" 'after save: \{"last":7\}' "get() returns what save() stored"
is "$(psql_val "$cdb" "SELECT position::text || ' ' || (stats->'counters')::text FROM ferry.checkpoint WHERE migration = '20250102_cp'")" \
   '{"last": 7} [["seen", 5]]' "save() wrote the position and the counters to ferry.checkpoint"

run_ferry --db "$cdb" --dir "$proj" run 20250102_cp --dry-run
like "$OUT" 'resumed=true pos=\{"last":7\} seen=5' "a dry run reads the checkpoint too"
like "$OUT" 'after save: \{"last":14\}' "a dry run's save() is kept in memory"
is "$(psql_val "$cdb" "SELECT position::text FROM ferry.checkpoint")" '{"last": 7}' "and not written"

run_ferry --db "$cdb" --dir "$proj" run 20250102_cp
is "$RC" 0 "the next run resumes and succeeds"
like "$OUT" 'resumed=true pos=\{"last":7\} seen=5' "resumed: position and counters restored"
is "$(psql_val "$cdb" "SELECT count(*) FROM ferry.checkpoint")" 0 "a successful run clears the checkpoint"
is "$(psql_val "$cdb" "SELECT stats->'stats'->>'seen' FROM ferry.history WHERE migration = '20250102_cp' AND status = 'applied'")" \
   10 "the recorded totals equal those of an uninterrupted run"

CP_CLEAR=1 CP_FAIL=1 run_ferry --db "$cdb" --dir "$proj" run 20250102_cp
like "$OUT" 'after clear: nil' "clear() forgets the position"
is "$(psql_val "$cdb" "SELECT count(*) FROM ferry.checkpoint")" 0 "clear() deletes the row"

printf 'SELECT 1;\n' >"$proj/migrations/20250102_cp/rollback.sql"
CP_FAIL=1 run_ferry --db "$cdb" --dir "$proj" run 20250102_cp
is "$(psql_val "$cdb" "SELECT count(*) FROM ferry.checkpoint")" 1 "an interrupted run leaves its checkpoint"
run_ferry --db "$cdb" --dir "$proj" --json rollback 20250102_cp
is "$RC" 0 "rollback --json succeeds"
is "$(psql_val "$cdb" "SELECT count(*) FROM ferry.checkpoint")" 0 "rollback deletes the checkpoint (with --json too)"

# ------------------------------------------------------------------ tap() output on failure
cat >"$d/failing.lua" <<'EOF'
local T = require("ferry.testing").tap()
T.ok(true, "fine")
T.is({a = 1}, {a = 2}, "tables differ")
T.like("abc", "^x", "no match")
T.raises(function() end, "x", "does not raise")
T.ok(nil, "multi\nline name")
return T.done()
EOF
run_ferry exec "$d/failing.lua"
is "$RC" 1 "tap(): T.done() returns 1 when a test failed (the exit code)"
is "$OUT" 'ok 1 - fine
not ok 2 - tables differ
#      got: {a=1}
# expected: {a=2}
not ok 3 - no match
#      got: "abc"
#  doesn'"'"'t match: ^x
not ok 4 - does not raise
# no error was raised
not ok 5 - multi line name
# condition was false
1..5' "tap(): TAP lines with diagnostics"

done_testing
