//! The client crate's configuration: [`ClientConfig`], built and checked by
//! [`ClientConfigBuilder`], with an explicit [`VerifyMode`].

use std::time::Duration;

use jsonwebtoken::Algorithm;
use shared_user::VerifySettings;
use shared_user::settings;

use crate::settings::{ClientSettings, ConfigError, SameSite, SslVerify, VerifyMode};
use crate::tls::{Tls, TlsFiles};

/// Everything the client crate needs. Build it with [`ClientConfig::builder`].
#[derive(Clone)]
pub struct ClientConfig {
    pub(crate) remote_url: String,
    pub(crate) user_path: String,
    pub(crate) verify_mode: VerifyMode,
    pub(crate) signing_key: Option<Vec<u8>>,
    /// Earlier shared secrets still accepted (`SIGNING_KEY_PREVIOUS`).
    pub(crate) previous_signing_keys: Vec<Vec<u8>>,
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
    /// Find the JWKS through the discovery document of the `ISSUER` URL.
    pub(crate) jwks_discovery: bool,
    pub(crate) jwks_ttl: Duration,
    pub(crate) jwks_min_refetch: Duration,
    pub(crate) revocation_feed_token: Option<String>,
    pub(crate) revocation_poll_interval: Duration,
    /// Long poll of the feed (`REVOCATION_FEED_WAIT`; zero: plain polling).
    pub(crate) revocation_feed_wait: Duration,
    /// What the client trusts and presents towards the auth-service.
    pub(crate) tls: Tls,
}

impl ClientConfig {
    /// A builder for an auth-service at `remote_url` (e.g. `http://127.0.0.1:8000`). Pick the
    /// verification mode with [`local_hmac`](ClientConfigBuilder::local_hmac),
    /// [`local_jwks`](ClientConfigBuilder::local_jwks) or [`remote`](ClientConfigBuilder::remote).
    pub fn builder(remote_url: impl Into<String>) -> ClientConfigBuilder {
        let settings = ClientSettings { remote_auth_service_url: remote_url.into(), ..ClientSettings::default() };
        ClientConfigBuilder::from_settings(settings)
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
    Discovery,
    Remote,
}

/// Builds a [`ClientConfig`]; [`build`](Self::build) checks every setting. It starts from
/// [`ClientSettings::default`] (`MIRROR_TTL=5m`, `TOKEN_CACHE_MEMORY=16MiB`, ...).
#[derive(Clone)]
#[must_use]
pub struct ClientConfigBuilder {
    settings: ClientSettings,
    mode: Option<Mode>,
    cookie: Option<CookieConfig>,
    connect_timeout: Option<Duration>,
    jwks_min_refetch: Duration,
    previous_keys: Vec<Vec<u8>>,
}

/// Default of [`ClientConfigBuilder::jwks_min_refetch`] (not a setting of the binary).
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(10);

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never a secret: no signing keys, no feed token.
        f.debug_struct("ClientConfig")
            .field("remote_url", &self.remote_url)
            .field("verify_mode", &self.verify_mode)
            .field("verify", &self.verify)
            .field("jwks_url", &self.jwks_url)
            .field("jwks_discovery", &self.jwks_discovery)
            .field("hmac_keys", &(self.signing_key.iter().count() + self.previous_signing_keys.len()))
            .field("revocation_feed", &self.revocation_feed_token.is_some())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ClientConfigBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the signing key.
        f.debug_struct("ClientConfigBuilder")
            .field("remote_url", &self.settings.remote_auth_service_url)
            .finish_non_exhaustive()
    }
}

impl ClientConfigBuilder {
    /// A builder over `settings`, with no verification mode chosen yet (the mode settings,
    /// `VERIFY_MODE`, `SIGNING_KEY` and `JWK_URL`, are read by [`ClientSettings::into_config`]).
    fn from_settings(settings: ClientSettings) -> Self {
        Self {
            settings,
            mode: None,
            cookie: None,
            connect_timeout: None,
            jwks_min_refetch: JWKS_MIN_REFETCH,
            previous_keys: Vec::new(),
        }
    }

    /// Local verification with the auth-service's shared HMAC secret (`SIGNING_KEY`, 32+ bytes;
    /// HS256 unless [`algorithm`](Self::algorithm) says HS384 or HS512).
    pub fn local_hmac(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.mode = Some(Mode::Hmac(key.into()));
        self
    }

