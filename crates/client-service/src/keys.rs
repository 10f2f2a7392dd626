//! Where local verification gets its keys: the shared HMAC secret, or the auth-service's JWKS
//! (cached; an unknown `kid` triggers at most one refetch per interval), found at a URL or
//! through the issuer's discovery document.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use shared_user::jsonwebtoken::jwk::JwkSet;
use shared_user::{Verifier, VerifySettings};

use crate::config::ClientConfig;
use crate::error::{CONNECTION_ERROR, ClientError};
use crate::upstream::{Cacheable, Upstream};

/// Verification keys for local mode.
#[derive(Debug)]
pub(crate) enum KeySource {
    /// Remote mode: no local keys.
    None,
    /// Shared secret (HS*).
    Hmac(Arc<Verifier>),
    /// Public keys from a JWKS URL (shared with the revocation poller, which drops revoked
    /// keys).
    Jwks(Arc<JwksCache>),
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

/// A cached JWKS turned into a [`Verifier`]. It is kept for the auth-service's
/// `Cache-Control: max-age`, but at least the refetch interval (a `no-cache` JWKS is not fetched
/// per request) and at most `JWKS_CACHE_TTL` (also the lifetime when the answer gives no age),
/// then revalidated with its `ETag` (a 304 keeps the set).
#[derive(Debug)]
pub(crate) struct JwksCache {
    at: JwksAt,
    settings: VerifySettings,
    ttl: Duration,
    min_refetch: Duration,
    current: RwLock<Option<Cached>>,
    /// Keys the revocation feed announced revoked: dropped from the installed set at once and
    /// never installed again, whatever a (possibly cached) JWKS answer still holds.
    revoked: RwLock<HashSet<String>>,
    /// Serialises fetches; holds when the last unknown-kid refetch happened.
    gate: tokio::sync::Mutex<Option<Instant>>,
}

/// The installed set, when it was fetched or revalidated, for how long, and its entity tag.
#[derive(Debug, Clone)]
struct Cached {
    set: KeySet,
    at: Instant,
    lifetime: Duration,
    etag: Option<String>,
}

impl Cached {
    fn fresh(&self) -> bool {
        self.at.elapsed() < self.lifetime
    }
}

/// Where the JWKS is.
#[derive(Debug)]
pub(crate) enum JwksAt {
    /// At this URL (absolute, or a path on the auth-service).
    Url(String),
    /// At the `jwks_uri` of the discovery document of `issuer` (an `http(s)://` URL), once read.
    Discovered {
        /// The `ISSUER` setting.
        issuer: String,
        /// The `jwks_uri` read from the document; cleared when a fetch from it fails, so the
        /// next fetch reads the document again.
        uri: Mutex<Option<String>>,
    },
}

/// The path of OpenID Connect Discovery's document under the issuer URL.
const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

impl JwksAt {
    /// Where local verification with `config` finds the JWKS.
    pub(crate) fn of(config: &ClientConfig) -> Self {
        match (&config.jwks_url, &config.verify.issuer) {
            (None, Some(issuer)) if config.jwks_discovery => {
                JwksAt::Discovered { issuer: issuer.clone(), uri: Mutex::new(None) }
            }
            (url, _) => JwksAt::Url(url.clone().unwrap_or_else(|| "/.well-known/jwks.json".into())),
        }
    }

