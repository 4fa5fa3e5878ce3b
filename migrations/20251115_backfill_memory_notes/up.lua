-- Batch 5: backfill MemoryNote rows from Lead.state_metadata.
-- The mapping lives in rules/memory_notes.lua; this script is the data flow
-- around it (the shape of Batch 4's):
--
--   reader session   streams every lead after the checkpoint, ordered by
--                    id, in bounded memory, each with the notes it already
--                    has (this backfill's, and the keys of live ones) as one
--                    aggregated column: no per-lead round trip
--   Lua              flattens state_metadata::text through the rules and
--                    compares with the existing notes
--   writers          per batch of leads (ctx.batch_size_for), in one transaction:
--                    COPY of the new notes, one UPDATE ... FROM unnest() of
--                    the changed ones, the checkpoint.  --jobs N sessions
--                    take batches in turn, so the server stores (and
--                    full-text indexes) batch k while Lua maps batch k+1
--
-- Idempotency by (lead, key): a new note's id is uuid.v5(NS, lead id .. ":"
-- .. key), and the reader hands over the notes that already exist, so
--   no note for (lead, key)                    -> COPY        notes_created
--   this backfill's note, and its kind, content
--   and customer_id are what the rules give now -> left alone  notes_skipped
--   this backfill's note, something changed    -> UPDATE      notes_updated
--   only a live note (not createdBy us)        -> left alone  notes_skipped
-- A live note is never written to: the agent's own memory wins.  Counting
-- happens in stream order, so the counters saved with each checkpoint are
-- exact and a resumed run reports an uninterrupted run's totals; a dry run
-- takes the same path without the writes and reports the same counts.
local rules = require "rules.memory_notes"
local backfill = require "rules.backfill"

local NS = "aec333ca-70f2-4c3c-9212-e94f50c534f5"   -- namespace of this batch's note ids
local ACTION = "backfill_memory_notes"               -- Audit.action of the run record

stats.declare{"leads_processed", "leads_skipped", "notes_created", "notes_updated", "notes_skipped", "errors"}

local dry, verbose = ctx.dry_run, ctx.verbose
local resume = ctx.checkpoint.get()          -- last lead id fully committed, or nil

log.info("\u{1F680} Starting Batch 5: MemoryNote Backfill")
log.info("   Mode: " .. (dry and "\u{1F50D} DRY RUN" or "\u{270D}\u{FE0F}  APPLY"))
if resume then log.info("   Resuming after lead " .. resume .. " (checkpoint of an earlier run that did not finish)") end

-- Processed leads, and this backfill's notes (rules.memory_notes).
local HAS_STATE, MINE = rules.HAS_STATE_SQL, rules.MINE_SQL

-- One snapshot for the counts and the stream (db.reader: REPEATABLE READ,
-- read-only, tuned for one long streaming read).
local read <close> = db.reader()

log.info("")
log.info("[1/3] Fetching leads...")
local summary = read:one([[
  SELECT count(*) AS leads, count(*) FILTER (WHERE ]] .. HAS_STATE .. [[) AS with_state
    FROM "Lead" l WHERE $1::uuid IS NULL OR l.id > $1::uuid]], resume)
local existing = read:one([[
  SELECT count(*) FILTER (WHERE ]] .. MINE .. [[) AS mine, count(*) FILTER (WHERE NOT ]] .. MINE .. [[) AS live
    FROM "MemoryNote" m]], ctx.migration, rules.source)
log.info(string.format("\u{1F4CA} Found %d leads, %d with a non-empty state_metadata object",
                       summary.leads, summary.with_state))
log.info(string.format("\u{1F4DD} %d notes exist already (%d from this backfill, %d live)",
                       existing.mine + existing.live, existing.mine, existing.live))

log.info("")
log.info("[2/3] Creating memory notes...")
local batch_size = ctx.batch_size_for(summary.leads)
log.info("   (up to " .. batch_size .. " leads per committed batch)")

local bar <close> = progress.new("leads", summary.leads)

-- The current batch: new notes go straight into a COPY buffer (C memory,
-- no Lua table per row); changed notes are few, kept for one UPDATE.
local notes_buf, updates = db.buffer(), {}

-- Writers: --jobs N sessions taking batches in turn (db.pipeline): the
-- server stores and indexes batch k while Lua maps batch k+1, each batch
-- one transaction with its checkpoint.  (After a row error the engine
-- keeps the resume point before it, so a re-run reaches that lead again.)
local pipe <close> = db.pipeline{jobs = ctx.jobs, dry_run = dry, checkpoint = ctx.checkpoint}

local NOTE_COPY = [[COPY "MemoryNote" (id, lead_id, customer_id, kind, key, content, metadata) FROM STDIN]]
local UPDATE_SQL = [[
  UPDATE "MemoryNote" n
     SET kind = u.kind, content = u.content, customer_id = u.customer_id, updated_at = now()
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[]) AS u(id, kind, content, customer_id)
   WHERE n.id = u.id]]

