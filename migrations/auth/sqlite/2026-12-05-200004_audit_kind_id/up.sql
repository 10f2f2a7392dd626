-- The admin audit list filtered by kind, newest first (ORDER BY id DESC, paged by id).
CREATE INDEX IF NOT EXISTS audit_events_kind_id ON audit_events (kind, id);
