-- Batch 3: link leads to their customer.
--
-- A lead with no customer_id gets the customer that has the same phone or
-- the same messenger_psid -- but only when exactly ONE customer matches.
-- When two customers share a phone (a family line, a reused number), a
-- guess would merge two people's histories, so such leads stay unlinked.
--
-- Rules:
--   * NULLs never match (plain "=" already guarantees that).
--   * Empty or all-space strings are ignored: '' is not a phone number.
--   * A customer matching on both phone and psid counts once (UNION below
--     removes duplicate (lead, customer) pairs, so count(*) counts distinct
--     customers).
--   * Values are compared exactly as stored; no phone normalisation.
--
-- Idempotent: only leads whose customer_id is still NULL are touched, so a
-- second run links nothing new (unless customers were added meanwhile, in
-- which case linking them is exactly what should happen).
--
-- Set-based on purpose: two equality joins (each can use a hash join) rather
-- than one join on "phone = ... OR psid = ...", which would force a nested
-- loop over leads x customers.
-- The engine runs this file in one transaction: no BEGIN/COMMIT here.

WITH matches AS (
    SELECT l.id AS lead_id, c.id AS customer_id
    FROM "Lead" l
    JOIN "Customer" c ON c.phone = l.phone
    WHERE l.customer_id IS NULL
      AND btrim(l.phone) <> ''
    UNION   -- not UNION ALL: one customer matching both ways is one match
    SELECT l.id, c.id
    FROM "Lead" l
    JOIN "Customer" c ON c.messenger_psid = l.messenger_psid
    WHERE l.customer_id IS NULL
      AND btrim(l.messenger_psid) <> ''
),
unambiguous AS (
    -- uuid has no min()/max() in PostgreSQL 15; with exactly one row per
    -- group, the first array element is that row.
    SELECT lead_id, (array_agg(customer_id))[1] AS customer_id
    FROM matches
    GROUP BY lead_id
    HAVING count(*) = 1
)
UPDATE "Lead" l
SET customer_id = u.customer_id,
    updated_at  = now()
FROM unambiguous u
WHERE l.id = u.lead_id
  AND l.customer_id IS NULL;   -- re-checked here: the row may have changed since the snapshot
