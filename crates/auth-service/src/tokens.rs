//! Token issuing: claim layout of EasyJWT (`token_type, exp, iat, jti, user_id`), signing keys
//! (an HMAC secret, or asymmetric keys named by `kid` and rotated with an overlap), the JWKS we
//! publish, and the shared [`Verifier`] used to check what comes back.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::{Map, Value};
use shared_user::jsonwebtoken::jwk::JwkSet;
use shared_user::jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use shared_user::token::{NamedKey, TokenError, TokenType, Verifier, VerifySettings};

use crate::kek::KeyError;
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
    /// Every claim, in token order (what a GraphQL `payload` shows).
    pub claims: Map<String, Value>,
}

/// Why a token was refused, in the three categories graphql-jwt (PyJWT) reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Not a JWT, or its signature does not match any of our keys (PyJWT's `DecodeError`,
    /// "Error decoding signature").
    Malformed,
    /// Correctly signed but past `exp` ("Signature has expired").
    Expired,
    /// Correctly signed but otherwise unacceptable: algorithm, audience, issuer, `nbf`/`iat`
    /// in the future, missing or wrong claims, revoked ("Invalid token").
    Invalid,
}

/// Time allowance of the diagnostic verifier: long enough that no real token is past it.
const DIAGNOSTIC_LEEWAY_SECS: u64 = 100 * 366 * 24 * 3600;

/// The key material in force: what signs, what verifies, what is published.
#[derive(Clone)]
struct Active {
    algorithm: Algorithm,
    encoding: EncodingKey,
    kid: Option<String>,
    verifier: Arc<Verifier>,
    /// The same keys with time, audience and issuer checks off: only used to explain why
    /// `verifier` refused a token (signature fine but expired, or a bad signature).
    diagnostic: Arc<Verifier>,
    jwks: Arc<JwkSet>,
    /// `jwks` as served, with its entity tag (computed once per key set, not per request).
    published: Published,
    /// The asymmetric keys `verifier` holds (empty with an HMAC secret).
    named: Vec<NamedKey>,
}

/// The JWKS document as served at `/.well-known/jwks.json`: its JSON body and a strong entity
/// tag derived from that body, so every replica holding the same keys answers the same `ETag`.
#[derive(Debug, Clone)]
pub struct Published {
    /// The JSON body.
    pub body: axum::body::Bytes,
    /// The quoted entity tag (`"..."`): the first 128 bits of the body's SHA-256, hex.
    pub etag: String,
}

impl Published {
    fn of(jwks: &JwkSet) -> Self {
        use sha2::Digest;
        let body = serde_json::to_vec(jwks).unwrap_or_else(|_| b"{\"keys\":[]}".to_vec());
        let digest = sha2::Sha256::digest(&body);
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Self { body: body.into(), etag: format!("\"{hex}\"") }
    }

    /// Whether an `If-None-Match` header value names this document (a list of tags, weak or
    /// strong, or `*`; RFC 9110 §13.1.2 compares weakly).
    pub fn matches(&self, if_none_match: &str) -> bool {
        if_none_match.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == self.etag)
    }
}

fn diagnostic_settings(settings: &VerifySettings) -> VerifySettings {
    VerifySettings { leeway: DIAGNOSTIC_LEEWAY_SECS, audience: None, issuer: None, ..settings.clone() }
}

/// Signs tokens and checks them; asymmetric key sets can be swapped at run time.
pub struct Keys {
    active: RwLock<Arc<Active>>,
    /// Kids known to be revoked: never verified or published again, whatever rows a reload
    /// brings (revocation is final). Also the lock every writer of `active` holds, so a reload
    /// built from rows read before a revocation cannot bring the key back.
    refused: Mutex<HashSet<String>>,
    settings: VerifySettings,
    access_lifetime: Duration,
    refresh_lifetime: Duration,
    /// How long a retired key still verifies and is published after its retirement.
    keep_retired: Duration,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let active = self.current();
        f.debug_struct("Keys").field("algorithm", &active.algorithm).field("kid", &active.kid).finish_non_exhaustive()
    }
}

/// Parses an algorithm we can sign with: HS256/384/512, EdDSA, ES256, RS256.
pub fn parse_signing_algorithm(s: &str) -> Result<Algorithm, shared_user::settings::SettingError> {
    shared_user::settings::parse_algorithm(s)
}

