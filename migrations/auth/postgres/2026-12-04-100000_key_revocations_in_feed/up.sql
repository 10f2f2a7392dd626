-- A revoked signing key travels in the revocation feed as an entry with its kid (user_id and
-- not_before are then 0).
ALTER TABLE revocation_events ADD COLUMN kid TEXT;
