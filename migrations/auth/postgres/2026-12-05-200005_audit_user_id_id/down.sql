DROP INDEX CONCURRENTLY IF EXISTS audit_events_user_id_id;
