//! Testing a host's protected routes without an auth-service (`testing` feature): what Django
//! REST framework's `force_authenticate` and `APIClient` give a Django test.
//!
//! [`TestAuth`] is a [`ClientState`] that verifies tokens locally with a known test key
//! ([`TEST_SIGNING_KEY`]) and never needs its auth-service for a user it knows: seed the
//! mirror with [`TestAuth::seed`] (users and their access groups, exactly as the auth-service
//! would have sent them), then mint tokens for them with [`TestAuth::token`]: valid ones with
//! any lifetime, after a second factor ([`amr`](TokenBuilder::amr)), and the refused kinds: [`expired`](TokenBuilder::expired),
//! [`tampered`](TokenBuilder::tampered) and [`revoked`](TokenBuilder::revoked) (issued before
//! the user's sessions were revoked, as after a logout-all or a password change).
//!
//! ```no_run
//! use client_service::testing::{TestAuth, TestUser};
//! # async fn test(db: client_service::Db) -> Result<(), Box<dyn std::error::Error>> {
//! client_service::migrate(&db).await?;
//! let auth = TestAuth::new(db)?;
//! // let app = my_service::app(auth.state());
//! auth.seed(TestUser::new(1, "ann@example.com").group("billing", None)).await;
//! let bearer = auth.token(1).bearer(); // "Bearer eyJ..." for the Authorization header
//! let expired = auth.token(1).expired().bearer(); // refused: 401 token_not_valid
//! # Ok(()) }
//! ```
//!
//! Nothing else changes: the routes, extractors and layers under test are the ones production
//! runs. A user who was not seeded is looked up on the auth-service, which is not there: 503.
//! The `/auth/*` proxy routes answer 503 for the same reason.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Map, Value, json};
use shared_user::{AccessGroup, Db, User};

use crate::config::{ClientConfig, ClientConfigBuilder};
use crate::settings::ConfigError;
use crate::state::ClientState;

/// The HMAC secret a [`TestAuth`] verifies with and mints with. Never use it outside tests.
pub const TEST_SIGNING_KEY: &str = "gatehouse-testing-only-signing-key-0123456789";

/// Where a [`TestAuth`] believes its auth-service is: a local port where nothing listens, so
/// a call that would need it fails at once (503) instead of hanging a test.
const NO_AUTH_SERVICE: &str = "http://127.0.0.1:9";

/// Lifetime of a minted access token unless [`TokenBuilder::lifetime`] says otherwise (the
/// auth-service's default).
const ACCESS_LIFETIME: Duration = Duration::from_secs(300);

/// A [`ClientState`] for tests with a token factory and a way to seed the mirror.
#[derive(Debug, Clone)]
pub struct TestAuth {
    state: ClientState,
    /// The watermark set for each user by [`TestAuth::revoke_sessions`]: tokens minted later are
    /// issued at it or after, so they pass.
    revoked: Arc<Mutex<HashMap<i64, i64>>>,
}

impl TestAuth {
    /// A state over `db` (prepared by [`migrate`](crate::migrate)) that checks tokens locally
    /// with [`TEST_SIGNING_KEY`] and trusts seeded users for a day.
    pub fn new(db: Db) -> Result<Self, ConfigError> {
        Self::with_config(db, |builder| builder)
    }

    /// As [`new`](Self::new), with more settings on the builder (an audience, an issuer,
    /// another user id claim or header name...); minted tokens follow them. The verification
    /// mode stays local HMAC with [`TEST_SIGNING_KEY`].
    pub fn with_config(
        db: Db,
        configure: impl FnOnce(ClientConfigBuilder) -> ClientConfigBuilder,
    ) -> Result<Self, ConfigError> {
        let builder = ClientConfig::builder(NO_AUTH_SERVICE).mirror_ttl(Duration::from_secs(24 * 3600));
        let config = configure(builder).local_hmac(TEST_SIGNING_KEY).build()?;
        Ok(Self { state: ClientState::new(config, db)?, revoked: Arc::default() })
    }

