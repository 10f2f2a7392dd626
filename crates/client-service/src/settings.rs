//! The client crate's settings, typed once: [`ClientSettings`] is what embedding code fills
//! (start from [`ClientSettings::default`]) and, with the `cli` feature, the command line and
//! environment form of the demo binary (EASY_JWT variable names, `#[command(flatten)]`). Each
//! default is written once, as the text in [`defaults`] that both [`ClientSettings::default`]
//! and the command line read with the same parser.
//!
//! Adding a setting: a field here with its doc, `env` name and a `defaults` constant (plus its
//! line in `Default`), then its use in [`ClientConfigBuilder::build`](crate::ClientConfigBuilder::build);
//! `docs/settings.md` gets its row (the drift test compares it with `--help`).

use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use shared_user::settings::{self, SettingError};

/// The defaults of [`ClientSettings`], as the command line writes them (`--help` shows them).
pub mod defaults {
    /// `REMOTE_AUTH_SERVICE_URL`.
    pub const REMOTE_AUTH_SERVICE_URL: &str = "http://127.0.0.1:8000";
    /// `REMOTE_AUTH_SERVICE_USER_PATH`.
    pub const REMOTE_AUTH_SERVICE_USER_PATH: &str = "/auth/user/";
    /// `JWKS_CACHE_TTL`.
    pub const JWKS_CACHE_TTL: &str = "10m";
    /// `ALGORITHM`.
    pub const ALGORITHM: &str = "HS256";
    /// `LEEWAY` (seconds).
    pub const LEEWAY: &str = "0";
    /// `USER_ID_CLAIM`.
    pub const USER_ID_CLAIM: &str = "user_id";
    /// `AUTH_HEADER_NAME`.
    pub const AUTH_HEADER_NAME: &str = "Authorization";
    /// `AUTH_HEADER_TYPES` (comma separated).
    pub const AUTH_HEADER_TYPES: &str = "Bearer";
    /// `MIRROR_TTL`.
    pub const MIRROR_TTL: &str = "5m";
    /// `MIRROR_CACHE_MEMORY`.
    pub const MIRROR_CACHE_MEMORY: &str = "64MiB";
    /// `TOKEN_CACHE_MEMORY`.
    pub const TOKEN_CACHE_MEMORY: &str = "16MiB";
    /// `REMOTE_AUTH_REQUEST_TIMEOUT`.
    pub const REMOTE_AUTH_REQUEST_TIMEOUT: &str = "10s";
    /// `BLACKLIST_ON_LOGOUT`.
    pub const BLACKLIST_ON_LOGOUT: &str = "true";
    /// `REFRESH_TOKEN_IN_COOKIE`.
    pub const REFRESH_TOKEN_IN_COOKIE: &str = "false";
    /// `AUTH_COOKIE_NAME`.
    pub const AUTH_COOKIE_NAME: &str = "refresh_token";
    /// `AUTH_COOKIE_SECURE`.
    pub const AUTH_COOKIE_SECURE: &str = "true";
    /// `AUTH_COOKIE_SAMESITE`.
    pub const AUTH_COOKIE_SAMESITE: &str = "Lax";
    /// `AUTH_COOKIE_PATH`.
    pub const AUTH_COOKIE_PATH: &str = "/";
    /// `REVOCATION_POLL_INTERVAL`.
    pub const REVOCATION_POLL_INTERVAL: &str = "2s";
    /// `REVOCATION_FEED_WAIT`.
    pub const REVOCATION_FEED_WAIT: &str = "25s";
    /// `REMOTE_AUTH_SSL_VERIFY`.
    pub const REMOTE_AUTH_SSL_VERIFY: &str = "true";
}

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

/// `REMOTE_AUTH_SSL_VERIFY`, with the meanings of EasyJWT's setting (python-requests' `verify`):
/// check the auth-service's certificate, check it against one CA bundle, or not at all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SslVerify {
    /// `true` (the default): the certificate must chain to the system roots, or to
    /// `REMOTE_AUTH_CA_FILE` when that is set.
    #[default]
    Verify,
    /// A path: the certificate must chain to a CA in this PEM bundle (same as
    /// `REMOTE_AUTH_CA_FILE`).
    CaFile(PathBuf),
    /// `false`: no check at all (anyone on the path can read the passwords and tokens that
    /// travel); refused outside development mode (`GATEHOUSE_DEV`).
    Off,
}

