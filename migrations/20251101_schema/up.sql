-- Batch 1: the tables of the application schema (everything except the two
-- full-text indexes, which are Batch 2).
--
-- This must produce exactly the schema users already have, column for column
-- and constraint for constraint, so that a database built from nothing with
-- ferry is indistinguishable from a real user's database (tests/sql/
-- schema_equivalence.sh checks that). Constraint names are left to
-- PostgreSQL on purpose: users' databases carry the default names
-- ("Lead_customer_id_fkey", "Message_role_check", ...), so must we.
--
-- Naming follows Prisma: quoted PascalCase tables, snake_case columns.
-- gen_random_uuid() is built into PostgreSQL 13+, no extension needed.
-- The engine runs this file in one transaction: no BEGIN/COMMIT here.

CREATE TABLE "Customer" (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name           text,
    email          text,
    phone          text,
    messenger_psid text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE "Lead" (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Filled in by Batch 3 (20251108_link_customers); a deleted customer
    -- leaves the lead in place, unlinked.
    customer_id    uuid REFERENCES "Customer"(id) ON DELETE SET NULL,
    channel        text NOT NULL,              -- 'messenger', 'whatsapp', 'sms', 'web', ...
    messenger_psid text,                       -- set for messenger leads
    phone          text,                       -- set for phone-based leads
    stage          text NOT NULL DEFAULT 'new',
    state_metadata jsonb,                      -- the agent's working state (Batch 5 reads it)
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Audits outlive their lead: lead_id may name a lead that was deleted (an
-- "orphan"), so there is deliberately no foreign key here.
CREATE TABLE "Audit" (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    lead_id    uuid,
    actor      text NOT NULL,                  -- 'customer', 'agent', 'system', 'webhook', ...
    action     text NOT NULL,                  -- 'message_received', 'message_sent', ...
    payload    jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Batch 4 reads audits lead by lead in time order.
CREATE INDEX "Audit_lead_id_created_at_idx" ON "Audit" (lead_id, created_at);

CREATE TABLE "Conversation" (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    lead_id         uuid REFERENCES "Lead"(id) ON DELETE CASCADE,
    customer_id     uuid REFERENCES "Customer"(id) ON DELETE SET NULL,
    channel         text,
    external_id     text,                      -- messenger PSID or phone
    started_at      timestamptz NOT NULL DEFAULT now(),
    last_message_at timestamptz,
    metadata        jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX "Conversation_lead_id_idx" ON "Conversation" (lead_id);

CREATE TABLE "Message" (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id uuid NOT NULL REFERENCES "Conversation"(id) ON DELETE CASCADE,
    role            text NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content         text,
    metadata        jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX "Message_conversation_id_created_at_idx" ON "Message" (conversation_id, created_at);

CREATE TABLE "MemoryNote" (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    lead_id     uuid REFERENCES "Lead"(id) ON DELETE CASCADE,
    customer_id uuid REFERENCES "Customer"(id) ON DELETE SET NULL,
    kind        text NOT NULL,                 -- 'fact', 'preference', 'summary', ...
    key         text,                          -- e.g. 'budget', 'preferences.color'
    content     text NOT NULL,
    metadata    jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX "MemoryNote_lead_id_idx" ON "MemoryNote" (lead_id);
