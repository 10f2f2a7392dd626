//! Client configuration: a plain struct for code that mounts the crate, and the clap arguments
//! (EASY_JWT environment names) the demo binary and services built on it parse.

use std::time::Duration;

use clap::{Args, ValueEnum};
use shared_user::VerifySettings;

/// How bearer tokens are checked on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum VerifyMode {
    /// In-process signature and claims check (shared secret); no network per request.
    #[default]
    Local,
    /// `POST /auth/token/verify/` on the auth-service for every request (EasyJWT behaviour).
    Remote,
}

/// Everything the client crate needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL of the auth-service, e.g. `http://127.0.0.1:8000`.
    pub remote_url: String,
    /// Path of the current-user endpoint on the auth-service (`/auth/user/`); a path containing
    /// `{id}` (the legacy `/auth/users/{id}/`) gets the user id substituted.
    pub user_path: String,
    /// Local or remote verification.
    pub verify_mode: VerifyMode,
    /// Shared secret for local HS* verification.
    pub signing_key: Option<Vec<u8>>,
    /// Claim checks (algorithm, leeway, audience, issuer, user id claim).
    pub verify: VerifySettings,
    /// Header carrying the bearer token.
    pub auth_header_name: String,
    /// Accepted schemes (case-sensitive); the first is used towards the auth-service.
    pub auth_header_types: Vec<String>,
    /// How long a mirrored user is trusted before it is fetched again.
    pub mirror_ttl: Duration,
    /// Fresh mirrored users kept in memory (0 turns the cache off: every request reads the
    /// mirror database).
    pub mirror_cache_size: usize,
    /// Access tokens already verified in local mode, kept in memory until they expire so a
    /// re-sent token costs a lookup instead of a signature check (0 turns the cache off).
    pub token_cache_size: usize,
    /// Timeout of each call to the auth-service.
    pub request_timeout: Duration,
    /// Connect timeout of each call to the auth-service.
    pub connect_timeout: Duration,
    /// Best-effort blacklist of the refresh token on logout.
    pub blacklist_on_logout: bool,
    /// Browser mode: the refresh token lives in an HttpOnly cookie, CSRF-protected.
    pub cookie: Option<CookieConfig>,
    /// JWKS location for local verification without a shared secret (absolute URL, or a path
    /// on the auth-service; default `/.well-known/jwks.json`).
    pub jwks_url: Option<String>,
    /// How long a fetched JWKS is used before it is fetched again.
    pub jwks_ttl: Duration,
    /// Least time between two refetches caused by tokens with an unknown `kid`.
    pub jwks_min_refetch: Duration,
    /// Shared secret of the auth-service's revocation feed (`REVOCATION_FEED_TOKEN`); when set
    /// (local mode), the feed is polled and revoked users' older tokens are refused.
    pub revocation_feed_token: Option<String>,
    /// How often the revocation feed is polled (`REVOCATION_POLL_INTERVAL`, default 2 s).
    pub revocation_poll_interval: Duration,
}

/// Refresh-token cookie settings (EasyJWT 1.1 `REFRESH_TOKEN_IN_COOKIE` mode).
#[derive(Debug, Clone)]
pub struct CookieConfig {
    /// Cookie name (`AUTH_COOKIE_NAME`).
    pub name: String,
    /// `Secure` attribute (`AUTH_COOKIE_SECURE`); on by default, turn off only for plain-HTTP development.
    pub secure: bool,
    /// `SameSite` attribute: `Lax`, `Strict` or `None` (`AUTH_COOKIE_SAMESITE`).
    pub same_site: String,
    /// `Path` attribute (`AUTH_COOKIE_PATH`).
    pub path: String,
    /// `Domain` attribute (`AUTH_COOKIE_DOMAIN`).
    pub domain: Option<String>,
    /// `Max-Age` in seconds (`AUTH_COOKIE_MAX_AGE`); none makes a session cookie.
    pub max_age: Option<u64>,
    /// Exact `scheme://host[:port]` origins allowed to call the cookie endpoints (`ALLOWED_AUTH_ORIGINS`).
    pub allowed_origins: Vec<String>,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            name: "refresh_token".into(),
            secure: true,
            same_site: "Lax".into(),
            path: "/".into(),
            domain: None,
            max_age: None,
            allowed_origins: Vec::new(),
        }
    }
}

impl ClientConfig {
    /// Defaults for an auth-service at `remote_url`, local verification with `signing_key`.
    pub fn new(remote_url: impl Into<String>, signing_key: Option<Vec<u8>>) -> Self {
        let verify_mode = if signing_key.is_some() { VerifyMode::Local } else { VerifyMode::Remote };
        Self {
            remote_url: remote_url.into().trim_end_matches('/').to_owned(),
            user_path: "/auth/user/".into(),
            verify_mode,
            signing_key,
            verify: VerifySettings::default(),
            auth_header_name: "Authorization".into(),
            auth_header_types: vec!["Bearer".into()],
            mirror_ttl: Duration::from_secs(300),
            mirror_cache_size: 10_000,
            token_cache_size: 10_000,
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            blacklist_on_logout: true,
            cookie: None,
            jwks_url: None,
            jwks_ttl: Duration::from_secs(600),
            jwks_min_refetch: Duration::from_secs(30),
            revocation_feed_token: None,
            revocation_poll_interval: Duration::from_secs(2),
        }
    }
}