impl std::str::FromStr for SslVerify {
    type Err = SettingError;

    /// `true` or `false` in any case (Python's `True`/`False` too), else a path to a CA bundle.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("true") {
            Ok(SslVerify::Verify)
        } else if s.eq_ignore_ascii_case("false") {
            Ok(SslVerify::Off)
        } else if s.is_empty() {
            Err(SettingError::new("REMOTE_AUTH_SSL_VERIFY must be true, false or the path of a CA bundle (got \"\")"))
        } else {
            Ok(SslVerify::CaFile(PathBuf::from(s)))
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
    /// `SIGNING_KEY_PREVIOUS` without a shared secret to go with it.
    #[error("SIGNING_KEY_PREVIOUS holds earlier HMAC secrets: it needs SIGNING_KEY (local HMAC verification)")]
    PreviousWithoutKey,
    /// Discovery of the JWKS without an `http(s)://` issuer URL to read it from.
    #[error("finding the JWKS through discovery needs ISSUER to be the issuer's http:// or https:// URL (got {0:?})")]
    IssuerNotUrl(String),
    /// The revocation feed would be polled more often than every 100 ms.
    #[error("REVOCATION_POLL_INTERVAL must be at least 100ms")]
    PollInterval,
    /// The HTTP client for the auth-service could not be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
    /// A certificate or key file (named by `setting`) cannot be read or holds no usable PEM.
    #[error("{setting}={}: {reason}", path.display())]
    TlsFile {
        /// The setting that names the file (`REMOTE_AUTH_CA_FILE`, ...).
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it (never its contents).
        reason: String,
    },
    /// `REMOTE_AUTH_SSL_VERIFY` and `REMOTE_AUTH_CA_FILE` name two different CA bundles.
    #[error(
        "REMOTE_AUTH_SSL_VERIFY={} and REMOTE_AUTH_CA_FILE={} name different CA bundles: set one of them",
        ssl_verify.display(), ca_file.display()
    )]
    CaConflict {
        /// The path in `REMOTE_AUTH_SSL_VERIFY`.
        ssl_verify: PathBuf,
        /// The path in `REMOTE_AUTH_CA_FILE`.
        ca_file: PathBuf,
    },
    /// `REMOTE_AUTH_SSL_VERIFY=false` outside development mode.
    #[error(
        "REMOTE_AUTH_SSL_VERIFY=false (no check of the auth-service's certificate) is refused outside development mode (GATEHOUSE_DEV=true); trust a private CA with REMOTE_AUTH_CA_FILE instead"
    )]
    VerifyOffOutsideDev,
    /// `REMOTE_AUTH_SSL_VERIFY=false` together with a CA bundle to trust.
    #[error("REMOTE_AUTH_SSL_VERIFY=false and REMOTE_AUTH_CA_FILE contradict each other: unset one of them")]
    VerifyOffWithCa,
    /// One of `REMOTE_AUTH_CLIENT_CERT_FILE` and `REMOTE_AUTH_CLIENT_KEY_FILE` without the other.
    #[error("{given} is set without {missing}: a client certificate needs both")]
    ClientCertHalf {
        /// The one that is set.
        given: &'static str,
        /// The one that is missing.
        missing: &'static str,
    },
}

