#!/usr/bin/env bash
# Runs the whole suite under prove against the PostgreSQL in DATABASE_URL
# (scripts/with-pg.sh starts a private one).  Environment:
#   FERRY          the binary under test (default bin/ferry)
#   FERRY_WRAPPER  a command to run it under (make valgrind)
#   UNIT_DIR       where the cmocka binaries are (default build/unit)
#   TESTS          the test files (default: all)
set -u
cd "$(dirname "$0")/.." || exit 1
root=$(pwd -P)
real=${FERRY:-$root/bin/ferry}
# Tests call "$FERRY" or "ferry" from PATH; both go through this wrapper so
# that valgrind or a sanitizer build applies to every run.  One per run, so
# that two suites running at once do not swap binaries.
testbin=$(mktemp -d "${TMPDIR:-/tmp}/ferry-testbin.XXXXXX")
trap 'rm -rf "$testbin"' EXIT
cat > "$testbin/ferry" <<WRAP
#!/bin/sh
exec ${FERRY_WRAPPER:-} "$real" "\$@"
WRAP
chmod +x "$testbin/ferry"
export FERRY=$testbin/ferry FERRY_BIN=$real REPO_ROOT=$root PATH="$testbin:$PATH"
export FERRY_PROGRESS_INTERVAL=${FERRY_PROGRESS_INTERVAL:-3600}
export UNIT_DIR=${UNIT_DIR:-build/unit}
if [ -z "${TESTS:-}" ]; then
  TESTS=$(ls tests/unit/*.t tests/cli/*.t tests/lua/*.t tests/batch4/*.t tests/batch5/*.t tests/sql/*.t tests/robust/*.t tests/bench/*.t 2>/dev/null)
fi
# shellcheck disable=SC2086
prove ${PROVE_FLAGS:-} $TESTS
