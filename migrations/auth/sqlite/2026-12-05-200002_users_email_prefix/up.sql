-- Admin search by email prefix (search terms of one or two characters): a range on lower(email).
CREATE INDEX IF NOT EXISTS users_email_prefix ON users (lower(email));
