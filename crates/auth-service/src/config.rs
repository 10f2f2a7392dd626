//! Command line and environment configuration, typed once and validated at start.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use shared_user::jsonwebtoken::Algorithm;

/// Gatehouse auth-service: issues, refreshes, verifies and revokes JWTs (EasyJWT compatible).
#[derive(Debug, Parser)]
#[command(name = "auth-service", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
#[expect(clippy::large_enum_variant, reason = "parsed once at start; boxing would only complicate matching")]
pub enum Command {
    /// Run the HTTP service (migrates the database first).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(DbArgs),
    /// Create a superuser (staff + superuser) non-interactively.
    Createsuperuser(CreateSuperuserArgs),
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Delete refresh-token records that have expired.
    PurgeTokens(DbArgs),
    /// Manage asymmetric signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// One rotation step. With no staged key: create one as `next` (published in the JWKS, not
    /// signing yet). With a staged key: make it `current` and retire the old one (still
    /// published until its tokens expire). Run it twice, at least the clients' JWKS cache TTL
    /// apart, so every client knows the new key before it signs.
    Rotate {
        /// Algorithm of a new key: EdDSA, ES256 or RS256.
        #[arg(long, env = "ALGORITHM", default_value = "EdDSA", value_parser = crate::tokens::parse_signing_algorithm)]
        algorithm: Algorithm,
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
    /// List the keys (kid, algorithm, status, dates; never private material).
    List {
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
}

/// Database selection.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Store: `sqlite://FILE` (default) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://gatehouse-auth.db")]
    pub database_url: String,
    /// Maximum pooled database connections.
    #[arg(long, env = "DB_POOL_SIZE", default_value_t = 10)]
    pub db_pool_size: usize,
}

/// `serve` options.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,
    /// Database.
    #[command(flatten)]
    pub db: DbArgs,
    /// Token and password settings.
    #[command(flatten)]
    pub settings: SettingsArgs,
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
}

/// Token, password and HTTP settings (EASY_JWT names where they exist).
#[derive(Debug, Clone, Args)]
pub struct SettingsArgs {
    /// HMAC secret (HS*) used to sign and verify tokens. Required unless --dev.
    #[arg(long, env = "SIGNING_KEY", hide_env_values = true)]
    pub signing_key: Option<String>,
    /// Development mode: allows a missing or weak signing key (a random one is generated).
    #[arg(long, env = "GATEHOUSE_DEV", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub dev: bool,
    /// Signing algorithm: HS256, HS384, HS512 (SIGNING_KEY) or EdDSA, ES256, RS256 (keys kept
    /// in the database, published at /.well-known/jwks.json, rotated with `auth-service keys rotate`).
    #[arg(long, env = "ALGORITHM", default_value = "HS256", value_parser = crate::tokens::parse_signing_algorithm)]
    pub algorithm: Algorithm,
    /// Access token lifetime (`300`, `5m`, `1h`...).
    #[arg(long, env = "ACCESS_TOKEN_LIFETIME", default_value = "5m", value_parser = parse_duration)]
    pub access_token_lifetime: Duration,
    /// Refresh token lifetime.
    #[arg(long, env = "REFRESH_TOKEN_LIFETIME", default_value = "1d", value_parser = parse_duration)]
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
    /// Clock skew allowance in seconds for `exp`, `nbf` and `iat`.
    #[arg(long, env = "LEEWAY", default_value_t = 0)]
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
    /// Take the client address from the first `X-Forwarded-For` hop (only behind a trusted proxy).
    #[arg(long, env = "TRUST_X_FORWARDED_FOR", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false)]
    pub trust_x_forwarded_for: bool,
    /// How often replicas reload asymmetric signing keys from the database.
    #[arg(long, env = "KEYS_RELOAD_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub keys_reload_interval: Duration,
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
    pub hasura_action_secret: Option<String>,
    /// argon2id parameters.
    #[command(flatten)]
    pub hashing: HashArgs,
    /// Password hashing threads, i.e. hashes computed at once (default: number of CPUs).
    #[arg(long, env = "HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,
    /// Whole-request timeout.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Record Prometheus metrics and serve them at `GET /metrics` (`METRICS`, default true).
    #[arg(long, env = "METRICS", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), default_value_t = true)]
    pub metrics: bool,
}

