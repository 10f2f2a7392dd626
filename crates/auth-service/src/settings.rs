//! The auth-service's one settings type. Each setting is one field of [`Settings`]: its doc is
//! the `--help` text, its `#[arg]` names the flag, the environment variable and the default,
//! and nothing else repeats them. `auth-service serve` reads it from flags and environment
//! (clap's derive); tests, examples and the load harness build it in code from
//! `Settings::default()` (the same defaults, without the environment) and hand it to
//! `AppState::build`, which checks it ([`Settings::checked`]).
//!
//! Adding a setting: add the field here with its doc and `#[arg(long, env = "NAME", default_value...)]`,
//! document it in `docs/settings.md` (a test compares that page with `--help`), and read it
//! where it is used as `state.settings.name`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, FromArgMatches, ValueEnum};
use shared_user::jsonwebtoken::Algorithm;
use shared_user::server::{ClientAuth, TlsFiles};
use shared_user::settings::{SettingError, parse_duration};

use crate::kek::KeyEncryptionKey;

/// The Hasura role only staff and superusers may hold (it bypasses every Hasura permission).
pub const ADMIN_ROLE: &str = "admin";

/// Defaults that another command's flags share with [`Settings`] (`purge-tokens`), written once.
pub mod defaults {
    /// `REFRESH_TOKEN_LIFETIME`.
    pub const REFRESH_TOKEN_LIFETIME: &str = "1d";
    /// `AUDIT_RETENTION`.
    pub const AUDIT_RETENTION: &str = "90d";
    /// `KEYS_RELOAD_INTERVAL`.
    pub const KEYS_RELOAD_INTERVAL: &str = "30s";
    /// `JWKS_MAX_AGE`.
    pub const JWKS_MAX_AGE: &str = "5m";
    /// `KEY_ROTATION_INTERVAL`.
    pub const KEY_ROTATION_INTERVAL: &str = "30d";
    /// `LEEWAY`, seconds.
    pub const LEEWAY: &str = "0";
}

/// How long a newly staged signing key is published before it signs: every replica reloads
/// within `reload` (at least every second), every verifier's cached JWKS is at most
/// `jwks_max_age` old, clocks may differ by `leeway` seconds, and one second more.
pub fn publication_lead(reload: Duration, jwks_max_age: Duration, leeway: u64) -> Duration {
    reload.max(Duration::from_secs(1)) + jwks_max_age + Duration::from_secs(leeway) + Duration::from_secs(1)
}

/// A secret setting: compared, never printed (`Debug` shows `[redacted]`).
#[derive(Clone)]
pub struct Redacted(pub String);

impl Redacted {
    /// Whether `given` is this secret. The SHA-256 digests are compared in constant time, so
    /// the time taken depends neither on where the first difference is nor on the lengths.
    pub fn matches(&self, given: &[u8]) -> bool {
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        let (given, expected): ([u8; 32], [u8; 32]) =
            (Sha256::digest(given).into(), Sha256::digest(self.0.as_bytes()).into());
        bool::from(given.ct_eq(&expected))
    }

    /// The secret itself (to sign or seal with; never to print).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Redacted {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Redacted {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// Who may call `POST /auth/create-user/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum CreateUserPolicy {
    /// Nobody (404).
    #[default]
    Off,
    /// Anyone who can reach the service.
    Open,
    /// Only callers with a staff user's access token.
    Admin,
}

/// Extra claims added to access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ClaimsPreset {
    /// Only the standard claims.
    #[default]
    None,
    /// Hasura's JWT mode: `sub`, `name`, `email` and the `https://hasura.io/jwt/claims`
    /// namespace (allowed roles, default role, user id).
    Hasura,
    /// `hasura` plus the claims of the Hasura/Graphene tutorial's payload: `username` (the
    /// email), `sub_name` and `sub_email`.
    HasuraTutorial,
}

