-- Batch 4: backfill Conversation and Message rows from Audit logs.
-- The mapping lives in rules/roles.lua, rules/text.lua, rules/metadata.lua;
-- this script is the data flow around them:
--
--   reader session   streams the audits still to do, ordered by
--                    (lead_id, created_at, id), in bounded memory (on a
--                    first run the first leads come from a session of
--                    their own, in the same snapshot, while the reader's
--                    server sorts the rest)
--   Lua              maps each audit through the rules
--   main session     writes per batch of whole leads: COPY conversations,
--                    COPY messages, raise last_message_at, save the
--                    checkpoint, all in one transaction
--
-- Idempotency: Message.id = uuid.v5(NS, audit id) and Conversation.id =
-- uuid.v5(NS, "conversation:" .. lead id); audits that already have a
-- message (metadata->>'auditId') are found by the reader's lookup and only
-- counted (a lead's come as one row).  A dry run takes the same path
-- without the writes.
db.prestart(1)          -- the head's session (the fast start below), set up while the rules load
local roles = require "rules.roles"
local text = require "rules.text"
local meta = require "rules.metadata"
local backfill = require "rules.backfill"

local NS = "3d5f1a52-4a0c-5e8b-9c61-0b7c2f4e8a91"   -- namespace of this batch's ids

stats.declare{"conversations_created", "conversations_skipped", "messages_created", "messages_skipped",
              "audits_processed", "audits_skipped", "errors"}

local dry = ctx.dry_run
local verbose = ctx.verbose and not ctx.quiet
local actors = db.array(roles.actors())
local resume = ctx.checkpoint.get()          -- last lead fully committed, or nil
local resume_key = resume or db.NULL          -- NULL: from the first lead (any id, the all-zero one too)

log.info("\u{1F680} Starting Batch 4: Conversation & Message Backfill")
log.info("   Mode: " .. (dry and "\u{1F50D} DRY RUN" or "\u{270D}\u{FE0F}  APPLY"))
if resume then log.info("   Resuming after lead " .. resume .. " (checkpoint of an earlier run that did not finish)") end

-- The processed audits (lead set, actor mapped: rules.roles says how in
-- SQL) of the leads after the resume point.
local function processed(range) return roles.PROCESSED_SQL .. "\n  AND " .. range end
local AFTER_RESUME = "($2::uuid IS NULL OR a.lead_id > $2::uuid)"

-- Every processed audit of a range of leads, in lead order, with what the
-- rules need: whether its lead exists, the lead's earliest conversation,
-- and whether it already has a message (then only counted).  Counting in
-- stream order keeps the counters exact at every checkpoint, so a resumed
-- run reports the totals of an uninterrupted one.
-- Columns a row does not need stay NULL: an audit that is done or orphaned
-- needs no text, a lead with a conversation needs no lead details.  They
-- are computed below an optimisation fence (OFFSET 0) so that the sort
-- carries only what is needed.
-- With `done` the audits that have their message are looked up (a join
-- with the distinct auditIds in Message: a join whatever their number; an
-- IN (subquery) would be hashed only while the set fits in work_mem, and
-- beyond that rescan Message for every audit) and a lead's done audits
-- come as one row, at the place of the first, with their number in `n`
-- (other rows: n = 1): a re-run sends one row per lead, not one per audit.
-- Without `done` (no message has an auditId: see below) the lookup is
-- left out.
local DONE_JOIN = [[
              LEFT JOIN (SELECT DISTINCT metadata->>'auditId' AS aid FROM "Message"
                          WHERE metadata ? 'auditId') done ON done.aid = a.id::text]]
local NEEDS_TEXT = "NOT b.done AND b.lead_exists"
local NEEDS_LEAD = "b.conversation_id IS NULL AND b.lead_exists"
local COLUMNS = [[id, lead_id, done, n, lead_exists, conversation_id, actor, action, created_at, payload,
         customer_id, channel, messenger_psid, phone, stage, lead_created_at]]
local function stream_sql(range, done)
  local per_audit = [[
    SELECT b.id, b.lead_id, b.ts, b.done, b.lead_exists, b.conversation_id,
           CASE WHEN ]] .. NEEDS_TEXT .. [[ THEN b.actor END AS actor,
           CASE WHEN ]] .. NEEDS_TEXT .. [[ THEN b.action END AS action,
           CASE WHEN ]] .. NEEDS_TEXT .. [[ THEN b.ts::text END AS created_at,
           CASE WHEN ]] .. NEEDS_TEXT .. [[ THEN b.payload::text END AS payload,
           CASE WHEN ]] .. NEEDS_LEAD .. [[ THEN b.customer_id END AS customer_id,
           CASE WHEN ]] .. NEEDS_LEAD .. [[ THEN b.channel END AS channel,
           CASE WHEN ]] .. NEEDS_LEAD .. [[ THEN b.messenger_psid END AS messenger_psid,
           CASE WHEN ]] .. NEEDS_LEAD .. [[ THEN b.phone END AS phone,
           CASE WHEN ]] .. NEEDS_LEAD .. [[ THEN b.stage END AS stage,
           CASE WHEN ]] .. NEEDS_LEAD .. [[ THEN b.lead_created::text END AS lead_created_at
      FROM (SELECT a.id, a.lead_id, a.created_at AS ts, ]] .. (done and "done.aid IS NOT NULL" or "false") .. [[ AS done,
                   l.id IS NOT NULL AS lead_exists, c.id AS conversation_id, a.actor, a.action, a.payload,
                   l.customer_id, l.channel, l.messenger_psid, l.phone, l.stage, l.created_at AS lead_created
              FROM "Audit" a
              LEFT JOIN "Lead" l ON l.id = a.lead_id
              LEFT JOIN (SELECT DISTINCT ON (lead_id) lead_id, id FROM "Conversation"
                          WHERE lead_id IS NOT NULL ORDER BY lead_id, created_at, id) c ON c.lead_id = a.lead_id]]
              .. (done and DONE_JOIN or "") .. [[
             WHERE ]] .. processed(range) .. [[
            OFFSET 0) b
    OFFSET 0]]
  if not done then
    return "SELECT " .. COLUMNS .. " FROM (SELECT s.*, 1 AS n FROM (" .. per_audit .. ") s) t ORDER BY lead_id, ts, id"
  end
  return [[
  SELECT ]] .. COLUMNS .. [[ FROM (
    SELECT s.id, s.lead_id, s.ts, s.done, CASE WHEN s.done THEN count(*) FILTER (WHERE s.done) OVER whole ELSE 1 END AS n,
           s.lead_exists, s.conversation_id, s.actor, s.action, s.created_at, s.payload,
           s.customer_id, s.channel, s.messenger_psid, s.phone, s.stage, s.lead_created_at,
           count(*) FILTER (WHERE s.done) OVER upto AS done_upto
      FROM (]] .. per_audit .. [[) s
    WINDOW whole AS (PARTITION BY s.lead_id), upto AS (PARTITION BY s.lead_id ORDER BY s.ts, s.id)) t
   WHERE NOT t.done OR t.done_upto = 1
   ORDER BY lead_id, ts, id]]
end

-- A fast start.  The server must sort every audit before the stream's
-- first row, which would leave the writers idle meanwhile (seconds, at a
-- million audits); so on a first run the first leads -- about an eighth of
-- the audits (the planner's estimate of the table), at least
-- min(--batch-size, 1000), cut before the lead at that place in the
-- (lead_id, created_at) index -- are read on a session of their own, in
-- the same snapshot, and mapped and written while the reader's server
-- sorts the rest (the leads from that boundary lead on).  Not when some
-- audits already have their message (a re-run, a resumed run): finding
-- them means a scan of every message, which the head would only repeat,
-- taking a core from the reader.
local BOUNDARY = [[SELECT lead_id FROM "Audit" WHERE lead_id IS NOT NULL AND ($1::uuid IS NULL OR lead_id > $1::uuid)
                   ORDER BY lead_id OFFSET $2 LIMIT 1]]
local HEAD_RANGE = "($2::uuid IS NULL OR a.lead_id > $2::uuid) AND ($3::uuid IS NULL OR a.lead_id < $3::uuid)"
local REST_RANGE = "a.lead_id >= $2::uuid"

-- One snapshot for the counts and the streams (db.reader: REPEATABLE READ,
-- read-only, tuned for one long streaming read), read by up to three
-- sessions at once: the reader streams the rest (or all), another the head,
-- and the main one counts (it writes only once that is done).
local read <close> = db.reader()
local head_conn <close> = db.connect()       -- (started with the script: see its first line)
local main = db.open()

log.info("")
log.info("[1/4] Fetching audit records...")
-- Some audit done already?  Only the first 100,000 messages are looked at,
-- a bounded cost on a big live table: a wrong "no" only costs a re-run a
-- second scan of the messages (the head's), never a wrong row.  When
-- those are all the messages and none has an auditId, no audit is done
-- (in this snapshot, which the streams share): they skip the lookup.
local probe = read:one([[
  SELECT p.any_done, NOT p.any_done AND (SELECT count(*) FROM (SELECT FROM "Message" LIMIT 100000) m) < 100000
           AS none_done
    FROM (SELECT EXISTS (SELECT 1 FROM (SELECT metadata FROM "Message" LIMIT 100000) m
                          WHERE m.metadata ? 'auditId') AS any_done) p]])
local any_done, done = probe.any_done, not probe.none_done
local next_head, head_stream, boundary
if any_done then
  head_conn:close()
else
  local estimate = read:one([[SELECT greatest(reltuples, 0)::bigint AS n FROM pg_class WHERE oid = '"Audit"'::regclass]]).n
  local head_audits = math.max(math.min(ctx.batch_size, 1000), estimate // 8)
  boundary = read:one(BOUNDARY, resume_key, head_audits)
  boundary = boundary and boundary.lead_id        -- nil: the head holds every lead
  read:share_snapshot(head_conn)
  next_head, _, _, head_stream = head_conn:rows(stream_sql(HEAD_RANGE, done), actors, resume_key, boundary or db.NULL)
end
local head <close> = head_stream
read:share_snapshot(main)
local next_rest, rest_stream
if any_done then
  next_rest, _, _, rest_stream = read:rows(stream_sql(AFTER_RESUME, true), actors, resume_key)
elseif boundary then
  next_rest, _, _, rest_stream = read:rows(stream_sql(REST_RANGE, done), actors, boundary)
end
local rest <close> = rest_stream
-- Leaving on an error, the sessions close before their streams: a stream
-- closed inside its transaction is read to its end, not cancelled (which
-- at a million audits is seconds of sorting and reading for nothing).
local read_first <close> = read
local head_first <close> = head_conn
local summary = main:one([[
  SELECT coalesce(sum(n), 0)::bigint AS audits, count(*) AS leads
    FROM (SELECT a.lead_id, count(*) AS n FROM "Audit" a WHERE ]] .. processed(AFTER_RESUME) .. [[ GROUP BY a.lead_id) per_lead]],
  actors, resume_key)
main:exec("COMMIT")
log.info(string.format("\u{1F4CA} Found %d audit records with messages", summary.audits))
log.info(string.format("\u{1F517} Grouped into %d leads with audit history", summary.leads))

log.info("")
log.info("[2/4] Creating conversations for leads...")
log.info("[3/4] Creating messages from audit logs...")

local todo = summary.audits
local batch_size = ctx.batch_size_for(todo)
log.info("   (one pass: conversations and their messages are written together, "
         .. "up to " .. batch_size .. " audits per committed batch)")

local bar <close> = progress.new("audits", todo)

-- The current batch: whole leads, written as one transaction.  Rows go
-- straight into COPY buffers (C memory, no Lua table per row).
local convs, msgs, raises = db.buffer(), db.buffer(), {}

-- Writers: --jobs N sessions taking batches in turn (db.pipeline): the
-- server stores and indexes batch k while Lua maps batch k+1, each batch
-- one transaction with its checkpoint.
local pipe <close> = db.pipeline{jobs = ctx.jobs, dry_run = dry, checkpoint = ctx.checkpoint}

local CONVERSATION_COPY = [[COPY "Conversation" (id, lead_id, customer_id, channel, external_id,
                              started_at, last_message_at, metadata) FROM STDIN]]
local MESSAGE_COPY = [[COPY "Message" (id, conversation_id, role, content, metadata, created_at) FROM STDIN]]
local RAISE_SQL = [[
  UPDATE "Conversation" c
     SET last_message_at = u.ts, updated_at = now()
    FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, ts)
   WHERE c.id = u.id AND (c.last_message_at IS NULL OR c.last_message_at < u.ts)]]

-- Raises last_message_at of existing conversations that got newer messages.
local function raise_last_message_at(list)
  if #list == 0 then return nil end
  return function(conn)
    local ids, times = {}, {}
    for i, r in ipairs(list) do ids[i], times[i] = r[1], r[2] end
    conn:exec(RAISE_SQL, db.array(ids), db.array(times))
  end
end

local function flush(last_lead)
  if last_lead == nil then return end
  pipe:send{copies = {{sql = CONVERSATION_COPY, buffer = convs}, {sql = MESSAGE_COPY, buffer = msgs}},
            after = raise_last_message_at(raises), position = last_lead}
  convs:clear(); msgs:clear(); raises = {}
end

-- Per lead: its conversation (existing or new) and its latest message time.
local lead_id, conv_id, conv_is_new, conv_row, last_at

local function finish_lead()
  if not lead_id then return end
  if conv_is_new then
    local c = conv_row               -- last_message_at: the latest of its messages
    if not dry then convs:put(c[1], c[2], c[3], c[4], c[5], c[6], last_at, c[8]) end
  elseif last_at then
    raises[#raises + 1] = {conv_id, last_at}
  end
end

local orphans_shown = 0

local function start_lead(a)
  lead_id, last_at, conv_is_new = a.lead_id, nil, false
  if not a.lead_exists then
    -- audits whose lead does not exist are skipped (rule 2)
    orphans_shown = orphans_shown + 1
    if verbose or orphans_shown <= 10 then
      log.info(string.format("   \u{26A0} Lead %s not found, skipping", lead_id))
    end
    conv_id = nil
  elseif a.conversation_id then
    conv_id = a.conversation_id
    stats.inc("conversations_skipped")
    if verbose then log.verbose(string.format("   \u{2299} Conversation already exists for lead %s", lead_id)) end
  else
    conv_id, conv_is_new = uuid.v5(NS, "conversation:" .. lead_id), true
    local lead = {stage = a.stage, messenger_psid = a.messenger_psid, phone = a.phone}
    conv_row = {conv_id, lead_id, a.customer_id, a.channel, meta.external_id(lead), a.lead_created_at, nil,
                json.encode(meta.conversation(lead, ctx))}
    stats.inc("conversations_created")
    if verbose then
      log.verbose(string.format("   %s conversation for lead %s", dry and "[DRY RUN] Would create" or "Creating", lead_id))
    end
  end
end

local function map_audit(a)
  local role = roles.role(a.actor)
  if not role then error("actor " .. tostring(a.actor) .. " is not in rules.roles") end
  local content, source = text.extract(a.payload, a.action)
  if content == nil then
    stats.inc("messages_skipped")
    if verbose then log.verbose(string.format("   \u{2299} Skipping audit %s (no extractable text)", a.id)) end
    return
  end
  local metadata = json.encode(meta.message(a, source, ctx))
  if not dry then msgs:put(uuid.v5(NS, a.id), conv_id, role, content, metadata, a.created_at) end
  last_at = a.created_at            -- rows arrive by created_at: the last is the latest
  stats.inc("messages_created")
  if verbose then
    log.verbose(string.format("   %s message from audit %s (%s)", dry and "[DRY RUN] Would create" or "Creating",
                              a.id, backfill.preview(content, 40)))
  end
end

local pending = 0        -- audits mapped into the current batch
local seen = 0
local next_pump = 256
-- One row: an audit, or a lead's done audits (a.n of them).
local function process(a)
  if a.lead_id ~= lead_id then
    finish_lead()
    -- (the last batches are smaller, so that the writers finish together)
    if pending >= ctx.batch_size_for(todo, todo - seen + pending) then flush(lead_id); pending = 0 end
    start_lead(a)
  end
  local n = a.n
  if not conv_id then
    stats.inc("audits_skipped", n)
  elseif a.done then
    stats.inc("messages_skipped", n)       -- they already have their message (rule 5)
  else
    local ok, err = pcall(map_audit, a)
    if not ok then
      stats.error(a.id, err)          -- (ferry's own errors that end the run are raised on)
    end
    pending = pending + 1
  end
  stats.inc("audits_processed", n)
  seen = seen + n
  if seen >= next_pump then pipe:pump(); next_pump = seen + 256 end
  bar:add(n)
end

if next_head then
  for a in next_head do process(a) end
  head_conn:exec("COMMIT")
  head_conn:close()
  -- The head's last batch goes out as soon as it is mapped (the head ends
  -- with a whole lead: the rest starts at the boundary lead), so that the
  -- writers have it while the rest may still be sorting.
  finish_lead()
  flush(lead_id)
  lead_id, pending = nil, 0
end
if next_rest then
  for a in next_rest do process(a) end
end
if orphans_shown > 10 and not verbose then
  log.info(string.format("   \u{26A0} ... and %d more leads not found (--verbose lists them)", orphans_shown - 10))
end
finish_lead()
flush(lead_id)
pipe:finish()
bar:finish()
read:close()

log.info(string.format("   \u{2713} conversations: %d %s, %d already existed", stats.get("conversations_created"),
                       dry and "to create" or "created", stats.get("conversations_skipped")))
log.info(string.format("   \u{2713} messages: %d %s, %d skipped", stats.get("messages_created"),
                       dry and "to create" or "created", stats.get("messages_skipped")))

-- 4. The run record: one Audit row per real run.
log.info("")
log.info("[4/4] Recording audit log...")
backfill.finish(ctx, "backfill_conversations_messages", meta.source)
