-- The admin audit list of one user, newest first (ORDER BY id DESC, paged by id).
CREATE INDEX IF NOT EXISTS audit_events_user_id_id ON audit_events (user_id, id);