/// Token, password, HTTP and integration settings (EASY_JWT names where they exist), as flags,
/// environment or code. `Debug` never shows a secret.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// HMAC secret (HS*) used to sign and verify tokens. Required unless --dev.
    #[arg(long, env = "SIGNING_KEY", hide_env_values = true)]
    pub signing_key: Option<Redacted>,
    /// Earlier HMAC secrets, comma-separated: tokens they signed are still accepted (never
    /// signed with), so SIGNING_KEY can change without a refused token. Remove them once the
    /// refresh token lifetime has passed since the change.
    #[arg(long, env = "SIGNING_KEY_PREVIOUS", hide_env_values = true)]
    pub signing_key_previous: Option<Redacted>,
    /// Development mode: allows a missing or weak signing key (a random one is generated).
    #[arg(long, env = "GATEHOUSE_DEV", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub dev: bool,
    /// Signing algorithm: HS256, HS384, HS512 (SIGNING_KEY) or EdDSA, ES256, RS256 (keys kept
    /// in the database, published at /.well-known/jwks.json, rotated with `auth-service keys rotate`).
    #[arg(long, env = "ALGORITHM", default_value = "HS256", value_parser = shared_user::settings::parse_algorithm)]
    pub algorithm: Algorithm,
    /// Access token lifetime (`300`, `5m`, `1h`...).
    #[arg(long, env = "ACCESS_TOKEN_LIFETIME", default_value = "5m", value_parser = parse_duration)]
    pub access_token_lifetime: Duration,
    /// Refresh token lifetime.
    #[arg(long, env = "REFRESH_TOKEN_LIFETIME", default_value = defaults::REFRESH_TOKEN_LIFETIME, value_parser = parse_duration)]
    pub refresh_token_lifetime: Duration,
    /// Return a new refresh token on every refresh.
    #[arg(long, env = "ROTATE_REFRESH_TOKENS", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false)]
    pub rotate_refresh_tokens: bool,
    /// Revoke the old refresh token on rotation; presenting it again revokes its whole family.
    #[arg(long, env = "BLACKLIST_AFTER_ROTATION", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), default_value_t = true)]
    pub blacklist_after_rotation: bool,
    /// After a rotation, how long the old refresh token may be presented again (a client
    /// retry or a race) without revoking its family.
    #[arg(long, env = "REFRESH_REUSE_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub refresh_reuse_grace: Duration,
    /// Record `last_login` on every successful obtain.
    #[arg(long, env = "UPDATE_LAST_LOGIN", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), default_value_t = true)]
    pub update_last_login: bool,
    /// `aud` claim added to tokens and required on input.
    #[arg(long, env = "AUDIENCE")]
    pub audience: Option<String>,
    /// `iss` claim added to tokens and required on input.
    #[arg(long, env = "ISSUER")]
    pub issuer: Option<String>,
    /// Passkeys: the WebAuthn relying party id, the domain passkeys are bound to (e.g.
    /// `example.com`; the host of WEBAUTHN_ORIGIN or a parent domain of it). Set with
    /// WEBAUTHN_ORIGIN; unset, the passkey routes answer 400 saying so.
    #[arg(long, env = "WEBAUTHN_RP_ID")]
    pub webauthn_rp_id: Option<String>,
    /// Passkeys: the origin of the pages that call `navigator.credentials`
    /// (`https://app.example.com`, or `http://localhost:PORT` in development). Set with
    /// WEBAUTHN_RP_ID.
    #[arg(long, env = "WEBAUTHN_ORIGIN")]
    pub webauthn_origin: Option<String>,
    /// Clock skew allowance in seconds for `exp`, `nbf` and `iat`.
    #[arg(long, env = "LEEWAY", default_value = defaults::LEEWAY)]
    pub leeway: u64,
    /// Name of the user id claim.
    #[arg(long, env = "USER_ID_CLAIM", default_value = "user_id")]
    pub user_id_claim: String,
    /// Accepted Authorization schemes, comma separated; the first is used in `WWW-Authenticate`.
    #[arg(long, env = "AUTH_HEADER_TYPES", default_value = "Bearer", value_delimiter = ',')]
    pub auth_header_types: Vec<String>,
    /// Header carrying the bearer token.
    #[arg(long, env = "AUTH_HEADER_NAME", default_value = "Authorization")]
    pub auth_header_name: String,
    /// Brute-force protection on token obtain (429 with Retry-After when locked).
    #[arg(long, env = "LOGIN_THROTTLE", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), default_value_t = true)]
    pub login_throttle: bool,
    /// Staff and superusers may use the admin console and the admin API only with a second
    /// factor: without one they are led to enrol, and a token from a password-only login is
    /// refused there (403 `mfa_required`).
    #[arg(long, env = "MFA_REQUIRED_FOR_STAFF", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false)]
    pub mfa_required_for_staff: bool,
    /// Replaced by TRUSTED_PROXIES: `true` without TRUSTED_PROXIES is a startup error (it used
    /// to believe any caller's `X-Forwarded-For`); with TRUSTED_PROXIES set it changes nothing.
    #[arg(long, env = "TRUST_X_FORWARDED_FOR", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false)]
    pub trust_x_forwarded_for: bool,
    /// How often replicas reload asymmetric signing keys from the database (rotation; revoked
    /// keys are dropped within a second regardless).
    #[arg(long, env = "KEYS_RELOAD_INTERVAL", default_value = defaults::KEYS_RELOAD_INTERVAL, value_parser = parse_duration)]
    pub keys_reload_interval: Duration,
    /// How long verifiers may cache the JWKS (`Cache-Control: public, max-age=N` on
    /// /.well-known/jwks.json, which also answers 304 to a matching `If-None-Match`).
    #[arg(long, env = "JWKS_MAX_AGE", default_value = defaults::JWKS_MAX_AGE, value_parser = parse_duration)]
    pub jwks_max_age: Duration,
    /// Automatic rotation of asymmetric signing keys (EdDSA, ES256, RS256): once the signing key
    /// is this old, one replica stages its successor, which signs after the publication lead
    /// (KEYS_RELOAD_INTERVAL + JWKS_MAX_AGE + LEEWAY + 1s). `0`: manual rotation only.
    #[arg(long, env = "KEY_ROTATION_INTERVAL", default_value = defaults::KEY_ROTATION_INTERVAL, value_parser = parse_duration)]
    pub key_rotation_interval: Duration,
    /// Who may create users over HTTP: off, open or admin.
    #[arg(long, env = "ALLOW_CREATE_USER", value_enum, default_value_t = CreateUserPolicy::Off)]
    pub allow_create_user: CreateUserPolicy,
    /// Extra claims in access tokens: none, or hasura (`sub`, `name`, `email` and the
    /// `https://hasura.io/jwt/claims` namespace; roles from the user's access groups, plus
    /// `user` for everyone and `admin` for staff and superusers).
    #[arg(long, env = "CLAIMS_PRESET", value_enum, default_value_t = ClaimsPreset::None)]
    pub claims_preset: ClaimsPreset,
    /// `x-hasura-default-role` of the hasura claims preset (always among the allowed roles).
    #[arg(long, env = "HASURA_DEFAULT_ROLE", default_value = "user")]
    pub hasura_default_role: String,
    /// Shared secret of the Hasura action handlers (`/hasura/actions/...`): when set, every
    /// call must carry it in `X-Hasura-Action-Secret`.
    #[arg(long, env = "HASURA_ACTION_SECRET", hide_env_values = true)]
    pub hasura_action_secret: Option<Redacted>,
    /// argon2id parameters.
    #[command(flatten)]
    pub hashing: Hashing,
    /// Password hashing threads, i.e. hashes computed at once (default: number of CPUs).
    #[arg(long, env = "HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,
    /// Whole-request timeout.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Access group whose members may list every user (GraphQL `users`) without being staff;
    /// their role (GraphQL `profile { role }`, Hasura default role) is the group's name. Not `admin`.
    #[arg(long, env = "USERS_READER_GROUP")]
    pub users_reader_group: Option<String>,
    /// Root fields (aliases included) one GraphQL operation may select.
    #[arg(long, env = "GRAPHQL_MAX_ROOT_FIELDS", default_value_t = 10)]
    pub graphql_max_root_fields: usize,
    /// Fields (aliases included, at every depth) one GraphQL operation may select.
    #[arg(long, env = "GRAPHQL_MAX_COMPLEXITY", default_value_t = 500)]
    pub graphql_max_complexity: usize,
    /// Shared secret protecting the revocation feed `GET /auth/revocations/`: clients send it in
    /// `X-Revocation-Feed-Token` (compared in constant time). Unset (default): the feed answers
    /// 404 and local-mode clients cannot learn of revocations before tokens expire.
    #[arg(long, env = "REVOCATION_FEED_TOKEN", hide_env_values = true)]
    pub revocation_feed_token: Option<Redacted>,
    /// Client certificates that may read the revocation feed without REVOCATION_FEED_TOKEN:
    /// comma-separated names, each matched (ASCII case ignored) against the subject common name
    /// and the DNS names of a certificate the listener verified against TLS_CLIENT_CA_FILE.
    /// Needs TLS_CLIENT_AUTH=optional or required. Set, the feed is on even without a token.
    #[arg(long, env = "REVOCATION_FEED_CLIENT_NAMES", value_delimiter = ',')]
    pub revocation_feed_client_names: Vec<String>,
    /// PEM certificate chain (leaf first) of the listener; with TLS_KEY_FILE the listener
    /// speaks TLS 1.2/1.3 only (ALPN h2, http/1.1). Reloaded on SIGHUP and when the files
    /// change (a bad new file keeps the old certificate). Unset: plain HTTP.
    #[arg(long, env = "TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of TLS_CERT_FILE (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM bundle of the CAs whose client certificates the listener accepts (with
    /// TLS_CLIENT_AUTH optional or required).
    #[arg(long, env = "TLS_CLIENT_CA_FILE")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Client certificates: `none` (never asked), `optional` (asked; verified when given),
    /// `required` (a connection without one signed by TLS_CLIENT_CA_FILE fails the handshake).
    #[arg(long, env = "TLS_CLIENT_AUTH", value_enum, default_value_t = ClientAuth::None)]
    pub tls_client_auth: ClientAuth,
    /// How long audit events are kept before the hourly housekeeping deletes them (default 90d).
    #[arg(long, env = "AUDIT_RETENTION", default_value = defaults::AUDIT_RETENTION, value_parser = parse_duration)]
    pub audit_retention: Duration,
    /// Proxies whose `X-Forwarded-For` is believed (the client-services, load balancers):
    /// comma-separated addresses or CIDR networks. The caller is the right-most hop that is not
    /// one of them. Default: none (the socket peer is the caller).
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// Sign-ups allowed per client address per hour, on every path (REST, GraphQL, Hasura);
    /// 0 = unlimited. Needs LOGIN_THROTTLE.
    #[arg(long, env = "SIGNUP_THROTTLE_PER_HOUR", default_value_t = 10)]
    pub signup_throttle_per_hour: u32,
    /// Key sealing the asymmetric private keys in the database (AES-256-GCM): 32 random bytes
    /// in base64. Required with EdDSA/ES256/RS256 outside --dev.
    #[arg(long, env = "KEY_ENCRYPTION_KEY", hide_env_values = true)]
    pub key_encryption_key: Option<Redacted>,
    /// Shortest answer time of a failed password check (`0s`: off). With imported Django
    /// `pbkdf2` hashes, set it above their check time (e.g. `300ms`) so those accounts cannot
    /// be found by timing until their first login upgrades them to argon2id.
    #[arg(long, env = "LOGIN_FAILURE_MIN_TIME", default_value = "0s", value_parser = parse_duration)]
    pub login_failure_min_time: Duration,
    /// Record Prometheus metrics and serve them at `GET /metrics` (`METRICS`, default true).
    #[arg(long, env = "METRICS", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), default_value_t = true)]
    pub metrics: bool,
    /// Live sessions one user may hold: a login beyond it ends the user's oldest sessions
    /// (audited as `session_revoked`). 0 = no cap.
    #[arg(long, env = "MAX_SESSIONS_PER_USER", default_value_t = 100)]
    pub max_sessions_per_user: u32,
    /// Address of the management listener: `/healthz`, `/readyz`, `/metrics` and
    /// `/openapi.json`. Set, `/metrics` and `/openapi.json` leave the public listener (BIND);
    /// the health checks stay there too, for load balancers. Default: none (all on BIND).
    #[arg(long, env = "MANAGEMENT_BIND")]
    pub management_bind: Option<SocketAddr>,
    /// Address of the console listener: the admin console (`/admin/...`) and the admin API
    /// (`/auth/admin/...`), which then leave the public listener (404 there). It never asks for
    /// a client certificate. Default: none (both on BIND).
    #[arg(long, env = "CONSOLE_BIND")]
    pub console_bind: Option<SocketAddr>,
    /// PEM certificate chain of the management listener (with MANAGEMENT_TLS_KEY_FILE). Default: none
    /// (the public listener's TLS_CERT_FILE when that is set, else plain HTTP).
    #[arg(long, env = "MANAGEMENT_TLS_CERT_FILE")]
    pub management_tls_cert_file: Option<PathBuf>,
    /// PEM private key of the management listener (with MANAGEMENT_TLS_CERT_FILE). Default: none (the
    /// public listener's TLS_KEY_FILE when that is set).
    #[arg(long, env = "MANAGEMENT_TLS_KEY_FILE")]
    pub management_tls_key_file: Option<PathBuf>,
    /// PEM certificate chain of the console listener (with CONSOLE_TLS_KEY_FILE). Default: none
    /// (the public listener's TLS_CERT_FILE when that is set, else plain HTTP).
    #[arg(long, env = "CONSOLE_TLS_CERT_FILE")]
    pub console_tls_cert_file: Option<PathBuf>,
    /// PEM private key of the console listener (with CONSOLE_TLS_CERT_FILE). Default: none (the
    /// public listener's TLS_KEY_FILE when that is set).
    #[arg(long, env = "CONSOLE_TLS_KEY_FILE")]
    pub console_tls_key_file: Option<PathBuf>,
}

