-- Admin search by substring (terms of three characters or more) of email, first or last name:
-- an FTS5 index with the trigram tokenizer (case-insensitive) over the users table, kept in
-- step by triggers, filled from the existing rows at once.
CREATE VIRTUAL TABLE users_search USING fts5(
    email, first_name, last_name, content = 'users', content_rowid = 'id', tokenize = 'trigram'
);
CREATE TRIGGER users_search_insert AFTER INSERT ON users BEGIN
    INSERT INTO users_search (rowid, email, first_name, last_name)
    VALUES (new.id, new.email, new.first_name, new.last_name);
END;
CREATE TRIGGER users_search_delete AFTER DELETE ON users BEGIN
    INSERT INTO users_search (users_search, rowid, email, first_name, last_name)
    VALUES ('delete', old.id, old.email, old.first_name, old.last_name);
END;
-- Only when a searched column changes: a login writes last_login and must not reindex.
CREATE TRIGGER users_search_update AFTER UPDATE OF email, first_name, last_name ON users BEGIN
    INSERT INTO users_search (users_search, rowid, email, first_name, last_name)
    VALUES ('delete', old.id, old.email, old.first_name, old.last_name);
    INSERT INTO users_search (rowid, email, first_name, last_name)
    VALUES (new.id, new.email, new.first_name, new.last_name);
END;
INSERT INTO users_search (users_search) VALUES ('rebuild');
