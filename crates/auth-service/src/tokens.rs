//! Token issuing: claim layout of EasyJWT (`token_type, exp, iat, jti, user_id`), signing keys
//! (an HMAC secret, or asymmetric keys named by `kid` and rotated with an overlap), the JWKS we
//! publish, and the shared [`Verifier`] used to check what comes back.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Map, Value};
use shared_user::jsonwebtoken::jwk::JwkSet;
use shared_user::jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use shared_user::token::{NamedKey, TokenType, Verifier, VerifySettings};

use crate::store::signing_keys::SigningKeyRow;

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

/// The key material in force: what signs, what verifies, what is published.
struct Active {
    algorithm: Algorithm,
    encoding: EncodingKey,
    kid: Option<String>,
    verifier: Arc<Verifier>,
    jwks: Arc<JwkSet>,
}

/// Signs tokens and checks them; asymmetric key sets can be swapped at run time.
pub struct Keys {
    active: RwLock<Arc<Active>>,
    settings: VerifySettings,
    access_lifetime: Duration,
    refresh_lifetime: Duration,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let active = self.current();
        f.debug_struct("Keys").field("algorithm", &active.algorithm).field("kid", &active.kid).finish_non_exhaustive()
    }
}

/// Parses an algorithm we can sign with: HS256/384/512, EdDSA, ES256, RS256.
pub fn parse_signing_algorithm(s: &str) -> Result<Algorithm, String> {
    match s {
        "HS256" => Ok(Algorithm::HS256),
        "HS384" => Ok(Algorithm::HS384),
        "HS512" => Ok(Algorithm::HS512),
        "EdDSA" => Ok(Algorithm::EdDSA),
        "ES256" => Ok(Algorithm::ES256),
        "RS256" => Ok(Algorithm::RS256),
        other => Err(format!("unsupported ALGORITHM {other:?}: use HS256, HS384, HS512, EdDSA, ES256 or RS256")),
    }
}

/// Generates a new private key for `alg` as PKCS#8 PEM.
pub fn generate_private_pem(alg: Algorithm) -> Result<String, String> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
    let rng = SystemRandom::new();
    let err = |e: aws_lc_rs::error::Unspecified| format!("key generation failed: {e}");
    let der: Vec<u8> = match alg {
        Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8v1(&rng).map_err(err)?.as_ref().to_vec(),
        Algorithm::ES256 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(err)?.as_ref().to_vec()
        }
        Algorithm::RS256 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(err)?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = pair.as_der().map_err(err)?;
            der.as_ref().to_vec()
        }
        other => return Err(format!("{other:?} keys are not generated here")),
    };
    Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", der)))
}

fn encoding_key(alg: Algorithm, pem: &str) -> Result<EncodingKey, String> {
    let key = match alg {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
    };
    key.map_err(|e| format!("unreadable {alg:?} private key: {e}"))
}

impl Keys {
    /// HMAC keys from a shared secret (no `kid`, nothing published).
    pub fn hmac(
        secret: &[u8],
        settings: VerifySettings,
        access_lifetime: Duration,
        refresh_lifetime: Duration,
    ) -> Self {
        let algorithm = settings.algorithms.first().copied().unwrap_or(Algorithm::HS256);
        let active = Active {
            algorithm,
            encoding: EncodingKey::from_secret(secret),
            kid: None,
            verifier: Arc::new(Verifier::hmac(settings.clone(), secret)),
            jwks: Arc::new(JwkSet::default()),
        };
        Self { active: RwLock::new(Arc::new(active)), settings, access_lifetime, refresh_lifetime }
    }

    /// Asymmetric keys from stored rows: the `current` key signs; `next`, `current` and
    /// recently retired keys verify and are published.
    pub fn from_rows(
        rows: &[SigningKeyRow],
        settings: VerifySettings,
        access_lifetime: Duration,
        refresh_lifetime: Duration,
    ) -> Result<Self, String> {
        let active = Self::build(rows, &settings, refresh_lifetime)?;
        Ok(Self { active: RwLock::new(Arc::new(active)), settings, access_lifetime, refresh_lifetime })
    }

