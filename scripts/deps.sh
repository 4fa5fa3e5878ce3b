#!/usr/bin/env bash
# scripts/deps.sh [GROUP...] - make sure the Debian 12 packages ferry needs are
# installed.  Idempotent: does nothing (and touches no network) when everything
# is already there.
#
# Groups (default: test):
#   build  compile dependencies
#   test   build + PostgreSQL 15 server, pgTAP, pg_prove, cmocka, time,
#          pgbouncer and openssl (tests/robust/32-pooler.t, 33-tls.t)
#   tools  valgrind, clang (+ compiler-rt for ASan/UBSan/libFuzzer)
#   all    everything above
#
# As root, missing packages are installed with apt-get (after one
# `apt-get update`).  As another user, the exact command is printed and the
# script exits 1.
#
# Note: installing postgresql-15 may make Debian create and start a system
# cluster "15/main" on port 5432.  ferry's tests never use it; they run a
# private cluster (scripts/pg.sh).  Likewise pgbouncer's package may start
# a system pgbouncer on port 6432; the tests start their own.
set -euo pipefail

# lua-cjson-dev ships the headers, liblua5.4-cjson.a and lua5.4-cjson.pc;
# it pulls lua-cjson (liblua5.4-cjson.so.0 and the cjson Lua module).
# Debian 12 has no package called liblua5.4-cjson.
PKGS_build=(build-essential pkg-config liblua5.4-dev lua-cjson-dev lua-cjson libpq-dev uuid-dev)
PKGS_test=(postgresql-15 postgresql-client-15 postgresql-15-pgtap
           libtap-parser-sourcehandler-pgtap-perl libcmocka-dev perl time bc python3 pgbouncer openssl)
# clang-14 only *recommends* the compiler-rt runtimes (ASan, UBSan, libFuzzer),
# and we install without recommends, so name them explicitly.
PKGS_tools=(valgrind clang libclang-rt-14-dev)

usage() {
    echo "usage: $0 [build|test|tools|all]..." >&2
    exit 2
}

[ $# -gt 0 ] || set -- test

wanted=()
for group in "$@"; do
    case "$group" in
        build) wanted+=("${PKGS_build[@]}") ;;
        test)  wanted+=("${PKGS_build[@]}" "${PKGS_test[@]}") ;;
        tools) wanted+=("${PKGS_tools[@]}") ;;
        all)   wanted+=("${PKGS_build[@]}" "${PKGS_test[@]}" "${PKGS_tools[@]}") ;;
        -h|--help) usage ;;
        *) echo "deps.sh: unknown group '$group'" >&2; usage ;;
    esac
done

missing=()
declare -A seen=()
for pkg in "${wanted[@]}"; do
    [ -z "${seen[$pkg]:-}" ] || continue
    seen[$pkg]=1
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: missing Debian packages: ${missing[*]}" >&2
    echo "deps.sh: install them as root with:" >&2
    echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

echo "deps.sh: installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