/// Generates a new private key for `alg` as PKCS#8 PEM.
pub fn generate_private_pem(alg: Algorithm) -> Result<String, KeyError> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
    let rng = SystemRandom::new();
    let err = |e: aws_lc_rs::error::Unspecified| KeyError::Crypto(format!("key generation failed: {e}"));
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
        other => return Err(KeyError::Crypto(format!("{other:?} keys are not generated here"))),
    };
    Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", der)))
}

fn encoding_key(alg: Algorithm, pem: &str) -> Result<EncodingKey, KeyError> {
    let key = match alg {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
    };
    key.map_err(|e| KeyError::Crypto(format!("unreadable {alg:?} private key: {e}")))
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
            diagnostic: Arc::new(Verifier::hmac(diagnostic_settings(&settings), secret)),
            jwks: Arc::new(JwkSet::default()),
            published: Published::of(&JwkSet::default()),
            named: Vec::new(),
        };
        // Nothing is ever retired: HMAC keys are not rows.
        Self::of(active, settings, (access_lifetime, refresh_lifetime), refresh_lifetime)
    }

    /// Keys around `active`, with the token lifetimes (access, refresh) and how long a retired
    /// key is kept.
    fn of(active: Active, settings: VerifySettings, lifetimes: (Duration, Duration), keep_retired: Duration) -> Self {
        Self {
            active: RwLock::new(Arc::new(active)),
            refused: Mutex::default(),
            settings,
            access_lifetime: lifetimes.0,
            refresh_lifetime: lifetimes.1,
            keep_retired,
        }
    }

    /// These HMAC keys, also accepting tokens signed with the `previous` secrets
    /// (`SIGNING_KEY_PREVIOUS`; verification only, the current secret signs).
    pub fn accepting_previous(self, secret: &[u8], previous: &[Vec<u8>]) -> Self {
        if previous.is_empty() {
            return self;
        }
        let mut active = (*self.current()).clone();
        active.verifier = Arc::new(Verifier::hmac_rotating(self.settings.clone(), secret, previous));
        active.diagnostic = Arc::new(Verifier::hmac_rotating(diagnostic_settings(&self.settings), secret, previous));
        *self.active.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(active);
        self
    }

    /// Asymmetric keys from stored rows: the `current` key signs; `next`, `current` and
    /// recently retired keys verify and are published, a retired one for `keep_retired` after
    /// its retirement ([`crate::keys::rotation::Policy::keep_retired`]).
    pub fn from_rows(
        rows: &[SigningKeyRow],
        settings: VerifySettings,
        access_lifetime: Duration,
        refresh_lifetime: Duration,
        keep_retired: Duration,
    ) -> Result<Self, KeyError> {
        let active = Self::build(rows, &settings, keep_retired, &HashSet::new())?;
        Ok(Self::of(active, settings, (access_lifetime, refresh_lifetime), keep_retired))
    }

    fn build(
        rows: &[SigningKeyRow],
        settings: &VerifySettings,
        keep_retired: Duration,
        refused: &HashSet<String>,
    ) -> Result<Active, KeyError> {
        let keep_after = shared_user::user::now_utc() - chrono::Duration::from_std(keep_retired).unwrap_or_default();
        let mut signing = None;
        let mut named = Vec::new();
        let mut jwks = JwkSet::default();
        for row in rows {
            let expired = row.status == "retired" && row.retired_at.is_none_or(|t| t < keep_after);
            if row.status == "revoked" || expired || refused.contains(&row.kid) {
                continue;
            }
            let alg = parse_signing_algorithm(&row.algorithm).map_err(|e| KeyError::Crypto(e.to_string()))?;
            let encoding = encoding_key(alg, &row.private_pem)?;
            let jwk =
                shared_user::jwks::public_jwk(&encoding, alg, &row.kid).map_err(|e| KeyError::Crypto(e.to_string()))?;
            let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| KeyError::Crypto(e.to_string()))?;
            named.push(NamedKey { kid: Some(row.kid.clone()), algorithm: alg, key: decoding });
            jwks.keys.push(jwk);
            let newer = |s: &Option<(Option<chrono::NaiveDateTime>, _, _, _)>| {
                s.as_ref().is_none_or(|(at, _, _, _)| row.activated_at > *at)
            };
            if row.status == "current" && newer(&signing) {
                signing = Some((row.activated_at, alg, encoding, row.kid.clone()));
            }
        }
        let (_, algorithm, encoding, kid) = signing.ok_or(KeyError::NotOneCurrent)?;
        Ok(Self::assemble(settings, (algorithm, encoding, Some(kid)), named, jwks))
    }

    /// The key material in force: `signer` signs, `named` verify, `jwks` is published.
    fn assemble(
        settings: &VerifySettings,
        signer: (Algorithm, EncodingKey, Option<String>),
        named: Vec<NamedKey>,
        jwks: JwkSet,
    ) -> Active {
        let (algorithm, encoding, kid) = signer;
        let mut settings = settings.clone();
        settings.algorithms = named.iter().map(|k| k.algorithm).collect();
        settings.algorithms.sort_by_key(|a| format!("{a:?}"));
        settings.algorithms.dedup();
        Active {
            algorithm,
            encoding,
            kid,
            diagnostic: Arc::new(Verifier::new(diagnostic_settings(&settings), named.clone())),
            verifier: Arc::new(Verifier::new(settings, named.clone())),
            published: Published::of(&jwks),
            jwks: Arc::new(jwks),
            named,
        }
    }

    fn refused(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.refused.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the asymmetric key set after the stored rows changed (rotation). Kids already
    /// [refused](Keys::refuse) stay out, even when `rows` were read before their revocation.
    pub fn reload(&self, rows: &[SigningKeyRow]) -> Result<(), KeyError> {
        let refused = self.refused();
        let active = Self::build(rows, &self.settings, self.keep_retired, &refused)?;
        *self.active.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(active);
        Ok(())
    }

    /// Stops verifying and publishing the revoked `kids` at once, from the key material in
    /// memory (no database read, no private key opened). `true` when a key in force was
    /// dropped: the caller then reloads the stored set, so that signing moves to the successor
    /// if the signing key was among them (until then it still signs, and its tokens are
    /// refused here like everywhere else).
    pub fn refuse<'a>(&self, kids: impl IntoIterator<Item = &'a str>) -> bool {
        let mut refused = self.refused();
        refused.extend(kids.into_iter().map(str::to_owned));
        let active = self.current();
        let in_force = |kid: &Option<String>| kid.as_ref().is_none_or(|k| !refused.contains(k));
        if active.named.iter().all(|k| in_force(&k.kid)) {
            return false;
        }
        let named: Vec<NamedKey> = active.named.iter().filter(|k| in_force(&k.kid)).cloned().collect();
        let mut jwks = (*active.jwks).clone();
        jwks.keys.retain(|k| in_force(&k.common.key_id));
        let signer = (active.algorithm, active.encoding.clone(), active.kid.clone());
        let next = Self::assemble(&self.settings, signer, named, jwks);
        *self.active.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        true
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

    /// The JWKS as served, with its entity tag.
    pub fn published(&self) -> Published {
        self.current().published.clone()
    }

    /// Lifetime of refresh tokens.
    pub fn refresh_lifetime(&self) -> Duration {
        self.refresh_lifetime
    }

    /// Lifetime of access tokens.
    pub fn access_lifetime(&self) -> Duration {
        self.access_lifetime
    }

    /// Explains why [`Verifier::decode`] refused `token` with `error`, in graphql-jwt's terms.
    pub fn fault(&self, token: &str, error: &TokenError) -> Fault {
        if !matches!(error, TokenError::Invalid | TokenError::UnknownKid(_)) {
            return Fault::Invalid;
        }
        let Ok(header) = shared_user::jsonwebtoken::decode_header(token) else {
            return Fault::Malformed;
        };
        let active = self.current();
        if !active.verifier.settings().algorithms.contains(&header.alg) {
            return Fault::Invalid;
        }
        match active.diagnostic.decode(token, None) {
            Err(_) => Fault::Malformed,
            Ok(claims) => {
                let leeway = i64::try_from(self.settings.leeway).unwrap_or(i64::MAX / 4);
                if claims.exp <= chrono::Utc::now().timestamp() - leeway { Fault::Expired } else { Fault::Invalid }
            }
        }
    }

    /// Signs a new token of `kind` for `user_id`.
    pub fn mint(&self, kind: TokenType, user_id: i64) -> Result<Minted, shared_user::jsonwebtoken::errors::Error> {
        self.mint_with(kind, user_id, &Map::new())
    }

    /// Signs a new token of `kind` for `user_id` with `extra` claims after the standard ones
    /// (`token_type, exp, iat, jti, <user id claim>`, then `aud`, `iss`). An extra claim never
    /// replaces a standard one: those names are skipped.
    pub fn mint_with(
        &self,
        kind: TokenType,
        user_id: i64,
        extra: &Map<String, Value>,
    ) -> Result<Minted, shared_user::jsonwebtoken::errors::Error> {
        self.mint_jti(kind, user_id, extra, uuid::Uuid::new_v4().simple().to_string())
    }

    /// [`Keys::mint_with`] for a token of a session that began at `started_ms` (epoch
    /// milliseconds): its `jti` is a [`session_jti`], so the token itself says when its
    /// session began.
    pub fn mint_in_session(
        &self,
        kind: TokenType,
        user_id: i64,
        extra: &Map<String, Value>,
        started_ms: i64,
    ) -> Result<Minted, shared_user::jsonwebtoken::errors::Error> {
        self.mint_jti(kind, user_id, extra, session_jti(started_ms))
    }

    fn mint_jti(
        &self,
        kind: TokenType,
        user_id: i64,
        extra: &Map<String, Value>,
        jti: String,
    ) -> Result<Minted, shared_user::jsonwebtoken::errors::Error> {
        let active = self.current();
        let now = chrono::Utc::now().timestamp();
        let lifetime = match kind {
            TokenType::Access => self.access_lifetime,
            TokenType::Refresh => self.refresh_lifetime,
        };
        let exp = now.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 4));
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
        for (name, value) in extra {
            let reserved = matches!(name.as_str(), "token_type" | "exp" | "iat" | "jti" | "aud" | "iss")
                || *name == self.settings.user_id_claim;
            if !reserved {
                claims.insert(name.clone(), value.clone());
            }
        }
        let mut header = Header::new(active.algorithm);
        header.kid = active.kid.clone();
        let token = shared_user::jsonwebtoken::encode(&header, &claims, &active.encoding)?;
        Ok(Minted { token, jti, exp, claims })
    }
}

