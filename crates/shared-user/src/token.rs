//! Token checking as a pure function: signature, pinned algorithm, time claims, id, type, user.
//!
//! Both the auth-service (verify, refresh, bearer authentication) and a client-service in local
//! mode call [`Verifier::decode`], so a token is judged the same way everywhere.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
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
        Self { settings, keys }
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
    ///
    /// Each part is decoded once: the header into the two fields that choose the key, the
    /// signature checked with jsonwebtoken's crypto over the signed part, the claims into one map
    /// that every later check reads (`jsonwebtoken::decode` would parse the header three times
    /// and the claims twice, a sixth of a local-mode client's time per request).
    pub fn decode(&self, token: &str, expected: Option<TokenType>) -> Result<Claims, TokenError> {
        let parts = Parts::split(token).ok_or(TokenError::Invalid)?;
        let header = parts.header()?;
        if !self.settings.algorithms.contains(&header.alg) {
            return Err(TokenError::Invalid);
        }
        let unnamed = || self.keys.iter().filter(|k| k.kid.is_none() && k.algorithm == header.alg);
        let signed = if header.kid.is_none() && unnamed().nth(1).is_some() {
            // A shared secret and earlier ones: the first whose signature matches.
            unnamed().any(|key| parts.signed_by(key))
        } else {
            let key = &self.keys[self.key_for(header.kid.as_deref(), header.alg)?];
            key.algorithm == header.alg && parts.signed_by(key)
        };
        if !signed {
            return Err(TokenError::Invalid);
        }
        let raw = parts.claims()?;
        self.check_audience_and_issuer(&raw)?;
        self.check_claims(raw, expected)
    }

    /// `aud` and `iss` when the settings require them: present, and naming ours (`aud` a string
    /// or an array of strings, one of them ours; `iss` a string).
    fn check_audience_and_issuer(&self, raw: &Map<String, Value>) -> Result<(), TokenError> {
        if let Some(audience) = &self.settings.audience {
            let ours = |v: &Value| v.as_str() == Some(audience.as_str());
            match raw.get("aud") {
                Some(Value::String(aud)) if aud == audience => {}
                Some(Value::Array(values)) if values.iter().all(Value::is_string) && values.iter().any(ours) => {}
                _ => return Err(TokenError::Invalid),
            }
        }
        if let Some(issuer) = &self.settings.issuer {
            match raw.get("iss") {
                Some(Value::String(iss)) if iss == issuer => {}
                _ => return Err(TokenError::Invalid),
            }
        }
        Ok(())
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

/// A compact JWS split into its three parts (`header.payload.signature`).
struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    /// `header.payload`: what the signature covers.
    signed: &'a str,
}

/// The header fields that choose the key; the others are covered by the signature and ignored.
#[derive(Deserialize)]
struct JoseHeader {
    alg: Algorithm,
    #[serde(default)]
    kid: Option<String>,
}

impl<'a> Parts<'a> {
    fn split(token: &'a str) -> Option<Self> {
        let (signed, signature) = token.rsplit_once('.')?;
        let (header, payload) = signed.split_once('.')?;
        if payload.contains('.') {
            return None;
        }
        Some(Self { header, payload, signature, signed })
    }

    /// The decoded header.
    fn header(&self) -> Result<JoseHeader, TokenError> {
        let bytes = URL_SAFE_NO_PAD.decode(self.header).map_err(|_| TokenError::Invalid)?;
        serde_json::from_slice(&bytes).map_err(|_| TokenError::Invalid)
    }

    /// Whether the signature is `key`'s over the signed part (jsonwebtoken's crypto, which also
    /// refuses a key of another family than its algorithm).
    fn signed_by(&self, key: &NamedKey) -> bool {
        jsonwebtoken::crypto::verify(self.signature, self.signed.as_bytes(), &key.key, key.algorithm).unwrap_or(false)
    }

    /// The claims: a JSON object.
    fn claims(&self) -> Result<Map<String, Value>, TokenError> {
        let bytes = URL_SAFE_NO_PAD.decode(self.payload).map_err(|_| TokenError::Invalid)?;
        serde_json::from_slice(&bytes).map_err(|_| TokenError::Invalid)
    }
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

