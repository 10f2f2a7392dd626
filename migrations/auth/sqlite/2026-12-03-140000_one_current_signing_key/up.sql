-- Exactly one signing key is `current`, enforced by the database: replicas starting together on
-- a fresh database each try to store the first key, and all but one are refused (then re-read
-- the stored one). Earlier versions could store several; the newest (by activation, as every
-- replica already picked it to sign) stays current, the others retire now and so stay published
-- until their tokens have expired. Each retirement is audited as `key_rotated`.
INSERT INTO audit_events (created_at, kind, detail)
SELECT strftime('%Y-%m-%d %H:%M:%f', 'now'), 'key_rotated', '{"step":"retired","kid":"' || kid || '"}'
FROM signing_keys
WHERE status = 'current'
  AND kid <> (SELECT kid FROM signing_keys WHERE status = 'current'
              ORDER BY COALESCE(activated_at, created_at) DESC, created_at DESC, kid DESC LIMIT 1)
ORDER BY created_at, kid;

UPDATE signing_keys
SET status = 'retired', retired_at = strftime('%Y-%m-%d %H:%M:%f', 'now')
WHERE status = 'current'
  AND kid <> (SELECT kid FROM signing_keys WHERE status = 'current'
              ORDER BY COALESCE(activated_at, created_at) DESC, created_at DESC, kid DESC LIMIT 1);

CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (status) WHERE status = 'current';
