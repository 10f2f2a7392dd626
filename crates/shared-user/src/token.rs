//! Token checking as a pure function: signature, pinned algorithm, time claims, id, type, user.
//!
//! Both the auth-service (verify, refresh, bearer authentication) and a client-service in local
//! mode call [`Verifier::decode`], so a token is judged the same way everywhere.

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// `token_type` claim values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// Short-lived bearer token.
    Access,
    /// Long-lived token exchanged for access tokens.
    Refresh,
}

impl TokenType {
    /// The claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Access => "access",
            TokenType::Refresh => "refresh",
        }
    }
}

/// Why a token was refused; `Display` gives the reference wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Bad signature, malformed, expired, not yet valid, wrong algorithm/audience/issuer.
    #[error("Token is invalid or expired")]
    Invalid,
    /// Signed with a `kid` this verifier does not know (a JWKS refetch may help).
    #[error("Token is invalid or expired")]
    UnknownKid(String),
    /// No `exp` claim.
    #[error("Token has no 'exp' claim")]
    NoExp,
    /// No `jti` claim.
    #[error("Token has no id")]
    NoId,
    /// No `token_type` claim.
    #[error("Token has no type")]
    NoType,
    /// A refresh token where an access token was expected or the other way round.
    #[error("Token has wrong type")]
    WrongType,
    /// Revoked refresh token.
    #[error("Token is blacklisted")]
    Blacklisted,
    /// No usable user id claim.
    #[error("Token contained no recognizable user identification")]
    NoUserId,
}

/// The checked claims of a token.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// `token_type`, when present.
    pub token_type: Option<TokenType>,
    /// Expiry, epoch seconds.
    pub exp: i64,
    /// Issued at, epoch seconds, when present.
    pub iat: Option<i64>,
    /// Unique token id (uuid hex when we issued it).
    pub jti: String,
    /// The user id claim, when present and an integer (number or numeric string).
    pub user_id: Option<i64>,
    /// `amr` (RFC 8176): how the user authenticated, e.g. `["pwd","otp","mfa"]` after a second
    /// factor or `["hwk","user"]` after a passkey sign-in; empty when the token has none (a
    /// password-only login). See [`Claims::is_multi_factor`].
    pub amr: Vec<String>,
    /// Every claim as decoded, in token order.
    pub raw: Map<String, Value>,
}

impl Claims {
    /// The user id, or [`TokenError::NoUserId`].
    pub fn require_user_id(&self) -> Result<i64, TokenError> {
        self.user_id.ok_or(TokenError::NoUserId)
    }

    /// Whether the login behind this token used more than one factor (see [`is_multi_factor`]).
    pub fn is_multi_factor(&self) -> bool {
        is_multi_factor(&self.amr)
    }
}

/// Whether `amr` values (RFC 8176) say more than one factor was used: `"mfa"` is there (a
/// password and a second factor), or a passkey is (`"hwk"` or `"swk"`: possession of the key and
/// the user's verification on it are two factors). A password-only token has no `amr`.
pub fn is_multi_factor(amr: &[impl AsRef<str>]) -> bool {
    amr.iter().any(|v| matches!(v.as_ref(), "mfa" | "hwk" | "swk"))
}

/// The `amr` claim of `claims`: absent is empty; anything but an array of strings is refused
/// ([`TokenError::Invalid`]), as a malformed `jti` or `exp` is: a token that says how it was
/// earned must say it clearly.
pub fn amr_of(raw: &Map<String, Value>) -> Result<Vec<String>, TokenError> {
    match raw.get("amr") {
        None => Ok(Vec::new()),
        Some(Value::Array(values)) => {
            values.iter().map(|v| v.as_str().map(str::to_owned).ok_or(TokenError::Invalid)).collect()
        }
        Some(_) => Err(TokenError::Invalid),
    }
}

/// Settings that decide whether a token is acceptable (EASY_JWT names in brackets).
#[derive(Debug, Clone)]
pub struct VerifySettings {
    /// Accepted algorithms; the first is the one we sign with (`ALGORITHM`).
    pub algorithms: Vec<Algorithm>,
    /// Clock skew allowance in seconds (`LEEWAY`).
    pub leeway: u64,
    /// Required audience (`AUDIENCE`).
    pub audience: Option<String>,
    /// Required issuer (`ISSUER`).
    pub issuer: Option<String>,
    /// Name of the user id claim (`USER_ID_CLAIM`).
    pub user_id_claim: String,
}