impl Default for Settings {
    /// The shipped defaults: what `auth-service serve` uses with no flag and no environment,
    /// read from the `#[arg]` attributes above (the environment is not consulted).
    fn default() -> Self {
        let command = Settings::augment_args(clap::Command::new("defaults")).mut_args(|arg| arg.env(None));
        let matches = command.try_get_matches_from(["defaults"]).expect("every setting has a default or is optional");
        Settings::from_arg_matches(&matches).expect("the defaults parse")
    }
}

/// Password hashing parameters (argon2id): the `hashing` part of [`Settings`], also what
/// `Hasher::new` takes and what the admin commands that set passwords read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct Hashing {
    /// argon2id memory cost in KiB (OWASP: 19456).
    #[arg(long, env = "ARGON2_MEMORY_KIB", default_value_t = 19456)]
    pub argon2_memory_kib: u32,
    /// argon2id iterations (OWASP: 2).
    #[arg(long, env = "ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,
    /// argon2id parallelism (OWASP: 1).
    #[arg(long, env = "ARGON2_PARALLELISM", default_value_t = 1)]
    pub argon2_parallelism: u32,
}

impl Default for Hashing {
    /// OWASP's argon2id parameters: 19 MiB, 2 iterations, 1 lane (the `#[arg]` defaults).
    fn default() -> Self {
        let command = Hashing::augment_args(clap::Command::new("defaults")).mut_args(|arg| arg.env(None));
        let matches = command.try_get_matches_from(["defaults"]).expect("every parameter has a default");
        Hashing::from_arg_matches(&matches).expect("the defaults parse")
    }
}

