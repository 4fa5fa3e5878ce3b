#!/usr/bin/env bash
# log (info/verbose/warn/error/flags) and progress (new/add/set/finish/done):
# which stream each line goes to under -v, -q and --json, and the plain
# progress lines (FERRY_PROGRESS_INTERVAL) or the bar on a terminal.
. "$(dirname "$0")/../lib/tap.sh"

d=$TAP_TMPDIR
cat >"$d/log.lua" <<'EOF'
log.info("info %d", 5)
log.verbose("verbose", "line")
log.warn("warn", 1, nil)
log.error("err %s", "x")
local f = log.flags()
io.stdout:write(string.format("flags verbose=%s quiet=%s json=%s\n", f.verbose, f.quiet, f.json))
EOF

run_ferry exec "$d/log.lua"
is "$RC" 0 "log script runs"
is "$OUT" $'info 5\nflags verbose=false quiet=false json=false' "default: info on stdout, verbose hidden"
is "$ERR" $'warn 1 nil\nerror: err x' "default: warn on stderr, error with 'error: ' on stderr"

run_ferry -v exec "$d/log.lua"
is "$OUT" $'info 5\nverbose line\nflags verbose=true quiet=false json=false' "-v: verbose lines on stdout too"
is "$ERR" $'warn 1 nil\nerror: err x' "-v: stderr unchanged"

run_ferry --verbose exec "$d/log.lua"
is "$OUT" $'info 5\nverbose line\nflags verbose=true quiet=false json=false' "--verbose is -v"

run_ferry -q exec "$d/log.lua"
is "$OUT" 'flags verbose=false quiet=true json=false' "-q: no info, no verbose"
is "$ERR" 'error: err x' "-q: nothing but errors on stderr"

run_ferry --quiet exec "$d/log.lua"
is "$ERR" 'error: err x' "--quiet is -q"

run_ferry --json exec "$d/log.lua"
is "$OUT" 'flags verbose=false quiet=false json=true' "--json: info does not touch stdout"
is "$ERR" $'info 5\nwarn 1 nil\nerror: err x' "--json: info goes to stderr"

run_ferry --json -v exec "$d/log.lua"
is "$ERR" $'info 5\nverbose line\nwarn 1 nil\nerror: err x' "--json -v: verbose goes to stderr too"

run_ferry -v -q exec "$d/log.lua"
is "$RC" 2 "-v with -q is a usage error (exit 2)"
like "$ERR" 'exclude each other' "and says so"

cat >"$d/fmt.lua" <<'EOF'
log.info("100% literal")
log.info("a", 1, 2.5, true, nil)
log.info("%s=%d", "n", 3)
log.info({} ~= nil)
log.info()
log.info("%d%%", 50)
EOF
run_ferry exec "$d/fmt.lua"
is "$OUT" $'100% literal\na 1 2.5 true nil\nn=3\ntrue\n\n50%' \
   "formatting: one argument as is; several joined by spaces; string.format when the first has a %"

printf 'log.info("x\\0y")\nlog.warn("a\\0", 1)\nlog.info("b\\0%%d", 7)\n' >"$d/nul.lua"
"$FERRY" exec "$d/nul.lua" >"$d/nul.out" 2>"$d/nul.err"   # (bytes in files: the shell drops NULs)
is "$(od -An -c "$d/nul.out" | tr -s ' ')" " x \\0 y \\n b \\0 7 \\n" "a NUL byte in a log line is written, not the end of the line (nor of a format)"
is "$(od -An -c "$d/nul.err" | tr -s ' ')" " a \\0 1 \\n" "... on stderr too"

# ------------------------------------------------------------------ progress
cat >"$d/prog.lua" <<'EOF'
local p = progress.new("items", 4)
p:add()
p:add(2)
p:set(4)
io.stdout:write("done=", p:done(), "\n")
p:finish()
p:finish()
local u = progress.new("unknown")
u:add(3)
u:set(5, 10)
u:finish()
do
  local c <close> = progress.new("closed", 2)
  c:add(2)
end
EOF
FERRY_PROGRESS_INTERVAL=0 run_ferry exec "$d/prog.lua"
is "$RC" 0 "progress script runs"
is "$OUT" "done=4" "progress never writes to stdout; done() is the count"
mapfile -t lines <<<"$ERR"
is "${#lines[@]}" 9 "interval 0: a line per add/set, and one final line per finish"
# (a rate needs 5 s of counting, from the first add or set: these lines,
# all drawn within a few milliseconds of it, show none, nor an ETA -- the
# first line used to extrapolate the first instant to the whole run)
is "${lines[0]}" "progress: items 1/4 (25.0%) -/s ETA -" "line: progress: LABEL N/TOTAL (P%) R/s ETA H:MM:SS; no rate yet: -/s ETA -"
is "${lines[1]}" "progress: items 3/4 (75.0%) -/s ETA -" "add(n) adds n"
is "${lines[2]}" "progress: items 4/4 (100.0%) -/s ETA -" "set(n)"
is "${lines[3]}" "progress: items 4/4 (100.0%) -/s ETA -" "finish draws the final state once (twice is safe)"
is "${lines[4]}" "progress: unknown 3 -/s ETA -" "without a total: N R/s ETA -"
is "${lines[5]}" "progress: unknown 5/10 (50.0%) -/s ETA -" "set(done, total) sets the total"
is "${lines[6]}" "progress: unknown 5/10 (50.0%) -/s ETA -" "final line"
is "${lines[7]}" "progress: closed 2/2 (100.0%) -/s ETA -" "a to-be-closed progress"
is "${lines[8]}" "progress: closed 2/2 (100.0%) -/s ETA -" "finishes when it goes out of scope"

