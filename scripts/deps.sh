#!/usr/bin/env bash
# scripts/deps.sh [GROUP...] - make sure the Debian 12 packages ferry needs are
# installed.  Idempotent: does nothing (and touches no network) when everything
# is already there.
#
# Groups (default: test):
#   build  compile dependencies
#   test   build + PostgreSQL 15 server, pgTAP, pg_prove, cmocka, time,
#          pgbouncer, pgpool2 and openssl (tests/robust/32-pooler.t,
#          34-pgpool.t, 33-tls.t), and
#          the de_DE.UTF-8 locale (package locales; enabled in
#          /etc/locale.gen and generated) for a server speaking German
#          (tests/cli/78-german-server.t)
#   tools  valgrind, clang (+ compiler-rt for ASan/UBSan/libFuzzer)
#   all    everything above
#
# As root, missing packages are installed with apt-get (after one
# `apt-get update`).  As another user, the exact command is printed and the
# script exits 1.
#
# Note: installing postgresql-15 may make Debian create and start a system
# cluster "15/main" on port 5432.  ferry's tests never use it; they run a
# private cluster (scripts/pg.sh).  Likewise pgbouncer's and pgpool2's
# packages may start a system pgbouncer (port 6432) or pgpool (port 9999);
# the tests start their own, with their own config and ports.
set -euo pipefail

# lua-cjson-dev ships the headers, liblua5.4-cjson.a and lua5.4-cjson.pc;
# it pulls lua-cjson (liblua5.4-cjson.so.0 and the cjson Lua module).
# Debian 12 has no package called liblua5.4-cjson.
PKGS_build=(build-essential pkg-config liblua5.4-dev lua-cjson-dev lua-cjson libpq-dev uuid-dev)
PKGS_test=(postgresql-15 postgresql-client-15 postgresql-15-pgtap
           libtap-parser-sourcehandler-pgtap-perl libcmocka-dev perl time bc python3 pgbouncer pgpool2 openssl locales)
# clang-14 only *recommends* the compiler-rt runtimes (ASan, UBSan, libFuzzer),
# and we install without recommends, so name them explicitly.
PKGS_tools=(valgrind clang libclang-rt-14-dev)

usage() {
    echo "usage: $0 [build|test|tools|all]..." >&2
    exit 2
}

[ $# -gt 0 ] || set -- test

wanted=()
locale_wanted=0
for group in "$@"; do
    case "$group" in
        build) wanted+=("${PKGS_build[@]}") ;;
        test)  wanted+=("${PKGS_build[@]}" "${PKGS_test[@]}"); locale_wanted=1 ;;
        tools) wanted+=("${PKGS_tools[@]}") ;;
        all)   wanted+=("${PKGS_build[@]}" "${PKGS_test[@]}" "${PKGS_tools[@]}"); locale_wanted=1 ;;
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

# The locale a test server speaks German with (lc_messages 'de_DE.UTF-8':
# the server takes only a locale the machine has).  Not fatal without
# root: that test then skips, saying why.
ensure_locale() {
    local want=de_DE.UTF-8
    # (grep reads it all: no SIGPIPE for locale under pipefail)
    locale -a 2>/dev/null | grep -ix 'de_DE\.utf-\?8' >/dev/null && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps.sh: the locale $want is missing (tests/cli/78-german-server.t skips); as root:" >&2
        echo "  sed -i 's/^# *$want UTF-8/$want UTF-8/' /etc/locale.gen && locale-gen" >&2
        return 0
    fi
    echo "deps.sh: generating the locale $want" >&2
    if grep -q "^# *$want UTF-8" /etc/locale.gen 2>/dev/null; then
        sed -i "s/^# *$want UTF-8/$want UTF-8/" /etc/locale.gen
    elif ! grep -q "^$want UTF-8" /etc/locale.gen 2>/dev/null; then
        echo "$want UTF-8" >>/etc/locale.gen
    fi
    locale-gen >/dev/null
}

if [ ${#missing[@]} -gt 0 ]; then
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
fi

if [ "$locale_wanted" = 1 ]; then ensure_locale; fi
