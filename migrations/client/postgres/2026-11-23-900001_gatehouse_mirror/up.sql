-- A client-service's mirror of the auth-service's users (PostgreSQL), inside the host service's
-- database: prefixed `gatehouse_` so it never meets the host's own tables, and no password.
-- The version's time part (90:00:01) is not a time, so `diesel migration generate` in a host
-- project can never produce the same version.
CREATE TABLE gatehouse_users (
    id BIGINT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    first_name TEXT NOT NULL DEFAULT '',
    last_name TEXT NOT NULL DEFAULT '',
    date_joined TIMESTAMP NOT NULL,
    last_login TIMESTAMP,
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    is_staff BOOLEAN NOT NULL DEFAULT FALSE,
    is_superuser BOOLEAN NOT NULL DEFAULT FALSE,
    synced_at TIMESTAMP NOT NULL
);

CREATE TABLE gatehouse_access_groups (
    user_id BIGINT NOT NULL REFERENCES gatehouse_users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    level TEXT,
    PRIMARY KEY (user_id, name)
);
