-- Replaced by audit_events_user_id_id. Dropped without blocking reads or writes, see
-- 2026-12-05-200002.
DROP INDEX CONCURRENTLY IF EXISTS audit_events_user_id;
