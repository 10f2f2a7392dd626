-- Asymmetric signing keys (EdDSA / ES256 / RS256): staged as "next" (published, not signing),
-- then "current" (signing), then "retired" (published until its tokens have expired).
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL,
    private_pem TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    activated_at TIMESTAMP,
    retired_at TIMESTAMP
);