    /// With [`local_hmac`](Self::local_hmac): earlier shared secrets whose tokens are still
    /// accepted (`SIGNING_KEY_PREVIOUS`), so the auth-service's secret can change without a
    /// refused token. Each is checked like the current one.
    pub fn previous_hmac_keys(mut self, keys: impl IntoIterator<Item = impl Into<Vec<u8>>>) -> Self {
        self.previous_keys = keys.into_iter().map(Into::into).collect();
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

    /// Local verification against the JWKS named by the issuer's discovery document
    /// (`{ISSUER}/.well-known/openid-configuration`, read once; its `issuer` must be exactly
    /// [`issuer`](Self::issuer)), for an issuer known by its URL alone. The issuer must be an
    /// `http://` or `https://` URL; the document and the JWKS are fetched with the same client
    /// (and TLS trust) as every other call. `VERIFY_MODE=local` with an `ISSUER` URL and
    /// neither `SIGNING_KEY` nor `JWK_URL` chooses this.
    pub fn local_jwks_from_issuer(mut self) -> Self {
        self.mode = Some(Mode::Discovery);
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
        self.settings.algorithm = algorithm;
        self
    }

    /// Path of the current-user endpoint (`REMOTE_AUTH_SERVICE_USER_PATH`, default
    /// `/auth/user/`); a path containing `{id}` (the legacy `/auth/users/{id}/`) gets the id.
    pub fn user_path(mut self, path: impl Into<String>) -> Self {
        self.settings.remote_auth_service_user_path = path.into();
        self
    }

    /// Clock skew allowance (`LEEWAY`, default 0 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.settings.leeway = leeway.as_secs();
        self
    }

