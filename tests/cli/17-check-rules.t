#!/usr/bin/env bash
# ferry check on the repository's own rules, edited as an operator would:
# a mapped value the run would refuse fails the rule's own tests (not the
# run, 100 rows later), and a syntax error in one rule is one failing
# entry, the other rules still tested.  No database.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"

B4=20251110_backfill_conversations_messages
B5=20251115_backfill_memory_notes
# a copy of the repository's migrations and rules, fresh for each case
tree() {
    T=$TAP_TMPDIR/$1
    rm -rf "$T"
    mkdir -p "$T"
    cp -R "$REPO_ROOT/migrations" "$REPO_ROOT/rules" "$T/"
}
# edit FILE SED_SCRIPT: sed -i, and fail the test when nothing changed
edit() {
    cp "$1" "$1.orig"
    sed -i "$2" "$1"
    cmp -s "$1" "$1.orig" && diag "edit: $2 changed nothing in $1"
    rm "$1.orig"
}
# the line number of the first line of FILE matching PATTERN (grep -n)
line_of() { grep -n -m1 -- "$2" "$1" | cut -d: -f1; }

tree shipped
run_ferry --dir "$T" check
is "$RC|$ERR" "0|" "the shipped rules pass check"
like "$OUT" $'\nok   rules\\.memory_notes  13 tests passed\n' "...rules.memory_notes' 13 tests"
like "$OUT" $'\nok   rules\\.roles  6 tests passed\n' "...rules.roles' 6 tests"

# --- rules/roles.lua: a mapped role Message.role does not allow
tree roles
edit "$T/rules/roles.lua" 's/^  tool      = "tool",$/  tool      = "tool",\n  webhook = "bot",/'
run_ferry --dir "$T" check
is "$RC|$ERR" "1|" "roles: webhook mapped to \"bot\": check fails (exit 1)"
l=$(line_of "$T/rules/roles.lua" 'is not one Message.role allows')
like "$OUT" $'\nFAIL rules\\.roles test "mapped roles are valid"  [^ ]*rules/roles\\.lua:'"$l"$': map key "webhook": role "bot" is not one Message\\.role allows \\(assistant, system, tool, user\\)\n' \
     "...naming the key, the value and the roles allowed"
is "$(grep -c '^FAIL' <<<"$OUT")" 1 "...the only failing entry"
# the documented edit (tests/batch4/45-operator-rules.t runs it) still passes
tree roles_ok
edit "$T/rules/roles.lua" 's/^  tool      = "tool",$/  tool      = "tool",\n  webhook = "tool",/'
run_ferry --dir "$T" check
is "$RC|$ERR" "0|" "roles: webhook mapped to \"tool\": check passes"

# --- rules/memory_notes.lua: a kind notes() refuses
tree kinds
edit "$T/rules/memory_notes.lua" 's/^M.kind_by_prefix = {{"preferences.", "preference"}}$/M.kind_by_prefix = {{"preferences.", "preference"}, {"contact.", ""}}/'
run_ferry --dir "$T" check
is "$RC|$ERR" "1|" "memory_notes: an empty kind for a prefix: check fails (exit 1)"
l=$(line_of "$T/rules/memory_notes.lua" 'is not a non-empty string (notes() refuses it)')
like "$OUT" $'\nFAIL rules\\.memory_notes test "kinds are non-empty text"  [^ ]*rules/memory_notes\\.lua:'"$l"$': kind_by_prefix\\[2\\] \\(prefix "contact\\."\\): kind "" is not a non-empty string \\(notes\\(\\) refuses it\\)\n' \
     "...naming the entry and the kind"
is "$(grep -c '^FAIL' <<<"$OUT")" 1 "...the only failing entry"
tree kinds_key
edit "$T/rules/memory_notes.lua" 's/^M.kind_by_key = {summary = "summary"}$/M.kind_by_key = {summary = "summary", budget = false}/'
run_ferry --dir "$T" check
like "$OUT" $'\nFAIL rules\\.memory_notes test "kinds are non-empty text"  [^ ]*: kind_by_key\["budget"\]: kind false is not a non-empty string' \
     "memory_notes: a kind that is not text, by key: named"
tree kinds_pair
edit "$T/rules/memory_notes.lua" 's/^M.kind_by_prefix = {{"preferences.", "preference"}}$/M.kind_by_prefix = {"preferences.", "preference"}/'
run_ferry --dir "$T" check
like "$OUT" $'\nFAIL rules\\.memory_notes test "kinds are non-empty text"  [^ ]*: kind_by_prefix\[1\]: "preferences\." is not a \{prefix, kind\} pair with a string prefix' \
     "memory_notes: a prefix entry that is not a pair: named"
tree kinds_ok
edit "$T/rules/memory_notes.lua" 's/^M.kind_by_prefix = {{"preferences.", "preference"}}$/M.kind_by_prefix = {{"preferences.", "preference"}, {"contact.", "contact"}}/'
run_ferry --dir "$T" check
is "$RC|$ERR" "0|" "memory_notes: a new prefix with a kind: check passes"

