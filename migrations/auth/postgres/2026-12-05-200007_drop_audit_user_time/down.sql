CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_events_user_id ON audit_events (user_id, created_at);