    #[test]
    fn checks_audience_and_issuer_when_required() {
        let settings = VerifySettings {
            audience: Some("orders".into()),
            issuer: Some("https://auth.example".into()),
            ..VerifySettings::default()
        };
        let v = Verifier::hmac(settings, SECRET);
        let with = |aud: Value, iss: Value| {
            let mut claims = good("access");
            if !aud.is_null() {
                claims["aud"] = aud;
            }
            if !iss.is_null() {
                claims["iss"] = iss;
            }
            v.decode(&sign(claims), Some(TokenType::Access)).map(|c| c.user_id)
        };
        let iss = json!("https://auth.example");
        assert_eq!(with(json!("orders"), iss.clone()), Ok(Some(7)), "a string audience");
        assert_eq!(with(json!(["billing", "orders"]), iss.clone()), Ok(Some(7)), "ours among several");
        assert_eq!(with(json!(["billing"]), iss.clone()), Err(TokenError::Invalid), "not ours");
        assert_eq!(with(json!(["orders", 1]), iss.clone()), Err(TokenError::Invalid), "a non-string audience");
        assert_eq!(with(json!("billing"), iss.clone()), Err(TokenError::Invalid), "another audience");
        assert_eq!(with(Value::Null, iss), Err(TokenError::Invalid), "no audience");
        assert_eq!(with(json!("orders"), json!("https://evil.example")), Err(TokenError::Invalid), "another issuer");
        assert_eq!(with(json!("orders"), json!(["https://auth.example"])), Err(TokenError::Invalid), "an array");
        assert_eq!(with(json!("orders"), Value::Null), Err(TokenError::Invalid), "no issuer");
        // Without the settings, neither claim is looked at.
        let mut claims = good("access");
        claims["aud"] = json!(5);
        claims["iss"] = json!(["x"]);
        assert_eq!(verifier().decode(&sign(claims), None).map(|c| c.user_id), Ok(Some(7)));
    }

    #[test]
    fn refuses_tampered_and_malformed_tokens() {
        let v = verifier();
        let token = sign(good("access"));
        let (header, rest) = token.split_once('.').unwrap();
        let (payload, signature) = rest.split_once('.').unwrap();
        let mut forged = good("access");
        forged["user_id"] = json!(1);
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let cases = [
            format!("{header}.{forged_payload}.{signature}"),
            format!("{header}.{payload}.{signature}x"),
            format!("{header}.{payload}"),
            format!("{header}.{payload}.{signature}.{signature}"),
            format!("{header}.{payload}.{signature}="),
            format!("{header}=.{payload}.{signature}"),
            format!("{}.{payload}.{signature}", URL_SAFE_NO_PAD.encode(b"{\"kid\":\"a\"}")),
            format!("{}.{payload}.{signature}", URL_SAFE_NO_PAD.encode(b"[1,2]")),
            String::new(),
            "..".into(),
        ];
        for case in cases {
            assert_eq!(v.decode(&case, None).map(|c| c.user_id), Err(TokenError::Invalid), "{case}");
        }
        let array = URL_SAFE_NO_PAD.encode(b"[1]");
        let signed_array = format!("{header}.{array}");
        let signature =
            jsonwebtoken::crypto::sign(signed_array.as_bytes(), &EncodingKey::from_secret(SECRET), Algorithm::HS256);
        let not_an_object = format!("{signed_array}.{}", signature.unwrap());
        assert_eq!(v.decode(&not_an_object, None), Err(TokenError::Invalid), "claims that are not an object");
        assert_eq!(v.decode(&token, None).map(|c| c.user_id), Ok(Some(7)), "the untouched token");
    }

    #[test]
    fn a_kid_picks_its_key_and_an_unknown_kid_is_reported() {
        let named = |kid: &str, secret: &[u8]| NamedKey {
            kid: Some(kid.into()),
            algorithm: Algorithm::HS256,
            key: DecodingKey::from_secret(secret),
        };
        let v = Verifier::new(VerifySettings::default(), vec![named("one", b"first-secret"), named("two", SECRET)]);
        let with_kid = |kid: &str, secret: &[u8]| {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some(kid.into());
            encode(&header, &good("access"), &EncodingKey::from_secret(secret)).unwrap()
        };
        assert_eq!(v.decode(&with_kid("two", SECRET), None).map(|c| c.user_id), Ok(Some(7)));
        assert_eq!(v.decode(&with_kid("one", SECRET), None), Err(TokenError::Invalid), "another key's signature");
        assert_eq!(v.decode(&with_kid("three", SECRET), None), Err(TokenError::UnknownKid("three".into())));
        assert_eq!(v.decode(&sign(good("access")), None), Err(TokenError::Invalid), "no kid among named keys");
    }
}