    /// The state to give the host's router, as production code gets its own.
    pub fn state(&self) -> ClientState {
        self.state.clone()
    }

    /// Puts `user` in the mirror (its row and its access groups), as a fetch from the
    /// auth-service would, and waits until it is in the database. Seeding the same id again
    /// replaces the user and its groups.
    pub async fn seed(&self, user: impl Into<User>) -> Arc<User> {
        let user = Arc::new(user.into());
        self.state.users().store(user.clone()).await;
        self.state.flush_mirror().await;
        user
    }

    /// A token of `user_id`: a valid access token with the default lifetime unless the builder
    /// says otherwise.
    pub fn token(&self, user_id: i64) -> TokenBuilder {
        TokenBuilder { auth: self.clone(), user_id, lifetime: ACCESS_LIFETIME, kind: Kind::Valid, amr: None }
    }

    /// Revokes every token of `user_id` minted so far, as a logout-all, a password change or a
    /// deactivation announced by the revocation feed does. Tokens minted afterwards pass.
    pub fn revoke_sessions(&self, user_id: i64) {
        let now = now();
        self.revoked.lock().unwrap_or_else(|p| p.into_inner()).insert(user_id, now);
        self.state.inner.watermarks.revoke_for_tests(user_id, now);
    }

    /// When a token of `user_id` minted now is issued: a second ago, so a revocation in this
    /// same second refuses it (the claim counts whole seconds), but never before the user's
    /// last revocation, so a token minted after it passes.
    fn issued_at(&self, user_id: i64, now: i64) -> i64 {
        let revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner()).get(&user_id).copied();
        revoked.map_or(now - 1, |at| at.max(now - 1))
    }

    fn encode(&self, claims: &Map<String, Value>) -> String {
        let verify = &self.state.config().verify;
        let header = Header::new(verify.algorithms.first().copied().unwrap_or_default());
        let key = EncodingKey::from_secret(TEST_SIGNING_KEY.as_bytes());
        jsonwebtoken::encode(&header, claims, &key).unwrap_or_else(|e| panic!("cannot sign a test token: {e}"))
    }
}

/// What kind of token a [`TokenBuilder`] mints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Valid,
    Expired,
    Tampered,
    Revoked,
}

/// Mints one token for a user of a [`TestAuth`]; see [`TestAuth::token`].
#[derive(Debug, Clone)]
#[must_use]
pub struct TokenBuilder {
    auth: TestAuth,
    user_id: i64,
    lifetime: Duration,
    kind: Kind,
    amr: Option<Vec<String>>,
}

impl TokenBuilder {
    /// With the `amr` claim (RFC 8176) a login with these methods earns, e.g.
    /// `["pwd", "otp", "mfa"]` (password and TOTP), `["hwk", "user"]` (passkey sign-in); without
    /// it the token is a password-only login's, which has no `amr`.
    ///
    /// ```no_run
    /// # fn test(auth: client_service::testing::TestAuth) {
    /// let second_factor = auth.token(1).amr(["pwd", "otp", "mfa"]).bearer(); // passes RequireMfaLayer
    /// let password_only = auth.token(1).bearer(); // 403 mfa_required there
    /// # }
    /// ```
    pub fn amr<I>(mut self, methods: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.amr = Some(methods.into_iter().map(Into::into).collect());
        self
    }

    /// Valid for `lifetime` from now (default 5 minutes).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Expired a minute ago (beyond any leeway up to a minute): refused.
    pub fn expired(mut self) -> Self {
        self.kind = Kind::Expired;
        self
    }

    /// Signed, then one character of the signature changed: refused.
    pub fn tampered(mut self) -> Self {
        self.kind = Kind::Tampered;
        self
    }

    /// Issued before the user's sessions are revoked ([`TestAuth::revoke_sessions`] runs when
    /// this token is minted): refused, with every earlier token of the user. Tokens minted
    /// afterwards pass.
    pub fn revoked(mut self) -> Self {
        self.kind = Kind::Revoked;
        self
    }

