#!/usr/bin/env bash
# Rule 2 and 3 of issue 5 on edge cases, against PostgreSQL's own text:
# numbers and booleans as PostgreSQL prints them, strings decoded, arrays of
# scalars joined, arrays holding objects as PostgreSQL's compact JSON, nulls
# and blanks no leaf, what counts as a lead to process, kinds by key.
. "$(dirname "$0")/lib.sh"

SQL=$TAP_TMPDIR/leads.sql
cat >"$SQL" <<'SQL'
INSERT INTO "Customer" (id, name) VALUES ('c0000000-0000-4000-8000-000000000009', 'Zoe');
INSERT INTO "Lead" (id, customer_id, channel, state_metadata) VALUES
 ('f0000000-0000-4000-8000-000000000001', 'c0000000-0000-4000-8000-000000000009', 'web',
  '{"n": {"int": 1500, "dec": 2.50, "exp": 1e2, "neg": -0.5, "big": 123456789012345678901234567890.000001,
          "t": true, "f": false, "zero": 0}}'),
 ('f0000000-0000-4000-8000-000000000002', NULL, 'web',
  '{"quote": "say \"hi\"", "multi": "line1\nline2", "uni": "chêne 😊 120×80", "esc": "caf\u00e9",
    "slash": "a\\b/c", "nbsp": "\u00a0\u2003", "tabs": "\t \n", "padded": "  kept  ", "digits": "007"}'),
 ('f0000000-0000-4000-8000-000000000003', NULL, 'web',
  '{"a": [1, "two", true, null, 2.50], "b": ["", "  ", null], "c": [[1, 2], [3]],
    "d": [{"zz": 1, "b": 2, "a": {"y": [1, 2.0]}}, "x"], "e": [], "f": [{}], "g": ["x, y", "z"],
    "h": [{"s": "a, b: [c]", "q": "\"}"}]}'),
 ('f0000000-0000-4000-8000-000000000004', NULL, 'web',
  '{"summary": "S", "preferences": {"summary": "P", "a": {"b": {"c": "deep"}}, "list": ["x"], "empty": {}},
    "preferencesX": "no", "Summary": "caps", "summary2": "x", "prefs": {"preferences": "y"}}'),
 ('f0000000-0000-4000-8000-000000000005', NULL, 'web', '[1, 2]'),
 ('f0000000-0000-4000-8000-000000000006', NULL, 'web', '"a string"'),
 ('f0000000-0000-4000-8000-000000000007', NULL, 'web', 'null'),
 ('f0000000-0000-4000-8000-000000000008', NULL, 'web', '42'),
 ('f0000000-0000-4000-8000-000000000009', NULL, 'web', '{"x": null, "y": "", "z": {"w": []}}'),
 ('f0000000-0000-4000-8000-000000000010', NULL, 'web', '{}'),
 ('f0000000-0000-4000-8000-000000000011', NULL, 'web', NULL),
 ('f0000000-0000-4000-8000-000000000012', NULL, 'web', 'true');
SQL
URI=$(b5_db b5_20_flatten "$SQL") || bail_out "cannot build the database"

b5_run
is "$RC" 0 "run exits 0"
# processed: 1, 2, 3, 4 and 9 (an object whose leaves are all null/blank);
# skipped: an array, a string, JSON null, a number, {}, SQL NULL, a boolean
is "$(stats_of "$OUT")" "$(stats_block 5 7 29 0 0 0)" "5 leads processed (one with no leaf), 7 skipped, 29 notes"

is "$(notes "$URI" "lead_id::text LIKE '%01'")" '01|n.big|fact|n.big: 123456789012345678901234567890.000001|9
01|n.dec|fact|n.dec: 2.50|9
01|n.exp|fact|n.exp: 100|9
01|n.f|fact|n.f: false|9
01|n.int|fact|n.int: 1500|9
01|n.neg|fact|n.neg: -0.5|9
01|n.t|fact|n.t: true|9
01|n.zero|fact|n.zero: 0|9' "numbers and booleans keep PostgreSQL's text (2.50, 100 for 1e2, 30 digits)"
v=$(q "$URI" "SELECT count(*) FROM \"MemoryNote\" m JOIN \"Lead\" l ON l.id = m.lead_id
               WHERE l.id::text LIKE '%01' AND m.content = m.key || ': ' || (l.state_metadata #>> string_to_array(m.key, '.'))")
is "$v" 8 "... each equal to PostgreSQL's own #>> text of that leaf"

is "$(notes "$URI" "lead_id::text LIKE '%02' AND key NOT IN ('multi')")" '02|digits|fact|digits: 007|-
02|esc|fact|esc: café|-
02|padded|fact|padded:   kept  |-
02|quote|fact|quote: say "hi"|-
02|slash|fact|slash: a\b/c|-
02|uni|fact|uni: chêne 😊 120×80|-' "strings decoded; kept unchanged; Unicode-blank and whitespace-only strings are no leaf"
is "$(q "$URI" "SELECT content = E'multi: line1\nline2' FROM \"MemoryNote\" WHERE key = 'multi'")" t \
   "an escaped newline becomes a newline"

is "$(notes "$URI" "lead_id::text LIKE '%03'")" '03|a|fact|a: 1, two, true, 2.50|-
03|c|fact|c: [[1,2],[3]]|-
03|d|fact|d: [{"a":{"y":[1,2.0]},"b":2,"zz":1},"x"]|-
03|f|fact|f: [{}]|-
03|g|fact|g: x, y, z|-
03|h|fact|h: [{"q":"\"}","s":"a, b: [c]"}]|-' \
   "arrays: scalars joined (nulls and blanks left out), nested containers as compact JSON in jsonb key order"
# The oracle: PostgreSQL's text with the blank after each , and : between
# tokens removed (strings matched whole first, so their insides stay).
v=$(q "$URI" "SELECT string_agg(m.key, ',' ORDER BY m.key) FROM \"MemoryNote\" m JOIN \"Lead\" l ON l.id = m.lead_id
               WHERE l.id::text LIKE '%03' AND m.content = m.key || ': ' ||
                     regexp_replace((l.state_metadata -> m.key)::text, '(\"(?:[^\"\\\\]|\\\\.)*\")|([,:]) ', '\\1\\2', 'g')")
is "$v" "c,d,f,h" "compact JSON = PostgreSQL's own text without the blanks between tokens"

is "$(notes "$URI" "lead_id::text LIKE '%04'")" '04|Summary|fact|Summary: caps|-
04|preferences.a.b.c|preference|preferences.a.b.c: deep|-
04|preferences.list|preference|preferences.list: x|-
04|preferences.summary|preference|preferences.summary: P|-
04|preferencesX|fact|preferencesX: no|-
04|prefs.preferences|fact|prefs.preferences: y|-
04|summary|summary|summary: S|-
04|summary2|fact|summary2: x|-' \
   "kinds: summary only for the key summary, preference only under preferences., fact otherwise"

is "$(q "$URI" "SELECT count(*) FROM \"MemoryNote\" WHERE lead_id::text ~ '(0[5-9]|1[0-2])\$'")" 0 \
   "no notes for skipped leads or for an object of nulls and blanks"

b5_run --dry-run
is "$(stats_of "$OUT")" "$(stats_block 5 7 0 0 29 0)" "dry run after: everything skipped"

done_testing