/// Every setting of the client crate, with the names of its environment variables. Fill it
/// from [`ClientSettings::default`] and turn it into a checked [`ClientConfig`] with
/// [`ClientSettings::into_config`], or use [`ClientConfig::builder`], which starts from these
/// defaults too.
///
/// [`ClientConfig`]: crate::ClientConfig
/// [`ClientConfig::builder`]: crate::ClientConfig::builder
#[derive(Clone, PartialEq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[non_exhaustive]
pub struct ClientSettings {
    /// Base URL of the auth-service.
    #[cfg_attr(feature = "cli", arg(long, env = "REMOTE_AUTH_SERVICE_URL", default_value = defaults::REMOTE_AUTH_SERVICE_URL))]
    pub remote_auth_service_url: String,
    /// Current-user path on the auth-service (`{id}` is replaced by the user id).
    #[cfg_attr(feature = "cli", arg(long, env = "REMOTE_AUTH_SERVICE_USER_PATH", default_value = defaults::REMOTE_AUTH_SERVICE_USER_PATH))]
    pub remote_auth_service_user_path: String,
    /// `local` (in-process check with SIGNING_KEY) or `remote` (verify call per request).
    #[cfg_attr(feature = "cli", arg(long, env = "VERIFY_MODE", value_enum, default_value_t = VerifyMode::default()))]
    pub verify_mode: VerifyMode,
    /// JWKS URL for local verification of asymmetric tokens (default: the auth-service's
    /// `/.well-known/jwks.json`); used when no SIGNING_KEY is given.
    #[cfg_attr(feature = "cli", arg(long, env = "JWK_URL"))]
    pub jwk_url: Option<String>,
    /// How long a fetched JWKS is trusted.
    #[cfg_attr(feature = "cli", arg(long, env = "JWKS_CACHE_TTL", default_value = defaults::JWKS_CACHE_TTL, value_parser = settings::parse_duration))]
    pub jwks_cache_ttl: Duration,
    /// Shared HMAC secret (same as the auth-service's) for local verification.
    #[cfg_attr(feature = "cli", arg(long, env = "SIGNING_KEY", hide_env_values = true))]
    pub signing_key: Option<String>,
    /// Earlier shared secrets, comma-separated, still accepted (with SIGNING_KEY): the
    /// auth-service's SIGNING_KEY can change without a refused token. Remove them once the
    /// refresh token lifetime has passed since the change.
    #[cfg_attr(feature = "cli", arg(long, env = "SIGNING_KEY_PREVIOUS", hide_env_values = true))]
    pub signing_key_previous: Option<String>,
    /// Algorithm of the shared secret: HS256, HS384 or HS512 (EdDSA, ES256 and RS256 tokens are
    /// checked against the JWKS, with no SIGNING_KEY).
    #[cfg_attr(feature = "cli", arg(long, env = "ALGORITHM", default_value = defaults::ALGORITHM, value_parser = settings::parse_algorithm))]
    pub algorithm: Algorithm,
    /// Clock skew allowance in seconds.
    #[cfg_attr(feature = "cli", arg(long, env = "LEEWAY", default_value = defaults::LEEWAY))]
    pub leeway: u64,
    /// Required `aud`.
    #[cfg_attr(feature = "cli", arg(long, env = "AUDIENCE"))]
    pub audience: Option<String>,
    /// Required `iss`. An http(s) URL also locates the JWKS in local mode without SIGNING_KEY
    /// or JWK_URL: through its `/.well-known/openid-configuration`.
    #[cfg_attr(feature = "cli", arg(long, env = "ISSUER"))]
    pub issuer: Option<String>,
    /// Name of the user id claim.
    #[cfg_attr(feature = "cli", arg(long, env = "USER_ID_CLAIM", default_value = defaults::USER_ID_CLAIM))]
    pub user_id_claim: String,
    /// Header carrying the bearer token.
    #[cfg_attr(feature = "cli", arg(long, env = "AUTH_HEADER_NAME", default_value = defaults::AUTH_HEADER_NAME))]
    pub auth_header_name: String,
    /// Accepted schemes, comma separated.
    #[cfg_attr(feature = "cli", arg(long, env = "AUTH_HEADER_TYPES", default_value = defaults::AUTH_HEADER_TYPES, value_delimiter = ','))]
    pub auth_header_types: Vec<String>,
    /// How long a mirrored user is used before it is fetched again (`300`, `5m`...).
    #[cfg_attr(feature = "cli", arg(long, env = "MIRROR_TTL", default_value = defaults::MIRROR_TTL, value_parser = settings::parse_duration))]
    pub mirror_ttl: Duration,
    /// Memory for mirrored users kept in memory, so a request needs no database read
    /// (`64MiB`, `200MB`, bytes; 0: off).
    #[cfg_attr(feature = "cli", arg(long, env = "MIRROR_CACHE_MEMORY", default_value = defaults::MIRROR_CACHE_MEMORY, value_parser = parse_bytes))]
    pub mirror_cache_memory: u64,
    /// Memory for verified access tokens kept until they expire (local mode; 0: off).
    #[cfg_attr(feature = "cli", arg(long, env = "TOKEN_CACHE_MEMORY", default_value = defaults::TOKEN_CACHE_MEMORY, value_parser = parse_bytes))]
    pub token_cache_memory: u64,
    /// Timeout of each call to the auth-service.
    #[cfg_attr(feature = "cli", arg(long, env = "REMOTE_AUTH_REQUEST_TIMEOUT", default_value = defaults::REMOTE_AUTH_REQUEST_TIMEOUT, value_parser = settings::parse_duration))]
    pub remote_auth_request_timeout: Duration,
    /// Blacklist the refresh token on the auth-service at logout (best effort).
    #[cfg_attr(feature = "cli", arg(long, env = "BLACKLIST_ON_LOGOUT", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), default_value = defaults::BLACKLIST_ON_LOGOUT))]
    pub blacklist_on_logout: bool,
    /// Keep the refresh token in an HttpOnly cookie instead of the JSON body (CSRF-protected).
    #[cfg_attr(feature = "cli", arg(long, env = "REFRESH_TOKEN_IN_COOKIE", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), default_value = defaults::REFRESH_TOKEN_IN_COOKIE))]
    pub refresh_token_in_cookie: bool,
    /// Name of the refresh-token cookie.
    #[cfg_attr(feature = "cli", arg(long, env = "AUTH_COOKIE_NAME", default_value = defaults::AUTH_COOKIE_NAME))]
    pub auth_cookie_name: String,
    /// `Secure` attribute of the cookie (turn off only for plain-HTTP development).
    #[cfg_attr(feature = "cli", arg(long, env = "AUTH_COOKIE_SECURE", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), default_value = defaults::AUTH_COOKIE_SECURE))]
    pub auth_cookie_secure: bool,
    /// `SameSite` attribute of the cookie: Lax, Strict or None.
    #[cfg_attr(feature = "cli", arg(long, env = "AUTH_COOKIE_SAMESITE", default_value = defaults::AUTH_COOKIE_SAMESITE, value_parser = parse_same_site))]
    pub auth_cookie_samesite: SameSite,
    /// `Path` attribute of the cookie.
    #[cfg_attr(feature = "cli", arg(long, env = "AUTH_COOKIE_PATH", default_value = defaults::AUTH_COOKIE_PATH))]
    pub auth_cookie_path: String,
    /// `Domain` attribute of the cookie.
    #[cfg_attr(feature = "cli", arg(long, env = "AUTH_COOKIE_DOMAIN"))]
    pub auth_cookie_domain: Option<String>,
    /// `Max-Age` of the cookie in seconds (default: a session cookie).
    #[cfg_attr(feature = "cli", arg(long, env = "AUTH_COOKIE_MAX_AGE"))]
    pub auth_cookie_max_age: Option<u64>,
    /// Origins (`scheme://host[:port]`, comma separated) allowed to call the cookie endpoints.
    #[cfg_attr(feature = "cli", arg(long, env = "ALLOWED_AUTH_ORIGINS", value_delimiter = ','))]
    pub allowed_auth_origins: Vec<String>,
    /// Shared secret of the auth-service's revocation feed (same value as there). Set (local
    /// mode): the feed is polled and tokens issued before a user's logout-all, password change or
    /// deactivation are refused within milliseconds (long poll). Unset: no polling.
    #[cfg_attr(feature = "cli", arg(long, env = "REVOCATION_FEED_TOKEN", hide_env_values = true))]
    pub revocation_feed_token: Option<String>,
    /// How often the revocation feed is polled when it cannot be long-polled (an auth-service
    /// without long polls, REVOCATION_FEED_WAIT=0) and after a failed poll.
    #[cfg_attr(feature = "cli", arg(long, env = "REVOCATION_POLL_INTERVAL", default_value = defaults::REVOCATION_POLL_INTERVAL, value_parser = settings::parse_duration))]
    pub revocation_poll_interval: Duration,
    /// Long poll of the revocation feed: how long the auth-service may hold each feed request
    /// until a revocation arrives (pushed within milliseconds); `0` polls every
    /// REVOCATION_POLL_INTERVAL instead. Keep it below the auth-service's REQUEST_TIMEOUT.
    #[cfg_attr(feature = "cli", arg(long, env = "REVOCATION_FEED_WAIT", default_value = defaults::REVOCATION_FEED_WAIT, value_parser = settings::parse_duration))]
    pub revocation_feed_wait: Duration,
    /// PEM bundle of the CA(s) trusted for the auth-service's certificate instead of the
    /// system roots (a private CA); unset: the system roots.
    #[cfg_attr(feature = "cli", arg(long, env = "REMOTE_AUTH_CA_FILE"))]
    pub remote_auth_ca_file: Option<PathBuf>,
    /// EasyJWT's check of the auth-service's certificate: `true`, the path of a CA bundle (same
    /// as REMOTE_AUTH_CA_FILE) or `false` (no check; refused outside GATEHOUSE_DEV).
    #[cfg_attr(feature = "cli", arg(long, env = "REMOTE_AUTH_SSL_VERIFY", default_value = defaults::REMOTE_AUTH_SSL_VERIFY, value_parser = parse_ssl_verify))]
    pub remote_auth_ssl_verify: SslVerify,
    /// PEM certificate chain this client presents to the auth-service (mutual TLS); needs
    /// REMOTE_AUTH_CLIENT_KEY_FILE.
    #[cfg_attr(feature = "cli", arg(long, env = "REMOTE_AUTH_CLIENT_CERT_FILE"))]
    pub remote_auth_client_cert_file: Option<PathBuf>,
    /// PEM private key of REMOTE_AUTH_CLIENT_CERT_FILE.
    #[cfg_attr(feature = "cli", arg(long, env = "REMOTE_AUTH_CLIENT_KEY_FILE"))]
    pub remote_auth_client_key_file: Option<PathBuf>,
    /// Development mode: allows REMOTE_AUTH_SSL_VERIFY=false.
    #[cfg_attr(feature = "cli", arg(long = "dev", env = "GATEHOUSE_DEV", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new()))]
    pub dev: bool,
}

