-- The inventory service's own tables (SQLite). Its `users` table is its own (a profile per
-- signed-in person); the client crate's mirror lives beside it as `gatehouse_users`.
CREATE TABLE users (
    id INTEGER PRIMARY KEY NOT NULL,
    gatehouse_id BIGINT NOT NULL UNIQUE,
    display_name TEXT NOT NULL
);

CREATE TABLE items (
    id INTEGER PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    added_by INTEGER NOT NULL REFERENCES users (id)
);
