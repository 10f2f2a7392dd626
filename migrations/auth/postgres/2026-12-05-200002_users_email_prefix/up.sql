-- Admin search by email prefix (search terms of one or two characters): a byte-wise range on
-- lower(email). Built without blocking writes (metadata.toml: outside a transaction, and one
-- statement per migration, as PostgreSQL runs several statements of one query string in one
-- implicit transaction). README "Indexes on a large live database" says how to build it ahead.
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_email_prefix ON users (lower(email) text_pattern_ops);