# --- a syntax error in rules/roles.lua: its entry fails, the rules after
# it (rules.text) are still tested; --json has every entry
tree syntax
edit "$T/rules/roles.lua" 's/^  tool      = "tool",$/  tool      = "tool"\n  webhook   = "tool",/'
l=$(line_of "$T/rules/roles.lua" '^  webhook   = "tool",$')
run_ferry --dir "$T" check
is "$RC|$ERR" "2|" "a syntax error in rules/roles.lua: exit 2"
is "$OUT" "ok   migrations/$B4/up.lua
ok   migrations/$B4/validate.lua
ok   migrations/$B5/up.lua
ok   migrations/$B5/validate.lua
ok   rules.backfill  3 tests passed
ok   rules.memory_notes  13 tests passed
ok   rules.metadata  3 tests passed
FAIL rules.roles  does not compile: rules/roles.lua:$l: '}' expected (to close '{' at line 8) near 'webhook'
ok   rules.text  8 tests passed" "...one entry naming rules/roles.lua:$l; rules.text still tested"
run_ferry --dir "$T" --json check
is "$RC|$ERR" "2|" "check --json, a syntax error: exit 2"
is "$(json_eval "$OUT" '[j["ok"], [c["name"] + ("" if c["ok"] else " FAIL") for c in j["checks"]]]')" \
   "[false,[\"migrations/$B4/up.lua\",\"migrations/$B4/validate.lua\",\"migrations/$B5/up.lua\",\"migrations/$B5/validate.lua\",\"rules.backfill\",\"rules.memory_notes\",\"rules.metadata\",\"rules.roles FAIL\",\"rules.text\"]]" \
   "...{ok: false, checks: [...]} with every entry"
is "$(json_eval "$OUT" '[c["detail"] for c in j["checks"] if not c["ok"]][0]')" \
   "does not compile: rules/roles.lua:$l: '}' expected (to close '{' at line 8) near 'webhook'" "...the failing entry's detail"

# os.exit in a rule's test would end check there, with that exit code and
# the rules after it untested: it fails that test instead
tree exits
cat > "$T/rules/aaa_exits.lua" <<'LUA'
local M = {}
M.tests = {["leaves early"] = function() os.exit(0) end}
return M
LUA
run_ferry --dir "$T" check
is "$RC" 1 "a rule test calling os.exit: check exits 1"
like "$OUT" $'\nFAIL rules\\.aaa_exits test "leaves early"  rules/aaa_exits\\.lua:2: os\\.exit is not available' "...that test fails"
like "$OUT" $'\nok   rules\\.text ' "...and the rules after it are still tested"

# M.tests written as a list, or with a value that is no function (a
# newcomer's {"name", ...} or {name = true}): each such entry fails with
# what a test is, the others still run; check used to stop at once with
# 'ferry: attempt to compare string with number' (sorting the names) or
# fail with 'attempt to call a number value'
tree shapes
cat > "$T/rules/aaa_shapes.lua" <<'LUA'
local M = {}
M.tests = {"forgot the name", ["runs"] = function() end, ["not yet"] = true}
return M
LUA
run_ferry --dir "$T" check
is "$RC|$ERR" "1|" "M.tests with a list entry and a non-function: check fails (exit 1), no crash"
like "$OUT" $'\nFAIL rules\\.aaa_shapes test 1  not a function \\(a string\\): M\\.tests maps each test\'s name to its function, M\\.tests = \\{\\["name"\\] = function\\(\\) \\.\\.\\. end\\}\n' \
     "...the list entry fails, saying what a test is"
like "$OUT" $'\nFAIL rules\\.aaa_shapes test "not yet"  not a function \\(a boolean\\): ' "...and so does the non-function"
is "$(grep -c '^FAIL' <<<"$OUT")" 2 "...the only failing entries (the function ran)"
like "$OUT" $'\nok   rules\\.text ' "...and the rules after it are still tested"

# a rule that forgot its 'return M': require gives true, so its tests
# were never found -- check said "ok ... no tests" and the run then failed
# on every row ("attempt to index a boolean value"); it fails check
tree noreturn
cat > "$T/rules/aaa_noreturn.lua" <<'LUA'
local M = {}
function M.double(x) return 2 * x end
M.tests = {["doubles"] = function() assert(M.double(2) == 4) end}
LUA
run_ferry --dir "$T" check
is "$RC|$ERR" "1|" "a rule without 'return M': check fails (exit 1)"
like "$OUT" $'\nFAIL rules\\.aaa_noreturn  returns nothing: a rule module ends with `return M` \\(its tests were not run\\)\n' \
     "...saying it returns nothing, and that its tests were not run"
like "$OUT" $'\nok   rules\\.text ' "...and the rules after it are still tested"

done_testing
