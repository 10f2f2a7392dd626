//! Command line and environment configuration, typed once and validated at start.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use shared_user::jsonwebtoken::Algorithm;

use crate::settings::{Hashing, Settings};

/// Gatehouse auth-service: issues, refreshes, verifies and revokes JWTs (EasyJWT compatible).
#[derive(Debug, Parser)]
#[command(name = "auth-service", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Logging (`RUST_LOG`, `LOG_FORMAT`).
    #[command(flatten)]
    pub log: shared_user::runtime::LogArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
#[expect(clippy::large_enum_variant, reason = "parsed once at start; boxing would only complicate matching")]
pub enum Command {
    /// Run the HTTP service (migrates the database first).
    Serve(ServeArgs),
    /// Apply pending database migrations, seal plaintext private keys (with
    /// KEY_ENCRYPTION_KEY), and exit.
    Migrate(MigrateArgs),
    /// Create a superuser (staff + superuser) non-interactively.
    Createsuperuser(CreateSuperuserArgs),
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Run the housekeeping `serve` runs every hour, once: delete expired refresh-token records
    /// and sessions, idle login counters, long-retired signing keys, watermarks older than every
    /// token they refuse, and audit events older than AUDIT_RETENTION.
    PurgeTokens(PurgeArgs),
    /// Manage asymmetric signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Show the audit trail (newest first).
    Audit(AuditArgs),
}

/// `audit` options.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Only events about the user with this email.
    #[arg(long)]
    pub user: Option<String>,
    /// Only events of this kind: login_succeeded, login_failed, throttled,
    /// refresh_reuse_detected, password_changed, session_revoked, logout_all, user_created,
    /// user_updated, key_rotated.
    #[arg(long, value_parser = |s: &str| s.parse::<crate::audit::AuditKind>())]
    pub kind: Option<crate::audit::AuditKind>,
    /// Only events of this recent period (`1h`, `30m`, `7d`).
    #[arg(long, value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// At most this many events (1 to 1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub limit: i64,
    /// One JSON object per line instead of text columns.
    #[arg(long)]
    pub json: bool,
    /// Database.
    #[command(flatten)]
    pub db: DbArgs,
}

