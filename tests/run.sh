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
mkdir -p build/testbin
# Tests call "$FERRY" or "ferry" from PATH; both go through this wrapper so
# that valgrind or a sanitizer build applies to every run.
cat > build/testbin/ferry <<WRAP
#!/bin/sh
exec ${FERRY_WRAPPER:-} "$real" "\$@"
WRAP
chmod +x build/testbin/ferry
export FERRY=$root/build/testbin/ferry REPO_ROOT=$root PATH="$root/build/testbin:$PATH"
export FERRY_PROGRESS_INTERVAL=${FERRY_PROGRESS_INTERVAL:-3600}
export UNIT_DIR=${UNIT_DIR:-build/unit}
if [ -z "${TESTS:-}" ]; then
  TESTS=$(ls tests/unit/*.t tests/cli/*.t tests/lua/*.t tests/batch4/*.t tests/batch5/*.t tests/sql/*.t tests/robust/*.t 2>/dev/null)
fi
# shellcheck disable=SC2086
exec prove ${PROVE_FLAGS:-} $TESTS
