ALTER TABLE revocation_events DROP COLUMN kid;
