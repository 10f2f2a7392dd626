-- Replaced by audit_events_user_id_id.
DROP INDEX IF EXISTS audit_events_user_id;