/// A `jti` that records when its session began: a UUIDv7 whose timestamp is the sign-in
/// (`started_ms`, epoch milliseconds) and whose other 74 bits are random. On the wire it is
/// like any other `jti`, 32 lowercase hex digits (EasyJWT's uuid4 hex), and no claim is added;
/// it is how an access token minted by a refresh still knows the original sign-in (graphql-jwt's
/// `origIat`, see [`session_started_ms`]).
pub fn session_jti(started_ms: i64) -> String {
    let random = uuid::Uuid::new_v4();
    // Bytes 6..16 of a v4: the UUIDv7 builder overwrites the version and variant bits, which
    // are the only fixed bits among them.
    let mut bytes = [0u8; 10];
    bytes.copy_from_slice(&random.as_bytes()[6..]);
    let millis = u64::try_from(started_ms).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid().simple().to_string()
}

/// When the session of a token with this `jti` began, epoch milliseconds, if the `jti` is a
/// [`session_jti`]; `None` for any other (the uuid4 of tokens minted outside a session, or by
/// an earlier version).
pub fn session_started_ms(jti: &str) -> Option<i64> {
    let id = uuid::Uuid::try_parse(jti).ok()?;
    if id.get_version_num() != 7 {
        return None;
    }
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    i64::try_from(secs).ok()?.checked_mul(1000)?.checked_add(i64::from(nanos / 1_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_jti_looks_like_any_jti_and_names_its_sign_in() {
        let started = 1_796_000_000_123;
        let (a, b) = (session_jti(started), session_jti(started));
        for jti in [&a, &b] {
            assert!(jti.len() == 32 && jti.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{jti}");
            assert_eq!(session_started_ms(jti), Some(started), "{jti}");
        }
        assert_ne!(a, b, "random beyond the timestamp");
        assert_eq!(session_started_ms(&uuid::Uuid::new_v4().simple().to_string()), None, "a uuid4 names no session");
        assert_eq!(session_started_ms("not-a-uuid"), None);
    }
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
        let keys = Keys::from_rows(
            &[old.clone(), next.clone()],
            VerifySettings::default(),
            Duration::from_secs(60),
            refresh,
            refresh,
        )
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
    fn a_refused_kid_is_neither_verified_nor_published_even_after_a_stale_reload() {
        let (access, refresh) = (Duration::from_secs(60), Duration::from_secs(600));
        let old = row("old", "EdDSA", "current", None);
        let keys =
            Keys::from_rows(std::slice::from_ref(&old), VerifySettings::default(), access, refresh, refresh).unwrap();
        let by_old = keys.mint(TokenType::Access, 1).unwrap().token;
        let mut retired = old.clone();
        retired.status = "retired".into();
        retired.retired_at = Some(now_utc());
        let stale = [retired, row("cur", "EdDSA", "current", None)];
        keys.reload(&stale).unwrap();
        let by_cur = keys.mint(TokenType::Access, 1).unwrap().token;
        let kids =
            |keys: &Keys| -> Vec<String> { keys.jwks().keys.iter().filter_map(|k| k.common.key_id.clone()).collect() };
        assert_eq!(kids(&keys), ["old", "cur"]);

        assert!(keys.refuse(["old"]), "a key in force was dropped");
        assert_eq!(
            keys.verifier().decode(&by_old, None).unwrap_err(),
            TokenError::UnknownKid("old".into()),
            "refused at once"
        );
        assert!(keys.verifier().decode(&by_cur, None).is_ok(), "the other key still verifies");
        assert_eq!(kids(&keys), ["cur"], "unpublished at once");
        assert!(!keys.refuse(["old", "never-loaded"]), "nothing left to drop");

        // Rows read before the revocation (the key still `retired` there) cannot bring it back.
        keys.reload(&stale).unwrap();
        assert!(keys.verifier().decode(&by_old, None).is_err(), "revocation is final");
        assert_eq!(kids(&keys), ["cur"]);

        // The signing key itself: refused at once, though it signs until the next reload.
        assert!(keys.refuse(["cur"]));
        assert!(keys.verifier().decode(&by_cur, None).is_err());
        assert!(keys.jwks().keys.is_empty());
    }

    fn hs_keys(settings: VerifySettings) -> Keys {
        Keys::hmac(b"secret-secret-secret-secret-secret", settings, Duration::from_secs(60), Duration::from_secs(600))
    }

    #[test]
    fn extra_claims_follow_the_standard_ones_and_never_replace_them() {
        let keys = hs_keys(VerifySettings { issuer: Some("gh".into()), ..VerifySettings::default() });
        let mut extra = Map::new();
        extra.insert("sub".into(), Value::from("9"));
        extra.insert("user_id".into(), Value::from("forged"));
        extra.insert("exp".into(), Value::from(1));
        extra.insert("role".into(), Value::from("x"));
        let minted = keys.mint_with(TokenType::Access, 9, &extra).unwrap();
        let names: Vec<&str> = minted.claims.keys().map(String::as_str).collect();
        assert_eq!(names, ["token_type", "exp", "iat", "jti", "user_id", "iss", "sub", "role"]);
        assert_eq!(minted.claims["user_id"], Value::from(9));
        assert_eq!(keys.verifier().decode(&minted.token, Some(TokenType::Access)).unwrap().raw, minted.claims);
        assert_eq!(keys.mint(TokenType::Refresh, 9).unwrap().claims.len(), 6);
    }

    #[test]
    fn faults_follow_pyjwt_categories() {
        let keys = hs_keys(VerifySettings { audience: Some("api".into()), ..VerifySettings::default() });
        let fault = |token: &str| {
            let e = keys.verifier().decode(token, Some(TokenType::Access)).unwrap_err();
            keys.fault(token, &e)
        };
        let sign = |claims: serde_json::Value, secret: &[u8]| {
            shared_user::jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(secret),
            )
            .unwrap()
        };
        let key = b"secret-secret-secret-secret-secret";
        let now = chrono::Utc::now().timestamp();
        let good = serde_json::json!({"token_type": "access", "exp": now + 60, "jti": "a", "user_id": 1, "aud": "api"});
        assert_eq!(fault("garbage"), Fault::Malformed);
        assert_eq!(fault(&sign(good.clone(), b"another-secret-another-secret-xx")), Fault::Malformed);
        let mut expired = good.clone();
        expired["exp"] = now.saturating_sub(1).into();
        assert_eq!(fault(&sign(expired, key)), Fault::Expired);
        let mut wrong_aud = good.clone();
        wrong_aud["aud"] = "other".into();
        assert_eq!(fault(&sign(wrong_aud, key)), Fault::Invalid);
        let mut refresh = good;
        refresh["token_type"] = "refresh".into();
        assert_eq!(fault(&sign(refresh, key)), Fault::Invalid);
    }

    #[test]
    fn published_set_never_holds_private_or_symmetric_material() {
        let keys = Keys::from_rows(
            &[row("k", "RS256", "current", None)],
            VerifySettings::default(),
            Duration::from_secs(60),
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