impl std::fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the signing key or the feed token.
        f.debug_struct("ClientSettings")
            .field("remote_auth_service_url", &self.remote_auth_service_url)
            .field("verify_mode", &self.verify_mode)
            .finish_non_exhaustive()
    }
}

impl Default for ClientSettings {
    /// The [`defaults`], read with the command line's parsers; no signing key, no JWKS URL, no
    /// audience or issuer, no revocation feed token.
    fn default() -> Self {
        Self {
            remote_auth_service_url: defaults::REMOTE_AUTH_SERVICE_URL.into(),
            remote_auth_service_user_path: defaults::REMOTE_AUTH_SERVICE_USER_PATH.into(),
            verify_mode: VerifyMode::default(),
            jwk_url: None,
            jwks_cache_ttl: default_of(defaults::JWKS_CACHE_TTL, settings::parse_duration),
            signing_key: None,
            signing_key_previous: None,
            algorithm: default_of(defaults::ALGORITHM, settings::parse_algorithm),
            leeway: default_of(defaults::LEEWAY, str::parse),
            audience: None,
            issuer: None,
            user_id_claim: defaults::USER_ID_CLAIM.into(),
            auth_header_name: defaults::AUTH_HEADER_NAME.into(),
            auth_header_types: defaults::AUTH_HEADER_TYPES.split(',').map(str::to_owned).collect(),
            mirror_ttl: default_of(defaults::MIRROR_TTL, settings::parse_duration),
            mirror_cache_memory: default_of(defaults::MIRROR_CACHE_MEMORY, parse_bytes),
            token_cache_memory: default_of(defaults::TOKEN_CACHE_MEMORY, parse_bytes),
            remote_auth_request_timeout: default_of(defaults::REMOTE_AUTH_REQUEST_TIMEOUT, settings::parse_duration),
            blacklist_on_logout: default_of(defaults::BLACKLIST_ON_LOGOUT, str::parse),
            refresh_token_in_cookie: default_of(defaults::REFRESH_TOKEN_IN_COOKIE, str::parse),
            auth_cookie_name: defaults::AUTH_COOKIE_NAME.into(),
            auth_cookie_secure: default_of(defaults::AUTH_COOKIE_SECURE, str::parse),
            auth_cookie_samesite: default_of(defaults::AUTH_COOKIE_SAMESITE, parse_same_site),
            auth_cookie_path: defaults::AUTH_COOKIE_PATH.into(),
            auth_cookie_domain: None,
            auth_cookie_max_age: None,
            allowed_auth_origins: Vec::new(),
            revocation_feed_token: None,
            revocation_poll_interval: default_of(defaults::REVOCATION_POLL_INTERVAL, settings::parse_duration),
            revocation_feed_wait: default_of(defaults::REVOCATION_FEED_WAIT, settings::parse_duration),
            remote_auth_ca_file: None,
            remote_auth_ssl_verify: default_of(defaults::REMOTE_AUTH_SSL_VERIFY, parse_ssl_verify),
            remote_auth_client_cert_file: None,
            remote_auth_client_key_file: None,
            dev: false,
        }
    }
}

