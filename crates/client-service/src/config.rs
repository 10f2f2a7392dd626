//! The client crate's configuration: [`ClientConfig`], built and checked by
//! [`ClientConfigBuilder`], with an explicit [`VerifyMode`].

use std::time::Duration;

use jsonwebtoken::Algorithm;
use shared_user::VerifySettings;
use shared_user::settings::{self, SettingError};

/// How bearer tokens are checked on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum VerifyMode {
    /// In-process signature and claims check (shared secret or the auth-service's JWKS); no
    /// network per request.
    #[default]
    Local,
    /// `POST /auth/token/verify/` on the auth-service for every request (EasyJWT behaviour).
    Remote,
}

/// `SameSite` attribute of the refresh-token cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SameSite {
    /// `SameSite=Lax` (the default).
    #[default]
    Lax,
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=None` (needs `Secure`).
    None,
}

impl std::str::FromStr for SameSite {
    type Err = ConfigError;

    /// `Lax`, `Strict` or `None`, as `AUTH_COOKIE_SAMESITE` spells them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Lax" => Ok(SameSite::Lax),
            "Strict" => Ok(SameSite::Strict),
            "None" => Ok(SameSite::None),
            other => {
                Err(ConfigError::Cookie(format!("AUTH_COOKIE_SAMESITE must be Lax, Strict or None (got {other:?})")))
            }
        }
    }
}

/// Why a configuration cannot be used. `Display` is one line naming the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The auth-service URL is not `http://` or `https://`.
    #[error("REMOTE_AUTH_SERVICE_URL must be an http:// or https:// URL (got {0:?})")]
    RemoteUrl(String),
    /// None of `local_hmac`, `local_jwks` or `remote` was chosen.
    #[error("no verification mode: call local_hmac(key), local_jwks() or remote() on the builder")]
    NoVerifyMode,
    /// A shared secret was given for an algorithm that is not HS*.
    #[error(
        "SIGNING_KEY is an HMAC secret and cannot check ALGORITHM={0:?} tokens; unset it to use the auth-service's JWKS"
    )]
    KeyAlgorithm(Algorithm),
    /// A setting that one of the shared parsers refused (duration, algorithm, header, key).
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// A timeout of zero.
    #[error("{0} must be positive")]
    ZeroTimeout(&'static str),
    /// A cookie setting that browsers would refuse.
    #[error("{0}")]
    Cookie(String),
    /// The revocation feed would be polled more often than every 100 ms.
    #[error("REVOCATION_POLL_INTERVAL must be at least 100ms")]
    PollInterval,
    /// The HTTP client for the auth-service could not be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
}

/// Everything the client crate needs. Build it with [`ClientConfig::builder`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub(crate) remote_url: String,
    pub(crate) user_path: String,
    pub(crate) verify_mode: VerifyMode,
    pub(crate) signing_key: Option<Vec<u8>>,
    pub(crate) verify: VerifySettings,
    pub(crate) auth_header_name: String,
    pub(crate) auth_header_types: Vec<String>,
    pub(crate) mirror_ttl: Duration,
    pub(crate) mirror_cache_memory: u64,
    pub(crate) token_cache_memory: u64,
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) blacklist_on_logout: bool,
    pub(crate) cookie: Option<CookieConfig>,
    pub(crate) jwks_url: Option<String>,
    pub(crate) jwks_ttl: Duration,
    pub(crate) jwks_min_refetch: Duration,
    pub(crate) revocation_feed_token: Option<String>,
    pub(crate) revocation_poll_interval: Duration,
}

/// Default of [`ClientConfigBuilder::mirror_cache_memory`]: 64 MiB.
pub const DEFAULT_MIRROR_CACHE_MEMORY: u64 = 64 << 20;
/// Default of [`ClientConfigBuilder::token_cache_memory`]: 16 MiB.
pub const DEFAULT_TOKEN_CACHE_MEMORY: u64 = 16 << 20;

