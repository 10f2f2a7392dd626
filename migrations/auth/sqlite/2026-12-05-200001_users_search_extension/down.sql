-- Nothing was installed.
SELECT 1;
