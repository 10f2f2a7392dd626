//! Token issuing: claim layout of EasyJWT (`token_type, exp, iat, jti, user_id`), signing keys,
//! and the shared [`Verifier`] used to check what comes back.

use std::time::Duration;

use serde_json::{Map, Value};
use shared_user::jsonwebtoken::{Algorithm, EncodingKey, Header};
use shared_user::token::{TokenType, Verifier, VerifySettings};

/// A freshly signed token.
#[derive(Debug, Clone)]
pub struct Minted {
    /// The compact JWT.
    pub token: String,
    /// Its `jti`.
    pub jti: String,
    /// Its `exp`, epoch seconds.
    pub exp: i64,
}

/// Signs tokens and checks them.
#[derive(Clone)]
pub struct Keys {
    algorithm: Algorithm,
    encoding: EncodingKey,
    kid: Option<String>,
    verifier: Verifier,
    access_lifetime: Duration,
    refresh_lifetime: Duration,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("algorithm", &self.algorithm).field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl Keys {
    /// HMAC keys from a shared secret.
    pub fn hmac(
        secret: &[u8],
        settings: VerifySettings,
        access_lifetime: Duration,
        refresh_lifetime: Duration,
    ) -> Self {
        let algorithm = settings.algorithms.first().copied().unwrap_or(Algorithm::HS256);
        Self {
            algorithm,
            encoding: EncodingKey::from_secret(secret),
            kid: None,
            verifier: Verifier::hmac(settings, secret),
            access_lifetime,
            refresh_lifetime,
        }
    }

    /// The verifier for tokens we issued.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Lifetime of refresh tokens.
    pub fn refresh_lifetime(&self) -> Duration {
        self.refresh_lifetime
    }

    /// Signs a new token of `kind` for `user_id`.
    pub fn mint(&self, kind: TokenType, user_id: i64) -> Result<Minted, shared_user::jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        let lifetime = match kind {
            TokenType::Access => self.access_lifetime,
            TokenType::Refresh => self.refresh_lifetime,
        };
        let exp = now.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 4));
        let jti = uuid::Uuid::new_v4().simple().to_string();
        let settings = self.verifier.settings();
        let mut claims = Map::new();
        claims.insert("token_type".into(), Value::from(kind.as_str()));
        claims.insert("exp".into(), Value::from(exp));
        claims.insert("iat".into(), Value::from(now));
        claims.insert("jti".into(), Value::from(jti.clone()));
        claims.insert(settings.user_id_claim.clone(), Value::from(user_id));
        if let Some(aud) = &settings.audience {
            claims.insert("aud".into(), Value::from(aud.clone()));
        }
        if let Some(iss) = &settings.issuer {
            claims.insert("iss".into(), Value::from(iss.clone()));
        }
        let mut header = Header::new(self.algorithm);
        header.kid = self.kid.clone();
        let token = shared_user::jsonwebtoken::encode(&header, &claims, &self.encoding)?;
        Ok(Minted { token, jti, exp })
    }
}