impl ClientConfig {
    /// A builder for an auth-service at `remote_url` (e.g. `http://127.0.0.1:8000`). Pick the
    /// verification mode with [`local_hmac`](ClientConfigBuilder::local_hmac),
    /// [`local_jwks`](ClientConfigBuilder::local_jwks) or [`remote`](ClientConfigBuilder::remote).
    pub fn builder(remote_url: impl Into<String>) -> ClientConfigBuilder {
        ClientConfigBuilder {
            remote_url: remote_url.into(),
            mode: None,
            algorithm: Algorithm::HS256,
            user_path: "/auth/user/".into(),
            leeway: 0,
            audience: None,
            issuer: None,
            user_id_claim: "user_id".into(),
            auth_header_name: "Authorization".into(),
            auth_header_types: vec!["Bearer".into()],
            mirror_ttl: Duration::from_secs(300),
            mirror_cache_memory: DEFAULT_MIRROR_CACHE_MEMORY,
            token_cache_memory: DEFAULT_TOKEN_CACHE_MEMORY,
            request_timeout: Duration::from_secs(10),
            connect_timeout: None,
            blacklist_on_logout: true,
            cookie: None,
            jwks_ttl: Duration::from_secs(600),
            jwks_min_refetch: Duration::from_secs(30),
            revocation_feed_token: None,
            revocation_poll_interval: Duration::from_secs(2),
        }
    }

    /// Base URL of the auth-service (no trailing slash).
    pub fn remote_url(&self) -> &str {
        &self.remote_url
    }

    /// How bearer tokens are checked.
    pub fn verify_mode(&self) -> VerifyMode {
        self.verify_mode
    }
}

/// Where local verification gets its keys, as chosen on the builder.
#[derive(Clone)]
enum Mode {
    Hmac(Vec<u8>),
    Jwks(Option<String>),
    Remote,
}

/// Builds a [`ClientConfig`]; [`build`](Self::build) checks every setting. Defaults are those of
/// the environment variables in the README (`MIRROR_TTL=5m`, `TOKEN_CACHE_MEMORY=16MiB`, ...).
#[derive(Clone)]
#[must_use]
pub struct ClientConfigBuilder {
    remote_url: String,
    mode: Option<Mode>,
    algorithm: Algorithm,
    user_path: String,
    leeway: u64,
    audience: Option<String>,
    issuer: Option<String>,
    user_id_claim: String,
    auth_header_name: String,
    auth_header_types: Vec<String>,
    mirror_ttl: Duration,
    mirror_cache_memory: u64,
    token_cache_memory: u64,
    request_timeout: Duration,
    connect_timeout: Option<Duration>,
    blacklist_on_logout: bool,
    cookie: Option<CookieConfig>,
    jwks_ttl: Duration,
    jwks_min_refetch: Duration,
    revocation_feed_token: Option<String>,
    revocation_poll_interval: Duration,
}

impl std::fmt::Debug for ClientConfigBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the signing key.
        f.debug_struct("ClientConfigBuilder").field("remote_url", &self.remote_url).finish_non_exhaustive()
    }
}

impl ClientConfigBuilder {
    /// Local verification with the auth-service's shared HMAC secret (`SIGNING_KEY`, 32+ bytes;
    /// HS256 unless [`algorithm`](Self::algorithm) says HS384 or HS512).
    pub fn local_hmac(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.mode = Some(Mode::Hmac(key.into()));
        self
    }

    /// Local verification against the auth-service's published keys
    /// (`/.well-known/jwks.json`, for EdDSA, ES256 or RS256 tokens).
    pub fn local_jwks(mut self) -> Self {
        self.mode = Some(Mode::Jwks(None));
        self
    }

    /// Local verification against the JWKS at `url` (absolute, or a path on the auth-service;
    /// `JWK_URL`).
    pub fn local_jwks_at(mut self, url: impl Into<String>) -> Self {
        self.mode = Some(Mode::Jwks(Some(url.into())));
        self
    }

    /// Remote verification: the auth-service's verify endpoint on every request (EasyJWT's
    /// behaviour; `VERIFY_MODE=remote`).
    pub fn remote(mut self) -> Self {
        self.mode = Some(Mode::Remote);
        self
    }

