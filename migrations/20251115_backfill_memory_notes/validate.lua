-- Checks of Batch 5: `ferry validate 20251115_backfill_memory_notes`.
-- Each check passes or fails; the rules themselves say what the leaves are.
local rules = require "rules.memory_notes"

local ME = ctx.migration
local HAS_STATE, MINE = rules.HAS_STATE_SQL, rules.MINE_SQL

-- Every leaf of state_metadata (the rules say what the leaves are) and its
-- notes: a leaf's note is this backfill's note for (lead, key); when there
-- is none, a live note for (lead, key) stands for it (the backfill leaves
-- those alone).  How many leaves, how many have no note or more than one,
-- how many a live note covers, and how many leads the rules fail on.  One
-- pass, shared by checks 1 and 6 (every check reads the same snapshot),
-- made by the first that asks.
local leaf_counts
local function leaves()
  if leaf_counts then return leaf_counts end
  local c = {leaves = 0, missing = 0, extra = 0, live = 0, bad_leads = 0}
  for l in db.rows([[
      SELECT l.id, l.state_metadata::text AS state, n.mine::text AS mine, n.live::text AS live
        FROM "Lead" l
        LEFT JOIN (
          SELECT m.lead_id,
                 jsonb_object_agg(m.key, m.n) FILTER (WHERE m.mine) AS mine,
                 jsonb_object_agg(m.key, m.n) FILTER (WHERE NOT m.mine) AS live
            FROM (SELECT m.lead_id, m.key, ]] .. MINE .. [[ AS mine, count(*) AS n
                    FROM "MemoryNote" m WHERE m.lead_id IS NOT NULL AND m.key IS NOT NULL
                   GROUP BY 1, 2, 3) m
           GROUP BY m.lead_id) n ON n.lead_id = l.id
       WHERE ]] .. HAS_STATE, ME, rules.source) do
    local ok, notes = pcall(rules.notes, l.state)
    if not ok then
      c.bad_leads = c.bad_leads + 1
    else
      local mine = l.mine and json.decode(l.mine) or {}
      local lv = l.live and json.decode(l.live) or {}
      for _, n in ipairs(notes) do
        c.leaves = c.leaves + 1
        local count = mine[n.key] or lv[n.key] or 0
        if not mine[n.key] and lv[n.key] then c.live = c.live + 1 end
        if count == 0 then c.missing = c.missing + 1 elseif count > 1 then c.extra = c.extra + 1 end
      end
    end
  end
  leaf_counts = c
  return c
end

-- 1. Completeness: each leaf has exactly one note.
check("every leaf of state_metadata has exactly one note", function()
  local c = leaves()
  return c.missing == 0 and c.extra == 0 and c.bad_leads == 0,
         string.format("%d leaves: %d without a note, %d with more than one, %d covered by a live note%s",
                       c.leaves, c.missing, c.extra, c.live,
                       c.bad_leads > 0 and string.format(", %d leads the rules cannot map", c.bad_leads) or "")
end)

-- 2. Idempotency key.
check("no two backfilled notes share (lead, key)", function()
  local r = db.one([[
    SELECT count(*) AS n, coalesce(sum(c), 0)::int AS notes FROM (
      SELECT count(*) AS c FROM "MemoryNote" m WHERE ]] .. MINE .. [[
       GROUP BY m.lead_id, m.key HAVING count(*) > 1) d]], ME, rules.source)
  return r.n == 0, string.format("%d duplicated (lead, key) pairs", r.n)
end)

-- 3. Full-text search.  Sequential scans are disabled for the EXPLAIN so the
-- answer does not depend on the table's size: the check is that the index
-- can serve the agent's recall query.
check("full-text search uses MemoryNote_content_fts_idx", function()
  local plan = db.plan([[SELECT * FROM "MemoryNote"
    WHERE to_tsvector('english', COALESCE(content, '')) @@ plainto_tsquery('english', 'oak door')]])
  local line = plan:match("[^\n]*MemoryNote_content_fts_idx[^\n]*")
  return line ~= nil, line and line:match("^%s*(.-)%s*$") or plan:match("^[^\n]*")
end)

-- Checks 4 and 5 read the backfilled notes in one pass (they read the same
-- snapshot), made by the first that asks: by lead, and in each lead by key.
-- The lead's state_metadata comes with its first note only.
--
-- 4. Shape: each backfilled note names its lead and key in metadata, belongs
-- to an existing lead and -- while its key is still in the lead's
-- state_metadata -- has the kind the rules give and the lead's customer (a
-- note whose key has gone is left as it was by every run, kind and
-- customer included: a re-run would not "update" it).  A run updates a
-- kind or a customer, never the metadata: a note the live system moved to
-- another lead (a merge of two leads) keeps naming the first, and a note
-- without a lead is no lead's -- those are named, with what to do.
--
-- 5. Content: while its key is still a leaf of the lead's state_metadata,
-- each backfilled note's content is the one rules.notes() gives now -- a
-- note edited by hand, or written before the content rule changed, is
-- what a re-run updates, and this names the first few by (lead, key).
-- Not compared, as a run does not touch them either: the note of a key
-- that has gone (kept as it was), and the notes of a lead the rules cannot
-- map (a run reports the lead and writes none of its notes; check 1 fails
-- for it).  (The metadata holds no content: check 4 covers it.)
local SHOW = 3                     -- (lead, key) pairs named in check 5's detail

-- a key on one line: Lua's %q, with a newline as \n
local function quoted(s)
  return (string.format("%q", s):gsub("\\\n", "\\n"))
end

