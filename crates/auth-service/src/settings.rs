//! The auth-service's one settings type: a plain struct with the shipped defaults and the
//! start-up checks. `auth-service serve` fills it from flags and environment
//! ([`crate::config::SettingsArgs`] only converts); tests, examples and the load harness build
//! it directly and hand it to [`crate::AppState::build`].

use std::time::Duration;

use shared_user::jsonwebtoken::Algorithm;

use crate::config::{ClaimsPreset, CreateUserPolicy};

/// The Hasura role only staff and superusers may hold (it bypasses every Hasura permission).
pub const ADMIN_ROLE: &str = "admin";

/// Token, password, HTTP and integration settings (EASY_JWT names where they exist). Each
/// field is documented with its environment variable and default. `Debug` never shows the
/// signing key or the action secret.
#[derive(Clone)]
pub struct Settings {
    /// `SIGNING_KEY`: HMAC secret (HS*) used to sign and verify tokens. Required unless `dev`.
    pub signing_key: Option<String>,
    /// `GATEHOUSE_DEV` (false): allows a missing or weak signing key (a random one is generated).
    pub dev: bool,
    /// `ALGORITHM` (HS256): HS256/384/512 (SIGNING_KEY) or EdDSA, ES256, RS256 (keys in the database).
    pub algorithm: Algorithm,
    /// `ACCESS_TOKEN_LIFETIME` (5m).
    pub access_token_lifetime: Duration,
    /// `REFRESH_TOKEN_LIFETIME` (1d).
    pub refresh_token_lifetime: Duration,
    /// `ROTATE_REFRESH_TOKENS` (false): a new refresh token on every refresh.
    pub rotate_refresh_tokens: bool,
    /// `BLACKLIST_AFTER_ROTATION` (true): revoke rotated tokens; reuse revokes the family.
    pub blacklist_after_rotation: bool,
    /// `REFRESH_REUSE_GRACE` (10s): reuse window after a rotation that does not revoke.
    pub refresh_reuse_grace: Duration,
    /// `UPDATE_LAST_LOGIN` (true): record `last_login` on every successful obtain.
    pub update_last_login: bool,
    /// `AUDIENCE` (none): `aud` added to tokens and required on input.
    pub audience: Option<String>,
    /// `ISSUER` (none): `iss` added to tokens and required on input.
    pub issuer: Option<String>,
    /// `LEEWAY` (0): clock skew allowance in seconds.
    pub leeway: u64,
    /// `USER_ID_CLAIM` (`user_id`).
    pub user_id_claim: String,
    /// `AUTH_HEADER_TYPES` (`Bearer`): accepted schemes; the first is named in `WWW-Authenticate`.
    pub auth_header_types: Vec<String>,
    /// `AUTH_HEADER_NAME` (`Authorization`).
    pub auth_header_name: String,
    /// `LOGIN_THROTTLE` (true): brute-force protection on every login path.
    pub login_throttle: bool,
    /// `TRUST_X_FORWARDED_FOR` (false): client address from the first `X-Forwarded-For` hop.
    pub trust_x_forwarded_for: bool,
    /// `KEYS_RELOAD_INTERVAL` (30s): how often replicas reload asymmetric keys (rotation;
    /// revoked keys are dropped within a second regardless, see [`crate::keys::watch`]).
    pub keys_reload_interval: Duration,
    /// `ALLOW_CREATE_USER` (off): who may create users over HTTP, GraphQL and Hasura.
    pub allow_create_user: CreateUserPolicy,
    /// `CLAIMS_PRESET` (none): extra claims in access tokens.
    pub claims_preset: ClaimsPreset,
    /// `HASURA_DEFAULT_ROLE` (`user`): the role of users outside `USERS_READER_GROUP`.
    pub hasura_default_role: String,
    /// `HASURA_ACTION_SECRET` (none): required in `X-Hasura-Action-Secret` when set.
    pub hasura_action_secret: Option<String>,
    /// `ARGON2_MEMORY_KIB`, `ARGON2_ITERATIONS`, `ARGON2_PARALLELISM` (OWASP: 19456, 2, 1).
    pub hashing: Hashing,
    /// `HASH_CONCURRENCY` (number of CPUs): password hashing threads.
    pub hash_concurrency: Option<usize>,
    /// `REQUEST_TIMEOUT` (30s): whole-request timeout.
    pub request_timeout: Duration,
    /// `USERS_READER_GROUP` (none): members of this access group may list every user (GraphQL
    /// `users`) without being staff, and their role (GraphQL `profile { role }`, the Hasura
    /// default role) is the group's name. Never `admin`.
    pub users_reader_group: Option<String>,
    /// `GRAPHQL_MAX_ROOT_FIELDS` (10): root fields (aliases included) one GraphQL operation
    /// may select.
    pub graphql_max_root_fields: usize,
    /// `GRAPHQL_MAX_COMPLEXITY` (500): fields (aliases included, at every depth) one GraphQL
    /// operation may select; the standard introspection query (graphql-js, Hasura) needs about 200.
    pub graphql_max_complexity: usize,
    /// `REVOCATION_FEED_TOKEN` (none): shared secret protecting the revocation feed
    /// `GET /auth/revocations/`; clients send it in `X-Revocation-Feed-Token` (compared in
    /// constant time). Unset: the feed answers 404 and local-mode clients cannot learn of
    /// revocations before tokens expire.
    pub revocation_feed_token: Option<String>,
    /// `AUDIT_RETENTION` (90d): how long audit events are kept before the hourly housekeeping
    /// deletes them.
    pub audit_retention: Duration,
    /// `TRUSTED_PROXIES` (none): proxies whose `X-Forwarded-For` is believed (the
    /// client-services, load balancers), as addresses or CIDR networks. The caller is the
    /// right-most hop that is not one of them; with none, the socket peer is the caller.
    pub trusted_proxies: Vec<String>,
    /// `SIGNUP_THROTTLE_PER_HOUR` (10): sign-ups allowed per client address per hour on every
    /// path (REST, GraphQL, Hasura); 0 = unlimited. Needs `LOGIN_THROTTLE`.
    pub signup_throttle_per_hour: u32,
    /// `KEY_ENCRYPTION_KEY` (none): 32 random bytes in base64 sealing the asymmetric private
    /// keys in the database (AES-256-GCM). Required with EdDSA/ES256/RS256 outside dev mode.
    pub key_encryption_key: Option<String>,
    /// `LOGIN_FAILURE_MIN_TIME` (0s: off): shortest answer time of a failed password check, so
    /// imported Django `pbkdf2` accounts cannot be told from unknown emails by timing.
    pub login_failure_min_time: Duration,
    /// `METRICS` (true): record Prometheus metrics and serve them at `GET /metrics`.
    pub metrics: bool,
    /// `MAX_SESSIONS_PER_USER` (100): live sessions one user may hold; a login beyond it ends
    /// the user's oldest sessions (audited as `session_revoked`). 0 = no cap.
    pub max_sessions_per_user: u32,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("signing_key", &self.signing_key.as_ref().map(|_| "[redacted]"))
            .field("dev", &self.dev)
            .field("algorithm", &self.algorithm)
            .field("access_token_lifetime", &self.access_token_lifetime)
            .field("refresh_token_lifetime", &self.refresh_token_lifetime)
            .field("rotate_refresh_tokens", &self.rotate_refresh_tokens)
            .field("blacklist_after_rotation", &self.blacklist_after_rotation)
            .field("refresh_reuse_grace", &self.refresh_reuse_grace)
            .field("update_last_login", &self.update_last_login)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("leeway", &self.leeway)
            .field("user_id_claim", &self.user_id_claim)
            .field("auth_header_types", &self.auth_header_types)
            .field("auth_header_name", &self.auth_header_name)
            .field("login_throttle", &self.login_throttle)
            .field("trust_x_forwarded_for", &self.trust_x_forwarded_for)
            .field("keys_reload_interval", &self.keys_reload_interval)
            .field("allow_create_user", &self.allow_create_user)
            .field("claims_preset", &self.claims_preset)
            .field("hasura_default_role", &self.hasura_default_role)
            .field("hasura_action_secret", &self.hasura_action_secret.as_ref().map(|_| "[redacted]"))
            .field("hashing", &self.hashing)
            .field("hash_concurrency", &self.hash_concurrency)
            .field("request_timeout", &self.request_timeout)
            .field("users_reader_group", &self.users_reader_group)
            .field("graphql_max_root_fields", &self.graphql_max_root_fields)
            .field("graphql_max_complexity", &self.graphql_max_complexity)
            .field("revocation_feed_token", &self.revocation_feed_token.as_ref().map(|_| "[redacted]"))
            .field("audit_retention", &self.audit_retention)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("signup_throttle_per_hour", &self.signup_throttle_per_hour)
            .field("key_encryption_key", &self.key_encryption_key.as_ref().map(|_| "[redacted]"))
            .field("login_failure_min_time", &self.login_failure_min_time)
            .field("metrics", &self.metrics)
            .field("max_sessions_per_user", &self.max_sessions_per_user)
            .finish()
    }
}

