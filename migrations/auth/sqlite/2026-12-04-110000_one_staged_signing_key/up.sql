-- At most one signing key is staged (`next`), enforced by the database: with automatic rotation
-- every replica may find the signing key due at the same moment, and exactly one stage wins.
-- Extra staged keys of earlier versions (two `keys rotate` at once) retire now: never signing,
-- they stay published until they expire with the other retired keys.
UPDATE signing_keys
SET status = 'retired', retired_at = strftime('%Y-%m-%d %H:%M:%f', 'now')
WHERE status = 'next'
  AND kid <> (SELECT kid FROM signing_keys WHERE status = 'next' ORDER BY created_at DESC, kid DESC LIMIT 1);

CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (status) WHERE status = 'next';
