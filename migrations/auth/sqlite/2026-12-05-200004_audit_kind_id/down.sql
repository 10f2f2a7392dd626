DROP INDEX IF EXISTS audit_events_kind_id;
