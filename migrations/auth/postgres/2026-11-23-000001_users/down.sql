DROP TABLE refresh_tokens;
DROP TABLE access_groups;
DROP TABLE users;
