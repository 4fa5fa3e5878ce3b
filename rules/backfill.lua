-- rules/backfill.lua: what the CRM backfills (Batches 4, 5 and the next)
-- share in how they report: the short preview of a text in --verbose
-- lines, and the end of a run -- one Audit row per real run (action
-- <action>, payload {source, migration, stats, errors}) and the closing
-- banner of the seed design.
local db = require "db"
local json = require "json"
local log = require "log"
local stats = require "stats"

local M = {}

--- preview(s, n) -> the first n characters of s on one line, "..." when cut
function M.preview(s, n)
  local cut = json.truncate(s, n):gsub("[%c]", " ")
  return json.utf8_len(s) > n and cut .. "..." or cut
end

--- run_record(ctx, source, counters, errors) -> the payload of the run's Audit row
function M.run_record(ctx, source, counters, errors)
  return {source = source, migration = ctx.migration, stats = counters, errors = errors}
end

local RULE = string.rep("\u{2550}", 59)

--- banner(dry_run, errors) -> the closing line: a run with row errors is
-- not "complete" (it exits 1, and those rows are still to do)
function M.banner(dry_run, errors)
  if errors > 0 then
    return string.format("\u{26A0}\u{FE0F}  %s WITH %d ROW ERROR(S): fix the rule or the data and %s",
                         dry_run and "DRY RUN FINISHED" or "BACKFILL FINISHED", errors,
                         dry_run and "dry-run again" or "re-run")
  end
  return dry_run and "\u{1F50D} DRY RUN COMPLETE" or "\u{2705} BACKFILL COMPLETE"
end

--- finish(ctx, action, source): records the run in "Audit" with every
-- counter and error so far (a dry run only says it would) -- without row
-- errors, in one transaction with ctx.checkpoint.clear() -- then prints
-- the closing banner.
function M.finish(ctx, action, source)
  local counters = {}
  for _, c in ipairs(stats.counters()) do counters[c.name] = c.value end
  local errors = json.array(stats.errors())     -- "errors": [] even when empty
  if ctx.dry_run then
    log.info("   [DRY RUN] Would create audit log")
  else
    local function record()
      db.exec([[INSERT INTO "Audit" (lead_id, actor, action, payload) VALUES (NULL, 'system', $1, $2::jsonb)]],
              action, json.encode_ordered(M.run_record(ctx, source, counters, errors)))
    end
    if stats.get("errors") == 0 and ctx.checkpoint then
      -- The record and the end of the resume point in one transaction: a
      -- run stopped after the record (killed, connection lost) before
      -- ferry recorded it applied must not be resumed, or the resumed run,
      -- with the same totals, would write a second record of the same
      -- work.  The next run is a re-run instead (0 created, its own
      -- record).  (After row errors the resume point stays before the
      -- failed row: the record alone.)  Inside a transaction the script
      -- holds, db.transaction is a savepoint of it: they commit or roll
      -- back with the script's own writes.
      db.transaction(function() record(); ctx.checkpoint.clear() end)
    else
      record()
    end
    log.info("   \u{2713} Audit log recorded")
  end
  log.info("")
  log.info(RULE)
  log.info(M.banner(ctx.dry_run, stats.get("errors")))
  log.info(RULE)
end

local t = require "ferry.testing"
M.tests = {
  ["preview"] = function()
    t.eq(M.preview("short", 40), "short")
    t.eq(M.preview("line one\nline two", 40), "line one line two")
    t.eq(M.preview("héllo wörld", 5), "héllo...")
  end,
  ["banner"] = function()
    t.eq(M.banner(false, 0), "\u{2705} BACKFILL COMPLETE")
    t.eq(M.banner(true, 0), "\u{1F50D} DRY RUN COMPLETE")
    t.eq(M.banner(false, 2), "\u{26A0}\u{FE0F}  BACKFILL FINISHED WITH 2 ROW ERROR(S): fix the rule or the data and re-run")
    t.eq(M.banner(true, 1), "\u{26A0}\u{FE0F}  DRY RUN FINISHED WITH 1 ROW ERROR(S): fix the rule or the data and dry-run again")
  end,
  ["run record"] = function()
    local r = M.run_record({migration = "m5"}, "src", {errors = 0}, json.array())
    t.eq(r, {source = "src", migration = "m5", stats = {errors = 0}, errors = {}})
    t.eq(json.encode_ordered(r.errors), "[]")    -- "errors": [] even when empty
  end,
}

return M