    fn build(rows: &[SigningKeyRow], settings: &VerifySettings, refresh_lifetime: Duration) -> Result<Active, String> {
        let keep_after = shared_user::user::now_utc()
            - chrono::Duration::from_std(refresh_lifetime).unwrap_or_default()
            - chrono::Duration::seconds(i64::try_from(settings.leeway).unwrap_or(0));
        let mut signing = None;
        let mut named = Vec::new();
        let mut jwks = JwkSet::default();
        for row in rows {
            if row.status == "retired" && row.retired_at.is_none_or(|t| t < keep_after) {
                continue;
            }
            let alg = parse_signing_algorithm(&row.algorithm)?;
            let encoding = encoding_key(alg, &row.private_pem)?;
            let jwk = shared_user::jwks::public_jwk(&encoding, alg, &row.kid).map_err(|e| e.to_string())?;
            let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
            named.push(NamedKey { kid: Some(row.kid.clone()), algorithm: alg, key: decoding });
            jwks.keys.push(jwk);
            let newer = |s: &Option<(Option<chrono::NaiveDateTime>, _, _, _)>| {
                s.as_ref().is_none_or(|(at, _, _, _)| row.activated_at > *at)
            };
            if row.status == "current" && newer(&signing) {
                signing = Some((row.activated_at, alg, encoding, row.kid.clone()));
            }
        }
        let (_, algorithm, encoding, kid) = signing.ok_or("no current signing key")?;
        let mut settings = settings.clone();
        settings.algorithms = named.iter().map(|k| k.algorithm).collect();
        settings.algorithms.sort_by_key(|a| format!("{a:?}"));
        settings.algorithms.dedup();
        Ok(Active {
            algorithm,
            encoding,
            kid: Some(kid),
            verifier: Arc::new(Verifier::new(settings, named)),
            jwks: Arc::new(jwks),
        })
    }

    /// Replaces the asymmetric key set after the stored rows changed (rotation).
    pub fn reload(&self, rows: &[SigningKeyRow]) -> Result<(), String> {
        let active = Self::build(rows, &self.settings, self.refresh_lifetime)?;
        *self.active.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(active);
        Ok(())
    }

    fn current(&self) -> Arc<Active> {
        self.active.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The verifier for tokens we issued.
    pub fn verifier(&self) -> Arc<Verifier> {
        self.current().verifier.clone()
    }

    /// The public keys to publish at `/.well-known/jwks.json` (empty with an HMAC secret).
    pub fn jwks(&self) -> Arc<JwkSet> {
        self.current().jwks.clone()
    }

    /// Lifetime of refresh tokens.
    pub fn refresh_lifetime(&self) -> Duration {
        self.refresh_lifetime
    }

    /// Signs a new token of `kind` for `user_id`.
    pub fn mint(&self, kind: TokenType, user_id: i64) -> Result<Minted, shared_user::jsonwebtoken::errors::Error> {
        let active = self.current();
        let now = chrono::Utc::now().timestamp();
        let lifetime = match kind {
            TokenType::Access => self.access_lifetime,
            TokenType::Refresh => self.refresh_lifetime,
        };
        let exp = now.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 4));
        let jti = uuid::Uuid::new_v4().simple().to_string();
        let mut claims = Map::new();
        claims.insert("token_type".into(), Value::from(kind.as_str()));
        claims.insert("exp".into(), Value::from(exp));
        claims.insert("iat".into(), Value::from(now));
        claims.insert("jti".into(), Value::from(jti.clone()));
        claims.insert(self.settings.user_id_claim.clone(), Value::from(user_id));
        if let Some(aud) = &self.settings.audience {
            claims.insert("aud".into(), Value::from(aud.clone()));
        }
        if let Some(iss) = &self.settings.issuer {
            claims.insert("iss".into(), Value::from(iss.clone()));
        }
        let mut header = Header::new(active.algorithm);
        header.kid = active.kid.clone();
        let token = shared_user::jsonwebtoken::encode(&header, &claims, &active.encoding)?;
        Ok(Minted { token, jti, exp })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared_user::user::now_utc;