    /// Algorithm of the shared secret (`ALGORITHM`): HS256 (default), HS384 or HS512.
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Path of the current-user endpoint (`REMOTE_AUTH_SERVICE_USER_PATH`, default
    /// `/auth/user/`); a path containing `{id}` (the legacy `/auth/users/{id}/`) gets the id.
    pub fn user_path(mut self, path: impl Into<String>) -> Self {
        self.user_path = path.into();
        self
    }

    /// Clock skew allowance (`LEEWAY`, default 0 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway.as_secs();
        self
    }

    /// Required `aud` claim (`AUDIENCE`).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Required `iss` claim (`ISSUER`).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Name of the user id claim (`USER_ID_CLAIM`, default `user_id`).
    pub fn user_id_claim(mut self, claim: impl Into<String>) -> Self {
        self.user_id_claim = claim.into();
        self
    }

    /// Header carrying the bearer token (`AUTH_HEADER_NAME`, default `Authorization`; Django's
    /// `HTTP_AUTHORIZATION` form is accepted).
    pub fn auth_header_name(mut self, name: impl Into<String>) -> Self {
        self.auth_header_name = name.into();
        self
    }

    /// Accepted schemes, case-sensitive (`AUTH_HEADER_TYPES`, default `Bearer`); the first is
    /// used towards the auth-service.
    pub fn auth_header_types<I, T>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.auth_header_types = types.into_iter().map(Into::into).collect();
        self
    }

    /// How long a mirrored user is trusted before it is fetched again (`MIRROR_TTL`, 5 min).
    pub fn mirror_ttl(mut self, ttl: Duration) -> Self {
        self.mirror_ttl = ttl;
        self
    }

    /// Memory for mirrored users kept in memory, in bytes (`MIRROR_CACHE_MEMORY`, 64 MiB:
    /// about 200,000 users with a few access groups each). The least recently useful users
    /// leave first; 0 turns the cache off and every request reads the mirror database.
    pub fn mirror_cache_memory(mut self, bytes: u64) -> Self {
        self.mirror_cache_memory = bytes;
        self
    }

    /// Memory for access tokens already verified in local mode, kept until they expire, in
    /// bytes (`TOKEN_CACHE_MEMORY`, 16 MiB: about 150,000 tokens, whatever their length); 0 turns
    /// the cache off and every request checks the signature.
    pub fn token_cache_memory(mut self, bytes: u64) -> Self {
        self.token_cache_memory = bytes;
        self
    }

    /// Timeout of each call to the auth-service (`REMOTE_AUTH_REQUEST_TIMEOUT`, 10 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Connect timeout of each call to the auth-service (default: the request timeout, at
    /// most 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Blacklist the refresh token on the auth-service at logout, best effort
    /// (`BLACKLIST_ON_LOGOUT`, default true).
    pub fn blacklist_on_logout(mut self, on: bool) -> Self {
        self.blacklist_on_logout = on;
        self
    }

    /// Browser mode (`REFRESH_TOKEN_IN_COOKIE=true`): the refresh token in an HttpOnly
    /// cookie, CSRF-protected.
    pub fn refresh_token_in_cookie(mut self, cookie: CookieConfig) -> Self {
        self.cookie = Some(cookie);
        self
    }

    /// How long a fetched JWKS is used before it is fetched again (`JWKS_CACHE_TTL`, 10 min).
    pub fn jwks_ttl(mut self, ttl: Duration) -> Self {
        self.jwks_ttl = ttl;
        self
    }

    /// Least time between two JWKS refetches caused by tokens with an unknown `kid` (30 s).
    pub fn jwks_min_refetch(mut self, interval: Duration) -> Self {
        self.jwks_min_refetch = interval;
        self
    }

    /// Local mode: poll the auth-service's revocation feed with this shared secret (its
    /// `REVOCATION_FEED_TOKEN`), so tokens issued before a user's logout-all, password change or
    /// deactivation are refused within two poll intervals. Without it (or an empty one) nothing
    /// is polled and revocations reach this client only when tokens expire.
    pub fn revocation_feed(mut self, token: impl Into<String>) -> Self {
        self.revocation_feed_token = Some(token.into()).filter(|t| !t.is_empty());
        self
    }

    /// How often the revocation feed is polled (2 s; at least 100 ms).
    pub fn revocation_poll_interval(mut self, interval: Duration) -> Self {
        self.revocation_poll_interval = interval;
        self
    }

    /// Checks every setting and returns the configuration.
    pub fn build(self) -> Result<ClientConfig, ConfigError> {
        let remote_url = self.remote_url.trim().trim_end_matches('/').to_owned();
        if !(remote_url.starts_with("http://") || remote_url.starts_with("https://")) {
            return Err(ConfigError::RemoteUrl(remote_url));
        }
        let mode = self.mode.ok_or(ConfigError::NoVerifyMode)?;
        let (verify_mode, signing_key, jwks_url) = match mode {
            Mode::Hmac(key) => {
                if !settings::is_hmac(self.algorithm) {
                    return Err(ConfigError::KeyAlgorithm(self.algorithm));
                }
                settings::check_signing_key(&key)?;
                (VerifyMode::Local, Some(key), None)
            }
            Mode::Jwks(url) => (VerifyMode::Local, None, url),
            Mode::Remote => (VerifyMode::Remote, None, None),
        };
        if self.request_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout("REMOTE_AUTH_REQUEST_TIMEOUT"));
        }
        let connect_timeout = self.connect_timeout.unwrap_or(self.request_timeout.min(Duration::from_secs(2)));
        if connect_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout("the connect timeout"));
        }
        if let Some(cookie) = &self.cookie {
            cookie.check()?;
        }
        if self.revocation_poll_interval < Duration::from_millis(100) {
            return Err(ConfigError::PollInterval);
        }
        Ok(ClientConfig {
            remote_url,
            user_path: self.user_path,
            verify_mode,
            signing_key,
            verify: VerifySettings {
                algorithms: vec![self.algorithm],
                leeway: self.leeway,
                audience: self.audience,
                issuer: self.issuer,
                user_id_claim: self.user_id_claim,
            },
            auth_header_name: settings::parse_header_name(&self.auth_header_name)?,
            auth_header_types: settings::parse_header_types(&self.auth_header_types)?,
            mirror_ttl: self.mirror_ttl,
            mirror_cache_memory: self.mirror_cache_memory,
            token_cache_memory: self.token_cache_memory,
            request_timeout: self.request_timeout,
            connect_timeout,
            blacklist_on_logout: self.blacklist_on_logout,
            cookie: self.cookie,
            jwks_url,
            jwks_ttl: self.jwks_ttl,
            jwks_min_refetch: self.jwks_min_refetch,
            revocation_feed_token: self.revocation_feed_token,
            revocation_poll_interval: self.revocation_poll_interval,
        })
    }
}

