//! Second factors as values, with no storage and no HTTP: a TOTP authenticator (RFC 6238:
//! SHA-1, 6 digits, 30 s steps, one step of skew), its `otpauth://` URI and QR code, single-use
//! recovery codes, the opaque tokens of a sign-in in two steps, the sealing of TOTP secrets at
//! rest, and the RFC 8176 `amr` values a token carries after a second factor.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use crate::kek::{KeyEncryptionKey, KeyError};

/// TOTP secret length in bytes (160 bits, RFC 4226's recommendation).
pub const TOTP_SECRET_BYTES: usize = 20;
/// How many recovery codes an enrolment hands out.
pub const RECOVERY_CODES: usize = 10;
/// How long the `mfa_token` of a sign-in in two steps lives.
pub const MFA_TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(5 * 60);
/// Wrong second factors one `mfa_token` takes before it is dead (the login counters count
/// every one of them too).
pub const MFA_TOKEN_MAX_FAILURES: i32 = 5;
/// The issuer an authenticator app shows next to the account when `ISSUER` is not set.
pub const DEFAULT_TOTP_ISSUER: &str = "Gatehouse";

/// The method names of the `methods` list of an `mfa_required` answer.
pub mod method {
    /// A TOTP code (or one of its recovery codes).
    pub const TOTP: &str = "totp";
    /// A passkey (WebAuthn assertion).
    pub const WEBAUTHN: &str = "webauthn";
}

/// RFC 8176 authentication method references (`amr`).
pub mod amr {
    /// Password.
    pub const PWD: &str = "pwd";
    /// One-time password (TOTP or a recovery code).
    pub const OTP: &str = "otp";
    /// Proof of possession of a hardware-secured key (a passkey on a security key or platform
    /// authenticator).
    pub const HWK: &str = "hwk";
    /// Proof of possession of a software-secured key (a synced passkey).
    pub const SWK: &str = "swk";
    /// User presence/verification by the authenticator (a passwordless passkey sign-in).
    pub const USER: &str = "user";
    /// More than one factor.
    pub const MFA: &str = "mfa";
}

/// Why a TOTP authenticator could not be built or described.
#[derive(Debug, thiserror::Error)]
#[error("TOTP: {0}")]
pub struct TotpError(String);

/// A user's TOTP authenticator: the secret and the names an authenticator app shows.
pub struct Authenticator {
    totp: totp_rs::Totp,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator([redacted])")
    }
}

/// A new random TOTP secret.
pub fn new_totp_secret() -> Result<Vec<u8>, TotpError> {
    let mut secret = vec![0u8; TOTP_SECRET_BYTES];
    aws_lc_rs::rand::fill(&mut secret).map_err(|_| TotpError("no randomness for a secret".into()))?;
    Ok(secret)
}

impl Authenticator {
    /// The authenticator of `secret` for the account `account` (the email) at `issuer`. A `:`
    /// (which the `otpauth` label reserves) in either name becomes a space.
    pub fn new(secret: Vec<u8>, issuer: &str, account: &str) -> Result<Self, TotpError> {
        let totp = totp_rs::Builder::new()
            .with_secret(secret)
            .with_account_name(account.replace(':', " "))
            .with_issuer(Some(issuer.replace(':', " ")))
            .build()
            .map_err(|e| TotpError(e.to_string()))?;
        Ok(Self { totp })
    }

    /// The secret in base32 (what a user types into an app that cannot scan).
    pub fn secret_base32(&self) -> String {
        self.totp.secret().to_base32()
    }

    /// The `otpauth://totp/...` URI an authenticator app scans.
    pub fn uri(&self) -> Result<String, TotpError> {
        self.totp.to_url().map_err(|e| TotpError(e.to_string()))
    }

