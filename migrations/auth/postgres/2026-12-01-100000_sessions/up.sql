-- Sessions (one row per refresh-token family, i.e. per login), per-user revocation watermarks
-- published as a feed, and the audit trail (PostgreSQL).
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    ip TEXT,
    user_agent TEXT
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- "Tokens of user_id issued before not_before (epoch seconds) are dead"; the id is the feed cursor.
CREATE TABLE revocation_events (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    not_before BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX revocation_events_user_id ON revocation_events (user_id, not_before);
CREATE INDEX revocation_events_created_at ON revocation_events (created_at);

CREATE TABLE audit_events (
    id BIGSERIAL PRIMARY KEY,
    created_at TIMESTAMP NOT NULL,
    kind TEXT NOT NULL,
    user_id BIGINT,
    actor_id BIGINT,
    ip TEXT,
    user_agent TEXT,
    detail TEXT
);
CREATE INDEX audit_events_created_at ON audit_events (created_at);
CREATE INDEX audit_events_user_id ON audit_events (user_id, created_at);
CREATE INDEX audit_events_kind ON audit_events (kind, created_at);
