-- Addresses that signed in to an account successfully: such an address is judged by its own
-- per-account counter only, so distributed guessing cannot lock the owner out.
CREATE TABLE login_known_addresses (
    email TEXT NOT NULL,
    ip TEXT NOT NULL,
    last_success TIMESTAMP NOT NULL,
    PRIMARY KEY (email, ip)
);
CREATE INDEX login_known_addresses_last_success ON login_known_addresses (last_success);