impl Default for Settings {
    /// The shipped defaults (what `auth-service serve` uses with no flag and no environment).
    fn default() -> Self {
        Self {
            signing_key: None,
            dev: false,
            algorithm: Algorithm::HS256,
            access_token_lifetime: Duration::from_secs(5 * 60),
            refresh_token_lifetime: Duration::from_secs(24 * 3600),
            rotate_refresh_tokens: false,
            blacklist_after_rotation: true,
            refresh_reuse_grace: Duration::from_secs(10),
            update_last_login: true,
            audience: None,
            issuer: None,
            leeway: 0,
            user_id_claim: "user_id".into(),
            auth_header_types: vec!["Bearer".into()],
            auth_header_name: "Authorization".into(),
            login_throttle: true,
            trust_x_forwarded_for: false,
            keys_reload_interval: Duration::from_secs(30),
            allow_create_user: CreateUserPolicy::Off,
            claims_preset: ClaimsPreset::None,
            hasura_default_role: "user".into(),
            hasura_action_secret: None,
            hashing: Hashing::default(),
            hash_concurrency: None,
            request_timeout: Duration::from_secs(30),
            users_reader_group: None,
            graphql_max_root_fields: 10,
            graphql_max_complexity: 500,
            revocation_feed_token: None,
            audit_retention: Duration::from_secs(90 * 86400),
            trusted_proxies: Vec::new(),
            signup_throttle_per_hour: 10,
            key_encryption_key: None,
            login_failure_min_time: Duration::ZERO,
            metrics: true,
            max_sessions_per_user: 100,
        }
    }
}