    /// The URI as a QR code, an SVG document.
    pub fn qr_svg(&self) -> Result<String, TotpError> {
        let code = qrcode::QrCode::new(self.uri()?.as_bytes()).map_err(|e| TotpError(e.to_string()))?;
        Ok(code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).quiet_zone(true).build())
    }

    /// The time step (`unix_time / 30`) whose code `code` is, within one step of `unix_time`.
    /// Spaces in the code are ignored; anything but 6 digits matches nothing.
    pub fn step_of(&self, code: &str, unix_time: u64) -> Option<u64> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        self.totp.check(&code, unix_time)
    }

    /// The code of the step that holds `unix_time` (tests and the demo compute codes with it).
    pub fn code_at(&self, unix_time: u64) -> String {
        self.totp.generate(unix_time).to_string()
    }
}

/// Random text of `bytes` random bytes, base64url without padding.
fn random_token(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    // The system's randomness is there or nothing works: fall back to two UUIDv4s rather
    // than fail a login on it.
    if aws_lc_rs::rand::fill(&mut raw).is_err() {
        raw = [uuid::Uuid::new_v4().into_bytes(), uuid::Uuid::new_v4().into_bytes()].concat();
    }
    URL_SAFE_NO_PAD.encode(raw)
}

/// A new opaque token for a challenge (an `mfa_token`, a passkey ceremony): 256 random bits.
/// Only its [`token_id`] is stored.
pub fn new_challenge_token() -> String {
    random_token(32)
}

/// The stored id of a challenge token: SHA-256, hex (a database leak hands out no live token).
pub fn token_id(token: &str) -> String {
    let hash = digest::digest(&digest::SHA256, token.as_bytes());
    hash.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Ten new recovery codes, each `xxxx-xxxx-xxxx-xxxx` of Crockford's base32 alphabet in lower
/// case (80 bits; no `i`, `l`, `o`, `u` to misread).
pub fn new_recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut raw = [0u8; 16];
            if aws_lc_rs::rand::fill(&mut raw).is_err() {
                raw = uuid::Uuid::new_v4().into_bytes();
            }
            let letters: Vec<char> = raw.iter().map(|b| ALPHABET[usize::from(b & 31)] as char).collect();
            letters.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
        })
        .collect()
}

/// Whether `code` looks like a recovery code rather than a TOTP code.
pub fn is_recovery_code(code: &str) -> bool {
    normalize_recovery_code(code).len() == 16
}

/// A recovery code as typed (any case, with or without dashes or spaces), as it is hashed.
fn normalize_recovery_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
}

/// The stored hash of a recovery code: SHA-256 of its normalized text, hex. The codes carry
/// 80 random bits, so a fast hash is enough (as for API tokens); a password hash would cost
/// a second slow hash per login.
pub fn recovery_code_hash(code: &str) -> String {
    token_id(&format!("gatehouse-recovery-code\0{}", normalize_recovery_code(code)))
}

/// Compares two hashes in constant time.
pub fn same_hash(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Seals TOTP secrets at rest as the signing keys are sealed: AES-256-GCM under a key derived
/// from the secret every replica shares (`KEY_ENCRYPTION_KEY`, or `SIGNING_KEY` with HMAC
/// algorithms), bound to the user id. Without such a secret (`--dev` with an asymmetric
/// algorithm and no key-encryption key) secrets are stored as base32 text, as private keys are.
#[derive(Clone)]
pub struct SecretSealer(Option<KeyEncryptionKey>);

impl std::fmt::Debug for SecretSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretSealer([redacted])")
    }
}

impl SecretSealer {
    /// The sealer of a deployment whose shared secret is `shared` (none: stored unsealed).
    pub fn derive(shared: Option<&[u8]>) -> Self {
        Self(shared.map(|secret| {
            let root = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
            let derived = aws_lc_rs::hmac::sign(&root, b"gatehouse second factor sealing key");
            let bytes: [u8; 32] = derived.as_ref().try_into().expect("HMAC-SHA256 is 32 bytes");
            KeyEncryptionKey::from_bytes(bytes)
        }))
    }

