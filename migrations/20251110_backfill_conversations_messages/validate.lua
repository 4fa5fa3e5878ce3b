-- Checks of Batch 4: `ferry validate 20251110_backfill_conversations_messages`.
-- The seed design's six checks as pass/fail, plus two of our own.
local roles = require "rules.roles"
local text = require "rules.text"

local ME = ctx.migration
local actors = db.array(roles.actors())
local PROCESSED = roles.PROCESSED_SQL

-- 1. Conversation count: every existing lead with processed audits has one.
check("every lead with processed audits has a conversation", function()
  local r = db.one([[
    SELECT count(DISTINCT a.lead_id) AS leads,
           count(DISTINCT a.lead_id) FILTER (WHERE EXISTS (
             SELECT 1 FROM "Conversation" c WHERE c.lead_id = a.lead_id)) AS with_conversation,
           (SELECT count(*) FROM "Conversation" WHERE metadata->>'source' = 'audit_backfill') AS backfilled
      FROM "Audit" a JOIN "Lead" l ON l.id = a.lead_id
     WHERE ]] .. PROCESSED, actors)
  return r.leads == r.with_conversation,
         string.format("%d of %d leads; %d backfilled conversations", r.with_conversation, r.leads, r.backfilled)
end)

-- Every processed audit of an existing lead, through the rules: how many
-- have text (checked), how many of those have no message or more than one,
-- and how many the rules fail on (bad).  One pass, shared by checks 2 and 8
-- (every check reads the same snapshot), made by the first that asks.
local with_text
local function audits_with_text()
  if with_text then return with_text end
  local c = {checked = 0, missing = 0, extra = 0, bad = 0}
  for a in db.rows([[
      SELECT a.id, a.action, a.payload::text AS payload, coalesce(m.n, 0) AS n
        FROM "Audit" a JOIN "Lead" l ON l.id = a.lead_id
        LEFT JOIN (SELECT metadata->>'auditId' AS aid, count(*) AS n FROM "Message"
                    WHERE metadata ? 'auditId' GROUP BY 1) m ON m.aid = a.id::text
       WHERE ]] .. PROCESSED, actors) do
    local ok, content = pcall(text.extract, a.payload, a.action)
    if not ok then
      c.bad = c.bad + 1
    elseif content ~= nil then
      c.checked = c.checked + 1
      if a.n == 0 then c.missing = c.missing + 1 elseif a.n > 1 then c.extra = c.extra + 1 end
    end
  end
  with_text = c
  return c
end

-- 2. Message count.  None backfilled passes only when there is nothing to
-- backfill: no processed audit of an existing lead that the rules give a
-- text (one they fail on counts as one).
check("backfilled messages exist", function()
  local r = db.one([[
    SELECT count(*) AS messages,
           count(*) FILTER (WHERE metadata->>'source' = 'audit_backfill') AS backfilled,
           count(DISTINCT conversation_id) AS conversations
      FROM "Message"]])
  local detail = string.format("%d messages, %d backfilled, in %d conversations", r.messages, r.backfilled,
                               r.conversations)
  if r.backfilled > 0 then return true, detail end
  local c = audits_with_text()
  if c.checked > 0 or c.bad > 0 then return false, detail end
  return true, detail .. "; nothing to backfill: no processed audit of an existing lead has text"
end)

-- 3. Conversation -> Lead mapping.  "Beside": a backfilled conversation
-- whose lead has an older one -- what a live conversation opened while a
-- run was writing leaves (the run read the lead without one); the lead's
-- history is then split between the two.
check("every backfilled conversation belongs to an existing lead, one per lead", function()
  local r = db.one([[
    SELECT count(*) FILTER (WHERE l.id IS NULL) AS dangling,
           count(c.lead_id) - count(DISTINCT c.lead_id) AS duplicates,
           count(*) FILTER (WHERE EXISTS (SELECT 1 FROM "Conversation" o
                                           WHERE o.lead_id = c.lead_id AND o.id <> c.id
                                             AND (o.created_at, o.id) < (c.created_at, c.id))) AS beside,
           count(*) AS total
      FROM "Conversation" c LEFT JOIN "Lead" l ON l.id = c.lead_id
     WHERE c.metadata->>'createdBy' = $1]], ME)
  return r.dangling == 0 and r.duplicates == 0 and r.beside == 0,
         string.format("%d conversations, %d without lead, %d duplicate leads, %d beside an older conversation of its lead",
                       r.total, r.dangling, r.duplicates, r.beside)
end)

