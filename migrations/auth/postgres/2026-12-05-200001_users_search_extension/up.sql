-- Trigram matching for the admin user search (substring of email or names); an index on
-- users follows in 2026-12-05-200003. pg_trgm ships with PostgreSQL (contrib) and is a
-- trusted extension: a database owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
