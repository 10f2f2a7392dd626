-- Admin search by substring (terms of three characters or more) of email, first or last name:
-- one GIN trigram index over the three lowered columns (each LIKE of the search's OR uses it).
-- Built without blocking writes, see 2026-12-05-200002.
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_search_trigram ON users
    USING gin (lower(email) gin_trgm_ops, lower(first_name) gin_trgm_ops, lower(last_name) gin_trgm_ops);
