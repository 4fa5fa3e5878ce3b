-- bench/naive.lua: Batch 4 the way the original design ran it, one round
-- trip per row: for each audit a lookup and an insert, autocommit.  Only a
-- yardstick for `make bench` (at the smallest size): never use it.
--   ferry exec bench/naive.lua
local roles = require "rules.roles"
local text = require "rules.text"
local meta = require "rules.metadata"
local ctx = {migration = "20251110_backfill_conversations_messages", started_at = os.date("!%Y-%m-%dT%H:%M:%SZ")}

local audits = db.query([[SELECT id FROM "Audit" WHERE lead_id IS NOT NULL
                           AND lower(btrim(actor, E' \t\n\r\f\x0b') COLLATE "C") = ANY($1::text[]) ORDER BY created_at, id]],
                        db.array(roles.actors()))
local created = 0
for _, row in ipairs(audits) do
  local a = db.one([[SELECT id, lead_id, actor, action, payload::text AS payload, created_at::text AS created_at
                       FROM "Audit" WHERE id = $1]], row.id)
  local lead = db.one([[SELECT * FROM "Lead" WHERE id = $1]], a.lead_id)
  if lead then
    local conv = db.one([[SELECT id FROM "Conversation" WHERE lead_id = $1 ORDER BY created_at, id LIMIT 1]], lead.id)
    if not conv then
      conv = db.one([[INSERT INTO "Conversation" (lead_id, customer_id, channel, external_id, started_at, metadata)
                      VALUES ($1, $2, $3, $4, $5, $6::jsonb) RETURNING id]],
                    lead.id, lead.customer_id, lead.channel, meta.external_id(lead), lead.created_at,
                    json.encode(meta.conversation(lead, ctx)))
    end
    local exists = db.one([[SELECT 1 AS x FROM "Message" WHERE metadata->>'auditId' = $1]], a.id)
    local content, source = text.extract(a.payload, a.action)
    if not exists and content then
      db.exec([[INSERT INTO "Message" (conversation_id, role, content, metadata, created_at)
                VALUES ($1, $2, $3, $4::jsonb, $5)]], conv.id, roles.role(a.actor), content,
              json.encode(meta.message(a, source, ctx)), a.created_at)
      db.exec([[UPDATE "Conversation" SET last_message_at = GREATEST(last_message_at, $2::timestamptz)
                WHERE id = $1]], conv.id, a.created_at)
      created = created + 1
    end
  end
end
log.info("naive: " .. created .. " messages created")