    /// The JWKS URL, reading the issuer's discovery document when it has not been read yet.
    async fn url(&self, upstream: &Upstream) -> Result<String, ClientError> {
        let (issuer, uri) = match self {
            JwksAt::Url(url) => return Ok(url.clone()),
            JwksAt::Discovered { issuer, uri } => (issuer, uri),
        };
        if let Some(known) = uri.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(known);
        }
        let url = format!("{}{DISCOVERY_PATH}", issuer.trim_end_matches('/'));
        let body = match upstream.get_cacheable(&url, None).await? {
            Cacheable::Fresh { body, .. } => body,
            Cacheable::NotModified { .. } => return Err(ClientError::BadUpstream("unasked discovery 304".into())),
        };
        #[derive(serde::Deserialize)]
        struct Metadata {
            issuer: String,
            jwks_uri: String,
        }
        let metadata: Metadata = serde_json::from_slice(&body)
            .map_err(|e| ClientError::BadUpstream(format!("{url} is not a discovery document: {e}")))?;
        // OpenID Connect Discovery 1.0, section 4.3: the document must name the issuer asked.
        if metadata.issuer != *issuer {
            return Err(ClientError::BadUpstream(format!(
                "{url} names the issuer {:?}, not ISSUER={issuer:?}",
                metadata.issuer
            )));
        }
        if !(metadata.jwks_uri.starts_with("https://") || metadata.jwks_uri.starts_with("http://")) {
            return Err(ClientError::BadUpstream(format!("{url} gives a jwks_uri that is not a URL")));
        }
        tracing::info!(issuer, jwks_uri = %metadata.jwks_uri, "JWKS found through discovery");
        *uri.lock().unwrap_or_else(|p| p.into_inner()) = Some(metadata.jwks_uri.clone());
        Ok(metadata.jwks_uri)
    }

    /// A fetch from the discovered URL failed: read the document again next time.
    fn forget(&self) {
        if let JwksAt::Discovered { uri, .. } = self {
            *uri.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }
}

impl JwksCache {
    /// A cache of the set `at`.
    pub(crate) fn new(at: JwksAt, settings: VerifySettings, ttl: Duration, min_refetch: Duration) -> Self {
        Self {
            at,
            settings,
            ttl,
            min_refetch,
            current: RwLock::new(None),
            revoked: RwLock::new(HashSet::new()),
            gate: tokio::sync::Mutex::new(None),
        }
    }

    fn is_revoked(&self, kid: &str) -> bool {
        self.revoked.read().unwrap_or_else(|p| p.into_inner()).contains(kid)
    }

    /// The revocation feed announced `kid` revoked: its tokens are refused from now on (the
    /// installed set loses the key and gets a new generation, so no remembered verification
    /// of it counts either), and no later JWKS answer brings it back. Returns whether the
    /// installed set held it.
    pub(crate) fn revoke_kid(&self, kid: &str) -> bool {
        self.revoked.write().unwrap_or_else(|p| p.into_inner()).insert(kid.to_owned());
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        let Some(cached) = current.as_mut() else { return false };
        let Some(verifier) = cached.set.verifier.without_kid(kid) else { return false };
        cached.set = KeySet { verifier: Arc::new(verifier), generation: cached.set.generation + 1 };
        true
    }

    fn cached(&self) -> Option<Cached> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How long to keep an answer that allowed `max_age`.
    fn lifetime(&self, max_age: Option<Duration>) -> Duration {
        max_age.map_or(self.ttl, |age| age.max(self.min_refetch).min(self.ttl))
    }

