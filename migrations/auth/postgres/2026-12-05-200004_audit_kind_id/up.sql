-- The admin audit list filtered by kind, newest first (ORDER BY id DESC, paged by id): an index
-- in that order, so a page reads its rows and stops instead of sorting every event of the kind.
-- Built without blocking writes, see 2026-12-05-200002.
CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_events_kind_id ON audit_events (kind, id);