    /// The token (a JWT).
    pub fn mint(self) -> String {
        let now = now();
        let lifetime = i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX);
        let (iat, exp) = match self.kind {
            Kind::Expired => (now - 60 - lifetime.min(86_400), now - 60),
            Kind::Revoked => (now - 1, now.saturating_add(lifetime)),
            Kind::Valid | Kind::Tampered => (self.auth.issued_at(self.user_id, now), now.saturating_add(lifetime)),
        };
        let verify = &self.auth.state.config().verify;
        let mut claims = Map::new();
        claims.insert("token_type".into(), json!("access"));
        claims.insert("exp".into(), json!(exp));
        claims.insert("iat".into(), json!(iat));
        claims.insert("jti".into(), json!(uuid::Uuid::new_v4().simple().to_string()));
        claims.insert(verify.user_id_claim.clone(), json!(self.user_id));
        if let Some(amr) = &self.amr {
            claims.insert("amr".into(), json!(amr));
        }
        if let Some(aud) = &verify.audience {
            claims.insert("aud".into(), json!(aud));
        }
        if let Some(iss) = &verify.issuer {
            claims.insert("iss".into(), json!(iss));
        }
        let token = self.auth.encode(&claims);
        match self.kind {
            Kind::Tampered => tamper(&token),
            Kind::Revoked => {
                self.auth.revoke_sessions(self.user_id);
                token
            }
            Kind::Valid | Kind::Expired => token,
        }
    }

    /// The value of the authorization header: the first accepted scheme and the token
    /// (`Bearer eyJ...`).
    pub fn bearer(self) -> String {
        let scheme = self.auth.state.config().auth_header_types.first().cloned().unwrap_or_else(|| "Bearer".into());
        format!("{scheme} {}", self.mint())
    }
}

/// The token with the first character of its signature changed.
fn tamper(token: &str) -> String {
    let Some(dot) = token.rfind('.') else { return format!("{token}x") };
    let mut bytes = token.as_bytes().to_vec();
    if let Some(first) = bytes.get_mut(dot + 1) {
        *first = if *first == b'A' { b'B' } else { b'A' };
    }
    String::from_utf8(bytes).unwrap_or_else(|_| format!("{token}x"))
}

/// Seconds since the epoch.
fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A user to seed into the mirror: active, no access groups, joined now, unless said otherwise.
#[derive(Debug, Clone)]
#[must_use]
pub struct TestUser {
    user: User,
}

impl TestUser {
    /// User `id` (the auth-service's id, the one tokens carry) with `email`.
    pub fn new(id: i64, email: impl Into<String>) -> Self {
        Self {
            user: User {
                id,
                email: email.into(),
                first_name: String::new(),
                last_name: String::new(),
                date_joined: shared_user::user::now_utc(),
                last_login: None,
                is_active: true,
                is_staff: false,
                is_superuser: false,
                access_groups: Vec::new(),
            },
        }
    }

    /// In access group `name` (at `level`, when given).
    pub fn group(mut self, name: impl Into<String>, level: Option<&str>) -> Self {
        self.user.access_groups.push(AccessGroup { name: name.into(), level: level.map(str::to_owned) });
        self.user.access_groups.sort_by(|a, b| a.name.cmp(&b.name));
        self
    }

    /// First and last name.
    pub fn name(mut self, first: impl Into<String>, last: impl Into<String>) -> Self {
        self.user.first_name = first.into();
        self.user.last_name = last.into();
        self
    }

    /// Staff (and superuser when `superuser`).
    pub fn staff(mut self, superuser: bool) -> Self {
        self.user.is_staff = true;
        self.user.is_superuser = superuser;
        self
    }

    /// Deactivated: the user's tokens are refused with 401 `user_inactive`.
    pub fn inactive(mut self) -> Self {
        self.user.is_active = false;
        self
    }
}

impl From<TestUser> for User {
    fn from(user: TestUser) -> Self {
        user.user
    }
}