/// Command line / environment form of [`ClientConfig`].
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Base URL of the auth-service.
    #[arg(long, env = "REMOTE_AUTH_SERVICE_URL", default_value = "http://127.0.0.1:8000")]
    pub remote_auth_service_url: String,
    /// Current-user path on the auth-service (`{id}` is replaced by the user id).
    #[arg(long, env = "REMOTE_AUTH_SERVICE_USER_PATH", default_value = "/auth/user/")]
    pub remote_auth_service_user_path: String,
    /// `local` (in-process check with SIGNING_KEY) or `remote` (verify call per request).
    #[arg(long, env = "VERIFY_MODE", value_enum, default_value_t = VerifyMode::Local)]
    pub verify_mode: VerifyMode,
    /// JWKS URL for local verification of asymmetric tokens (default: the auth-service's
    /// `/.well-known/jwks.json`); used when no SIGNING_KEY is given.
    #[arg(long, env = "JWK_URL")]
    pub jwk_url: Option<String>,
    /// How long a fetched JWKS is trusted.
    #[arg(long, env = "JWKS_CACHE_TTL", default_value = "10m", value_parser = parse_duration)]
    pub jwks_cache_ttl: Duration,
    /// Shared HMAC secret (same as the auth-service's) for local verification.
    #[arg(long, env = "SIGNING_KEY", hide_env_values = true)]
    pub signing_key: Option<String>,
    /// Algorithm of the shared secret: HS256, HS384 or HS512 (EdDSA, ES256 and RS256 tokens are
    /// checked against the JWKS, with no SIGNING_KEY).
    #[arg(long, env = "ALGORITHM", default_value = "HS256")]
    pub algorithm: String,
    /// Clock skew allowance in seconds.
    #[arg(long, env = "LEEWAY", default_value_t = 0)]
    pub leeway: u64,
    /// Required `aud`.
    #[arg(long, env = "AUDIENCE")]
    pub audience: Option<String>,
    /// Required `iss`.
    #[arg(long, env = "ISSUER")]
    pub issuer: Option<String>,
    /// Name of the user id claim.
    #[arg(long, env = "USER_ID_CLAIM", default_value = "user_id")]
    pub user_id_claim: String,
    /// Header carrying the bearer token.
    #[arg(long, env = "AUTH_HEADER_NAME", default_value = "Authorization")]
    pub auth_header_name: String,
    /// Accepted schemes, comma separated.
    #[arg(long, env = "AUTH_HEADER_TYPES", default_value = "Bearer", value_delimiter = ',')]
    pub auth_header_types: Vec<String>,
    /// How long a mirrored user is used before it is fetched again (`300`, `5m`...).
    #[arg(long, env = "MIRROR_TTL", default_value = "5m", value_parser = parse_duration)]
    pub mirror_ttl: Duration,
    /// Fresh mirrored users kept in memory, so a request needs no database read (0: off).
    #[arg(long, env = "MIRROR_CACHE_SIZE", default_value_t = 10_000)]
    pub mirror_cache_size: usize,
    /// Verified access tokens kept in memory until they expire (local mode; 0: off).
    #[arg(long, env = "TOKEN_CACHE_SIZE", default_value_t = 10_000)]
    pub token_cache_size: usize,
    /// Timeout of each call to the auth-service.
    #[arg(long, env = "REMOTE_AUTH_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub remote_auth_request_timeout: Duration,
    /// Blacklist the refresh token on the auth-service at logout (best effort).
    #[arg(long, env = "BLACKLIST_ON_LOGOUT", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), default_value_t = true)]
    pub blacklist_on_logout: bool,
    /// Keep the refresh token in an HttpOnly cookie instead of the JSON body (CSRF-protected).
    #[arg(long, env = "REFRESH_TOKEN_IN_COOKIE", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false)]
    pub refresh_token_in_cookie: bool,
    /// Name of the refresh-token cookie.
    #[arg(long, env = "AUTH_COOKIE_NAME", default_value = "refresh_token")]
    pub auth_cookie_name: String,
    /// `Secure` attribute of the cookie (turn off only for plain-HTTP development).
    #[arg(long, env = "AUTH_COOKIE_SECURE", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), default_value_t = true)]
    pub auth_cookie_secure: bool,
    /// `SameSite` attribute of the cookie: Lax, Strict or None.
    #[arg(long, env = "AUTH_COOKIE_SAMESITE", default_value = "Lax")]
    pub auth_cookie_samesite: String,
    /// `Path` attribute of the cookie.
    #[arg(long, env = "AUTH_COOKIE_PATH", default_value = "/")]
    pub auth_cookie_path: String,
    /// `Domain` attribute of the cookie.
    #[arg(long, env = "AUTH_COOKIE_DOMAIN")]
    pub auth_cookie_domain: Option<String>,
    /// `Max-Age` of the cookie in seconds (default: a session cookie).
    #[arg(long, env = "AUTH_COOKIE_MAX_AGE")]
    pub auth_cookie_max_age: Option<u64>,
    /// Origins (`scheme://host[:port]`, comma separated) allowed to call the cookie endpoints.
    #[arg(long, env = "ALLOWED_AUTH_ORIGINS", value_delimiter = ',')]
    pub allowed_auth_origins: Vec<String>,
    /// Shared secret of the auth-service's revocation feed (same value as there). Set (local
    /// mode): the feed is polled and tokens issued before a user's logout-all, password change or
    /// deactivation are refused within two poll intervals. Unset: no polling.
    #[arg(long, env = "REVOCATION_FEED_TOKEN", hide_env_values = true)]
    pub revocation_feed_token: Option<String>,
    /// How often the revocation feed is polled.
    #[arg(long, env = "REVOCATION_POLL_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub revocation_poll_interval: Duration,
}

