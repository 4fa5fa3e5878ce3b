#!/usr/bin/env bash
# A value too big for the full-text index: "MemoryNote_content_fts_idx"
# indexes to_tsvector(content), and a tsvector holds at most 1 MB of words
# and positions -- a text of some megabytes with many different words (a
# pasted document, a list of ids) has more.  The batch holding its note
# fails (SQLSTATE 54000, "string is too long for tsvector"), and every
# re-run stops at the same lead: the line said only the server's words and
# "re-run"; it now says what it is and what to do, and the remedy the
# README gives (cut such values in rules.content) lets the run through.
. "$(dirname "$0")/lib.sh"

URI=$(b5_db b5_45_tsvector "$REPO_ROOT/demo/data.sql") || bail_out "cannot build the database"
L=1ead0000-0000-4000-8000-00000000000
# 40,000 different words, 1.3 MB: a tsvector of some 1.6 MB
q "$URI" "UPDATE \"Lead\" SET state_metadata = state_metadata
            || jsonb_build_object('pasted', (SELECT string_agg(md5(g::text), ' ') FROM generate_series(1, 40000) g))
           WHERE id = '${L}4'" >/dev/null
HINT='; a text is too long for a full-text index (a tsvector holds at most 1 MB of words and their positions: some megabytes of text with many different words), and the same row stops every run: shorten that text in the data, or have the rule that makes it cut such text, then re-run to resume (everything up to the last checkpoint is committed)'
for run in first second; do
    b5_run --batch-size 1
    err=$(printf '%s\n' "$ERR" | grep '^ferry:')
    is "$RC" 1 "the $run run: exit 1"
    like "$err" "string is too long for tsvector \\([0-9]+ bytes, max 1048575 bytes\\).* \\[SQLSTATE 54000\\]$(sed 's/[][\\.*^$()|+?{}]/\\&/g' <<<"$HINT")\$" \
         "... says a text is too long for the full-text index, and what to do ($err)"
done
is "$(q "$URI" "SELECT string_agg(DISTINCT right(lead_id::text, 1), ',') FROM \"MemoryNote\"")" "1,3" \
   "the leads before it are written, batch by batch; the run stops at it every time"

# the README's remedy: cut such values in rules.content
B5_DIR=$(b5_scratch)
sed -i 's|^  return key .. ": " .. value$|  return key .. ": " .. json.truncate(value, 100000)|' "$B5_DIR/rules/memory_notes.lua"
grep -qF 'json.truncate(value, 100000)' "$B5_DIR/rules/memory_notes.lua"
ok $? "(rules.content edited as the README says)"
b5_run
is "$RC" 0 "with such values cut, the run goes through"
[ "$RC" = 0 ] || diag "$ERR"
is "$(q "$URI" "SELECT char_length(content) FROM \"MemoryNote\" WHERE lead_id = '${L}4' AND key = 'pasted'")" 100008 \
   "... the note holds the value's first 100,000 characters"
B5_DIR=$REPO_ROOT

done_testing
