# shellcheck shell=bash
# scripts/urlencode.sh - sourced by scripts/pg.sh and tests/lib/tap.sh.
# urlencode STRING: percent-encodes STRING for a libpq URI (a socket folder,
# a database or user name); letters, digits and / . _ ~ - stay as they are.
urlencode() {
    local LC_ALL=C s=$1 out='' c i
    for (( i = 0; i < ${#s}; i++ )); do
        c=${s:i:1}
        case $c in
            [A-Za-z0-9/._~-]) out+=$c ;;
            *) printf -v c '%%%02X' "'$c"; out+=$c ;;
        esac
    done
    printf '%s' "$out"
}
