-- rules.metadata: the shapes of what Batch 4 writes besides the text.
local M = {}

M.source = "audit_backfill"

--- external_id(lead): the Messenger PSID, else the phone.
function M.external_id(lead)
  if lead.messenger_psid and lead.messenger_psid ~= "" then return lead.messenger_psid end
  return lead.phone
end

--- conversation(lead, ctx) -> Conversation.metadata
function M.conversation(lead, ctx)
  return {source = M.source, leadStage = lead.stage, createdBy = ctx.migration, createdAt = ctx.started_at}
end

--- message(audit, text_source, ctx) -> Message.metadata
function M.message(audit, text_source, ctx)
  return {auditId = audit.id, auditAction = audit.action, auditActor = audit.actor,
          source = M.source, createdBy = ctx.migration, textSource = text_source}
end

local t = require "ferry.testing"
M.tests = {
  ["external id prefers the PSID"] = function()
    t.eq(M.external_id{messenger_psid = "psid-1", phone = "+1"}, "psid-1")
    t.eq(M.external_id{phone = "+1"}, "+1")
    t.eq(M.external_id{messenger_psid = "", phone = "+1"}, "+1")
    t.eq(M.external_id{}, nil)
  end,
  ["message metadata"] = function()
    local ctx = {migration = "m1", started_at = "2025-11-10T00:00:00.000Z"}
    t.eq(M.message({id = "a1", action = "message_sent", actor = "agent"}, "payload.text", ctx),
         {auditId = "a1", auditAction = "message_sent", auditActor = "agent", source = "audit_backfill",
          createdBy = "m1", textSource = "payload.text"})
  end,
  ["conversation metadata"] = function()
    local ctx = {migration = "m1", started_at = "2025-11-10T00:00:00.000Z"}
    t.eq(M.conversation({stage = "done"}, ctx),
         {source = "audit_backfill", leadStage = "done", createdBy = "m1", createdAt = "2025-11-10T00:00:00.000Z"})
  end,
}

return M