impl Settings {
    /// Whether tokens are signed with asymmetric keys from the database.
    pub fn is_asymmetric(&self) -> bool {
        shared_user::jwks::is_asymmetric(self.algorithm)
    }

    /// The signing key to use, or why the service must not start.
    pub fn resolve_signing_key(&self) -> Result<Vec<u8>, SettingError> {
        if self.is_asymmetric() {
            return match self.signing_key {
                Some(_) => Err(SettingError(format!(
                    "SIGNING_KEY is an HMAC secret and cannot be used with ALGORITHM={:?}; asymmetric keys live in the database (see `auth-service keys`)",
                    self.algorithm
                ))),
                None => Ok(Vec::new()),
            };
        }
        match self.signing_key.as_ref().map(Redacted::expose) {
            Some(key) if !self.dev => {
                shared_user::settings::check_signing_key(key.as_bytes())?;
                Ok(key.as_bytes().to_vec())
            }
            Some(key) => Ok(key.as_bytes().to_vec()),
            None if self.dev => Ok(uuid::Uuid::new_v4().simple().to_string().repeat(2).into_bytes()),
            None => Err(SettingError::new(
                "SIGNING_KEY is not set; set a random secret of 32+ bytes (or use --dev for a generated one)",
            )),
        }
    }

    /// The earlier HMAC secrets of `SIGNING_KEY_PREVIOUS` (verification only), checked like
    /// SIGNING_KEY outside development mode.
    pub fn resolve_previous_signing_keys(&self) -> Result<Vec<Vec<u8>>, SettingError> {
        let Some(list) = self.signing_key_previous.as_ref().map(Redacted::expose) else { return Ok(Vec::new()) };
        if self.is_asymmetric() {
            return Err(SettingError(format!(
                "SIGNING_KEY_PREVIOUS holds HMAC secrets and cannot be used with ALGORITHM={:?}; asymmetric keys rotate in the database (see `auth-service keys`)",
                self.algorithm
            )));
        }
        let mut keys = Vec::new();
        for key in list.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            if !self.dev {
                shared_user::settings::check_signing_key(key.as_bytes()).map_err(|e| {
                    SettingError(e.0.replacen("SIGNING_KEY ", "SIGNING_KEY_PREVIOUS holds a secret that ", 1))
                })?;
            }
            keys.push(key.as_bytes().to_vec());
        }
        Ok(keys)
    }

    /// Every check start-up must pass, done before the database is touched, so a bad setting
    /// fails fast with one line and changes nothing ([`Settings::checked`] also normalizes).
    pub fn validate(&self) -> Result<(), SettingError> {
        self.resolve_signing_key()?;
        self.resolve_previous_signing_keys()?;
        self.header_types()?;
        self.header_name()?;
        if self.access_token_lifetime.is_zero() || self.refresh_token_lifetime.is_zero() {
            return Err(SettingError::new("token lifetimes must be positive"));
        }
        if self.request_timeout.is_zero() {
            return Err(SettingError::new("REQUEST_TIMEOUT must be positive"));
        }
        if self.user_id_claim.trim().is_empty() {
            return Err(SettingError::new("USER_ID_CLAIM must not be empty"));
        }
        if self.hasura_default_role.trim().is_empty() {
            return Err(SettingError::new("HASURA_DEFAULT_ROLE must not be empty"));
        }
        if self.hasura_default_role.trim() == ADMIN_ROLE {
            return Err(SettingError::new(
                "HASURA_DEFAULT_ROLE must not be `admin`: only staff and superusers may hold Hasura's admin role",
            ));
        }
        if self.hasura_action_secret.as_ref().is_some_and(|s| s.expose().is_empty()) {
            return Err(SettingError::new("HASURA_ACTION_SECRET is set but empty; unset it or set a random secret"));
        }
        if let Some(group) = &self.users_reader_group {
            let group = group.trim();
            if group.is_empty() || group.contains(char::is_whitespace) {
                return Err(SettingError::new("USERS_READER_GROUP must be one access group name (no spaces)"));
            }
            if group == ADMIN_ROLE {
                return Err(SettingError::new(
                    "USERS_READER_GROUP must not be `admin`: only staff and superusers may hold Hasura's admin role",
                ));
            }
        }
        if self.graphql_max_root_fields == 0 || self.graphql_max_complexity == 0 {
            return Err(SettingError::new("GRAPHQL_MAX_ROOT_FIELDS and GRAPHQL_MAX_COMPLEXITY must be positive"));
        }
        if self.is_asymmetric() && !self.dev && self.key_encryption_key.is_none() {
            return Err(SettingError(format!(
                "KEY_ENCRYPTION_KEY is not set: ALGORITHM={:?} keeps private keys in the database, sealed with it \
                 (32 random bytes in base64, e.g. `head -c 32 /dev/urandom | base64`)",
                self.algorithm
            )));
        }
        self.key_encryption_key()?;
        self.webauthn()?;
        let lead = publication_lead(self.keys_reload_interval, self.jwks_max_age, self.leeway);
        if !self.key_rotation_interval.is_zero() && self.key_rotation_interval <= lead {
            return Err(SettingError(format!(
                "KEY_ROTATION_INTERVAL must be longer than the publication lead of a new key ({}: \
                 KEYS_RELOAD_INTERVAL + JWKS_MAX_AGE + LEEWAY + 1s), or 0 for manual rotation",
                humantime::format_duration(lead)
            )));
        }
        self.trusted_proxies()?;
        if self.trust_x_forwarded_for && self.trusted_proxies()?.is_empty() {
            return Err(SettingError::new(
                "TRUST_X_FORWARDED_FOR is replaced by TRUSTED_PROXIES: list the addresses or CIDR networks of \
                 your proxies (e.g. TRUSTED_PROXIES=10.0.0.0/8) instead",
            ));
        }
        if self.revocation_feed_token.as_ref().is_some_and(|t| t.expose().len() < 16) {
            return Err(SettingError::new(
                "REVOCATION_FEED_TOKEN is shorter than 16 bytes; set a random secret (or unset it)",
            ));
        }
        self.check_listeners()?;
        let tls = self.tls_files()?;
        if !self.feed_client_names().is_empty() && tls.is_none_or(|t| t.client_auth == ClientAuth::None) {
            return Err(SettingError::new(
                "REVOCATION_FEED_CLIENT_NAMES needs client certificates: set TLS_CLIENT_CA_FILE and \
                 TLS_CLIENT_AUTH=optional or required",
            ));
        }
        let h = &self.hashing;
        argon2::Params::new(h.argon2_memory_kib, h.argon2_iterations, h.argon2_parallelism, None)
            .map_err(|e| SettingError(format!("invalid argon2 parameters: {e}")))?;
        Ok(())
    }

    /// The settings checked ([`Settings::validate`]) and in the form the service reads them:
    /// `AUTH_HEADER_NAME` lowercase, `AUTH_HEADER_TYPES` trimmed, `HASURA_DEFAULT_ROLE` and
    /// `USERS_READER_GROUP` trimmed (an empty group is none).
    pub fn checked(mut self) -> Result<Self, SettingError> {
        self.validate()?;
        self.auth_header_name = self.header_name()?;
        self.auth_header_types = self.header_types()?;
        self.hasura_default_role = self.hasura_default_role.trim().to_owned();
        self.users_reader_group = self.reader_group().map(str::to_owned);
        self.revocation_feed_client_names = self.feed_client_names();
        Ok(self)
    }

    /// The management and console listeners' settings: TLS files only for a listener that is
    /// set, each pair complete.
    fn check_listeners(&self) -> Result<(), SettingError> {
        let listeners = [
            ("MANAGEMENT", self.management_bind, [&self.management_tls_cert_file, &self.management_tls_key_file]),
            ("CONSOLE", self.console_bind, [&self.console_tls_cert_file, &self.console_tls_key_file]),
        ];
        for (name, bind, files) in listeners {
            if files.iter().any(|f| f.is_some()) && bind.is_none() {
                return Err(SettingError(format!(
                    "{name}_TLS_CERT_FILE and {name}_TLS_KEY_FILE need {name}_BIND (the listener they are for)"
                )));
            }
        }
        self.management_tls_files()?;
        self.console_tls_files()?;
        Ok(())
    }

    /// `KEY_ENCRYPTION_KEY`, parsed.
    pub fn key_encryption_key(&self) -> Result<Option<KeyEncryptionKey>, SettingError> {
        self.key_encryption_key
            .as_ref()
            .map(|k| KeyEncryptionKey::parse(k.expose()))
            .transpose()
            .map_err(|e| SettingError(e.to_string()))
    }

    /// The WebAuthn relying party of `WEBAUTHN_RP_ID` and `WEBAUTHN_ORIGIN` (`None`: passkeys
    /// are off). Both or neither must be set; the origin must be `https://` (or
    /// `http://localhost`) and its host the relying party id or below it.
    pub fn webauthn(&self) -> Result<Option<webauthn_rs::Webauthn>, SettingError> {
        let rp_id = self.webauthn_rp_id.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let origin = self.webauthn_origin.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let (rp_id, origin) = match (rp_id, origin) {
            (None, None) => return Ok(None),
            (Some(rp_id), Some(origin)) => (rp_id, origin),
            _ => return Err(SettingError::new("WEBAUTHN_RP_ID and WEBAUTHN_ORIGIN go together: set both or neither")),
        };
        let url = webauthn_rs::prelude::Url::parse(origin).map_err(|e| {
            SettingError(format!("WEBAUTHN_ORIGIN is not a URL ({e}): set e.g. https://app.example.com"))
        })?;
        let local = url.host_str() == Some("localhost");
        if url.scheme() != "https" && !(url.scheme() == "http" && local) {
            return Err(SettingError::new(
                "WEBAUTHN_ORIGIN must be an https:// origin (browsers offer passkeys only there, or at http://localhost)",
            ));
        }
        let builder = webauthn_rs::WebauthnBuilder::new(rp_id, &url).map_err(|e| {
            SettingError(format!(
                "WEBAUTHN_RP_ID {rp_id:?} does not fit WEBAUTHN_ORIGIN {origin:?} ({e}): the relying party id \
                 is the origin's host or a parent domain of it"
            ))
        })?;
        builder.rp_name("Gatehouse").build().map(Some).map_err(|e| SettingError(format!("WebAuthn settings: {e}")))
    }

    /// `TRUSTED_PROXIES` as networks.
    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, SettingError> {
        crate::client_ip::parse_trusted_proxies(&self.trusted_proxies)
    }

    /// `AUTH_HEADER_TYPES` trimmed, empty entries dropped; at least one, each a single word.
    pub fn header_types(&self) -> Result<Vec<String>, SettingError> {
        shared_user::settings::parse_header_types(&self.auth_header_types)
    }

    /// `AUTH_HEADER_NAME` as a lowercase HTTP header name (`HTTP_AUTHORIZATION` accepted).
    pub fn header_name(&self) -> Result<String, SettingError> {
        shared_user::settings::parse_header_name(&self.auth_header_name)
    }

    /// `USERS_READER_GROUP` trimmed, when set.
    pub fn reader_group(&self) -> Option<&str> {
        self.users_reader_group.as_deref().map(str::trim).filter(|g| !g.is_empty())
    }

    /// The listener's TLS files (`TLS_*`), or `None` for plain HTTP; a partial set is an error
    /// of one line.
    pub fn tls_files(&self) -> Result<Option<TlsFiles>, SettingError> {
        TlsFiles::from_settings(
            "",
            self.tls_cert_file.as_deref(),
            self.tls_key_file.as_deref(),
            self.tls_client_ca_file.as_deref(),
            self.tls_client_auth,
        )
    }

    /// The management listener's TLS: its own `MANAGEMENT_TLS_CERT_FILE`/`_KEY_FILE`, or else the
    /// public listener's certificate (`None` without `MANAGEMENT_BIND`). It never asks for
    /// client certificates.
    pub fn management_tls_files(&self) -> Result<Option<TlsFiles>, SettingError> {
        self.side_listener_tls(
            "MANAGEMENT_",
            self.management_bind,
            self.management_tls_cert_file.as_deref(),
            self.management_tls_key_file.as_deref(),
        )
    }

    /// The console listener's TLS, as [`Settings::management_tls_files`] with `CONSOLE_`: browsers
    /// are never asked for a client certificate.
    pub fn console_tls_files(&self) -> Result<Option<TlsFiles>, SettingError> {
        self.side_listener_tls(
            "CONSOLE_",
            self.console_bind,
            self.console_tls_cert_file.as_deref(),
            self.console_tls_key_file.as_deref(),
        )
    }

    fn side_listener_tls(
        &self,
        prefix: &str,
        bind: Option<SocketAddr>,
        cert: Option<&std::path::Path>,
        key: Option<&std::path::Path>,
    ) -> Result<Option<TlsFiles>, SettingError> {
        if bind.is_none() {
            return Ok(None);
        }
        if cert.is_some() || key.is_some() {
            return TlsFiles::from_settings(prefix, cert, key, None, ClientAuth::None);
        }
        Ok(self.tls_files()?.map(|public| TlsFiles::new(public.cert, public.key)))
    }

    /// `REVOCATION_FEED_CLIENT_NAMES` trimmed, empty entries dropped.
    pub fn feed_client_names(&self) -> Vec<String> {
        self.revocation_feed_client_names
            .iter()
            .map(|n| n.trim())
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Whether the revocation feed is on: a token or client names to let callers in.
    pub fn feed_enabled(&self) -> bool {
        self.revocation_feed_token.is_some() || !self.revocation_feed_client_names.is_empty()
    }

    /// `MAX_SESSIONS_PER_USER` as a cap (`None`: 0, no cap).
    pub fn session_cap(&self) -> Option<usize> {
        usize::try_from(self.max_sessions_per_user).ok().filter(|n| *n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones_and_need_only_a_key() {
        let s = Settings::default();
        assert_eq!(s.validate().unwrap_err().to_string().split(';').next(), Some("SIGNING_KEY is not set"));
        let s =
            Settings { signing_key: Some("test-signing-key-0123456789abcdef0123456789".into()), ..Settings::default() };
        s.validate().expect("defaults are valid");
        assert_eq!(s.header_types().unwrap(), ["Bearer"]);
        assert_eq!(s.header_name().unwrap(), "authorization");
    }

    #[test]
    fn the_defaults_are_the_documented_ones() {
        let s = Settings::default();
        assert_eq!(s.algorithm, Algorithm::HS256);
        assert_eq!(s.access_token_lifetime, Duration::from_secs(300));
        assert_eq!(s.refresh_token_lifetime, Duration::from_secs(86400));
        assert!(!s.rotate_refresh_tokens && s.blacklist_after_rotation && s.update_last_login && s.login_throttle);
        assert_eq!(
            (s.leeway, s.user_id_claim.as_str(), s.auth_header_types.as_slice()),
            (0, "user_id", &["Bearer".to_owned()][..])
        );
        assert_eq!(s.hashing, Hashing { argon2_memory_kib: 19456, argon2_iterations: 2, argon2_parallelism: 1 });
        assert_eq!(s.audit_retention, Duration::from_secs(90 * 86400));
        assert_eq!((s.max_sessions_per_user, s.signup_throttle_per_hour, s.metrics), (100, 10, true));
        assert!(s.signing_key.is_none() && s.trusted_proxies.is_empty());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let s = Settings {
            signing_key: Some("test-signing-key-0123456789abcdef0123456789".into()),
            hasura_action_secret: Some("action-secret-0123456789".into()),
            ..Settings::default()
        };
        let text = format!("{s:?}");
        assert!(!text.contains("0123456789"), "{text}");
        assert!(text.contains("signing_key: Some([redacted])"), "{text}");
    }

    #[test]
    fn tls_settings_are_checked_at_start_with_one_line() {
        let key = Some("test-signing-key-0123456789abcdef0123456789".into());
        let base = Settings { signing_key: key, ..Settings::default() };
        assert_eq!(base.tls_files().unwrap(), None, "plain HTTP by default");
        let cert_only = Settings { tls_cert_file: Some("c.pem".into()), ..base.clone() };
        assert_eq!(cert_only.validate().unwrap_err().to_string(), "TLS_CERT_FILE is set without TLS_KEY_FILE");
        let tls = Settings { tls_cert_file: Some("c.pem".into()), tls_key_file: Some("k.pem".into()), ..base.clone() };
        tls.validate().expect("certificate and key");
        let no_ca = Settings { tls_client_auth: ClientAuth::Required, ..tls.clone() };
        assert!(no_ca.validate().unwrap_err().to_string().starts_with("TLS_CLIENT_AUTH asks for client certificates"));
        let names = Settings { revocation_feed_client_names: vec!["client-service".into()], ..tls.clone() };
        assert!(names.validate().unwrap_err().to_string().starts_with("REVOCATION_FEED_CLIENT_NAMES needs client"));
        let mtls = Settings {
            tls_client_ca_file: Some("ca.pem".into()),
            tls_client_auth: ClientAuth::Optional,
            revocation_feed_client_names: vec![" client-service ".into(), "".into()],
            ..tls
        };
        let checked = mtls.checked().expect("client names with client certificates");
        assert_eq!(checked.revocation_feed_client_names, ["client-service"]);
        assert!(checked.feed_enabled(), "client names alone turn the feed on");
    }

    #[test]
    fn admin_is_never_a_default_or_reader_role() {
        let key = Some("test-signing-key-0123456789abcdef0123456789".into());
        let s = Settings { signing_key: key.clone(), hasura_default_role: "admin".into(), ..Settings::default() };
        assert!(s.validate().unwrap_err().to_string().starts_with("HASURA_DEFAULT_ROLE must not be `admin`"));
        let s = Settings { signing_key: key, users_reader_group: Some(" admin ".into()), ..Settings::default() };
        assert!(s.validate().unwrap_err().to_string().starts_with("USERS_READER_GROUP must not be `admin`"));
    }
}