    /// Fetches (or revalidates) and installs the set; callers hold `gate`, so installs are
    /// serialised.
    async fn fetch(&self, upstream: &Upstream) -> Result<KeySet, ClientError> {
        let cached = self.cached();
        let etag = cached.as_ref().and_then(|c| c.etag.as_deref());
        let url = self.at.url(upstream).await.inspect_err(|_| jwks_fetch("failure"))?;
        let (body, etag, max_age) = match upstream.get_cacheable(&url, etag).await {
            Err(e) => {
                jwks_fetch("failure");
                self.at.forget();
                return Err(e);
            }
            Ok(Cacheable::NotModified { max_age }) => {
                let Some(mut kept) = cached else { return Err(ClientError::BadUpstream("unasked JWKS 304".into())) };
                (kept.at, kept.lifetime) = (Instant::now(), self.lifetime(max_age));
                let set = kept.set.clone();
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(kept);
                jwks_fetch("not_modified");
                return Ok(set);
            }
            Ok(Cacheable::Fresh { body, etag, max_age }) => (body, etag, max_age),
        };
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| {
            jwks_fetch("failure");
            ClientError::BadUpstream(format!("the JWKS is not a key set: {e}"))
        })?;
        let mut keys = shared_user::jwks::keys_from_set(&set);
        keys.retain(|k| k.kid.as_deref().is_none_or(|kid| !self.is_revoked(kid)));
        if keys.is_empty() {
            jwks_fetch("failure");
            return Err(ClientError::BadUpstream("the JWKS holds no usable signing key".into()));
        }
        let mut settings = self.settings.clone();
        settings.algorithms = keys.iter().map(|k| k.algorithm).collect();
        settings.algorithms.dedup();
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        let generation = current.as_ref().map_or(1, |c| c.set.generation + 1);
        let installed = KeySet { verifier: Arc::new(Verifier::new(settings, keys)), generation };
        let lifetime = self.lifetime(max_age);
        *current = Some(Cached { set: installed.clone(), at: Instant::now(), lifetime, etag });
        jwks_fetch("success");
        Ok(installed)
    }

    /// The current set, fetching it when there is none or its cache lifetime is over (a failed
    /// refresh keeps using the old set).
    pub(crate) async fn verifier(&self, upstream: &Upstream) -> Result<KeySet, ClientError> {
        match self.cached() {
            Some(cached) if cached.fresh() => Ok(cached.set),
            stale => {
                let _serialised = self.gate.lock().await;
                if let Some(cached) = self.cached()
                    && cached.fresh()
                {
                    return Ok(cached.set);
                }
                match (self.fetch(upstream).await, stale) {
                    (Ok(set), _) => Ok(set),
                    (Err(e), Some(old)) => {
                        tracing::warn!(error = %e, "JWKS refresh failed; keeping the cached keys");
                        Ok(old.set)
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
        if self.is_revoked(kid) {
            // The feed said so: no fetch can make it valid.
            return None;
        }
        let mut gate = self.gate.lock().await;
        if let Some(cached) = self.cached()
            && cached.set.verifier.knows_kid(kid)
        {
            return Some(cached.set);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{ClientSettings, ConfigError, VerifyMode};

    #[test]
    fn an_issuer_url_alone_locates_the_jwks_through_discovery() {
        let e = ClientConfig::builder("http://a").local_jwks_from_issuer().build().unwrap_err();
        assert_eq!(e, ConfigError::IssuerNotUrl(String::new()));
        let e = ClientConfig::builder("http://a").issuer("gatehouse").local_jwks_from_issuer().build().unwrap_err();
        assert_eq!(e, ConfigError::IssuerNotUrl("gatehouse".into()));
        let issuer = "https://auth.internal:8443";
        let c = ClientConfig::builder("http://a").issuer(issuer).local_jwks_from_issuer().build().unwrap();
        assert!(matches!(JwksAt::of(&c), JwksAt::Discovered { issuer: i, .. } if i == issuer));
        // From the settings: local mode with an ISSUER URL and neither SIGNING_KEY nor JWK_URL.
        let local = |issuer: &str, jwk_url: Option<&str>| ClientSettings {
            verify_mode: VerifyMode::Local,
            issuer: Some(issuer.into()),
            jwk_url: jwk_url.map(str::to_owned),
            ..ClientSettings::default()
        };
        let c = local(issuer, None).into_config().unwrap();
        assert!(matches!(JwksAt::of(&c), JwksAt::Discovered { .. }));
        let c = local(issuer, Some("https://keys.example/jwks.json")).into_config().unwrap();
        assert!(matches!(JwksAt::of(&c), JwksAt::Url(u) if u == "https://keys.example/jwks.json"));
        let c = local("gatehouse", None).into_config().unwrap();
        assert!(matches!(JwksAt::of(&c), JwksAt::Url(u) if u == "/.well-known/jwks.json"));
    }
}