    fn label(user_id: i64) -> String {
        format!("totp:{user_id}")
    }

    /// The stored form of `secret` for `user_id`.
    pub fn seal(&self, user_id: i64, secret: &[u8]) -> Result<String, KeyError> {
        let text = base32_encode(secret);
        match &self.0 {
            Some(key) => key.seal(&Self::label(user_id), &text),
            None => Ok(text),
        }
    }

    /// The secret of `user_id` from its stored form.
    pub fn open(&self, user_id: i64, stored: &str) -> Result<Vec<u8>, KeyError> {
        let text = if crate::kek::is_sealed(stored) {
            match &self.0 {
                Some(key) => key.open(&Self::label(user_id), stored)?,
                None => return Err(KeyError::Sealed { kid: Self::label(user_id) }),
            }
        } else {
            stored.to_owned()
        };
        totp_rs::Secret::try_from_base32(&text)
            .map(|s| s.as_bytes().to_vec())
            .map_err(|_| KeyError::Crypto(format!("the stored TOTP secret of user {user_id} does not parse")))
    }
}

fn base32_encode(bytes: &[u8]) -> String {
    totp_rs::Secret::from(bytes).to_base32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors_match() {
        // RFC 6238 appendix B, SHA-1 seed, truncated to 6 digits.
        let auth = Authenticator::new(b"12345678901234567890".to_vec(), "Gatehouse", "a@example.com").unwrap();
        assert_eq!(auth.code_at(59), "287082");
        assert_eq!(auth.code_at(1_111_111_109), "081804");
        assert_eq!(auth.step_of("081804", 1_111_111_109), Some(1_111_111_109 / 30));
        assert_eq!(auth.step_of("081 804", 1_111_111_109 + 30), Some(1_111_111_109 / 30), "one step of skew");
        assert_eq!(auth.step_of("081804", 1_111_111_109 + 90), None, "two steps late");
        assert_eq!(auth.step_of("08180", 1_111_111_109), None);
    }

    #[test]
    fn the_uri_and_qr_name_the_account() {
        let auth = Authenticator::new(new_totp_secret().unwrap(), "Gate:house", "a:b@example.com").unwrap();
        let uri = auth.uri().unwrap();
        assert!(uri.starts_with("otpauth://totp/Gate%20house:a%20b%40example.com?"), "{uri}");
        assert!(uri.contains(&format!("secret={}", auth.secret_base32())));
        assert!(auth.qr_svg().unwrap().contains("<svg"));
    }

    #[test]
    fn recovery_codes_are_distinct_and_hash_as_typed() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert!(codes.iter().all(|c| c.len() == 19 && is_recovery_code(c)));
        let typed = codes[0].to_uppercase().replace('-', " ");
        assert!(same_hash(&recovery_code_hash(&typed), &recovery_code_hash(&codes[0])));
        assert!(!same_hash(&recovery_code_hash(&codes[1]), &recovery_code_hash(&codes[0])));
        assert!(!is_recovery_code("123456"));
    }

    #[test]
    fn sealed_secrets_open_only_for_their_user() {
        let sealer = SecretSealer::derive(Some(b"shared secret"));
        let secret = new_totp_secret().unwrap();
        let stored = sealer.seal(7, &secret).unwrap();
        assert!(crate::kek::is_sealed(&stored));
        assert_eq!(sealer.open(7, &stored).unwrap(), secret);
        assert!(sealer.open(8, &stored).is_err());
        let plain = SecretSealer::derive(None);
        assert_eq!(plain.open(7, &plain.seal(7, &secret).unwrap()).unwrap(), secret);
        assert!(plain.open(7, &stored).is_err(), "a sealed secret needs the key");
    }

    #[test]
    fn challenge_tokens_are_stored_by_hash() {
        let token = new_challenge_token();
        assert_eq!(token.len(), 43);
        assert_eq!(token_id(&token).len(), 64);
        assert_ne!(token_id(&token), token);
    }
}
