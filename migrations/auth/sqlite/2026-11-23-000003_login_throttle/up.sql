-- Failed-login counters for brute-force protection, keyed per client IP, per account and IP,
-- and per account; shared by every auth-service replica.
CREATE TABLE login_throttle (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_failure TIMESTAMP NOT NULL,
    locked_until TIMESTAMP
);
CREATE INDEX login_throttle_last_failure ON login_throttle (last_failure);