    fn row(kid: &str, alg: &str, status: &str, retired_ago_secs: Option<i64>) -> SigningKeyRow {
        let now = now_utc();
        SigningKeyRow {
            kid: kid.into(),
            algorithm: alg.into(),
            private_pem: generate_private_pem(parse_signing_algorithm(alg).unwrap()).unwrap(),
            status: status.into(),
            created_at: now,
            activated_at: (status != "next").then_some(now),
            retired_at: retired_ago_secs.map(|s| now - chrono::Duration::seconds(s)),
        }
    }

    #[test]
    fn every_asymmetric_algorithm_signs_and_verifies_with_kid() {
        for alg in ["EdDSA", "ES256", "RS256"] {
            let keys = Keys::from_rows(
                &[row("k1", alg, "current", None)],
                VerifySettings::default(),
                Duration::from_secs(60),
                Duration::from_secs(600),
            )
            .unwrap();
            let minted = keys.mint(TokenType::Access, 5).unwrap();
            let header = shared_user::jsonwebtoken::decode_header(&minted.token).unwrap();
            assert_eq!(header.kid.as_deref(), Some("k1"));
            let claims = keys.verifier().decode(&minted.token, Some(TokenType::Access)).unwrap();
            assert_eq!(claims.user_id, Some(5));
            assert_eq!(keys.jwks().keys.len(), 1, "{alg}");
        }
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_and_publishes_next_before_it_signs() {
        let refresh = Duration::from_secs(600);
        let old = row("old", "EdDSA", "current", None);
        let next = row("new", "ES256", "next", None);
        let keys =
            Keys::from_rows(&[old.clone(), next.clone()], VerifySettings::default(), Duration::from_secs(60), refresh)
                .unwrap();
        assert_eq!(keys.jwks().keys.len(), 2, "next is published before it signs");
        let before = keys.mint(TokenType::Refresh, 1).unwrap();
        assert_eq!(shared_user::jsonwebtoken::decode_header(&before.token).unwrap().kid.as_deref(), Some("old"));
        let mut retired = old.clone();
        retired.status = "retired".into();
        retired.retired_at = Some(now_utc());
        let mut promoted = next.clone();
        promoted.status = "current".into();
        promoted.activated_at = Some(now_utc());
        keys.reload(&[retired.clone(), promoted.clone()]).unwrap();
        let after = keys.mint(TokenType::Access, 1).unwrap();
        assert_eq!(shared_user::jsonwebtoken::decode_header(&after.token).unwrap().kid.as_deref(), Some("new"));
        assert!(keys.verifier().decode(&before.token, Some(TokenType::Refresh)).is_ok(), "old tokens still verify");
        // Once the retired key is older than the refresh lifetime it is dropped.
        retired.retired_at = Some(now_utc() - chrono::Duration::seconds(601));
        keys.reload(&[retired, promoted]).unwrap();
        assert_eq!(keys.jwks().keys.len(), 1);
    }

    #[test]
    fn published_set_never_holds_private_or_symmetric_material() {
        let keys = Keys::from_rows(
            &[row("k", "RS256", "current", None)],
            VerifySettings::default(),
            Duration::from_secs(60),
            Duration::from_secs(60),
        )
        .unwrap();
        let json = serde_json::to_string(&*keys.jwks()).unwrap();
        assert!(json.contains("\"kid\":\"k\"") && json.contains("\"n\":") && !json.contains("\"d\":"), "{json}");
        let hs = Keys::hmac(
            b"secret-secret-secret-secret-secret",
            VerifySettings::default(),
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        assert!(hs.jwks().keys.is_empty());
    }
}