impl Default for VerifySettings {
    fn default() -> Self {
        Self {
            algorithms: vec![Algorithm::HS256],
            leeway: 0,
            audience: None,
            issuer: None,
            user_id_claim: "user_id".into(),
        }
    }
}

/// A decoding key, optionally named by `kid`.
#[derive(Clone)]
pub struct NamedKey {
    /// Key id (`kid` header); `None` for the shared HS secret.
    pub kid: Option<String>,
    /// Algorithm this key verifies.
    pub algorithm: Algorithm,
    /// The key itself.
    pub key: DecodingKey,
}

/// Checks tokens against a key set and [`VerifySettings`].
#[derive(Clone)]
pub struct Verifier {
    settings: VerifySettings,
    keys: Vec<NamedKey>,
    /// One prepared `Validation` per key (same index), built once: decoding is a hot path.
    validations: Vec<Validation>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<_> = self.keys.iter().map(|k| (&k.kid, k.algorithm)).collect();
        f.debug_struct("Verifier").field("settings", &self.settings).field("keys", &kids).finish()
    }
}

impl Verifier {
    /// A verifier over `keys`.
    pub fn new(settings: VerifySettings, keys: Vec<NamedKey>) -> Self {
        let validations = keys.iter().map(|k| validation_for(k.algorithm, &settings)).collect();
        Self { settings, keys, validations }
    }

    /// A verifier for a shared HMAC secret.
    pub fn hmac(settings: VerifySettings, secret: &[u8]) -> Self {
        let algorithm = settings.algorithms.first().copied().unwrap_or(Algorithm::HS256);
        let key = NamedKey { kid: None, algorithm, key: DecodingKey::from_secret(secret) };
        Self::new(settings, vec![key])
    }

    /// A verifier for a shared HMAC secret that still accepts tokens signed with earlier
    /// secrets (`SIGNING_KEY_PREVIOUS`): a token is checked against `current` first, then
    /// against each of `previous` in order, so only a token signed with an old secret costs
    /// more than one signature check.
    pub fn hmac_rotating(settings: VerifySettings, current: &[u8], previous: &[Vec<u8>]) -> Self {
        let algorithm = settings.algorithms.first().copied().unwrap_or(Algorithm::HS256);
        let keys = std::iter::once(current)
            .chain(previous.iter().map(Vec::as_slice))
            .map(|secret| NamedKey { kid: None, algorithm, key: DecodingKey::from_secret(secret) })
            .collect();
        Self::new(settings, keys)
    }

    /// The same verifier without the key named `kid` (a revoked key); `None` when it has no
    /// such key.
    pub fn without_kid(&self, kid: &str) -> Option<Self> {
        if !self.knows_kid(kid) {
            return None;
        }
        let keys = self.keys.iter().filter(|k| k.kid.as_deref() != Some(kid)).cloned().collect();
        Some(Self::new(self.settings.clone(), keys))
    }

    /// The settings in force.
    pub fn settings(&self) -> &VerifySettings {
        &self.settings
    }

