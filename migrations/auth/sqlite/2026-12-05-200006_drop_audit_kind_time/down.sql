CREATE INDEX IF NOT EXISTS audit_events_kind ON audit_events (kind, created_at);
