//! The command line: subcommands and the flags of each. The service's settings are
//! [`Settings`] itself (flattened into `serve`); what is here belongs to one command.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use shared_user::jsonwebtoken::Algorithm;
use shared_user::server::Limits;
use shared_user::settings::SettingError;

use crate::kek::{KeyEncryptionKey, KeyError};
use crate::settings::{Hashing, Settings, defaults};

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
    /// Make a private CA and certificates for TLS (for people without a PKI of their own).
    #[command(subcommand)]
    Certs(CertsCommand),
}

/// `certs` subcommands. Private keys are written with mode 0600 and never replaced without
/// --force.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Write a new private CA (ca.pem, ca-key.pem) and a server certificate for the given host
    /// names and addresses (server.pem, server-key.pem) into DIR.
    Init {
        /// Directory to write into (created when missing).
        dir: std::path::PathBuf,
        /// A DNS name or IP address the server is reached by (repeat it, or separate with commas).
        #[arg(long = "host", required = true, value_delimiter = ',', num_args = 1..)]
        hosts: Vec<String>,
        /// Replace existing keys (every certificate the old CA signed stops being trusted).
        #[arg(long)]
        force: bool,
    },
    /// Write a client certificate for NAME (its common name and DNS name), signed by the CA in
    /// DIR: client-NAME.pem, client-NAME-key.pem.
    Client {
        /// The client's name (letters, digits, '.', '-', '_'); list it in
        /// REVOCATION_FEED_CLIENT_NAMES to let it read the revocation feed.
        name: String,
        /// Directory of the CA (from `certs init`), where the files are written.
        #[arg(long)]
        dir: std::path::PathBuf,
        /// Replace an existing key of that name.
        #[arg(long)]
        force: bool,
    },
}

/// `audit` options.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Only events about the user with this email.
    #[arg(long)]
    pub user: Option<String>,
    /// Only events of this kind: login_succeeded, login_failed, throttled,
    /// refresh_reuse_detected, password_changed, session_revoked, logout_all, user_created,
    /// user_updated, key_rotated, mfa_enrolled, mfa_removed, mfa_failed, mfa_reset.
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
    #[arg(long, env = "REFRESH_TOKEN_LIFETIME", default_value = defaults::REFRESH_TOKEN_LIFETIME, value_parser = parse_duration)]
    pub refresh_token_lifetime: Duration,
    /// How long audit events are kept.
    #[arg(long, env = "AUDIT_RETENTION", default_value = defaults::AUDIT_RETENTION, value_parser = parse_duration)]
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
        #[arg(long, env = "ALGORITHM", value_parser = shared_user::settings::parse_algorithm)]
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
        #[arg(long, env = "ALGORITHM", value_parser = shared_user::settings::parse_algorithm)]
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
    /// List the keys (kid, algorithm, status, dates, and the next step each takes by itself and
    /// when; never private material).
    List {
        /// Database.
        #[command(flatten)]
        db: DbArgs,
        /// The settings of the replicas that rotate the keys.
        #[command(flatten)]
        rotation: RotationArgs,
    },
}

/// The `serve` settings that time automatic key rotation, for `keys list` (the same names,
/// environment variables and defaults as `serve`'s).
#[derive(Debug, Clone, Args)]
pub struct RotationArgs {
    /// KEY_ROTATION_INTERVAL of the replicas (`0`: manual rotation only).
    #[arg(long, env = "KEY_ROTATION_INTERVAL", default_value = defaults::KEY_ROTATION_INTERVAL, value_parser = parse_duration)]
    pub key_rotation_interval: Duration,
    /// KEYS_RELOAD_INTERVAL of the replicas.
    #[arg(long, env = "KEYS_RELOAD_INTERVAL", default_value = defaults::KEYS_RELOAD_INTERVAL, value_parser = parse_duration)]
    pub keys_reload_interval: Duration,
    /// JWKS_MAX_AGE of the replicas.
    #[arg(long, env = "JWKS_MAX_AGE", default_value = defaults::JWKS_MAX_AGE, value_parser = parse_duration)]
    pub jwks_max_age: Duration,
    /// LEEWAY of the replicas, seconds.
    #[arg(long, env = "LEEWAY", default_value = defaults::LEEWAY)]
    pub leeway: u64,
    /// REFRESH_TOKEN_LIFETIME of the replicas.
    #[arg(long, env = "REFRESH_TOKEN_LIFETIME", default_value = defaults::REFRESH_TOKEN_LIFETIME, value_parser = parse_duration)]
    pub refresh_token_lifetime: Duration,
}

impl RotationArgs {
    /// The rotation policy these settings give.
    pub fn policy(&self) -> crate::keys::rotation::Policy {
        crate::keys::rotation::Policy::new(
            self.key_rotation_interval,
            self.keys_reload_interval,
            self.jwks_max_age,
            self.leeway,
            self.refresh_token_lifetime,
        )
    }
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
    pub fn required(&self) -> Result<Option<KeyEncryptionKey>, KeyError> {
        match self.key_encryption_key.as_deref().map(KeyEncryptionKey::parse).transpose()? {
            None if !self.dev => Err(KeyError::NoKek),
            kek => Ok(kek),
        }
    }
}

/// Database selection.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Store: `sqlite://FILE` (default) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://gatehouse-auth.db")]
    pub database_url: String,
    /// Maximum pooled database connections.
    #[arg(long, env = "DB_POOL_SIZE", default_value_t = DEFAULT_DB_POOL_SIZE)]
    pub db_pool_size: usize,
}

/// Default of `DB_POOL_SIZE`.
const DEFAULT_DB_POOL_SIZE: usize = 10;

impl Command {
    /// The database pool size `serve` runs with (the runtime's blocking pool is sized by it);
    /// the default for the one-shot commands, which make one query at a time.
    pub fn db_pool_size(&self) -> usize {
        match self {
            Command::Serve(args) => args.db.db_pool_size,
            _ => DEFAULT_DB_POOL_SIZE,
        }
    }
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
    pub settings: Settings,
    /// Listener limits (`HEADER_READ_TIMEOUT`, `IDLE_TIMEOUT`, `MAX_CONNECTIONS`,
    /// `MAX_CONNECTIONS_PER_IP`).
    #[command(flatten)]
    pub limits: Limits,
}

impl ServeArgs {
    /// The listener limits, validated (also against `REQUEST_TIMEOUT`).
    pub fn limits(&self) -> Result<Limits, SettingError> {
        self.limits.validate().map_err(|e| SettingError(e.to_string()))?;
        if self.limits.idle_timeout <= self.settings.request_timeout {
            return Err(SettingError::new("IDLE_TIMEOUT must be longer than REQUEST_TIMEOUT"));
        }
        Ok(self.limits)
    }
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
    pub hashing: Hashing,
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
        hashing: Hashing,
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