    /// Required `aud` claim (`AUDIENCE`).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.settings.audience = Some(audience.into());
        self
    }

    /// Required `iss` claim (`ISSUER`).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.settings.issuer = Some(issuer.into());
        self
    }

    /// Name of the user id claim (`USER_ID_CLAIM`, default `user_id`).
    pub fn user_id_claim(mut self, claim: impl Into<String>) -> Self {
        self.settings.user_id_claim = claim.into();
        self
    }

    /// Header carrying the bearer token (`AUTH_HEADER_NAME`, default `Authorization`; Django's
    /// `HTTP_AUTHORIZATION` form is accepted).
    pub fn auth_header_name(mut self, name: impl Into<String>) -> Self {
        self.settings.auth_header_name = name.into();
        self
    }

    /// Accepted schemes, case-sensitive (`AUTH_HEADER_TYPES`, default `Bearer`); the first is
    /// used towards the auth-service.
    pub fn auth_header_types<I, T>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.settings.auth_header_types = types.into_iter().map(Into::into).collect();
        self
    }

    /// How long a mirrored user is trusted before it is fetched again (`MIRROR_TTL`, 5 min).
    pub fn mirror_ttl(mut self, ttl: Duration) -> Self {
        self.settings.mirror_ttl = ttl;
        self
    }

    /// Memory for mirrored users kept in memory, in bytes (`MIRROR_CACHE_MEMORY`, 64 MiB:
    /// about 400,000 users at some 170 bytes each when users share their sets of access groups,
    /// each distinct set being kept once). The least recently useful users leave first; 0 turns
    /// the cache off and every request reads the mirror database.
    pub fn mirror_cache_memory(mut self, bytes: u64) -> Self {
        self.settings.mirror_cache_memory = bytes;
        self
    }

    /// Memory for access tokens already verified in local mode, kept until they expire, in
    /// bytes (`TOKEN_CACHE_MEMORY`, 16 MiB: about 150,000 tokens, whatever their length); 0 turns
    /// the cache off and every request checks the signature.
    pub fn token_cache_memory(mut self, bytes: u64) -> Self {
        self.settings.token_cache_memory = bytes;
        self
    }

    /// Timeout of each call to the auth-service (`REMOTE_AUTH_REQUEST_TIMEOUT`, 10 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.settings.remote_auth_request_timeout = timeout;
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
        self.settings.blacklist_on_logout = on;
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
        self.settings.jwks_cache_ttl = ttl;
        self
    }

    /// Least time between two JWKS refetches caused by tokens with an unknown `kid`, and the
    /// shortest time a JWKS is cached whatever its `Cache-Control` says (10 s).
    pub fn jwks_min_refetch(mut self, interval: Duration) -> Self {
        self.jwks_min_refetch = interval;
        self
    }

    /// Local mode: poll the auth-service's revocation feed with this shared secret (its
    /// `REVOCATION_FEED_TOKEN`), so tokens issued before a user's logout-all, password change or
    /// deactivation are refused within milliseconds (the feed is long-polled; within two poll
    /// intervals when it can only be polled). Without it (or an empty one) nothing
    /// is polled and revocations reach this client only when tokens expire.
    pub fn revocation_feed(mut self, token: impl Into<String>) -> Self {
        self.settings.revocation_feed_token = Some(token.into()).filter(|t| !t.is_empty());
        self
    }

    /// How often the revocation feed is polled when it is not long-polled, and after a failed
    /// poll (2 s; at least 100 ms).
    pub fn revocation_poll_interval(mut self, interval: Duration) -> Self {
        self.settings.revocation_poll_interval = interval;
        self
    }

    /// Long poll of the revocation feed (`REVOCATION_FEED_WAIT`, 25 s): one request held open
    /// by the auth-service until a revocation arrives, so it is applied within milliseconds;
    /// zero polls every [`revocation_poll_interval`](Self::revocation_poll_interval) instead. An
    /// auth-service that does not long-poll is polled at that interval anyway.
    pub fn revocation_feed_wait(mut self, wait: Duration) -> Self {
        self.settings.revocation_feed_wait = wait;
        self
    }

    /// Trust exactly the CA certificates of this PEM bundle for the auth-service's
    /// certificate, and no system root (`REMOTE_AUTH_CA_FILE`; a private CA). Without it (and
    /// without a path in [`ssl_verify`](Self::ssl_verify)) the system roots are trusted.
    pub fn ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.settings.remote_auth_ca_file = Some(path.into());
        self
    }

    /// EasyJWT's `REMOTE_AUTH_SSL_VERIFY`: [`SslVerify::Verify`] (the default),
    /// [`SslVerify::CaFile`] (same as [`ca_file`](Self::ca_file); both with different paths is
    /// an error) or [`SslVerify::Off`] (no check; only with [`dev`](Self::dev)).
    pub fn ssl_verify(mut self, verify: SslVerify) -> Self {
        self.settings.remote_auth_ssl_verify = verify;
        self
    }

    /// Present this client certificate to the auth-service (mutual TLS): a PEM certificate
    /// chain and its PEM private key (`REMOTE_AUTH_CLIENT_CERT_FILE`, `REMOTE_AUTH_CLIENT_KEY_FILE`).
    pub fn client_certificate(
        mut self,
        cert_file: impl Into<std::path::PathBuf>,
        key_file: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.settings.remote_auth_client_cert_file = Some(cert_file.into());
        self.settings.remote_auth_client_key_file = Some(key_file.into());
        self
    }

    /// Development mode (`GATEHOUSE_DEV`, default off): allows [`SslVerify::Off`].
    pub fn dev(mut self, on: bool) -> Self {
        self.settings.dev = on;
        self
    }

    /// Checks every setting (the TLS files are read here) and returns the configuration.
    pub fn build(self) -> Result<ClientConfig, ConfigError> {
        let given = self.settings;
        let remote_url = given.remote_auth_service_url.trim().trim_end_matches('/').to_owned();
        if !(remote_url.starts_with("http://") || remote_url.starts_with("https://")) {
            return Err(ConfigError::RemoteUrl(remote_url));
        }
        let mode = self.mode.ok_or(ConfigError::NoVerifyMode)?;
        let discovery = matches!(mode, Mode::Discovery);
        if discovery && !given.issuer.as_deref().is_some_and(is_web_url) {
            return Err(ConfigError::IssuerNotUrl(given.issuer.unwrap_or_default()));
        }
        let (verify_mode, signing_key, jwks_url) = match mode {
            Mode::Hmac(key) => {
                if !settings::is_hmac(given.algorithm) {
                    return Err(ConfigError::KeyAlgorithm(given.algorithm));
                }
                settings::check_signing_key(&key)?;
                for previous in &self.previous_keys {
                    settings::check_signing_key(previous).map_err(|e| {
                        settings::SettingError(e.0.replacen(
                            "SIGNING_KEY ",
                            "SIGNING_KEY_PREVIOUS holds a secret that ",
                            1,
                        ))
                    })?;
                }
                (VerifyMode::Local, Some(key), None)
            }
            _ if !self.previous_keys.is_empty() => return Err(ConfigError::PreviousWithoutKey),
            Mode::Jwks(url) => (VerifyMode::Local, None, url),
            Mode::Discovery => (VerifyMode::Local, None, None),
            Mode::Remote => (VerifyMode::Remote, None, None),
        };
        let request_timeout = given.remote_auth_request_timeout;
        if request_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout("REMOTE_AUTH_REQUEST_TIMEOUT"));
        }
        let connect_timeout = self.connect_timeout.unwrap_or(request_timeout.min(Duration::from_secs(2)));
        if connect_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout("the connect timeout"));
        }
        if let Some(cookie) = &self.cookie {
            cookie.check()?;
        }
        if given.revocation_poll_interval < Duration::from_millis(100) {
            return Err(ConfigError::PollInterval);
        }
        let tls = Tls::load(TlsFiles {
            ca_file: given.remote_auth_ca_file.as_deref(),
            ssl_verify: &given.remote_auth_ssl_verify,
            client_cert: given.remote_auth_client_cert_file.as_deref(),
            client_key: given.remote_auth_client_key_file.as_deref(),
            dev: given.dev,
        })?;
        Ok(ClientConfig {
            remote_url,
            user_path: given.remote_auth_service_user_path,
            verify_mode,
            signing_key,
            previous_signing_keys: self.previous_keys,
            verify: VerifySettings {
                algorithms: vec![given.algorithm],
                leeway: given.leeway,
                audience: given.audience,
                issuer: given.issuer,
                user_id_claim: given.user_id_claim,
            },
            auth_header_name: settings::parse_header_name(&given.auth_header_name)?,
            auth_header_types: settings::parse_header_types(&given.auth_header_types)?,
            mirror_ttl: given.mirror_ttl,
            mirror_cache_memory: given.mirror_cache_memory,
            token_cache_memory: given.token_cache_memory,
            request_timeout,
            connect_timeout,
            blacklist_on_logout: given.blacklist_on_logout,
            cookie: self.cookie,
            jwks_url,
            jwks_discovery: discovery,
            jwks_ttl: given.jwks_cache_ttl,
            jwks_min_refetch: self.jwks_min_refetch,
            revocation_feed_token: given.revocation_feed_token.filter(|t| !t.is_empty()),
            revocation_poll_interval: given.revocation_poll_interval,
            revocation_feed_wait: given.revocation_feed_wait,
            tls,
        })
    }
}

