-- pg_trgm may serve other things in this database: it is left installed.
SELECT 1;