local notes_pass
local function backfilled_notes()
  if notes_pass then return notes_pass end
  local p = {n = 0, mismatched = 0, stale = 0, differ = 0, gone = 0, unmapped = 0, shown = {}, shown_stale = {},
             leaves_error = nil}
  local lead = false               -- the lead being read, with
  local keys, want                 -- its leaves' keys (check 4) and key -> content (check 5; nil: unmappable)
  for r in db.rows([[
      SELECT m.lead_id, m.key, m.kind, m.content,
             m.metadata->>'leadId' = m.lead_id::text AND m.metadata->>'key' = m.key AS meta_ok,
             l.id IS NOT NULL AS lead_ok, m.customer_id IS NOT DISTINCT FROM l.customer_id AS customer_ok,
             CASE WHEN row_number() OVER (PARTITION BY m.lead_id ORDER BY m.key COLLATE "C", m.id) = 1
                  THEN l.state_metadata::text END AS state      -- once per lead
        FROM "MemoryNote" m LEFT JOIN "Lead" l ON l.id = m.lead_id
       WHERE ]] .. MINE .. [[
       ORDER BY m.lead_id, m.key COLLATE "C", m.id]], ME, rules.source) do
    p.n = p.n + 1
    if r.lead_id ~= lead then
      lead, keys = r.lead_id, {}
      -- (rules.leaves failing is check 4's error, as if it read alone)
      local ok, leaves = pcall(rules.leaves, r.state)
      if ok then
        for _, leaf in ipairs(leaves) do keys[leaf.key] = true end
      elseif p.leaves_error == nil then
        p.leaves_error = leaves
      end
      local mapped, notes = pcall(rules.notes, r.state)
      want = nil
      if mapped then
        want = {}
        for _, note in ipairs(notes) do want[note.key] = note.content end
      end
    end
    -- check 4 (stale: what no run corrects)
    local gone = not keys[r.key]
    local customer_ok = r.customer_ok or gone
    local kind_ok = r.key and (gone or rules.kind(r.key) == r.kind)
    if not (r.meta_ok and r.lead_ok) then
      p.mismatched, p.stale = p.mismatched + 1, p.stale + 1
      if #p.shown_stale < SHOW then
        p.shown_stale[#p.shown_stale + 1] = string.format("lead %s key %s", r.lead_id or "NULL",
                                                          r.key and quoted(r.key) or "NULL")
      end
    elseif not (customer_ok and kind_ok) then
      p.mismatched = p.mismatched + 1
    end
    -- check 5
    if want == nil then
      p.unmapped = p.unmapped + 1
    elseif r.key == nil or want[r.key] == nil then
      p.gone = p.gone + 1
    elseif r.content ~= want[r.key] then
      p.differ = p.differ + 1
      if #p.shown < SHOW then p.shown[#p.shown + 1] = string.format("lead %s key %s", r.lead_id, quoted(r.key)) end
    end
  end
  notes_pass = p
  return p
end

-- "lead L key K, ... and N more" of the first SHOW of n notes
local function named(shown, n)
  return table.concat(shown, ", ") .. (n > #shown and string.format(" and %d more", n - #shown) or "")
end

check("backfilled notes match their lead, key and kind", function()
  local p = backfilled_notes()
  if p.leaves_error ~= nil then error(p.leaves_error, 0) end
  if p.stale == 0 then
    return p.mismatched == 0, string.format("%d backfilled notes, %d that do not match (a re-run updates them)",
                                            p.n, p.mismatched)
  end
  local fixable = p.mismatched - p.stale
  return false, string.format("%d backfilled notes, %d that do not match: %s%d whose metadata does not name its "
                              .. "lead and key, or that has no lead: %s (no run corrects these: set their "
                              .. "metadata's leadId and key, or delete them and re-run)", p.n, p.mismatched,
                              fixable > 0 and string.format("%d whose kind or customer is not what the rules give "
                                                            .. "(a re-run updates them), ", fixable) or "",
                              p.stale, named(p.shown_stale, p.stale))
end)

check("backfilled notes have the content the rules give", function()
  local p = backfilled_notes()
  local detail = string.format("%d backfilled notes, %d whose content differs from what the rules give", p.n, p.differ)
  if p.differ > 0 then
    detail = detail .. ": " .. named(p.shown, p.differ) .. " (a re-run updates them)"
  end
  local skipped = {}
  if p.gone > 0 then skipped[#skipped + 1] = string.format("%d of keys gone from state_metadata (no run touches them)", p.gone) end
  if p.unmapped > 0 then skipped[#skipped + 1] = string.format("%d of leads the rules cannot map", p.unmapped) end
  if #skipped > 0 then detail = detail .. "; not compared: " .. table.concat(skipped, ", ") end
  return p.differ == 0, detail
end)

-- 6. The backfill ran: its notes exist, counted by kind -- or there is
-- nothing to backfill: every leaf of state_metadata has a live note (with
-- no backfilled note, those the live notes cover are all that have one; a
-- lead the rules fail on counts as one to backfill).
check("backfilled notes exist", function()
  local parts = {}
  for _, r in ipairs(db.query([[
      SELECT m.kind, count(*) AS n FROM "MemoryNote" m WHERE ]] .. MINE .. [[
       GROUP BY m.kind ORDER BY n DESC, m.kind]], ME, rules.source)) do
    parts[#parts + 1] = string.format("%s %d", r.kind, r.n)
  end
  if #parts > 0 then return true, table.concat(parts, ", ") end
  local c = leaves()
  if c.leaves > c.live or c.bad_leads > 0 then return false, "no backfilled notes" end
  return true, "no backfilled notes; nothing to backfill: every leaf of state_metadata has a live note, or there is none"
end)