/// An `http://` or `https://` URL (an issuer whose discovery document can be read).
fn is_web_url(s: &str) -> bool {
    s.parse::<axum::http::Uri>()
        .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some())
}

impl ClientSettings {
    /// Checks the settings and turns them into a [`ClientConfig`] (through its builder, so
    /// settings and the builder accept exactly the same values). The verification mode comes
    /// from `VERIFY_MODE`, `SIGNING_KEY` (local HMAC) and `JWK_URL` (local JWKS; both set is an
    /// error); the cookie settings apply when `REFRESH_TOKEN_IN_COOKIE` is on. With the `cli`
    /// feature, a replaced setting still set in the environment (`MIRROR_CACHE_SIZE`,
    /// `TOKEN_CACHE_SIZE`) is logged as a warning that names its successor.
    pub fn into_config(self) -> Result<ClientConfig, ConfigError> {
        #[cfg(feature = "cli")]
        crate::cli::warn_replaced_settings();
        let mut given = self;
        let signing_key = given.signing_key.take().filter(|k| !k.is_empty());
        let previous: Vec<Vec<u8>> = given
            .signing_key_previous
            .take()
            .map(|list| {
                list.split(',').map(str::trim).filter(|k| !k.is_empty()).map(|k| k.as_bytes().to_vec()).collect()
            })
            .unwrap_or_default();
        let jwk_url = given.jwk_url.take();
        let cookie = given.refresh_token_in_cookie.then(|| {
            let mut cookie = CookieConfig::default()
                .name(given.auth_cookie_name.clone())
                .secure(given.auth_cookie_secure)
                .same_site(given.auth_cookie_samesite)
                .path(given.auth_cookie_path.clone())
                .allowed_origins(given.allowed_auth_origins.clone());
            if let Some(domain) = given.auth_cookie_domain.clone() {
                cookie = cookie.domain(domain);
            }
            if let Some(max_age) = given.auth_cookie_max_age {
                cookie = cookie.max_age(Duration::from_secs(max_age));
            }
            cookie
        });
        let verify_mode = given.verify_mode;
        let issuer_url = given.issuer.as_deref().is_some_and(is_web_url);
        let mut builder = ClientConfigBuilder::from_settings(given);
        builder = match (verify_mode, signing_key, jwk_url) {
            // Remote mode checks nothing itself: the secrets are not used (nor refused).
            (VerifyMode::Remote, _, _) => builder.remote(),
            (VerifyMode::Local, Some(_), Some(_)) => {
                return Err(ConfigError::Setting(settings::SettingError::new(
                    "set either SIGNING_KEY (HS* tokens) or JWK_URL (asymmetric tokens), not both",
                )));
            }
            (VerifyMode::Local, Some(key), None) => builder.local_hmac(key.into_bytes()).previous_hmac_keys(previous),
            (VerifyMode::Local, None, Some(url)) => builder.local_jwks_at(url).previous_hmac_keys(previous),
            (VerifyMode::Local, None, None) if issuer_url => {
                builder.local_jwks_from_issuer().previous_hmac_keys(previous)
            }
            (VerifyMode::Local, None, None) => builder.local_jwks().previous_hmac_keys(previous),
        };
        if let Some(cookie) = cookie {
            builder = builder.refresh_token_in_cookie(cookie);
        }
        builder.build()
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
    /// `refresh_token`, `Secure`, `SameSite=Lax`, `Path=/`, no domain, a session cookie, any
    /// origin: the [`defaults`](crate::defaults) of the `AUTH_COOKIE_*` settings.
    fn default() -> Self {
        let settings = ClientSettings::default();
        Self {
            name: settings.auth_cookie_name,
            secure: settings.auth_cookie_secure,
            same_site: settings.auth_cookie_samesite,
            path: settings.auth_cookie_path,
            domain: settings.auth_cookie_domain,
            max_age: settings.auth_cookie_max_age,
            allowed_origins: settings.allowed_auth_origins,
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
    fn previous_secrets_need_a_current_one_and_are_checked_like_it() {
        let earlier = "an-earlier-secret-0123456789abcdef0123";
        let c = ClientConfig::builder("http://a").local_hmac(KEY).previous_hmac_keys([earlier]).build().unwrap();
        assert_eq!(c.previous_signing_keys, [earlier.as_bytes().to_vec()]);
        let e = ClientConfig::builder("http://a").local_jwks().previous_hmac_keys([earlier]).build().unwrap_err();
        assert_eq!(e, ConfigError::PreviousWithoutKey);
        let e = ClientConfig::builder("http://a").local_hmac(KEY).previous_hmac_keys(["changeme"]).build().unwrap_err();
        assert!(
            e.to_string().starts_with("SIGNING_KEY_PREVIOUS holds a secret that is a development placeholder"),
            "{e}"
        );
        // From the settings: a comma-separated list, blanks ignored.
        let settings = ClientSettings {
            signing_key: Some(KEY.into()),
            signing_key_previous: Some(format!(" {earlier}, ,{KEY}")),
            ..ClientSettings::default()
        };
        let c = settings.into_config().unwrap();
        assert_eq!(c.previous_signing_keys, [earlier.as_bytes().to_vec(), KEY.as_bytes().to_vec()]);
        assert!(!format!("{c:?}").contains(earlier), "no secret in Debug: {c:?}");
    }

    #[test]
    fn django_header_name_form_is_accepted() {
        let c = ClientConfig::builder("http://a").local_hmac(KEY).auth_header_name("HTTP_X_AUTH").build().unwrap();
        assert_eq!(c.auth_header_name, "x-auth");
    }
}
