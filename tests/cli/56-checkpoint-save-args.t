#!/usr/bin/env bash
# ctx.checkpoint.save refuses in a dry run, and under `ferry exec`, what the
# real run refuses: a position with no JSON form (NaN, a function) and a
# second argument that is no connection.  Found by an author's test: a dry
# run said "finished" and the real run then failed at its first batch, with
# an error from ferry's internals ("attempt to call a nil value (method
# 'exec')") for ctx.checkpoint.save(pos, "oops").
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_cp_args)
export DATABASE_URL=$db
psql -X -q -d "$db" -c "CREATE TABLE cp_t (x int)"
D=$TAP_TMPDIR/proj
put "$D/migrations/20250101_cp/up.lua" 'local mode = os.getenv("CP_MODE")
if mode == "nan" then ctx.checkpoint.save(0/0)
elseif mode == "fn" then ctx.checkpoint.save(print)
elseif mode == "conn" then db.transaction(function() ctx.checkpoint.save(5, "oops") end)
elseif mode == "swapped" then local c = db.connect(); ctx.checkpoint.save(c, 5)
elseif mode == "snapshot" then db.transaction(function() ctx.checkpoint.save(5, nil, "x") end)
elseif mode == "snaptable" then db.transaction(function() ctx.checkpoint.save(5, nil, {}) end)
elseif mode == "nil" then local row = {ID = 7}; db.transaction(function() ctx.checkpoint.save(row.id) end)
elseif mode == "null" then db.transaction(function() ctx.checkpoint.save(json.null) end)
elseif mode == "utf8" then db.transaction(function() ctx.checkpoint.save({last = ("h\u{e9}llo"):sub(1, 2)}) end)
elseif mode == "nul" then db.transaction(function() ctx.checkpoint.save({["k\0"] = "a"}) end)
elseif mode == "nulvalue" then db.transaction(function() ctx.checkpoint.save({last = "a\0b"}) end)
elseif mode == "show" then log.info("resumed " .. tostring(ctx.resumed) .. ", get() " .. tostring(ctx.checkpoint.get()))
elseif mode == "good" then
  local c = db.connect()
  c:exec("BEGIN")
  assert(ctx.checkpoint.save({at = 5}, c, ctx.checkpoint.snapshot()) == true)
  c:exec("COMMIT")
  c:close()
elseif mode == "pipe" then
  local b = db.buffer(); b:put(1)
  local pipe <close> = db.pipeline{jobs = 2, dry_run = ctx.dry_run, checkpoint = ctx.checkpoint}
  pipe:send{copies = {{sql = "COPY cp_t (x) FROM STDIN", buffer = b}}, position = json.null}
  pipe:send{copies = {{sql = "COPY cp_t (x) FROM STDIN", buffer = b}}, position = 2}
  pipe:send{copies = {{sql = "COPY cp_t (x) FROM STDIN", buffer = b}}, position = 3}
  pipe:finish()