/// Refresh-token cookie settings (EasyJWT 1.1 `REFRESH_TOKEN_IN_COOKIE` mode); start from
/// [`CookieConfig::default`] and change what you need.
#[derive(Debug, Clone)]
#[must_use]
pub struct CookieConfig {
    pub(crate) name: String,
    pub(crate) secure: bool,
    pub(crate) same_site: SameSite,
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
    pub(crate) max_age: Option<u64>,
    pub(crate) allowed_origins: Vec<String>,
}

impl Default for CookieConfig {
    /// `refresh_token`, `Secure`, `SameSite=Lax`, `Path=/`, no domain, a session cookie, any origin.
    fn default() -> Self {
        Self {
            name: "refresh_token".into(),
            secure: true,
            same_site: SameSite::Lax,
            path: "/".into(),
            domain: None,
            max_age: None,
            allowed_origins: Vec::new(),
        }
    }
}

impl CookieConfig {
    /// Cookie name (`AUTH_COOKIE_NAME`, default `refresh_token`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// `Secure` attribute (`AUTH_COOKIE_SECURE`, default true; turn off only for plain-HTTP
    /// development).
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// `SameSite` attribute (`AUTH_COOKIE_SAMESITE`, default `Lax`).
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// `Path` attribute (`AUTH_COOKIE_PATH`, default `/`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// `Domain` attribute (`AUTH_COOKIE_DOMAIN`, default none).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// `Max-Age` (`AUTH_COOKIE_MAX_AGE`, default none: a session cookie).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age.as_secs());
        self
    }

    /// Exact `scheme://host[:port]` origins allowed to call the cookie endpoints
    /// (`ALLOWED_AUTH_ORIGINS`; default: any).
    pub fn allowed_origins<I, T>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.allowed_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.same_site == SameSite::None && !self.secure {
            return Err(ConfigError::Cookie(
                "AUTH_COOKIE_SAMESITE=None needs AUTH_COOKIE_SECURE=true (browsers refuse it otherwise)".into(),
            ));
        }
        for origin in &self.allowed_origins {
            let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.trim_end_matches('/').contains(['?', '#'])
                && origin.matches('/').count() == 2;
            if !ok {
                return Err(ConfigError::Cookie(format!(
                    "ALLOWED_AUTH_ORIGINS entry {origin:?} is not scheme://host[:port]"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "config-test-key-0123456789abcdef0123";

    #[test]
    fn a_verification_mode_must_be_chosen() {
        let e = ClientConfig::builder("http://auth:8000").build().unwrap_err();
        assert_eq!(e, ConfigError::NoVerifyMode);
    }

    #[test]
    fn each_mode_is_explicit() {
        let c = ClientConfig::builder("http://auth:8000/").local_hmac(KEY).build().unwrap();
        assert_eq!(
            (c.verify_mode(), c.remote_url(), c.signing_key.is_some()),
            (VerifyMode::Local, "http://auth:8000", true)
        );
        let c = ClientConfig::builder("http://auth:8000").local_jwks().build().unwrap();
        assert_eq!((c.verify_mode(), c.signing_key.is_none()), (VerifyMode::Local, true));
        let c = ClientConfig::builder("http://auth:8000").remote().build().unwrap();
        assert_eq!(c.verify_mode(), VerifyMode::Remote);
    }

    #[test]
    fn bad_settings_are_typed_errors() {
        let b = || ClientConfig::builder("http://auth:8000").local_hmac(KEY);
        assert!(matches!(ClientConfig::builder("ftp://x").remote().build(), Err(ConfigError::RemoteUrl(_))));
        assert!(matches!(b().algorithm(Algorithm::RS256).build(), Err(ConfigError::KeyAlgorithm(_))));
        assert!(matches!(ClientConfig::builder("http://a").local_hmac("short").build(), Err(ConfigError::Setting(_))));
        assert!(matches!(b().request_timeout(Duration::ZERO).build(), Err(ConfigError::ZeroTimeout(_))));
        assert!(matches!(b().auth_header_types(Vec::<String>::new()).build(), Err(ConfigError::Setting(_))));
        let cookie = CookieConfig::default().same_site(SameSite::None).secure(false);
        assert!(matches!(b().refresh_token_in_cookie(cookie).build(), Err(ConfigError::Cookie(_))));
        let cookie = CookieConfig::default().allowed_origins(["https://app.example/path"]);
        assert!(matches!(b().refresh_token_in_cookie(cookie).build(), Err(ConfigError::Cookie(_))));
    }

    #[test]
    fn the_revocation_feed_is_polled_every_two_seconds_by_default() {
        let c = ClientConfig::builder("http://a").local_hmac(KEY).revocation_feed("feed-token").build().unwrap();
        assert_eq!(c.revocation_poll_interval, Duration::from_secs(2));
        let e = ClientConfig::builder("http://a").local_hmac(KEY).revocation_poll_interval(Duration::from_millis(99));
        assert_eq!(e.build().unwrap_err(), ConfigError::PollInterval);
    }

    #[test]
    fn django_header_name_form_is_accepted() {
        let c = ClientConfig::builder("http://a").local_hmac(KEY).auth_header_name("HTTP_X_AUTH").build().unwrap();
        assert_eq!(c.auth_header_name, "x-auth");
    }
}
