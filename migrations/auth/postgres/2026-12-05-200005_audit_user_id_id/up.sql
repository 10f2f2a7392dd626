-- The admin audit list of one user, newest first (ORDER BY id DESC, paged by id).
-- Built without blocking writes, see 2026-12-05-200002.
CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_events_user_id_id ON audit_events (user_id, id);
