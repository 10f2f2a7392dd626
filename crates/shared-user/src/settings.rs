//! Parsers for the settings both services read (one parser per kind of setting), so the
//! auth-service and every client-service accept exactly the same spellings.
//!
//! Each returns a [`SettingError`] whose text is the one line a service prints before it stops.

use std::time::Duration;

use jsonwebtoken::Algorithm;

/// A setting that cannot be used; `Display` is the one-line explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingError(pub String);

impl SettingError {
    /// An error with this text.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }
}

impl From<SettingError> for String {
    fn from(e: SettingError) -> Self {
        e.0
    }
}

/// `300` (seconds), `300s`, `5m`, `1h 30m`, `1d`.
pub fn parse_duration(s: &str) -> Result<Duration, SettingError> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s)
        .map_err(|e| SettingError(format!("invalid duration {s:?}: {e} (use e.g. 300, 5m, 1h, 1d)")))
}

/// `ALGORITHM`: `HS256`, `HS384`, `HS512` (shared secret) or `EdDSA`, `ES256`, `RS256`.
pub fn parse_algorithm(s: &str) -> Result<Algorithm, SettingError> {
    match s.trim() {
        "HS256" => Ok(Algorithm::HS256),
        "HS384" => Ok(Algorithm::HS384),
        "HS512" => Ok(Algorithm::HS512),
        "EdDSA" => Ok(Algorithm::EdDSA),
        "ES256" => Ok(Algorithm::ES256),
        "RS256" => Ok(Algorithm::RS256),
        other => Err(SettingError(format!(
            "unsupported ALGORITHM {other:?}: use HS256, HS384, HS512, EdDSA, ES256 or RS256"
        ))),
    }
}

/// Whether `alg` signs with a shared secret (HS*).
pub fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// `AUTH_HEADER_NAME` as a lowercase HTTP header name: `Authorization`, or Django's META form
/// `HTTP_AUTHORIZATION` as EASY_JWT settings spell it.
pub fn parse_header_name(s: &str) -> Result<String, SettingError> {
    let setting = s.trim();
    let name = match setting.strip_prefix("HTTP_") {
        Some(meta) => meta.replace('_', "-"),
        None => setting.to_owned(),
    };
    // RFC 9110 token characters.
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(tchar) {
        return Err(SettingError(format!("AUTH_HEADER_NAME {setting:?} is not a valid header name")));
    }
    Ok(name.to_ascii_lowercase())
}

/// `AUTH_HEADER_TYPES` trimmed, empty entries dropped; at least one, each a single word.
pub fn parse_header_types<S: AsRef<str>>(types: &[S]) -> Result<Vec<String>, SettingError> {
    let types: Vec<String> = types.iter().map(|t| t.as_ref().trim().to_owned()).filter(|t| !t.is_empty()).collect();
    if types.is_empty() {
        return Err(SettingError::new("AUTH_HEADER_TYPES must name at least one scheme"));
    }
    if let Some(bad) = types.iter().find(|t| !t.chars().all(|c| c.is_ascii_graphic())) {
        return Err(SettingError(format!("AUTH_HEADER_TYPES entry {bad:?} is not a single word")));
    }
    Ok(types)
}

/// Shortest HMAC secret accepted outside development mode.
pub const MIN_SIGNING_KEY_BYTES: usize = 32;

/// Well-known placeholders refused as secrets whatever their length.
const PLACEHOLDERS: &[&str] =
    &["secret", "changeme", "change-me", "development", "dev", "insecure", "test", "password"];

/// Checks an HMAC `SIGNING_KEY` the same way on both services: at least 32 bytes, not a
/// placeholder, not a short pattern repeated (`aaaa…`, `changemechangeme…`), and not drawn from
/// a handful of characters. A random 32-byte secret in base64 or hex passes.
pub fn check_signing_key(key: &[u8]) -> Result<(), SettingError> {
    let advice = "set a random secret of 32+ bytes, e.g. `head -c 32 /dev/urandom | base64` (or use --dev)";
    let lower = String::from_utf8_lossy(key).to_ascii_lowercase();
    if PLACEHOLDERS.contains(&lower.as_str()) || lower.starts_with("django-insecure") {
        return Err(SettingError(format!("SIGNING_KEY is a development placeholder; {advice}")));
    }
    if key.len() < MIN_SIGNING_KEY_BYTES {
        return Err(SettingError(format!("SIGNING_KEY is shorter than {MIN_SIGNING_KEY_BYTES} bytes; {advice}")));
    }
    if let Some(period) = (1..=key.len() / 2).find(|&p| key.iter().enumerate().all(|(i, b)| *b == key[i % p])) {
        return Err(SettingError(format!("SIGNING_KEY repeats a {period}-byte pattern; {advice}")));
    }
    let mut seen = [false; 256];
    key.iter().for_each(|b| seen[usize::from(*b)] = true);
    let distinct = seen.iter().filter(|s| **s).count();
    if distinct < 12 {
        return Err(SettingError(format!("SIGNING_KEY uses only {distinct} distinct characters; {advice}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_accepted_spelling() {
        assert_eq!(parse_duration("300").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration(" 5m ").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
        assert!(parse_duration("soon").unwrap_err().0.contains("invalid duration"));
    }

    #[test]
    fn algorithms_by_their_jwt_names_only() {
        assert_eq!(parse_algorithm("EdDSA").unwrap(), Algorithm::EdDSA);
        assert!(parse_algorithm("none").is_err());
        assert!(parse_algorithm("hs256").is_err(), "names are case-sensitive, as in the JWT header");
        assert!(is_hmac(parse_algorithm("HS512").unwrap()));
    }

    #[test]
    fn header_name_accepts_the_django_meta_form() {
        assert_eq!(parse_header_name("Authorization").unwrap(), "authorization");
        assert_eq!(parse_header_name("HTTP_AUTHORIZATION").unwrap(), "authorization");
        assert_eq!(parse_header_name("HTTP_X_API_TOKEN").unwrap(), "x-api-token");
        assert!(parse_header_name("Bad Header").is_err());
        assert!(parse_header_name("").is_err());
    }

    #[test]
    fn header_types_need_one_single_word() {
        assert_eq!(parse_header_types(&[" Bearer", "", "JWT "]).unwrap(), vec!["Bearer", "JWT"]);
        assert!(parse_header_types::<&str>(&[]).is_err());
        assert!(parse_header_types(&["two words"]).is_err());
    }

    #[test]
    fn weak_signing_keys_are_refused() {
        for weak in
            ["x", "secret", &"a".repeat(32), &"changeme".repeat(4), "django-insecure-0123456789abcdefghijklmnop"]
        {
            assert!(check_signing_key(weak.as_bytes()).is_err(), "{weak:?} must be refused");
        }
        assert!(check_signing_key(&"0123456789abcdef".repeat(2).into_bytes()).is_err(), "a repeated pattern");
        assert!(check_signing_key(b"q2VzZ9eTlB0+T1rX8mD6u4kLx7aN3pYc0wHf5sJgRQE=").is_ok());
        assert!(check_signing_key(b"5f0c1e2a9b7d4c3e8a6f0b1d2c3e4f5a").is_ok(), "32 hex characters");
    }
}