elseif mode == "api" then
  local names = {}
  for k, v in pairs(ctx.checkpoint) do
    if type(v) == "function" and not k:find("^_") then names[#names + 1] = k end
  end
  table.sort(names)
  log.info("api " .. table.concat(names, " "))
end'

NAN='migrations/20250101_cp/up.lua:2: ctx.checkpoint.save: the position has no JSON form: NaN is not a JSON number (NaN and infinities have no JSON form)'
FN='migrations/20250101_cp/up.lua:3: ctx.checkpoint.save: the position has no JSON form: a function is not a JSON value'
CONN='migrations/20250101_cp/up.lua:4: ctx.checkpoint.save: argument #2 is the session to save on (db.connect(), or the conn a pipeline hands to after), or nil for the main one, not a string'
SWAP='migrations/20250101_cp/up.lua:5: ctx.checkpoint.save: the position has no JSON form: a userdata is not a JSON value'
NIL='ctx.checkpoint.save: the position is nil: save where the batch ends (the key of its last row); a run resuming from a nil or json.null position could not tell it from none, and would start over or read nothing'
SNAP='migrations/20250101_cp/up.lua:6: ctx.checkpoint.save: argument #3 is a ctx.checkpoint.snapshot() or nil, not a string'

for dry in "" "--dry-run"; do
    what=${dry:-real run}
    CP_MODE=nan run_ferry --dir "$D" run 20250101 $dry
    is "$RC|$ERR" "1|ferry: $NAN" "$what: a NaN position is refused, named as the position's"
    CP_MODE=fn run_ferry --dir "$D" run 20250101 $dry
    is "$RC|$ERR" "1|ferry: $FN" "$what: a function as the position is refused"
    CP_MODE=conn run_ferry --dir "$D" run 20250101 $dry
    is "$RC|$ERR" "1|ferry: $CONN" "$what: a string where the connection goes says what goes there"
    CP_MODE=swapped run_ferry --dir "$D" run 20250101 $dry
    is "$RC|$ERR" "1|ferry: $SWAP" "$what: (connection, position) swapped: the connection is no position"
    CP_MODE=snapshot run_ferry --dir "$D" run 20250101 $dry
    is "$RC|$ERR" "1|ferry: $SNAP" "$what: a third argument that is no snapshot is refused"
    CP_MODE=snaptable run_ferry --dir "$D" run 20250101 $dry
    is "$RC|$ERR" "1|ferry: migrations/20250101_cp/up.lua:7: ctx.checkpoint.save: argument #3 is a ctx.checkpoint.snapshot() or nil, not a table of another shape" \
       "$what: a table that is no snapshot is refused too (it failed later: 'attempt to compare nil with number')"
    # a nil position (row.id of a row whose key is row.ID) was stored as
    # JSON null, which the resumed run's get() gave back as json.null: a
    # truthy value, so `get() or 0` bound NULL and the run read nothing
    CP_MODE=nil run_ferry --dir "$D" run 20250101 $dry
    is "$RC|$ERR" "1|ferry: migrations/20250101_cp/up.lua:8: $NIL" "$what: a nil position is refused"
    CP_MODE=null run_ferry --dir "$D" run 20250101 $dry
    is "$RC|$ERR" "1|ferry: migrations/20250101_cp/up.lua:9: ${NIL/is nil/is json.null}" "$what: a json.null position is refused"
    # a string cut inside a character: the dry run passed, the real run
    # failed at its save with the server's 22021 and advice about a
    # SQL_ASCII database
    CP_MODE=utf8 run_ferry --dir "$D" run 20250101 $dry
    is "$RC|$ERR" "1|ferry: migrations/20250101_cp/up.lua:10: ctx.checkpoint.save: the position has no JSON form: a string in it is not valid UTF-8 (a key cut inside a character?)" \
       "$what: a position with a string that is not UTF-8 is refused"
    # a NUL byte in a string: JSON writes it \u0000, which jsonb refuses
    # ("unsupported Unicode escape sequence", 22P05): the dry run and ferry
    # exec passed, the real run failed at its save
    CP_MODE=nul run_ferry --dir "$D" run 20250101 $dry
    is "$RC|$ERR" "1|ferry: migrations/20250101_cp/up.lua:11: ctx.checkpoint.save: the position has no JSON form: a string in it holds a NUL byte (jsonb cannot store \u0000)" \
       "$what: a position with a key holding a NUL byte is refused"
    CP_MODE=nulvalue run_ferry --dir "$D" run 20250101 $dry
    is "$RC|$ERR" "1|ferry: migrations/20250101_cp/up.lua:12: ctx.checkpoint.save: the position has no JSON form: a string in it holds a NUL byte (jsonb cannot store \u0000)" \
       "$what: ...and one with a value holding one"
    # a db.pipeline batch's position: a real run saves it at the batch's
    # commit, after its COPY -- it raised at the line of a later send
    CP_MODE=pipe run_ferry --dir "$D" run 20250101 $dry
    is "$RC|$ERR" "1|ferry: migrations/20250101_cp/up.lua:23: ${NIL/is nil/is json.null}" \
       "$what: a json.null position sent to a db.pipeline is refused at that send"
done
is "$(psql -X -tA -d "$db" -c "SELECT count(*) FROM cp_t")" 0 "nothing of the pipeline's batches was written"
is "$(psql -X -tA -d "$db" -c "SELECT count(*) FROM ferry.checkpoint")" 0 "no checkpoint row was written for any"
# a null position a ferry before this one stored reads as no position
psql -X -q -d "$db" -c "INSERT INTO ferry.checkpoint (migration, run_id, position, stats, updated_at)
                        VALUES ('20250101_cp', gen_random_uuid(), 'null', '{}', now())"
CP_MODE=show run_ferry --dir "$D" run 20250101
is "$RC|$(grep resumed <<<"$OUT")" "0|resumed true, get() nil" "a stored null position: get() is nil, not json.null"
CP_MODE=good run_ferry --dir "$D" run 20250101 --dry-run
is "$RC" 0 "dry run: a position saved on a session of the script's own, with a snapshot, passes"
CP_MODE=good run_ferry --dir "$D" run 20250101
is "$RC" 0 "...and so does the real run"

# ctx.checkpoint's functions are the four lua-api.md documents; ferry's own
# (what db.pipeline reports of its commits) are marked _ as internal
for dry in "" "--dry-run"; do
    CP_MODE=api run_ferry --dir "$D" run 20250101 $dry
    is "$RC|$(grep '^api ' <<<"$OUT")" "0|api clear get save snapshot" "ctx.checkpoint: get, save, snapshot, clear (${dry:-real run})"
done

# ferry exec keeps the checkpoint in memory, and refuses the same
put "$D/x.lua" 'local function try(...) local ok, e = pcall(ctx.checkpoint.save, ...); print(ok, e) end
try(0/0)
try({1, 2, x = 3})
try(5, "oops")
try({at = 5})
try(nil)
print(ctx.checkpoint.get().at)'
run_ferry --dir "$D" exec "$D/x.lua"
is "$RC|$OUT" "0|false	ctx.checkpoint.save: the position has no JSON form: NaN is not a JSON number (NaN and infinities have no JSON form)
false	ctx.checkpoint.save: a position table must be a list (keys 1..n) or have text keys only (JSON would give other keys back as text)
false	ctx.checkpoint.save: argument #2 is the session to save on (db.connect(), or the conn a pipeline hands to after), or nil for the main one, not a string
true	true
false	ctx.checkpoint.save: the position is nil: save where the batch ends (the key of its last row); a run resuming from a nil or json.null position could not tell it from none, and would start over or read nothing
5" "exec: the in-memory checkpoint refuses what up.lua's refuses, and keeps a good position"

done_testing
