DROP TABLE audit_events;
DROP TABLE revocation_events;
DROP TABLE sessions;
