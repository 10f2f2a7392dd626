-- Nothing to install on SQLite: FTS5 and its trigram tokenizer are compiled in (the
-- search table follows in 2026-12-05-200003).
SELECT 1;