    /// Whether a key with this `kid` is known.
    pub fn knows_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Index of the key that must have signed a token with this header.
    fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<usize, TokenError> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .position(|k| k.kid.as_deref() == Some(kid))
                .or_else(|| self.keys.iter().position(|k| k.kid.is_none() && k.algorithm == alg))
                .ok_or_else(|| TokenError::UnknownKid(kid.to_owned())),
            None => {
                let mut candidates = self.keys.iter().enumerate().filter(|(_, k)| k.algorithm == alg);
                match (candidates.next(), candidates.next()) {
                    (Some((i, _)), None) => Ok(i),
                    _ => Err(TokenError::Invalid),
                }
            }
        }
    }

    /// Decodes and checks `token`. `expected` pins the `token_type`; `None` accepts any type
    /// (the untyped verify endpoint).
    pub fn decode(&self, token: &str, expected: Option<TokenType>) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if !self.settings.algorithms.contains(&header.alg) {
            return Err(TokenError::Invalid);
        }
        let unnamed = |i: &usize| self.keys[*i].kid.is_none() && self.keys[*i].algorithm == header.alg;
        let secrets: Vec<usize> =
            if header.kid.is_none() { (0..self.keys.len()).filter(unnamed).collect() } else { Vec::new() };
        if secrets.len() > 1 {
            // A shared secret and earlier ones: the first whose signature matches.
            let claims = secrets.iter().find_map(|&i| {
                jsonwebtoken::decode::<Map<String, Value>>(token, &self.keys[i].key, &self.validations[i]).ok()
            });
            return self.check_claims(claims.ok_or(TokenError::Invalid)?.claims, expected);
        }
        let index = self.key_for(header.kid.as_deref(), header.alg)?;
        let key = &self.keys[index];
        if key.algorithm != header.alg {
            return Err(TokenError::Invalid);
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &self.validations[index])
            .map_err(|_| TokenError::Invalid)?;
        self.check_claims(data.claims, expected)
    }

    fn check_claims(&self, raw: Map<String, Value>, expected: Option<TokenType>) -> Result<Claims, TokenError> {
        let now = chrono::Utc::now().timestamp();
        let leeway = i64::try_from(self.settings.leeway).unwrap_or(i64::MAX / 4);
        let int_claim = |name: &str| -> Result<Option<i64>, TokenError> {
            match raw.get(name) {
                None => Ok(None),
                Some(Value::Number(n)) => {
                    n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).map(Some).ok_or(TokenError::Invalid)
                }
                Some(_) => Err(TokenError::Invalid),
            }
        };
        let exp = int_claim("exp")?;
        let iat = int_claim("iat")?;
        let nbf = int_claim("nbf")?;
        if exp.is_some_and(|exp| exp <= now - leeway)
            || iat.is_some_and(|iat| iat > now + leeway)
            || nbf.is_some_and(|nbf| nbf > now + leeway)
        {
            return Err(TokenError::Invalid);
        }
        let exp = exp.ok_or(TokenError::NoExp)?;
        let jti = match raw.get("jti") {
            None => return Err(TokenError::NoId),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(TokenError::Invalid),
        };
        let token_type = match raw.get("token_type") {
            Some(Value::String(s)) if s == "access" => Some(TokenType::Access),
            Some(Value::String(s)) if s == "refresh" => Some(TokenType::Refresh),
            None => None,
            Some(_) => return Err(TokenError::WrongType),
        };
        if let Some(expected) = expected {
            match token_type {
                None if !raw.contains_key("token_type") => return Err(TokenError::NoType),
                Some(t) if t == expected => {}
                _ => return Err(TokenError::WrongType),
            }
        }
        let user_id = user_id_of(&raw, &self.settings.user_id_claim);
        let amr = amr_of(&raw)?;
        Ok(Claims { token_type, exp, iat, jti, user_id, amr, raw })
    }
}

/// The signature, algorithm, audience and issuer checks for keys of `alg`; time claims are
/// checked afterwards with the reference's messages and leeway rules.
fn validation_for(alg: Algorithm, settings: &VerifySettings) -> Validation {
    let mut validation = Validation::new(alg);
    validation.algorithms = vec![alg];
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = settings.leeway;
    let mut required = HashSet::new();
    validation.validate_aud = settings.audience.is_some();
    if let Some(aud) = &settings.audience {
        validation.set_audience(&[aud]);
        required.insert("aud".to_owned());
    }
    if let Some(iss) = &settings.issuer {
        validation.set_issuer(&[iss]);
        required.insert("iss".to_owned());
    }
    validation.required_spec_claims = required;
    validation
}

