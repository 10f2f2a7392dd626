//! The key that signs the admin console's sign-in form tokens (its CSRF defence before a
//! session exists): `ISSUED.NONCE.TAG`, HMAC-SHA256 under a key derived from a secret every
//! replica shares.

use aws_lc_rs::hmac;
use base64::Engine;

/// How long a sign-in form's CSRF token is accepted after the form was served.
pub const LOGIN_FORM_LIFETIME: std::time::Duration = std::time::Duration::from_secs(12 * 3600);
/// The server key that signs the sign-in form's CSRF token: derived from a secret every replica
/// shares (`SIGNING_KEY` with HMAC algorithms, `KEY_ENCRYPTION_KEY` with asymmetric ones), so a
/// form served by one replica is accepted by another. `Debug` shows nothing.
#[derive(Clone)]
pub struct FormKey(hmac::Key);

impl std::fmt::Debug for FormKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FormKey([redacted])")
    }
}

impl FormKey {
    /// The key derived from the shared `secret` (an HMAC of a fixed label, so the secret itself
    /// never signs anything else).
    pub fn derive(secret: &[u8]) -> Self {
        let root = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let derived = hmac::sign(&root, b"gatehouse admin console sign-in form key");
        FormKey(hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()))
    }

    /// A key of this process alone (dev mode without a shared secret: a sign-in form must then
    /// be posted to the replica that served it).
    pub fn random() -> Self {
        Self::derive(uuid::Uuid::new_v4().as_bytes())
    }

    /// What the tag of a sign-in token signs.
    fn message(issued: i64, nonce: &str) -> String {
        format!("gatehouse-admin-login\0{issued}\0{nonce}")
    }

    /// A new sign-in token: `ISSUED.NONCE.TAG` (epoch seconds, random hex, base64url HMAC).
    pub fn login_token(&self) -> String {
        let issued = chrono::Utc::now().timestamp();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(hmac::sign(&self.0, Self::message(issued, &nonce).as_bytes()).as_ref());
        format!("{issued}.{nonce}.{tag}")
    }

    /// Whether `token` is a sign-in token this key signed within [`LOGIN_FORM_LIFETIME`]
    /// (the signature is checked in constant time).
    pub fn accepts(&self, token: &str) -> bool {
        let mut parts = token.split('.');
        let (Some(issued), Some(nonce), Some(tag), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let (Ok(issued), Ok(tag)) =
            (issued.parse::<i64>(), base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(tag))
        else {
            return false;
        };
        let age = chrono::Utc::now().timestamp().saturating_sub(issued);
        let lifetime = i64::try_from(LOGIN_FORM_LIFETIME.as_secs()).unwrap_or(i64::MAX);
        // A little allowance for replicas whose clocks differ.
        let fresh = (-60..=lifetime).contains(&age);
        fresh && hmac::verify(&self.0, Self::message(issued, nonce).as_bytes(), &tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token signed by `key` as issued at `issued`.
    fn issued_at(key: &FormKey, issued: i64) -> String {
        let nonce = "0123456789abcdef0123456789abcdef";
        let tag = hmac::sign(&key.0, FormKey::message(issued, nonce).as_bytes());
        format!("{issued}.{nonce}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    #[test]
    fn sign_in_tokens_are_bound_to_the_key_and_expire() {
        let key = FormKey::derive(b"a shared secret of the replicas");
        let token = key.login_token();
        assert!(key.accepts(&token));
        assert!(FormKey::derive(b"a shared secret of the replicas").accepts(&token), "every replica");
        assert!(!FormKey::derive(b"another secret").accepts(&token), "another key");
        let now = chrono::Utc::now().timestamp();
        let lifetime = i64::try_from(LOGIN_FORM_LIFETIME.as_secs()).unwrap();
        assert!(key.accepts(&issued_at(&key, now - lifetime + 60)));
        assert!(!key.accepts(&issued_at(&key, now - lifetime - 60)), "expired");
        assert!(!key.accepts(&issued_at(&key, now + 3600)), "from the future");
        let (head, _) = token.rsplit_once('.').unwrap();
        for forged in ["", "planted", &format!("{head}.AAAA"), &format!("{token}.x"), &token.replacen('.', ".1", 1)] {
            assert!(!key.accepts(forged), "{forged:?}");
        }
    }
}