-- Updates the notes whose value changed since they were written.
local function update_notes(ups)
  if #ups == 0 then return nil end
  return function(conn)
    local ids, kinds, contents, customers = {}, {}, {}, {n = #ups}
    for i, u in ipairs(ups) do
      ids[i], kinds[i], contents[i], customers[i] = u[1], u[2], u[3], u[4] or db.NULL
    end
    conn:exec(UPDATE_SQL, db.array(ids), db.array(kinds), db.array(contents), db.array(customers))
  end
end

local function flush(last_lead)
  if last_lead == nil then return end
  pipe:send{copies = {{sql = NOTE_COPY, buffer = notes_buf}}, after = update_notes(updates), position = last_lead}
  notes_buf:clear()
  updates = {}
end


local NONE = {}
local WOULD = dry and "[DRY RUN] Would " or ""

-- Maps one lead; its notes join the batch only when all of them mapped.
local function map_lead(r)
  local notes = rules.notes(r.state)
  local mine = r.mine and json.decode(r.mine) or NONE    -- key -> {id, kind, content, customer_id}
  local live = r.live and json.decode(r.live) or NONE    -- key -> true
  local customer = r.customer_id
  local new, changed, n_skipped = {}, {}, 0
  for _, n in ipairs(notes) do
    local old = mine[n.key]
    if old then
      local old_customer = old[4] ~= json.null and old[4] or nil
      if old[2] == n.kind and old[3] == n.content and old_customer == customer then
        n_skipped = n_skipped + 1
        if verbose then log.verbose(string.format("   \u{2299} Note %s of lead %s is up to date", n.key, r.id)) end
      else
        changed[#changed + 1] = {old[1], n.kind, n.content, customer}
        if verbose then
          log.verbose(string.format("   %s note %s of lead %s: %s", dry and (WOULD .. "update") or "Updating",
                                    n.key, r.id, backfill.preview(n.content, 50)))
        end
      end
    elseif live[n.key] then
      n_skipped = n_skipped + 1
      if verbose then
        log.verbose(string.format("   \u{2299} Lead %s has a live note %s: leaving it", r.id, n.key))
      end
    else
      new[#new + 1] = {uuid.v5(NS, r.id .. ":" .. n.key), r.id, customer, n.kind, n.key, n.content,
                       json.encode(rules.metadata(r.id, n.key, ctx))}
      if verbose then
        log.verbose(string.format("   %s note %s for lead %s (%s): %s", dry and (WOULD .. "create") or "Creating",
                                  n.key, r.id, n.kind, backfill.preview(n.content, 50)))
      end
    end
  end
  if not dry then
    for i = 1, #new do
      local c = new[i]
      notes_buf:put(c[1], c[2], c[3], c[4], c[5], c[6], c[7])
    end
    for i = 1, #changed do updates[#updates + 1] = changed[i] end
  end
  stats.inc("notes_created", #new)
  stats.inc("notes_updated", #changed)
  stats.inc("notes_skipped", n_skipped)
end

local STREAM = [[
  SELECT l.id, l.customer_id,
         CASE WHEN ]] .. HAS_STATE .. [[ THEN l.state_metadata::text END AS state,
         n.mine::text AS mine, n.live::text AS live
    FROM "Lead" l
    LEFT JOIN (
      SELECT m.lead_id,
             jsonb_object_agg(m.key, jsonb_build_array(m.id, m.kind, m.content, m.customer_id))
               FILTER (WHERE ]] .. MINE .. [[) AS mine,
             jsonb_object_agg(m.key, true) FILTER (WHERE NOT ]] .. MINE .. [[) AS live
        FROM "MemoryNote" m
       WHERE m.lead_id IS NOT NULL AND m.key IS NOT NULL AND ($3::uuid IS NULL OR m.lead_id > $3::uuid)
       GROUP BY m.lead_id) n ON n.lead_id = l.id
   WHERE $3::uuid IS NULL OR l.id > $3::uuid
   ORDER BY l.id]]

local last_id, batch_leads, seen = nil, 0, 0
for r in read:rows(STREAM, ctx.migration, rules.source, resume) do
  if r.state then
    local ok, err = pcall(map_lead, r)
    if not ok then
      stats.error(r.id, err)          -- (ferry's own errors that end the run are raised on)
    end
    stats.inc("leads_processed")
  else
    stats.inc("leads_skipped")
    if verbose then
      log.verbose(string.format("   \u{2299} Skipping lead %s (state_metadata is not a non-empty object)", r.id))
    end
  end
  last_id = r.id
  batch_leads, seen = batch_leads + 1, seen + 1
  if batch_leads >= ctx.batch_size_for(summary.leads, summary.leads - seen + batch_leads) then  -- tapered at the end
    flush(last_id); batch_leads = 0
  end
  if seen % 256 == 0 then pipe:pump() end
  bar:add(1)
end
flush(last_id)
pipe:finish()
bar:finish()
read:close()

log.info(string.format("   \u{2713} leads: %d processed, %d skipped", stats.get("leads_processed"),
                       stats.get("leads_skipped")))
log.info(string.format("   \u{2713} notes: %d %s, %d %s, %d skipped (up to date or live)",
                       stats.get("notes_created"), dry and "to create" or "created",
                       stats.get("notes_updated"), dry and "to update" or "updated", stats.get("notes_skipped")))

-- 3. The run record: one Audit row per real run.
log.info("")
log.info("[3/3] Recording audit log...")
backfill.finish(ctx, ACTION, rules.source)