/// The user id in `claims[claim]`: a JSON integer or a numeric string (SimpleJWT >= 5.5.1).
pub fn user_id_of(claims: &Map<String, Value>, claim: &str) -> Option<i64> {
    match claims.get(claim) {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
}

/// The claims of a token WITHOUT checking its signature: only for a token that was just
/// checked elsewhere (by the auth-service's verify endpoint, or issued by it a moment ago).
pub fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    jsonwebtoken::dangerous::insecure_decode_claims::<Map<String, Value>>(token).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &[u8] = b"test-secret-test-secret-test-secret";

    fn sign(claims: Value) -> String {
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    fn verifier() -> Verifier {
        Verifier::hmac(VerifySettings::default(), SECRET)
    }

    fn good(kind: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({"token_type": kind, "exp": now + 60, "iat": now, "jti": "abc", "user_id": 7})
    }

    #[test]
    fn a_rotating_secret_accepts_the_current_and_earlier_secrets_only() {
        let old = b"an-earlier-secret-an-earlier-secret".to_vec();
        let new = b"the-current-secret-the-current-secret";
        let signed = |secret: &[u8]| {
            encode(&Header::new(Algorithm::HS256), &good("access"), &EncodingKey::from_secret(secret)).unwrap()
        };
        let v = Verifier::hmac_rotating(VerifySettings::default(), new, std::slice::from_ref(&old));
        assert_eq!(v.decode(&signed(new), None).unwrap().user_id, Some(7), "the current secret");
        assert_eq!(v.decode(&signed(&old), None).unwrap().user_id, Some(7), "an earlier secret");
        assert_eq!(v.decode(&signed(b"some-other-secret-some-other-secret"), None), Err(TokenError::Invalid));
        let expired = json!({"token_type": "access", "exp": 1, "iat": 0, "jti": "x", "user_id": 7});
        let old_expired = encode(&Header::new(Algorithm::HS256), &expired, &EncodingKey::from_secret(&old)).unwrap();
        assert_eq!(v.decode(&old_expired, None), Err(TokenError::Invalid), "time checks still apply");
        let current_only = Verifier::hmac(VerifySettings::default(), new);
        assert_eq!(current_only.decode(&signed(&old), None), Err(TokenError::Invalid), "without it: refused");
    }

    #[test]
    fn accepts_good_tokens_and_checks_type() {
        let v = verifier();
        let c = v.decode(&sign(good("access")), Some(TokenType::Access)).unwrap();
        assert_eq!(c.user_id, Some(7));
        assert_eq!(v.decode(&sign(good("access")), Some(TokenType::Refresh)), Err(TokenError::WrongType));
        assert!(v.decode(&sign(good("refresh")), None).is_ok());
    }

    #[test]
    fn refuses_bad_tokens_with_reference_messages() {
        let v = verifier();
        let now = chrono::Utc::now().timestamp();
        let expired = json!({"token_type": "access", "exp": now - 1, "iat": now - 100, "jti": "a", "user_id": 1});
        assert_eq!(v.decode(&sign(expired), None).unwrap_err().to_string(), "Token is invalid or expired");
        let future = json!({"token_type": "access", "exp": now + 100, "iat": now + 50, "jti": "a", "user_id": 1});
        assert_eq!(v.decode(&sign(future), None), Err(TokenError::Invalid));
        let no_exp = json!({"token_type": "access", "jti": "a"});
        assert_eq!(v.decode(&sign(no_exp), None).unwrap_err().to_string(), "Token has no 'exp' claim");
        let no_jti = json!({"token_type": "access", "exp": now + 10});
        assert_eq!(v.decode(&sign(no_jti), None).unwrap_err().to_string(), "Token has no id");
        let no_type = json!({"exp": now + 10, "jti": "a"});
        assert_eq!(v.decode(&sign(no_type.clone()), Some(TokenType::Access)), Err(TokenError::NoType));
        assert!(v.decode(&sign(no_type), None).is_ok());
        assert_eq!(v.decode("garbage", None), Err(TokenError::Invalid));
    }

    #[test]
    fn amr_is_read_and_says_whether_a_second_factor_was_used() {
        let v = verifier();
        let with_amr = |amr: Value| {
            let mut claims = good("access");
            claims["amr"] = amr;
            v.decode(&sign(claims), Some(TokenType::Access))
        };
        let password_only = v.decode(&sign(good("access")), Some(TokenType::Access)).unwrap();
        assert_eq!(password_only.amr, Vec::<String>::new(), "no amr claim: empty");
        assert!(!password_only.is_multi_factor(), "a password-only token is single-factor");
        let totp = with_amr(json!(["pwd", "otp", "mfa"])).unwrap();
        assert_eq!(totp.amr, ["pwd", "otp", "mfa"], "read in token order");
        assert!(totp.is_multi_factor(), "password and TOTP");
        assert!(with_amr(json!(["hwk", "user"])).unwrap().is_multi_factor(), "a hardware passkey");
        assert!(with_amr(json!(["swk", "user"])).unwrap().is_multi_factor(), "a synced passkey");
        assert!(!with_amr(json!(["pwd"])).unwrap().is_multi_factor(), "a password named as such");
        assert!(!with_amr(json!([])).unwrap().is_multi_factor(), "an empty list");
        assert_eq!(with_amr(json!("mfa")), Err(TokenError::Invalid), "a string, not an array");
        assert_eq!(with_amr(json!(["pwd", 1])), Err(TokenError::Invalid), "a non-string value");
    }

    #[test]
    fn refuses_alg_none_and_other_algorithms() {
        let v = verifier();
        let claims = good("access");
        let t = encode(&Header::new(Algorithm::HS512), &claims, &EncodingKey::from_secret(SECRET)).unwrap();
        assert_eq!(v.decode(&t, None), Err(TokenError::Invalid));
        let signed = sign(claims);
        let mut parts = signed.split('.');
        let _ = parts.next();
        let payload = parts.next().unwrap();
        // {"alg":"none","typ":"JWT"}
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert_eq!(v.decode(&none, None), Err(TokenError::Invalid));
    }
}
