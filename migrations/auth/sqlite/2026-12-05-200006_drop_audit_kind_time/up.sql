-- Replaced by audit_events_kind_id (no query orders by kind and time).
DROP INDEX IF EXISTS audit_events_kind;
