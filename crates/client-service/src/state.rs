//! [`ClientState`]: what every route of the client crate shares (configuration, the
//! auth-service client, the keys, the verified-token cache, the mirrored users and the
//! revocation watermarks), cheap to clone.

use std::sync::Arc;

use shared_user::{Db, User, Verifier};

use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::keys::{JwksAt, JwksCache, KeySource};
use crate::mirror::Mirror;
use crate::revocations::Poller;
use crate::settings::{ConfigError, VerifyMode};
use crate::tokens::VerifiedTokens;
use crate::upstream::Upstream;
use crate::users::Users;
use crate::watermarks::{RevocationStatus, Watermarks};

/// What a [`ClientState`] holds, behind one `Arc`.
pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) upstream: Upstream,
    pub(crate) keys: KeySource,
    /// The mirrored users: memory cache, mirror database, fetches in flight.
    pub(crate) users: Arc<Users>,
    /// Access tokens verified locally (local mode only).
    pub(crate) tokens: Option<VerifiedTokens>,
    /// Revocation watermarks from the auth-service's feed, raised by the poller (see
    /// `revocations`).
    pub(crate) watermarks: Arc<Watermarks>,
    /// Dropped with the state: stops the revocation poller.
    _stop_poller: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The client crate's state: configuration, the auth-service client, the mirror and the
/// verifier. Cheap to clone; give it to your router and derive it with `FromRef`.
#[derive(Clone)]
pub struct ClientState {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ClientState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientState").field("remote_url", &self.inner.config.remote_url).finish_non_exhaustive()
    }
}

impl ClientState {
    /// State over a connected database that [`migrate`](crate::migrate) has prepared.
    pub fn new(config: ClientConfig, db: Db) -> Result<Self, ConfigError> {
        let keys = match (&config.verify_mode, &config.signing_key) {
            (VerifyMode::Local, Some(key)) => KeySource::Hmac(Arc::new(Verifier::hmac_rotating(
                config.verify.clone(),
                key,
                &config.previous_signing_keys,
            ))),
            (VerifyMode::Local, None) => KeySource::Jwks(Arc::new(JwksCache::new(
                JwksAt::of(&config),
                config.verify.clone(),
                config.jwks_ttl,
                config.jwks_min_refetch,
            ))),
            (VerifyMode::Remote, _) => KeySource::None,
        };
        let upstream = Upstream::new(&config)?;
        let users = Arc::new(Users::new(Mirror::new(db), config.mirror_cache_memory, config.mirror_ttl));
        let tokens = (config.verify_mode == VerifyMode::Local && config.token_cache_memory > 0)
            .then(|| VerifiedTokens::new(config.token_cache_memory, config.verify.leeway));
        let feed_token = config.revocation_feed_token.clone().filter(|_| config.verify_mode == VerifyMode::Local);
        if feed_token.is_none() && config.verify_mode == VerifyMode::Local {
            tracing::info!("REVOCATION_FEED_TOKEN not set: revocations reach this client only when tokens expire");
        }
        let watermarks = Arc::new(Watermarks::new(feed_token.is_some()));
        let mut stop_poller = None;
        if let Some(token) = feed_token {
            let (stop, stopped) = tokio::sync::oneshot::channel();
            let jwks = match &keys {
                KeySource::Jwks(jwks) => Some(jwks.clone()),
                _ => None,
            };
            let poller = Poller::new(upstream.clone(), token, watermarks.clone(), Arc::downgrade(&users), jwks);
            poller.spawn(config.revocation_poll_interval, config.revocation_feed_wait, stopped);
            stop_poller = Some(stop);
        }
        let inner = Arc::new(Inner { tokens, config, upstream, users, keys, watermarks, _stop_poller: stop_poller });
        Ok(Self { inner })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Waits until every write to the mirror made so far is in the database. The mirror is
    /// written behind the requests: a user fetched from the auth-service is answered from
    /// memory at once and committed to the mirror a moment later. Call this after your server
    /// has stopped, so the last users fetched are mirrored before the process exits (the demo
    /// binary does); a write that fails is logged, and that user is fetched again later.
    pub async fn flush_mirror(&self) {
        self.mirror().flush().await;
    }

    /// What this client knows about the revocation feed (for health checks and metrics).
    pub fn revocation_status(&self) -> RevocationStatus {
        self.inner.watermarks.status()
    }

    /// Whether local verification refuses a token of `user_id` issued at `iat` because of a
    /// revocation the feed announced.
    pub(crate) fn is_revoked(&self, user_id: i64, iat: Option<i64>) -> bool {
        self.inner.watermarks.refuses(user_id, iat)
    }

    pub(crate) fn upstream(&self) -> &Upstream {
        &self.inner.upstream
    }

    pub(crate) fn mirror(&self) -> &Mirror {
        self.inner.users.mirror()
    }

    pub(crate) fn users(&self) -> &Users {
        &self.inner.users
    }

    pub(crate) fn keys(&self) -> &KeySource {
        &self.inner.keys
    }

    pub(crate) fn verified_tokens(&self) -> Option<&VerifiedTokens> {
        self.inner.tokens.as_ref()
    }

    /// The user `user_id` (whose valid access token is `token`): see [`Users::get`].
    pub(crate) async fn user_for(&self, user_id: i64, token: &str) -> Result<Arc<User>, ClientError> {
        self.users().get(self.upstream(), user_id, token).await
    }

    /// Fetches and mirrors the user of a just-issued access token (login through the proxy).
    pub(crate) async fn refresh_mirror(&self, access: &str) -> Result<Arc<User>, ClientError> {
        let claims = shared_user::token::unverified_claims(access)
            .ok_or_else(|| ClientError::BadUpstream("the access token is not a JWT".into()))?;
        let user_id = shared_user::token::user_id_of(&claims, &self.config().verify.user_id_claim)
            .ok_or_else(|| ClientError::BadUpstream("access token without a user id".into()))?;
        self.users().refresh(self.upstream(), user_id, access).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_poller_reports_an_outage_and_lets_the_state_go() {
        let Some(db) = shared_user::testing::TestDb::new(
            shared_user::testing::Backend::Sqlite,
            "poller",
            crate::schema::MIGRATIONS,
        )
        .await
        else {
            panic!("SQLite is always available");
        };
        // Nothing listens on port 9 of 127.0.0.1: every poll fails at once.
        let mut config = ClientConfig::builder("http://127.0.0.1:9")
            .local_hmac(b"q2VzZ9eTlB0+T1rX8mD6u4kLx7aN3pYc0wHf5sJgRQE=".to_vec())
            .revocation_feed("feed-token-0123456789")
            .build()
            .unwrap();
        // Faster than the builder allows, to keep the test short.
        config.revocation_poll_interval = Duration::from_millis(50);
        let state = ClientState::new(config, db.db.clone()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !matches!(state.revocation_status(), RevocationStatus::Unreachable { .. }) {
            assert!(std::time::Instant::now() < deadline, "{:?}", state.revocation_status());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let weak = Arc::downgrade(&state.inner);
        let users = Arc::downgrade(&state.inner.users);
        drop(state);
        // The poller holds the users only while a poll runs; then the state and its users (and
        // their database) are freed.
        while weak.upgrade().is_some() || users.upgrade().is_some() {
            assert!(std::time::Instant::now() < deadline, "the poller keeps the state alive");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
