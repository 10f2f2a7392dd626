-- The inventory service's own tables (PostgreSQL). Its `users` table is its own (a profile per
-- signed-in person); the client crate's mirror lives beside it as `gatehouse_users`.
CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    gatehouse_id BIGINT NOT NULL UNIQUE,
    display_name TEXT NOT NULL
);

CREATE TABLE items (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    added_by BIGINT NOT NULL REFERENCES users (id)
);