-- 4. Roles distribution.
check("message roles are user/assistant/system/tool", function()
  local parts, bad = {}, 0
  for _, r in ipairs(db.query([[
      SELECT role, count(*) AS n, round(100.0 * count(*) / sum(count(*)) OVER (), 2)::text AS pct
        FROM "Message" WHERE metadata->>'source' = 'audit_backfill' GROUP BY role ORDER BY n DESC, role]])) do
    if not roles.valid_roles[r.role] then bad = bad + 1 end
    parts[#parts + 1] = string.format("%s %d (%s%%)", r.role, r.n, r.pct)
  end
  return bad == 0, #parts > 0 and table.concat(parts, ", ") or "no messages"
end)

-- 5. FTS index usage.  Sequential scans are disabled for the EXPLAIN so
-- the answer does not depend on the table's size: the check is that the
-- index can serve the search.
check("full-text search uses Message_content_fts_idx", function()
  local plan = db.plan([[SELECT * FROM "Message"
    WHERE to_tsvector('english', COALESCE(content, '')) @@ plainto_tsquery('english', 'quote')]])
  return plan:find("Message_content_fts_idx", 1, true) ~= nil, plan:match("^[^\n]*")
end)

-- 6. Every message's role is the one the rules give its audit's actor
-- (counted per actor and role in SQL, judged by rules.roles): a map edited
-- after the messages were written does not remap them -- a re-run skips
-- audits that have their message -- and this says which.
check("every message has the role the rules give its audit's actor", function()
  local checked, wrong, worst = 0, 0, {}
  for _, r in ipairs(db.query([[
      SELECT a.actor, m.role, count(*) AS n FROM "Audit" a
        JOIN "Message" m ON m.metadata->>'auditId' = a.id::text
       WHERE ]] .. PROCESSED .. [[ GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2]], actors)) do
    checked = checked + r.n
    local want = roles.role(r.actor)
    if want ~= r.role then
      wrong = wrong + r.n
      if #worst < 5 then
        worst[#worst + 1] = string.format("actor %q has %q where the rules give %q (%d)", r.actor, r.role,
                                          tostring(want), r.n)
      end
    end
  end
  if wrong == 0 then return true, string.format("%d messages checked", checked) end
  return false, string.format("%d messages checked, %d with another role: %s; roll back and run again to remap them",
                              checked, wrong, table.concat(worst, ", "))
end)

-- 7. Idempotency key.
check("no two messages share an auditId", function()
  local r = db.one([[
    SELECT count(*) AS n FROM (
      SELECT metadata->>'auditId' FROM "Message" WHERE metadata ? 'auditId'
       GROUP BY 1 HAVING count(*) > 1) d]])
  return r.n == 0, r.n .. " duplicated auditIds"
end)

-- 8. Completeness, with the rules themselves deciding "has text".  An
-- audit the rules fail on cannot be judged: it fails the check (a run
-- reported it as a row error and wrote no message for it).
check("every processed audit with text and an existing lead has exactly one message", function()
  local c = audits_with_text()
  return c.missing == 0 and c.extra == 0 and c.bad == 0,
         string.format("%d audits with text: %d without a message, %d with more than one%s", c.checked, c.missing,
                       c.extra, c.bad > 0 and string.format(", %d audits the rules cannot map", c.bad) or "")
end)