/// `createsuperuser` options.
#[derive(Debug, Clone, Args)]
pub struct CreateSuperuserArgs {
    /// Email (the username).
    #[arg(long)]
    pub email: String,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Password (prefer --password-stdin; never pass secrets on a shared machine's command line).
    #[arg(long, env = "AUTH_SUPERUSER_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Database.
    #[command(flatten)]
    pub db: DbArgs,
    /// Hashing parameters.
    #[command(flatten)]
    pub hashing: HashArgs,
}

/// Password hashing parameters (`serve` and the admin commands that set passwords).
#[derive(Debug, Clone, Args)]
pub struct HashArgs {
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

/// `users` subcommands.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user.
    Add {
        /// Email (the username).
        #[arg(long)]
        email: String,
        /// Make the user staff.
        #[arg(long)]
        staff: bool,
        /// Access group, `NAME` or `NAME:LEVEL`; repeat for several.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// First name.
        #[arg(long, default_value = "")]
        first_name: String,
        /// Last name.
        #[arg(long, default_value = "")]
        last_name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Password (prefer --password-stdin).
        #[arg(long, env = "AUTH_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Database.
        #[command(flatten)]
        db: DbArgs,
        /// Hashing parameters.
        #[command(flatten)]
        hashing: HashArgs,
    },
    /// List users as JSON lines.
    List {
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
    /// Grant or remove staff.
    SetStaff {
        /// Email of the user.
        #[arg(long)]
        email: String,
        /// `true` or `false`.
        #[arg(long, action = clap::ArgAction::Set, default_value_t = true)]
        staff: bool,
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
    /// Replace the user's access groups.
    SetGroups {
        /// Email of the user.
        #[arg(long)]
        email: String,
        /// Access group, `NAME` or `NAME:LEVEL`; repeat for several; none clears them.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
    /// Deactivate a user and revoke their refresh tokens.
    Deactivate {
        /// Email of the user.
        #[arg(long)]
        email: String,
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
}

pub use shared_user::settings::parse_duration;

impl SettingsArgs {
    /// Whether tokens are signed with asymmetric keys from the database.
    pub fn is_asymmetric(&self) -> bool {
        shared_user::jwks::is_asymmetric(self.algorithm)
    }

    /// The signing key to use, or why the service must not start.
    pub fn resolve_signing_key(&self) -> Result<Vec<u8>, String> {
        if self.is_asymmetric() {
            return match self.signing_key {
                Some(_) => Err(format!(
                    "SIGNING_KEY is an HMAC secret and cannot be used with ALGORITHM={:?}; asymmetric keys live in the database (see `auth-service keys`)",
                    self.algorithm
                )),
                None => Ok(Vec::new()),
            };
        }
        match self.signing_key.as_deref() {
            Some(key) if !self.dev => {
                shared_user::settings::check_signing_key(key.as_bytes())?;
                Ok(key.as_bytes().to_vec())
            }
            Some(key) => Ok(key.as_bytes().to_vec()),
            None if self.dev => Ok(uuid::Uuid::new_v4().simple().to_string().repeat(2).into_bytes()),
            None => {
                Err("SIGNING_KEY is not set; set a random secret of 32+ bytes (or use --dev for a generated one)"
                    .into())
            }
        }
    }

    /// Every check start-up must pass, done before the database is touched, so a bad setting
    /// fails fast with one line and changes nothing.
    pub fn validate(&self) -> Result<(), String> {
        self.resolve_signing_key()?;
        self.header_types()?;
        self.header_name()?;
        if self.access_token_lifetime.is_zero() || self.refresh_token_lifetime.is_zero() {
            return Err("token lifetimes must be positive".into());
        }
        if self.request_timeout.is_zero() {
            return Err("REQUEST_TIMEOUT must be positive".into());
        }
        if self.user_id_claim.trim().is_empty() {
            return Err("USER_ID_CLAIM must not be empty".into());
        }
        if self.hasura_default_role.trim().is_empty() {
            return Err("HASURA_DEFAULT_ROLE must not be empty".into());
        }
        if self.hasura_action_secret.as_deref().is_some_and(str::is_empty) {
            return Err("HASURA_ACTION_SECRET is set but empty; unset it or set a random secret".into());
        }
        let h = &self.hashing;
        argon2::Params::new(h.argon2_memory_kib, h.argon2_iterations, h.argon2_parallelism, None)
            .map_err(|e| format!("invalid argon2 parameters: {e}"))?;
        Ok(())
    }

    /// `AUTH_HEADER_TYPES` trimmed, empty entries dropped; at least one, each a single word.
    pub fn header_types(&self) -> Result<Vec<String>, String> {
        Ok(shared_user::settings::parse_header_types(&self.auth_header_types)?)
    }

    /// `AUTH_HEADER_NAME` as a lowercase HTTP header name (`HTTP_AUTHORIZATION` accepted).
    pub fn header_name(&self) -> Result<String, String> {
        Ok(shared_user::settings::parse_header_name(&self.auth_header_name)?)
    }
}
