//! [`ClientState`]: what every route of the client crate shares (configuration, the
//! auth-service client, the keys, the verified-token cache, the mirrored users and the
//! revocation watermarks), cheap to clone.

use std::sync::Arc;

use shared_user::{Db, User, Verifier};

use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::keys::{JwksCache, KeySource};
use crate::mirror::Mirror;
use crate::revocations::{self, Watermarks};
use crate::settings::{ConfigError, VerifyMode};
use crate::tokens::VerifiedTokens;
use crate::upstream::Upstream;
use crate::users::Users;

/// What a [`ClientState`] holds, behind one `Arc`.
pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) upstream: Upstream,
    pub(crate) keys: KeySource,
    /// The mirrored users: memory cache, mirror database, fetches in flight.
    pub(crate) users: Users,
    /// Access tokens verified locally (local mode only).
    pub(crate) tokens: Option<VerifiedTokens>,
    /// Revocation watermarks from the auth-service's feed (see `revocations`).
    pub(crate) watermarks: Watermarks,
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
            (VerifyMode::Local, Some(key)) => KeySource::Hmac(Arc::new(Verifier::hmac(config.verify.clone(), key))),
            (VerifyMode::Local, None) => KeySource::Jwks(Box::new(JwksCache::new(
                config.jwks_url.clone().unwrap_or_else(|| "/.well-known/jwks.json".into()),
                config.verify.clone(),
                config.jwks_ttl,
                config.jwks_min_refetch,
            ))),
            (VerifyMode::Remote, _) => KeySource::None,
        };
        let upstream = Upstream::new(&config)?;
        let users = Users::new(Mirror::new(db), config.mirror_cache_memory, config.mirror_ttl);
        let tokens = (config.verify_mode == VerifyMode::Local && config.token_cache_memory > 0)
            .then(|| VerifiedTokens::new(config.token_cache_memory, config.verify.leeway));
        let poll = config.verify_mode == VerifyMode::Local && config.revocation_feed_token.is_some();
        if !poll && config.verify_mode == VerifyMode::Local {
            tracing::info!("REVOCATION_FEED_TOKEN not set: revocations reach this client only when tokens expire");
        }
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let interval = config.revocation_poll_interval;
        let inner = Arc::new(Inner {
            tokens,
            config,
            upstream,
            users,
            keys,
            watermarks: Watermarks::new(poll),
            _stop_poller: poll.then_some(stop),
        });
        if poll {
            revocations::spawn_poller(Arc::downgrade(&inner), interval, stopped);
        }
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
