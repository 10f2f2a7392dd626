//! Command line and environment form of [`ClientConfig`] (EASY_JWT variable names), for the
//! demo binary and services that want the same flags. Behind the `cli` feature.

use std::time::Duration;

use clap::Args;
use shared_user::settings::SettingError;

use crate::config::{ClientConfig, ConfigError, CookieConfig, VerifyMode};

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
    /// Memory for mirrored users kept in memory, so a request needs no database read
    /// (`64MiB`, `200MB`, bytes; 0: off).
    #[arg(long, env = "MIRROR_CACHE_MEMORY", default_value = "64MiB", value_parser = parse_bytes)]
    pub mirror_cache_memory: u64,
    /// Memory for verified access tokens kept until they expire (local mode; 0: off).
    #[arg(long, env = "TOKEN_CACHE_MEMORY", default_value = "16MiB", value_parser = parse_bytes)]
    pub token_cache_memory: u64,
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

/// Settings an earlier version read and their successors: still set, they would be ignored
/// without a word, so [`ClientArgs::into_config`] warns about each one.
pub const REPLACED_SETTINGS: [(&str, &str); 2] = [
    ("MIRROR_CACHE_SIZE", "MIRROR_CACHE_MEMORY (a memory budget such as 64MiB)"),
    ("TOKEN_CACHE_SIZE", "TOKEN_CACHE_MEMORY (a memory budget such as 16MiB)"),
];

/// One warning line for each replaced setting still set in the environment, naming its successor.
fn warn_replaced_settings() {
    for (old, successor) in REPLACED_SETTINGS {
        if std::env::var_os(old).is_some() {
            tracing::warn!("{old} is set but no longer read: it was replaced by {successor}");
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, SettingError> {
    shared_user::settings::parse_duration(s)
}

/// `64MiB`, `200 MB`, `1GiB` or a number of bytes.
fn parse_bytes(s: &str) -> Result<u64, SettingError> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| SettingError::new(format!("not a size such as 64MiB ({e})")))
}

impl ClientArgs {
    /// Checks the settings and turns them into a [`ClientConfig`] (through its builder, so
    /// the flags and the library accept exactly the same values). A replaced setting still set
    /// in the environment (`MIRROR_CACHE_SIZE`, `TOKEN_CACHE_SIZE`) is logged as a warning that
    /// names its successor.
    pub fn into_config(self) -> Result<ClientConfig, ConfigError> {
        warn_replaced_settings();
        let algorithm = shared_user::settings::parse_algorithm(&self.algorithm)?;
        let signing_key = self.signing_key.filter(|k| !k.is_empty());
        let mut builder = ClientConfig::builder(self.remote_auth_service_url);
        builder = match (self.verify_mode, signing_key, self.jwk_url) {
            (VerifyMode::Remote, _, _) => builder.remote(),
            (VerifyMode::Local, Some(_), Some(_)) => {
                return Err(ConfigError::Setting(SettingError::new(
                    "set either SIGNING_KEY (HS* tokens) or JWK_URL (asymmetric tokens), not both",
                )));
            }
            (VerifyMode::Local, Some(key), None) => builder.local_hmac(key.into_bytes()),
            (VerifyMode::Local, None, Some(url)) => builder.local_jwks_at(url),
            (VerifyMode::Local, None, None) => builder.local_jwks(),
        };
        builder = builder
            .algorithm(algorithm)
            .jwks_ttl(self.jwks_cache_ttl)
            .user_path(self.remote_auth_service_user_path)
            .leeway(Duration::from_secs(self.leeway))
            .user_id_claim(self.user_id_claim)
            .auth_header_name(self.auth_header_name)
            .auth_header_types(self.auth_header_types)
            .mirror_ttl(self.mirror_ttl)
            .mirror_cache_memory(self.mirror_cache_memory)
            .token_cache_memory(self.token_cache_memory)
            .request_timeout(self.remote_auth_request_timeout)
            .blacklist_on_logout(self.blacklist_on_logout)
            .revocation_poll_interval(self.revocation_poll_interval);
        if let Some(token) = self.revocation_feed_token {
            builder = builder.revocation_feed(token);
        }
        if let Some(audience) = self.audience {
            builder = builder.audience(audience);
        }
        if let Some(issuer) = self.issuer {
            builder = builder.issuer(issuer);
        }
        if self.refresh_token_in_cookie {
            let mut cookie = CookieConfig::default()
                .name(self.auth_cookie_name)
                .secure(self.auth_cookie_secure)
                .same_site(self.auth_cookie_samesite.parse()?)
                .path(self.auth_cookie_path)
                .allowed_origins(self.allowed_auth_origins);
            if let Some(domain) = self.auth_cookie_domain {
                cookie = cookie.domain(domain);
            }
            if let Some(max_age) = self.auth_cookie_max_age {
                cookie = cookie.max_age(Duration::from_secs(max_age));
            }
            builder = builder.refresh_token_in_cookie(cookie);
        }
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        client: ClientArgs,
    }

    #[test]
    fn the_revocation_feed_is_polled_every_two_seconds_by_default() {
        let args =
            ["client-service", "--signing-key", "8Jq1sZ0bV7xYt3Lw9Pe2Rk5Hn6Cm4Ud0", "--revocation-feed-token", "t"];
        let args = Command::try_parse_from(args).unwrap().client;
        assert_eq!(args.revocation_poll_interval, Duration::from_secs(2), "REVOCATION_POLL_INTERVAL");
        let config = args.into_config().unwrap();
        assert_eq!(config.revocation_poll_interval, Duration::from_secs(2));
        assert!(config.revocation_feed_token.is_some());
    }

    #[test]
    fn the_django_meta_form_of_the_header_name_is_accepted() {
        let args = ["client-service", "--signing-key", "8Jq1sZ0bV7xYt3Lw9Pe2Rk5Hn6Cm4Ud0", "--auth-header-name"];
        for (given, read) in [("HTTP_AUTHORIZATION", "authorization"), ("HTTP_X_AUTH", "x-auth")] {
            let parsed = Command::try_parse_from(args.iter().copied().chain([given])).unwrap();
            assert_eq!(parsed.client.into_config().unwrap().auth_header_name, read, "{given}");
        }
    }
}