# After 5 s of counting (a wait in the server, not a busy loop): a rate and
# an ETA; the final line of a bar left short of its total (an error
# unwinding through a <close> bar) has no ETA -- it had one, for a run that
# had stopped.  An ETA past what a C long holds in seconds (a total near
# the largest integer, a rate below 1/s) is "-", not a negative time (the
# cast of a double out of range was undefined: "ETA -2562047788015215:-30:-8").
# The values depend on the wait's length: the exact arithmetic is
# tests/unit/test_rate.c's, with a clock of its own.
cat >"$d/slow.lua" <<'EOF'
local far = progress.new("far", math.maxinteger)
local slow = progress.new("slow", 100)
local idle = progress.new("idle", 10)
far:set(1)
slow:add(1)
idle:add(1)
db.exec("SELECT pg_sleep(5.3)")
far:set(2)
slow:add(9)
idle:add(0)
slow:finish()
EOF
FERRY_PROGRESS_INTERVAL=0 run_ferry exec "$d/slow.lua"
mapfile -t lines <<<"$ERR"
is "$RC|${#lines[@]}" "0|7" "a line per update, and the final line of the bar finished"
is "${lines[0]}|${lines[1]}|${lines[2]}" \
   "progress: far 1/9223372036854775807 (0.0%) -/s ETA -|progress: slow 1/100 (1.0%) -/s ETA -|progress: idle 1/10 (10.0%) -/s ETA -" \
   "the first updates: no rate"
is "${lines[3]}" "progress: far 2/9223372036854775807 (0.0%) 0/s ETA -" "an ETA too far to count in seconds is -"
like "${lines[4]}" '^progress: slow 10/100 \(10\.0%\) [12]/s ETA 0:[0-9]{2}:[0-9]{2}$' "after 5 s of counting: the rate and an ETA"
is "${lines[5]}" "progress: idle 1/10 (10.0%) 0/s ETA -" "no progress in 5 s: 0/s, no ETA"
like "${lines[6]}" '^progress: slow 10/100 \(10\.0%\) [12]/s ETA -$' "the final line of a bar short of its total: the average rate, no ETA"

# a long label is cut to 63 bytes, never inside a UTF-8 character
cat >"$d/label.lua" <<'EOF'
local p = progress.new(("é"):rep(40), 10)
p:add()
local q = progress.new(("a"):rep(62) .. "€z", 10)
q:add()
local r = progress.new(("b"):rep(70), 10)
r:add()
EOF
FERRY_PROGRESS_INTERVAL=0 run_ferry exec "$d/label.lua"
mapfile -t lines <<<"$ERR"
is "${lines[0]}" "progress: $(printf 'é%.0s' {1..31}) 1/10 (10.0%)${lines[0]##*(10.0%)}" \
   "a label of 2-byte characters is cut after the last whole one (62 bytes, not 63)"
is "${lines[1]%% 1/10*}" "progress: $(printf 'a%.0s' {1..62})" "a 3-byte character that would end past byte 63 is left out whole"
is "${lines[2]%% 1/10*}" "progress: $(printf 'b%.0s' {1..63})" "an ASCII label is cut at 63 bytes"

FERRY_PROGRESS_INTERVAL=3600 run_ferry exec "$d/prog.lua"
is "$ERR" "" "a long interval: no lines at all (and no final line for a series that printed none)"

# a value that is not a number >= 0 was read by atof: "abc", "" or "10s"
# as 0 (or 10), "-5" as every update -- a line per row of a big run; it is
# the default, 10 s, now
for bad in abc "" 10s -5 nan; do
    FERRY_PROGRESS_INTERVAL=$bad run_ferry exec "$d/prog.lua"
    is "$RC|$ERR" "0|" "FERRY_PROGRESS_INTERVAL='$bad': the default interval (no line in a short run)"
done
FERRY_PROGRESS_INTERVAL=0.0 run_ferry exec "$d/prog.lua"
mapfile -t lines <<<"$ERR"
is "${#lines[@]}" 9 "FERRY_PROGRESS_INTERVAL=0.0: a decimal 0 is every update"

FERRY_PROGRESS_INTERVAL=0 run_ferry -q exec "$d/prog.lua"
is "$ERR" "" "--quiet: no progress output"

FERRY_PROGRESS_INTERVAL=0 run_ferry --json exec "$d/prog.lua"
is "$OUT" "done=4" "--json: progress stays off stdout"
like "$ERR" '^progress: items 1/4' "--json: progress lines on stderr"

# on a terminal: a bar redrawn in place, cleared before a log line
cat >"$d/tty.lua" <<'EOF'
local p = progress.new("items", 4)
p:add()
local t = os.clock()
while os.clock() - t < 0.3 do end   -- the bar redraws at most every 0.2 s
p:add()
log.info("hello")
p:add(2)
p:finish()
EOF
if command -v script >/dev/null 2>&1; then
  tty_out=$(FERRY_PROGRESS_INTERVAL=0 script -qec "\"$FERRY\" exec \"$d/tty.lua\"" /dev/null 2>&1)
  esc=$'\033'
  [[ "$tty_out" == *$'\r'"${esc}[Kitems [###############...............] 2/4 (50.0%) -/s ETA -"$'\r'* ]]
  ok $? "terminal: a bar with count and percent, drawn with \\r and erase-line"
  [[ "$tty_out" == *$'\r'"${esc}[Khello"* ]]
  ok $? "terminal: a log line first clears the bar"
  [[ "$tty_out" == *$'\r'"${esc}[Kitems [##############################] 4/4 (100.0%) -/s ETA -"$'\r' ]]
  ok $? "terminal: finish draws the full bar and ends the line"
  [[ "$tty_out" != *"progress: "* ]]
  ok $? "terminal: no plain lines"
else
  skip "script(1) is not installed" 4
fi

done_testing