/// `purge-tokens` options: the lifetimes the purge depends on, from the same variables (and
/// defaults) as `serve`, so set them as for the service.
#[derive(Debug, Clone, Args)]
pub struct PurgeArgs {
    /// The service's refresh token lifetime: retired keys and watermarks are kept this long
    /// (plus an hour) after they stop mattering.
    #[arg(long, env = "REFRESH_TOKEN_LIFETIME", default_value = "1d", value_parser = parse_duration)]
    pub refresh_token_lifetime: Duration,
    /// How long audit events are kept.
    #[arg(long, env = "AUDIT_RETENTION", default_value = "90d", value_parser = parse_duration)]
    pub audit_retention: Duration,
    /// Database.
    #[command(flatten)]
    pub db: DbArgs,
}

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// One rotation step. With no staged key: create one as `next` (published in the JWKS, not
    /// signing yet). With a staged key: make it `current` and retire the old one (still
    /// published until its tokens expire). Run it twice, at least KEYS_RELOAD_INTERVAL plus the
    /// clients' JWKS cache TTL apart, so every replica publishes the new key and every client
    /// knows it before it signs.
    Rotate {
        /// Algorithm of the new key: EdDSA, ES256 or RS256. Default: the signing key's (EdDSA
        /// when there is none); another one needs --yes.
        #[arg(long, env = "ALGORITHM", value_parser = crate::tokens::parse_signing_algorithm)]
        algorithm: Option<Algorithm>,
        /// Confirm a change of algorithm (clients that accept only the old one refuse the new
        /// key's tokens).
        #[arg(long)]
        yes: bool,
        /// Key sealing private keys at rest.
        #[command(flatten)]
        kek: KekArgs,
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a key at once: no longer published nor accepted (by every running replica within
    /// about a second, by clients at their next JWKS fetch). Revoking the signing key promotes
    /// the staged key, or a new one of the same algorithm.
    Revoke {
        /// The key id (`kid`), see `keys list`.
        kid: String,
        /// Algorithm of a replacement key when the signing key is revoked with none staged.
        /// Default: the revoked key's; another one needs --yes.
        #[arg(long, env = "ALGORITHM", value_parser = crate::tokens::parse_signing_algorithm)]
        algorithm: Option<Algorithm>,
        /// Confirm a change of algorithm (clients that accept only the old one refuse the new
        /// key's tokens).
        #[arg(long)]
        yes: bool,
        /// Key sealing private keys at rest.
        #[command(flatten)]
        kek: KekArgs,
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

/// `migrate` options.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// Database.
    #[command(flatten)]
    pub db: DbArgs,
    /// Key sealing private keys at rest (plaintext ones are sealed when set).
    #[command(flatten)]
    pub kek: KekArgs,
}

/// The key sealing asymmetric private keys at rest, for the admin commands.
#[derive(Debug, Clone, Args)]
pub struct KekArgs {
    /// 32 random bytes in base64 (AES-256-GCM); required to create keys outside --dev.
    #[arg(long, env = "KEY_ENCRYPTION_KEY", hide_env_values = true)]
    pub key_encryption_key: Option<String>,
    /// Development mode: new keys may be stored unsealed.
    #[arg(long, env = "GATEHOUSE_DEV", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub dev: bool,
}

impl KekArgs {
    /// The parsed key; `None` only in development mode.
    pub fn required(&self) -> Result<Option<crate::keys::KeyEncryptionKey>, String> {
        match parse_kek(self.key_encryption_key.as_deref())? {
            None if !self.dev => Err("KEY_ENCRYPTION_KEY is not set: private keys are stored sealed with it \
                 (32 random bytes in base64), or use --dev"
                .into()),
            kek => Ok(kek),
        }
    }
}

pub(crate) fn parse_kek(text: Option<&str>) -> Result<Option<crate::keys::KeyEncryptionKey>, String> {
    text.map(crate::keys::KeyEncryptionKey::parse).transpose()
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
    /// Longest wait for a complete request head, counted from the accept (a connection that
    /// sends nothing is closed after it) and again after each answer on a kept-alive connection.
    #[arg(long, env = "HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// A connection with nothing read or written for this long is closed (longer than
    /// REQUEST_TIMEOUT).
    #[arg(long, env = "IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Connections served at once; more are closed as soon as they are accepted.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Connections served at once from one client address (IPv6: one /64), by the socket's
    /// peer (TRUSTED_PROXIES plays no part); more are closed as soon as they are accepted.
    #[arg(long, env = "MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,
}

impl ServeArgs {
    /// The listener limits, validated.
    pub fn limits(&self) -> Result<shared_user::server::Limits, String> {
        let limits = shared_user::server::Limits {
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
        };
        limits.validate()?;
        if self.idle_timeout <= self.settings.request_timeout {
            return Err("IDLE_TIMEOUT must be longer than REQUEST_TIMEOUT".into());
        }
        Ok(limits)
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

/// Token, password and HTTP settings (EASY_JWT names where they exist), as flags and
/// environment; converted into [`Settings`], which owns the defaults' meaning and the checks.
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
    /// Replaced by TRUSTED_PROXIES: `true` without TRUSTED_PROXIES is a startup error (it used
    /// to believe any caller's `X-Forwarded-For`); with TRUSTED_PROXIES set it changes nothing.
    #[arg(long, env = "TRUST_X_FORWARDED_FOR", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false)]
    pub trust_x_forwarded_for: bool,
    /// How often replicas reload asymmetric signing keys from the database (rotation; revoked
    /// keys are dropped within a second regardless).
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
    pub revocation_feed_token: Option<String>,
    /// How long audit events are kept before the hourly housekeeping deletes them (default 90d).
    #[arg(long, env = "AUDIT_RETENTION", default_value = "90d", value_parser = parse_duration)]
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
    pub key_encryption_key: Option<String>,
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
    /// Set the password even when sign-up's password validators refuse it (a warning says why).
    #[arg(long)]
    pub force: bool,
    /// Database.
    #[command(flatten)]
    pub db: DbArgs,
    /// Hashing parameters.
    #[command(flatten)]
    pub hashing: HashArgs,
}

/// Password hashing parameters (`serve` and the admin commands that set passwords); they
/// convert into the plain [`Hashing`] settings.
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
        /// Set the password even when sign-up's password validators refuse it (a warning says
        /// why).
        #[arg(long)]
        force: bool,
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
    /// End every session of a user and refuse every token issued before now (the user stays
    /// active and may sign in again).
    RevokeSessions {
        /// Email of the user.
        #[arg(long)]
        email: String,
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
}

pub use shared_user::settings::parse_duration;

impl From<SettingsArgs> for Settings {
    /// The flags and environment as [`Settings`]; checks happen in [`Settings::validate`].
    fn from(a: SettingsArgs) -> Self {
        Settings {
            signing_key: a.signing_key,
            dev: a.dev,
            algorithm: a.algorithm,
            access_token_lifetime: a.access_token_lifetime,
            refresh_token_lifetime: a.refresh_token_lifetime,
            rotate_refresh_tokens: a.rotate_refresh_tokens,
            blacklist_after_rotation: a.blacklist_after_rotation,
            refresh_reuse_grace: a.refresh_reuse_grace,
            update_last_login: a.update_last_login,
            audience: a.audience,
            issuer: a.issuer,
            leeway: a.leeway,
            user_id_claim: a.user_id_claim,
            auth_header_types: a.auth_header_types,
            auth_header_name: a.auth_header_name,
            login_throttle: a.login_throttle,
            trust_x_forwarded_for: a.trust_x_forwarded_for,
            keys_reload_interval: a.keys_reload_interval,
            allow_create_user: a.allow_create_user,
            claims_preset: a.claims_preset,
            hasura_default_role: a.hasura_default_role,
            hasura_action_secret: a.hasura_action_secret,
            hashing: a.hashing.into(),
            hash_concurrency: a.hash_concurrency,
            request_timeout: a.request_timeout,
            users_reader_group: a.users_reader_group,
            graphql_max_root_fields: a.graphql_max_root_fields,
            graphql_max_complexity: a.graphql_max_complexity,
            revocation_feed_token: a.revocation_feed_token,
            audit_retention: a.audit_retention,
            trusted_proxies: a.trusted_proxies,
            signup_throttle_per_hour: a.signup_throttle_per_hour,
            key_encryption_key: a.key_encryption_key,
            login_failure_min_time: a.login_failure_min_time,
            metrics: a.metrics,
            max_sessions_per_user: a.max_sessions_per_user,
        }
    }
}

impl From<HashArgs> for Hashing {
    fn from(a: HashArgs) -> Self {
        Hashing::from(&a)
    }
}

impl From<&HashArgs> for Hashing {
    fn from(a: &HashArgs) -> Self {
        Hashing {
            argon2_memory_kib: a.argon2_memory_kib,
            argon2_iterations: a.argon2_iterations,
            argon2_parallelism: a.argon2_parallelism,
        }
    }
}