/// A default read with the parser the command line uses for it. The defaults are constants
/// that a test reads, so this never fails in a build that passed its tests.
fn default_of<T, E: std::fmt::Debug>(text: &str, parse: impl Fn(&str) -> Result<T, E>) -> T {
    parse(text).unwrap_or_else(|e| panic!("the default {text:?} does not parse: {e:?}"))
}

/// `64MiB`, `200 MB`, `1GiB` or a number of bytes.
pub(crate) fn parse_bytes(s: &str) -> Result<u64, SettingError> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| SettingError::new(format!("not a size such as 64MiB ({e})")))
}

/// `true`, `false` or a CA bundle path.
fn parse_ssl_verify(s: &str) -> Result<SslVerify, SettingError> {
    s.parse()
}

/// `Lax`, `Strict` or `None`.
fn parse_same_site(s: &str) -> Result<SameSite, ConfigError> {
    s.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_parses_to_the_documented_value() {
        let s = ClientSettings::default();
        assert_eq!(s.mirror_ttl, Duration::from_secs(300), "MIRROR_TTL 5m");
        assert_eq!(s.jwks_cache_ttl, Duration::from_secs(600), "JWKS_CACHE_TTL 10m");
        assert_eq!(s.remote_auth_request_timeout, Duration::from_secs(10), "REMOTE_AUTH_REQUEST_TIMEOUT 10s");
        assert_eq!(s.revocation_poll_interval, Duration::from_secs(2), "REVOCATION_POLL_INTERVAL 2s");
        assert_eq!(s.revocation_feed_wait, Duration::from_secs(25), "REVOCATION_FEED_WAIT 25s");
        assert_eq!((s.mirror_cache_memory, s.token_cache_memory), (64 << 20, 16 << 20), "64MiB, 16MiB");
        assert_eq!(
            (s.algorithm, s.leeway, s.auth_header_types.as_slice()),
            (Algorithm::HS256, 0, &["Bearer".to_owned()][..])
        );
        assert!(s.blacklist_on_logout && !s.refresh_token_in_cookie && s.auth_cookie_secure);
        assert_eq!(s.auth_cookie_samesite, SameSite::Lax);
        assert_eq!((s.remote_auth_ssl_verify, s.dev), (SslVerify::Verify, false), "REMOTE_AUTH_SSL_VERIFY true");
    }

    #[test]
    fn ssl_verify_reads_as_easyjwt_does() {
        for (text, read) in [
            ("true", SslVerify::Verify),
            ("True", SslVerify::Verify),
            ("false", SslVerify::Off),
            ("False", SslVerify::Off),
            ("/etc/gatehouse/ca.pem", SslVerify::CaFile("/etc/gatehouse/ca.pem".into())),
        ] {
            assert_eq!(text.parse::<SslVerify>().unwrap(), read, "{text}");
        }
        assert!("".parse::<SslVerify>().is_err());
    }

    #[cfg(feature = "cli")]
    #[test]
    fn the_command_line_has_the_same_defaults() {
        use clap::Parser;

        #[derive(Debug, Parser)]
        struct Command {
            #[command(flatten)]
            client: ClientSettings,
        }
        // The test's environment sets none of the variables.
        let parsed = Command::try_parse_from(["client-service"]).unwrap().client;
        assert_eq!(parsed, ClientSettings::default());
    }
}
