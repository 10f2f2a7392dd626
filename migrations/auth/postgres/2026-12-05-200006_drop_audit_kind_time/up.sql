-- Replaced by audit_events_kind_id (no query orders by kind and time). Dropped without
-- blocking reads or writes, see 2026-12-05-200002.
DROP INDEX CONCURRENTLY IF EXISTS audit_events_kind;
