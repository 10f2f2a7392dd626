DROP TABLE gatehouse_access_groups;
DROP TABLE gatehouse_users;
