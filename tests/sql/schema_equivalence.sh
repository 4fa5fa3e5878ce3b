#!/usr/bin/env bash
# schema_equivalence.sh -- are two databases' public schemas the same?
#
#   tests/sql/schema_equivalence.sh [options] URI_A URI_B
#
# URI_A is the reference (typically a database built from the contract file,
# the schema users have); URI_B is the candidate (typically a database built
# by ferry's migrations). Both are libpq connection strings or URIs.
#
# It describes the public schema of each database from the catalogs and
# compares the descriptions:
#   - relations: tables, views, sequences, ... (name, kind, persistence, options)
#   - columns:   position, name, type (with typmod), NOT NULL, default
#                expression, identity/generated, collation
#   - constraints: name, table and pg_get_constraintdef (PK, FK with actions,
#                CHECK, UNIQUE, EXCLUDE)
#   - indexes:   name, table and pg_get_indexdef (method, expressions, opclass)
#   - triggers (pg_get_triggerdef), views (pg_get_viewdef), functions
# Exit status: 0 identical, 1 different (a unified diff A -> B is printed),
# 2 usage or connection error.
#
# Options:
#   --load-a FILE          first run FILE into A (ON_ERROR_STOP, one
#                          transaction), e.g. the contract schema.sql. A should
#                          be empty. The file is only read here, by tests: ferry
#                          never needs it at run time.
#   --load-b-migrations DIR
#                          first apply DIR/<version>_<name>/up.sql into B, in
#                          version order, each in one transaction (what the
#                          engine does, without its bookkeeping). Handy when
#                          the ferry binary is not at hand.
#   --ignore-tables REGEX  leave out relations whose name matches REGEX (and
#                          their columns, constraints, indexes, triggers).
#                          Default '^_?ferry' so the engine's own bookkeeping
#                          tables do not count. '' ignores nothing.
#   -q, --quiet            print nothing when identical.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }

load_a=""
migrations_b=""
ignore='^_?ferry'
quiet=0
while [ $# -gt 0 ]; do
    case "$1" in
        --load-a) load_a="${2:?--load-a needs a file}"; shift 2 ;;
        --load-b-migrations) migrations_b="${2:?--load-b-migrations needs a directory}"; shift 2 ;;
        --ignore-tables) ignore="${2?--ignore-tables needs a regex}"; shift 2 ;;
        -q|--quiet) quiet=1; shift ;;
        -h|--help) usage ;;
        --) shift; break ;;
        -*) echo "schema_equivalence: unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
done
[ $# -eq 2 ] || usage
uri_a="$1"
uri_b="$2"

PSQL=(psql -X -q -v ON_ERROR_STOP=1)

if [ -n "$load_a" ]; then
    [ -r "$load_a" ] || { echo "schema_equivalence: cannot read $load_a" >&2; exit 2; }
    "${PSQL[@]}" -1 -d "$uri_a" -f "$load_a" >/dev/null || {
        echo "schema_equivalence: loading $load_a into A failed" >&2; exit 2; }
fi

if [ -n "$migrations_b" ]; then
    [ -d "$migrations_b" ] || { echo "schema_equivalence: no directory $migrations_b" >&2; exit 2; }
    found=0
    # Version folders (YYYYMMDD_name) sort correctly as plain strings, and
    # a glob expands sorted.
    for dir in "$migrations_b"/*/; do
        [ -f "${dir}up.sql" ] || continue
        found=1
        "${PSQL[@]}" -1 -d "$uri_b" -f "${dir}up.sql" >/dev/null || {
            echo "schema_equivalence: applying ${dir}up.sql to B failed" >&2; exit 2; }
    done
    [ "$found" = 1 ] || { echo "schema_equivalence: no */up.sql under $migrations_b" >&2; exit 2; }
fi

# One line per catalog fact, tab-separated, sorted: a line-by-line diff of
# two such listings is the schema difference. OIDs and attnums never appear
# (they differ between equal schemas); column order does, as an ordinal over
# the live columns, because "same columns" includes the same order.
read -r -d '' DESCRIBE <<'SQL' || true
WITH rel AS (
    SELECT c.oid, c.relname, c.relkind
    FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace
      AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND (:'ignore' = '' OR c.relname !~ :'ignore')
)
SELECT line FROM (
    SELECT format('relation %I kind=%s persistence=%s options=%s',
                  r.relname, r.relkind, c.relpersistence,
                  coalesce(array_to_string(c.reloptions, ','), '-')) AS line
    FROM rel r JOIN pg_class c ON c.oid = r.oid
  UNION ALL
    SELECT format('column %I.%s %I type=%s notnull=%s default=%s identity=%s generated=%s collation=%s',
                  r.relname,
                  lpad((row_number() OVER (PARTITION BY r.oid ORDER BY a.attnum))::text, 4, '0'),
                  a.attname,
                  format_type(a.atttypid, a.atttypmod),
                  a.attnotnull,
                  coalesce(pg_get_expr(d.adbin, d.adrelid), '-'),
                  coalesce(nullif(a.attidentity, ''), '-'),
                  coalesce(nullif(a.attgenerated, ''), '-'),
                  coalesce(co.collname, '-'))
    FROM rel r
    JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    LEFT JOIN pg_collation co ON co.oid = a.attcollation
  UNION ALL
    SELECT format('constraint %I.%I type=%s %s',
                  r.relname, con.conname, con.contype, pg_get_constraintdef(con.oid, true))
    FROM rel r
    JOIN pg_constraint con ON con.conrelid = r.oid
  UNION ALL
    SELECT format('index %I.%I %s', r.relname, ic.relname, pg_get_indexdef(i.indexrelid))
    FROM rel r
    JOIN pg_index i ON i.indrelid = r.oid
    JOIN pg_class ic ON ic.oid = i.indexrelid
  UNION ALL
    SELECT format('trigger %I.%I %s', r.relname, t.tgname, pg_get_triggerdef(t.oid, true))
    FROM rel r
    JOIN pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal
  UNION ALL
    SELECT format('view %I %s', r.relname, regexp_replace(pg_get_viewdef(r.oid, true), '\s+', ' ', 'g'))
    FROM rel r
    WHERE r.relkind IN ('v', 'm')
  UNION ALL
    SELECT format('function %I(%s) returns %s', p.proname,
                  pg_get_function_identity_arguments(p.oid),
                  coalesce(pg_get_function_result(p.oid), '-'))
    FROM pg_proc p
    WHERE p.pronamespace = 'public'::regnamespace
) facts
ORDER BY line COLLATE "C";
SQL

describe() {
    printf '%s\n' "$DESCRIBE" | "${PSQL[@]}" -At -d "$1" -v ignore="$ignore" -f -
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
describe "$uri_a" >"$tmp/A" || { echo "schema_equivalence: cannot describe A" >&2; exit 2; }
describe "$uri_b" >"$tmp/B" || { echo "schema_equivalence: cannot describe B" >&2; exit 2; }

if [ ! -s "$tmp/A" ]; then
    echo "schema_equivalence: A has an empty public schema (wrong database?)" >&2
    exit 2
fi

if diff -u --label "A ($uri_a)" --label "B ($uri_b)" "$tmp/A" "$tmp/B" >"$tmp/diff"; then
    [ "$quiet" = 1 ] || echo "schema_equivalence: identical ($(wc -l <"$tmp/A") catalog facts)"
    exit 0
fi
echo "schema_equivalence: public schemas differ (- only in A, + only in B):"
cat "$tmp/diff"
exit 1
