#!/usr/bin/env bash
# A server notice quoting a 1 MB value (RAISE NOTICE of a big text, a
# warning naming a long identifier) was written whole on stderr: one 1 MB
# line in a terminal or a cron mail.  It is cut after 2,000 bytes (at a
# character), with a note of how much was left out; its start -- the
# severity and the first of the text -- is kept, and so is a short notice.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"
. "$(dirname "${BASH_SOURCE[0]}")/cli-lib.sh"
require_pg

db=$(fresh_db ferry_cli_long_notice)
export DATABASE_URL=$db
put "$TAP_TMPDIR/big.lua" 'db.exec([[DO $d$BEGIN RAISE NOTICE $m$big: %$m$, repeat($m$é$m$, 524288); END$d$]])'
run_ferry exec "$TAP_TMPDIR/big.lua"
want="NOTICE:  big: $(printf 'é%.0s' $(seq 1 993))... (1046590 more bytes of this notice not shown)"
is "$RC|$ERR" "0|$want" "a 1 MB notice: its first 2,000 bytes, cut at a character, and how much was left out"
put "$TAP_TMPDIR/small.lua" 'db.exec([[DO $d$BEGIN RAISE WARNING $m$small$m$ USING DETAIL = $m$x$m$; END$d$]])'
run_ferry exec "$TAP_TMPDIR/small.lua"
is "$RC|$ERR" "0|WARNING:  small
DETAIL:  x" "a short notice is shown whole"

done_testing
