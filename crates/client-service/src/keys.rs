//! Where local verification gets its keys: the shared HMAC secret, or the auth-service's JWKS
//! (cached; an unknown `kid` triggers at most one refetch per interval).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use shared_user::jsonwebtoken::jwk::JwkSet;
use shared_user::{Verifier, VerifySettings};

use crate::error::{CONNECTION_ERROR, ClientError};
use crate::upstream::Upstream;

/// Verification keys for local mode.
#[derive(Debug)]
pub(crate) enum KeySource {
    /// Remote mode: no local keys.
    None,
    /// Shared secret (HS*).
    Hmac(Arc<Verifier>),
    /// Public keys from a JWKS URL.
    Jwks(Box<JwksCache>),
}

/// One fetched JWKS as a [`Verifier`], numbered so that results obtained with an older set can
/// be told apart (a withdrawn key must stop working as soon as a set without it is installed).
#[derive(Debug, Clone)]
pub(crate) struct KeySet {
    /// Checks tokens against this set.
    pub(crate) verifier: Arc<Verifier>,
    /// Increases with every set installed by this cache.
    pub(crate) generation: u64,
}

/// A cached JWKS turned into a [`Verifier`].
#[derive(Debug)]
pub(crate) struct JwksCache {
    url: String,
    settings: VerifySettings,
    ttl: Duration,
    min_refetch: Duration,
    current: RwLock<Option<(KeySet, Instant)>>,
    /// Serialises fetches; holds when the last unknown-kid refetch happened.
    gate: tokio::sync::Mutex<Option<Instant>>,
}

impl JwksCache {
    /// A cache of the set at `url` (absolute, or a path on the auth-service).
    pub(crate) fn new(url: String, settings: VerifySettings, ttl: Duration, min_refetch: Duration) -> Self {
        Self { url, settings, ttl, min_refetch, current: RwLock::new(None), gate: tokio::sync::Mutex::new(None) }
    }

    fn cached(&self) -> Option<(KeySet, Instant)> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Fetches and installs the set; callers hold `gate`, so installs are serialised.
    async fn fetch(&self, upstream: &Upstream) -> Result<KeySet, ClientError> {
        let set: JwkSet = upstream.get_json(&self.url).await.inspect_err(|_| jwks_fetch("failure"))?;
        let keys = shared_user::jwks::keys_from_set(&set);
        if keys.is_empty() {
            jwks_fetch("failure");
            return Err(ClientError::BadUpstream("the JWKS holds no usable signing key".into()));
        }
        let mut settings = self.settings.clone();
        settings.algorithms = keys.iter().map(|k| k.algorithm).collect();
        settings.algorithms.dedup();
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        let generation = current.as_ref().map_or(1, |(set, _)| set.generation + 1);
        let installed = KeySet { verifier: Arc::new(Verifier::new(settings, keys)), generation };
        *current = Some((installed.clone(), Instant::now()));
        jwks_fetch("success");
        Ok(installed)
    }

    /// The current set, fetching it when there is none or it is older than the TTL (a failed
    /// refresh keeps using the old set).
    pub(crate) async fn verifier(&self, upstream: &Upstream) -> Result<KeySet, ClientError> {
        match self.cached() {
            Some((set, at)) if at.elapsed() < self.ttl => Ok(set),
            stale => {
                let _serialised = self.gate.lock().await;
                if let Some((set, at)) = self.cached()
                    && at.elapsed() < self.ttl
                {
                    return Ok(set);
                }
                match (self.fetch(upstream).await, stale) {
                    (Ok(set), _) => Ok(set),
                    (Err(e), Some((old, _))) => {
                        tracing::warn!(error = %e, "JWKS refresh failed; keeping the cached keys");
                        Ok(old)
                    }
                    (Err(ClientError::Unavailable(_)), None) => Err(ClientError::Unavailable(CONNECTION_ERROR)),
                    (Err(e), None) => Err(e),
                }
            }
        }
    }

    /// A token named a `kid` we do not know: refetch once, unless a fetch happened within the
    /// minimum interval. Returns the new set when it knows `kid`.
    pub(crate) async fn refetch_for(&self, upstream: &Upstream, kid: &str) -> Option<KeySet> {
        let mut gate = self.gate.lock().await;
        if let Some((set, _)) = self.cached()
            && set.verifier.knows_kid(kid)
        {
            return Some(set);
        }
        if gate.is_some_and(|last| last.elapsed() < self.min_refetch) {
            return None;
        }
        *gate = Some(Instant::now());
        match self.fetch(upstream).await {
            Ok(set) if set.verifier.knows_kid(kid) => Some(set),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, kid, "JWKS refetch for an unknown kid failed");
                None
            }
        }
    }
}

/// One JWKS fetch in `gatehouse_jwks_fetches_total`.
fn jwks_fetch(outcome: &'static str) {
    metrics::counter!("gatehouse_jwks_fetches_total", "outcome" => outcome).increment(1);
}