/// Password hashing parameters (argon2id): the `hashing` part of [`Settings`], also what
/// [`crate::passwords::Hasher::new`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hashing {
    /// `ARGON2_MEMORY_KIB` (19456): memory cost in KiB.
    pub argon2_memory_kib: u32,
    /// `ARGON2_ITERATIONS` (2).
    pub argon2_iterations: u32,
    /// `ARGON2_PARALLELISM` (1): lanes.
    pub argon2_parallelism: u32,
}

impl Default for Hashing {
    /// OWASP's argon2id parameters: 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        Self { argon2_memory_kib: 19456, argon2_iterations: 2, argon2_parallelism: 1 }
    }
}

impl Settings {
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
        if self.hasura_default_role.trim() == ADMIN_ROLE {
            return Err(
                "HASURA_DEFAULT_ROLE must not be `admin`: only staff and superusers may hold Hasura's admin role"
                    .into(),
            );
        }
        if self.hasura_action_secret.as_deref().is_some_and(str::is_empty) {
            return Err("HASURA_ACTION_SECRET is set but empty; unset it or set a random secret".into());
        }
        if let Some(group) = &self.users_reader_group {
            let group = group.trim();
            if group.is_empty() || group.contains(char::is_whitespace) {
                return Err("USERS_READER_GROUP must be one access group name (no spaces)".into());
            }
            if group == ADMIN_ROLE {
                return Err(
                    "USERS_READER_GROUP must not be `admin`: only staff and superusers may hold Hasura's admin role"
                        .into(),
                );
            }
        }
        if self.graphql_max_root_fields == 0 || self.graphql_max_complexity == 0 {
            return Err("GRAPHQL_MAX_ROOT_FIELDS and GRAPHQL_MAX_COMPLEXITY must be positive".into());
        }
        if self.is_asymmetric() && !self.dev && self.key_encryption_key.is_none() {
            return Err(format!(
                "KEY_ENCRYPTION_KEY is not set: ALGORITHM={:?} keeps private keys in the database, sealed with it \
                 (32 random bytes in base64, e.g. `head -c 32 /dev/urandom | base64`)",
                self.algorithm
            ));
        }
        self.key_encryption_key()?;
        self.trusted_proxies()?;
        if self.trust_x_forwarded_for && self.trusted_proxies()?.is_empty() {
            return Err(
                "TRUST_X_FORWARDED_FOR is replaced by TRUSTED_PROXIES: list the addresses or CIDR networks of \
                 your proxies (e.g. TRUSTED_PROXIES=10.0.0.0/8) instead"
                    .into(),
            );
        }
        if self.revocation_feed_token.as_deref().is_some_and(|t| t.len() < 16) {
            return Err("REVOCATION_FEED_TOKEN is shorter than 16 bytes; set a random secret (or unset it)".into());
        }
        let h = &self.hashing;
        argon2::Params::new(h.argon2_memory_kib, h.argon2_iterations, h.argon2_parallelism, None)
            .map_err(|e| format!("invalid argon2 parameters: {e}"))?;
        Ok(())
    }

    /// `KEY_ENCRYPTION_KEY`, parsed.
    pub fn key_encryption_key(&self) -> Result<Option<crate::keys::KeyEncryptionKey>, String> {
        crate::config::parse_kek(self.key_encryption_key.as_deref())
    }

    /// `TRUSTED_PROXIES` as networks.
    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, String> {
        crate::throttle::parse_trusted_proxies(&self.trusted_proxies)
    }

    /// `AUTH_HEADER_TYPES` trimmed, empty entries dropped; at least one, each a single word.
    pub fn header_types(&self) -> Result<Vec<String>, String> {
        Ok(shared_user::settings::parse_header_types(&self.auth_header_types)?)
    }

    /// `AUTH_HEADER_NAME` as a lowercase HTTP header name (`HTTP_AUTHORIZATION` accepted).
    pub fn header_name(&self) -> Result<String, String> {
        Ok(shared_user::settings::parse_header_name(&self.auth_header_name)?)
    }

    /// `USERS_READER_GROUP` trimmed, when set.
    pub fn reader_group(&self) -> Option<&str> {
        self.users_reader_group.as_deref().map(str::trim).filter(|g| !g.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones_and_need_only_a_key() {
        let s = Settings::default();
        assert_eq!(s.validate().unwrap_err().split(';').next(), Some("SIGNING_KEY is not set"));
        let s =
            Settings { signing_key: Some("test-signing-key-0123456789abcdef0123456789".into()), ..Settings::default() };
        s.validate().expect("defaults are valid");
        assert_eq!(s.header_types().unwrap(), ["Bearer"]);
        assert_eq!(s.header_name().unwrap(), "authorization");
    }

    #[test]
    fn the_command_line_defaults_are_the_struct_defaults() {
        use clap::Parser;
        let cli = crate::config::Cli::try_parse_from(["auth-service", "serve"]).expect("parses");
        let crate::config::Command::Serve(serve) = cli.command else { unreachable!("serve") };
        assert_eq!(format!("{:?}", Settings::from(serve.settings)), format!("{:?}", Settings::default()));
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
        assert!(text.contains("signing_key: Some(\"[redacted]\")"), "{text}");
    }

    #[test]
    fn admin_is_never_a_default_or_reader_role() {
        let key = Some("test-signing-key-0123456789abcdef0123456789".into());
        let s = Settings { signing_key: key.clone(), hasura_default_role: "admin".into(), ..Settings::default() };
        assert!(s.validate().unwrap_err().starts_with("HASURA_DEFAULT_ROLE must not be `admin`"));
        let s = Settings { signing_key: key, users_reader_group: Some(" admin ".into()), ..Settings::default() };
        assert!(s.validate().unwrap_err().starts_with("USERS_READER_GROUP must not be `admin`"));
    }
}