pub use shared_user::settings::parse_duration;

impl ClientArgs {
    /// Validates and converts into a [`ClientConfig`].
    pub fn into_config(self) -> Result<ClientConfig, String> {
        let url = self.remote_auth_service_url.trim_end_matches('/').to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("REMOTE_AUTH_SERVICE_URL must be an http:// or https:// URL (got {url:?})"));
        }
        let algorithm = shared_user::settings::parse_algorithm(&self.algorithm)?;
        let signing_key = self.signing_key.filter(|k| !k.is_empty());
        if let Some(key) = &signing_key {
            if !shared_user::settings::is_hmac(algorithm) {
                return Err(format!(
                    "SIGNING_KEY is an HMAC secret and cannot check ALGORITHM={algorithm:?} tokens; unset it to use the auth-service's JWKS"
                ));
            }
            shared_user::settings::check_signing_key(key.as_bytes())?;
        }
        if signing_key.is_some() && self.jwk_url.is_some() {
            return Err("set either SIGNING_KEY (HS* tokens) or JWK_URL (asymmetric tokens), not both".into());
        }
        if self.remote_auth_request_timeout.is_zero() {
            return Err("REMOTE_AUTH_REQUEST_TIMEOUT must be positive".into());
        }
        let mut config = ClientConfig::new(url, signing_key.map(String::into_bytes));
        config.jwks_url = self.jwk_url;
        config.jwks_ttl = self.jwks_cache_ttl;
        config.verify_mode = self.verify_mode;
        config.user_path = self.remote_auth_service_user_path;
        config.verify = VerifySettings {
            algorithms: vec![algorithm],
            leeway: self.leeway,
            audience: self.audience,
            issuer: self.issuer,
            user_id_claim: self.user_id_claim,
        };
        config.auth_header_name = shared_user::settings::parse_header_name(&self.auth_header_name)?;
        config.auth_header_types = shared_user::settings::parse_header_types(&self.auth_header_types)?;
        config.mirror_ttl = self.mirror_ttl;
        config.mirror_cache_size = self.mirror_cache_size;
        config.token_cache_size = self.token_cache_size;
        config.request_timeout = self.remote_auth_request_timeout;
        config.connect_timeout = self.remote_auth_request_timeout.min(Duration::from_secs(2));
        config.blacklist_on_logout = self.blacklist_on_logout;
        if self.revocation_poll_interval < Duration::from_millis(100) {
            return Err("REVOCATION_POLL_INTERVAL must be at least 100ms".into());
        }
        config.revocation_poll_interval = self.revocation_poll_interval;
        config.revocation_feed_token = self.revocation_feed_token.filter(|t| !t.is_empty());
        if self.refresh_token_in_cookie {
            if !matches!(self.auth_cookie_samesite.as_str(), "Lax" | "Strict" | "None") {
                return Err(format!(
                    "AUTH_COOKIE_SAMESITE must be Lax, Strict or None (got {:?})",
                    self.auth_cookie_samesite
                ));
            }
            if self.auth_cookie_samesite == "None" && !self.auth_cookie_secure {
                return Err(
                    "AUTH_COOKIE_SAMESITE=None needs AUTH_COOKIE_SECURE=true (browsers refuse it otherwise)".into()
                );
            }
            for origin in &self.allowed_auth_origins {
                let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.trim_end_matches('/').contains(['?', '#'])
                    && origin.matches('/').count() == 2;
                if !ok {
                    return Err(format!("ALLOWED_AUTH_ORIGINS entry {origin:?} is not scheme://host[:port]"));
                }
            }
            config.cookie = Some(CookieConfig {
                name: self.auth_cookie_name,
                secure: self.auth_cookie_secure,
                same_site: self.auth_cookie_samesite,
                path: self.auth_cookie_path,
                domain: self.auth_cookie_domain,
                max_age: self.auth_cookie_max_age,
                allowed_origins: self.allowed_auth_origins,
            });
        }
        Ok(config)
    }
}
