//! Subcommands: serve, migrate, createsuperuser, users ..., purge-tokens, keys ..., audit,
//! certs ...; their flags are in [`args`].

pub mod args;

use std::io::BufRead;
use std::net::SocketAddr;

use shared_user::{AccessGroup, Db, DbError};

pub use self::args::Cli;
use self::args::{AuditArgs, CertsCommand, Command, CreateSuperuserArgs, DbArgs, KeysCommand, ServeArgs, UsersCommand};
use crate::app::{console_app, management_app, public_app};
use crate::audit::{AuditEvent, AuditKind};
use crate::passwords::Hasher;
use crate::settings::Hashing;
use crate::state::AppState;
use crate::store::{NewUser, Store};
use shared_user::runtime::shutdown_signal;
use shared_user::server::{BindError, Listener, Tls};

/// Opens and migrates the database named by `args`.
pub async fn open_db(args: &DbArgs) -> anyhow::Result<Db> {
    let db = Db::connect(&args.database_url, args.db_pool_size.max(1)).await?;
    let applied = crate::store::migrate(&db).await?;
    if applied > 0 {
        tracing::info!(applied, "database migrated");
    }
    Ok(db)
}

/// Runs one subcommand to completion.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(args) => {
            let db = Db::connect(&args.db.database_url, 1).await?;
            let n = crate::store::migrate(&db).await?;
            println!("{n} migration(s) applied");
            let kek = args.kek.key_encryption_key.as_deref().map(crate::keys::KeyEncryptionKey::parse).transpose();
            let store = Store::new(db);
            match kek? {
                Some(kek) => {
                    let sealed = crate::keys::seal_plaintext_rows(&store, &kek).await?;
                    println!("{sealed} plaintext signing key(s) encrypted");
                }
                None => {
                    let plain =
                        store.signing_keys().await?.iter().filter(|r| !crate::keys::is_sealed(&r.private_pem)).count();
                    if plain > 0 {
                        println!(
                            "{plain} signing key(s) stored unencrypted: run `migrate` with KEY_ENCRYPTION_KEY set"
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Createsuperuser(args) => createsuperuser(args).await,
        Command::Users(cmd) => users(cmd).await,
        Command::Keys(cmd) => keys(cmd).await,
        Command::Audit(args) => audit(args).await,
        Command::Certs(cmd) => certs(cmd),
        Command::PurgeTokens(args) => {
            let store = Store::new(open_db(&args.db).await?);
            let (tokens, counters, keys) = housekeeping(&store, args.refresh_token_lifetime).await?;
            let (sessions, revocations, audit) =
                housekeeping_sessions(&store, args.refresh_token_lifetime, args.audit_retention).await?;
            println!(
                "deleted: {tokens} expired refresh token record(s), {counters} idle login counter(s), \
                 {keys} retired key(s), {sessions} session(s), {revocations} watermark(s), {audit} audit event(s)"
            );
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let limits = args.limits()?;
    let settings = args.settings;
    // Validate every setting before touching the database.
    settings.validate()?;
    let kek = settings.key_encryption_key()?;
    let tls = ListenerTls::load(&settings)?;
    shared_user::runtime::raise_fd_limit(limits.max_connections, args.db.db_pool_size)?;
    let db = open_db(&args.db).await?;
    let (dev_key, asymmetric) = (settings.dev && settings.signing_key.is_none(), settings.is_asymmetric());
    let (keys_reload_interval, refresh_lifetime, audit_retention) =
        (settings.keys_reload_interval, settings.refresh_token_lifetime, settings.audit_retention);
    let rotation = crate::keys::rotation::Policy::of(&settings);
    match crate::discovery::issuer_url(&settings) {
        Ok(issuer) => tracing::info!(issuer, "discovery: /.well-known/openid-configuration"),
        Err(why) => tracing::info!("{why}"),
    }
    let state = AppState::build(settings, db).await?;
    // Every listener is bound before any background task starts: a start that fails to bind
    // ends with its one line, not with a housekeeping query cut off mid-way.
    let listeners = listeners(args.bind, state.clone()).await?;
    if dev_key {
        tracing::warn!("development mode: using a generated signing key; tokens die with this process");
    }
    if asymmetric {
        // Revocations within a second, rotations every KEYS_RELOAD_INTERVAL.
        crate::keys::watch::KeyWatch::new(state.store.clone(), state.keys.clone(), kek, keys_reload_interval)
            .rotating(rotation)
            .spawn();
    }
    let purger = state.store.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            match housekeeping(&purger, refresh_lifetime).await {
                Ok((tokens, counters, keys)) if tokens + counters + keys > 0 => {
                    tracing::info!(tokens, counters, keys, "expired records purged")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purge failed"),
            }
            match housekeeping_sessions(&purger, refresh_lifetime, audit_retention).await {
                Ok((sessions, revocations, audit)) if sessions + revocations + audit > 0 => {
                    tracing::info!(sessions, revocations, audit, "expired sessions, watermarks and audit events purged")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purge failed"),
            }
        }
    });
    let listeners = listeners
        .into_iter()
        .map(|listener| {
            let tls = match listener.role() {
                "management" => tls.management.clone(),
                "console" => tls.console.clone(),
                _ => tls.public.clone(),
            };
            listener.with_tls(tls)
        })
        .collect();
    shared_user::server::serve_all("auth-service", listeners, limits, shutdown_signal()).await?;
    Ok(())
}

/// `certs init` and `certs client`: files written, and what to set, on stdout.
fn certs(cmd: CertsCommand) -> anyhow::Result<()> {
    use shared_user::pki::{Ca, Overwrite, files, write_issued};
    let overwrite = |force: bool| if force { Overwrite::Replace } else { Overwrite::Refuse };
    match cmd {
        CertsCommand::Init { dir, hosts, force } => {
            // Both keys checked before anything is written: a refusal leaves the directory as it was.
            for key in [files::CA_KEY, files::SERVER_KEY] {
                if !force && dir.join(key).exists() {
                    return Err(shared_user::pki::PkiError::Exists(dir.join(key)).into());
                }
            }
            let ca = Ca::new("Gatehouse private CA")?;
            let server = ca.server(&hosts)?;
            ca.write(&dir, overwrite(force))?;
            write_issued(&dir, files::SERVER_CERT, files::SERVER_KEY, &server, overwrite(force))?;
            let path = |name: &str| dir.join(name).display().to_string();
            println!("wrote {} and {} (keep the key offline)", path(files::CA_CERT), path(files::CA_KEY));
            println!("wrote {} and {} for {}", path(files::SERVER_CERT), path(files::SERVER_KEY), hosts.join(", "));
            println!("serve with: TLS_CERT_FILE={} TLS_KEY_FILE={}", path(files::SERVER_CERT), path(files::SERVER_KEY));
            println!("clients trust: REMOTE_AUTH_CA_FILE={}", path(files::CA_CERT));
        }
        CertsCommand::Client { name, dir, force } => {
            let ca = Ca::read(&dir)?;
            let client = ca.client(&name)?;
            let (cert, key) = (files::client_cert(&name), files::client_key(&name));
            write_issued(&dir, &cert, &key, &client, overwrite(force))?;
            let path = |name: &str| dir.join(name).display().to_string();
            println!("wrote {} and {} for the client {name}", path(&cert), path(&key));
            println!(
                "client presents: REMOTE_AUTH_CLIENT_CERT_FILE={} REMOTE_AUTH_CLIENT_KEY_FILE={}",
                path(&cert),
                path(&key)
            );
            println!(
                "auth-service accepts: TLS_CLIENT_CA_FILE={} TLS_CLIENT_AUTH=required (or optional)",
                path(files::CA_CERT)
            );
        }
    }
    Ok(())
}

/// Each listener's TLS, loaded and watched (plain HTTP where `None`).
struct ListenerTls {
    public: Option<Tls>,
    management: Option<Tls>,
    console: Option<Tls>,
}

impl ListenerTls {
    fn load(settings: &crate::settings::Settings) -> anyhow::Result<Self> {
        let load = |files: Option<shared_user::server::TlsFiles>| -> anyhow::Result<Option<Tls>> {
            let Some(files) = files else { return Ok(None) };
            let tls = Tls::load(files)?;
            tls.watch(shared_user::server::tls::DEFAULT_POLL_INTERVAL);
            Ok(Some(tls))
        };
        Ok(Self {
            public: load(settings.tls_files()?)?,
            management: load(settings.management_tls_files()?)?,
            console: load(settings.console_tls_files()?)?,
        })
    }
}

/// The listeners of `serve`, bound, public first: `BIND`, then `MANAGEMENT_BIND` and
/// `CONSOLE_BIND` when set, each with its routes ([`mod@crate::app`]). One that cannot be bound stops
/// the start with a line naming its setting.
pub async fn listeners(bind: SocketAddr, state: AppState) -> Result<Vec<Listener>, BindError> {
    let (management, console) = (state.settings.management_bind, state.settings.console_bind);
    let mut listeners = vec![Listener::bind("public", "BIND", bind, public_app(state.clone())).await?];
    if let Some(addr) = management {
        listeners.push(Listener::bind("management", "MANAGEMENT_BIND", addr, management_app(state.clone())).await?);
    }
    if let Some(addr) = console {
        listeners.push(Listener::bind("console", "CONSOLE_BIND", addr, console_app(state)).await?);
    }
    Ok(listeners)
}

fn read_password(stdin: bool, given: Option<String>) -> anyhow::Result<String> {
    let password = if stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        given.ok_or_else(|| {
            anyhow::anyhow!("no password: use --password-stdin (or the documented environment variable)")
        })?
    };
    if password.is_empty() {
        anyhow::bail!("the password is empty");
    }
    Ok(password)
}

fn parse_groups(specs: &[String]) -> anyhow::Result<Vec<AccessGroup>> {
    specs.iter().map(|s| AccessGroup::parse(s).map_err(anyhow::Error::msg)).collect()
}

/// Sign-up's password validators (as the admin API and console apply them) on a password the
/// CLI sets for `new`: a refusal is one line naming every problem, unless `force`d (then a
/// warning on stderr names them).
fn check_password(password: &str, new: &NewUser, force: bool) -> anyhow::Result<()> {
    let user =
        crate::validators::UserAttributes { first_name: &new.first_name, last_name: &new.last_name, email: &new.email };
    let problems = crate::validators::password_problems(password, &user);
    if problems.is_empty() {
        return Ok(());
    }
    let problems = problems.join(" ");
    if force {
        eprintln!("auth-service: warning: the password is set although the validators refuse it: {problems}");
        Ok(())
    } else {
        anyhow::bail!("the password is refused: {problems} (--force sets it anyway)")
    }
}

async fn add_user(db: &DbArgs, hashing: &Hashing, new: NewUser, password: String, force: bool) -> anyhow::Result<()> {
    check_password(&password, &new, force)?;
    let store = Store::new(open_db(db).await?);
    let hasher = Hasher::new(*hashing, Some(1))?;
    let new = NewUser { password_hash: hasher.hash(password).await?, ..new };
    match store.create_user(new).await {
        Ok(user) => {
            println!("{}", serde_json::to_string(&user)?);
            Ok(())
        }
        Err(DbError::Unique) => anyhow::bail!("a user with that email already exists"),
        Err(e) => Err(e.into()),
    }
}

async fn createsuperuser(args: CreateSuperuserArgs) -> anyhow::Result<()> {
    let password = read_password(args.password_stdin, args.password)?;
    let new = NewUser {
        email: normalize_email(&args.email)?,
        password_hash: String::new(),
        first_name: String::new(),
        last_name: String::new(),
        is_staff: true,
        is_superuser: true,
        groups: Vec::new(),
    };
    add_user(&args.db, &args.hashing, new, password, args.force).await
}

/// Trims and lowercases the whole email, as the EasyJWT user manager (and `POST
/// /auth/create-user/`) does, and checks its shape.
pub fn normalize_email(email: &str) -> anyhow::Result<String> {
    crate::validators::normalize_email(email)
        .ok_or_else(|| anyhow::anyhow!("{:?} is not a valid email address", email.trim()))
}

async fn users(cmd: UsersCommand) -> anyhow::Result<()> {
    match cmd {
        UsersCommand::Add {
            email,
            staff,
            groups,
            first_name,
            last_name,
            password_stdin,
            password,
            force,
            db,
            hashing,
        } => {
            let password = read_password(password_stdin, password)?;
            let new = NewUser {
                email: normalize_email(&email)?,
                password_hash: String::new(),
                first_name,
                last_name,
                is_staff: staff,
                is_superuser: false,
                groups: parse_groups(&groups)?,
            };
            add_user(&db, &hashing, new, password, force).await
        }
        UsersCommand::List { db } => {
            let store = Store::new(open_db(&db).await?);
            for user in store.list_users().await? {
                println!("{}", serde_json::to_string(&user)?);
            }
            Ok(())
        }
        UsersCommand::SetStaff { email, staff, db } => {
            let store = Store::new(open_db(&db).await?);
            // Audited as `user_updated` in the same transaction.
            found(store.set_staff(&email, staff).await?, &email)
        }
        UsersCommand::SetGroups { email, groups, db } => {
            let store = Store::new(open_db(&db).await?);
            let groups = parse_groups(&groups)?;
            found(store.set_groups(&email, groups).await?, &email)
        }
        UsersCommand::Deactivate { email, db } => {
            let store = Store::new(open_db(&db).await?);
            // Also ends every session and refuses every earlier access token (watermark).
            found(store.deactivate(&email).await?, &email)
        }
        UsersCommand::RevokeSessions { email, db } => {
            let store = Store::new(open_db(&db).await?);
            let Some(c) = store.find_by_email(&email).await? else { return found(false, &email) };
            let event = AuditEvent::new(AuditKind::LogoutAll).user(c.user.id);
            store.revoke_everything(c.user.id, crate::store::watermark_now(), &event).await?;
            found(true, &email)
        }
    }
}

fn found(ok: bool, email: &str) -> anyhow::Result<()> {
    if ok {
        println!("ok");
        Ok(())
    } else {
        anyhow::bail!("no user with email {email:?}")
    }
}

async fn keys(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Rotate { algorithm, yes, kek, db } => {
            let kek = kek.required()?;
            let store = Store::new(open_db(&db).await?);
            let request = crate::keys::AlgorithmRequest { algorithm, confirmed: yes };
            let (step, replaces) = crate::keys::rotate(&store, request, kek.as_ref()).await?;
            match step {
                crate::store::signing_keys::KeyStep::Staged(kid) => {
                    if let (Some(old), Some(new)) = (replaces, algorithm) {
                        println!(
                            "changing the signing algorithm from {old:?} to {new:?}: clients that accept only \
                             {old:?} will refuse tokens once {kid} signs; update them before the next `keys rotate`"
                        );
                    }
                    println!("staged {kid} as next: published now, signs after the next `keys rotate`")
                }
                crate::store::signing_keys::KeyStep::Promoted(kid) => {
                    println!("{kid} is now current; the previous key stays published until its tokens expire")
                }
            }
            Ok(())
        }
        KeysCommand::Revoke { kid, algorithm, yes, kek, db } => {
            let kek = kek.required()?;
            let store = Store::new(open_db(&db).await?);
            let request = crate::keys::AlgorithmRequest { algorithm, confirmed: yes };
            let (revoked, replaces) = crate::keys::revoke_as_asked(&store, &kid, request, kek.as_ref()).await?;
            match revoked {
                crate::keys::Revoked::Key => println!("{kid} revoked: unpublished, its tokens refused"),
                crate::keys::Revoked::Current(next) => {
                    if let (Some(old), Some(new)) = (replaces, algorithm) {
                        println!(
                            "changing the signing algorithm from {old:?} to {new:?}: clients that accept only \
                             {old:?} refuse the tokens {next} signs"
                        );
                    }
                    println!("{kid} revoked: unpublished, its tokens refused; {next} signs now")
                }
            }
            Ok(())
        }
        KeysCommand::List { db, rotation } => {
            let store = Store::new(open_db(&db).await?);
            let policy = rotation.policy();
            for k in store.signing_keys().await? {
                let next = crate::keys::rotation::next_step(&k, &policy);
                let line = serde_json::json!({
                    "kid": k.kid,
                    "algorithm": k.algorithm,
                    "status": k.status,
                    "created_at": shared_user::user::format_datetime(&k.created_at),
                    "activated_at": k.activated_at.as_ref().map(shared_user::user::format_datetime),
                    "retired_at": k.retired_at.as_ref().map(shared_user::user::format_datetime),
                    "next_step": next.map(|(step, _)| step),
                    "next_step_at": next.map(|(_, at)| shared_user::user::format_datetime(&at)),
                });
                println!("{line}");
            }
            Ok(())
        }
    }
}

/// Deletes expired refresh-token records, idle login counters (a day without failures), expired
/// second-factor challenges (counted with the counters) and retired signing keys whose tokens
/// have all expired.
pub async fn housekeeping(
    store: &Store,
    refresh_lifetime: std::time::Duration,
) -> Result<(usize, usize, usize), DbError> {
    let now = shared_user::user::now_utc();
    let tokens = store.purge_expired().await?;
    let counters = store.throttle_purge(now - chrono::Duration::days(1)).await?
        + store.forget_addresses(now - chrono::Duration::days(crate::throttle::KNOWN_ADDRESS_TTL_DAYS)).await?
        + store.purge_challenges(now).await?;
    let lifetime = chrono::Duration::from_std(refresh_lifetime).unwrap_or_else(|_| chrono::Duration::days(365));
    let keys = store.delete_retired_keys(now - lifetime - chrono::Duration::hours(1)).await?;
    Ok((tokens, counters, keys))
}

/// Deletes session rows whose tokens have expired, revocation watermarks older than every
/// token they can refuse (the refresh lifetime, plus an hour), and audit events older than
/// `audit_retention`; returns the three counts.
pub async fn housekeeping_sessions(
    store: &Store,
    refresh_lifetime: std::time::Duration,
    audit_retention: std::time::Duration,
) -> Result<(usize, usize, usize), DbError> {
    let now = shared_user::user::now_utc();
    let year = chrono::Duration::days(365);
    let sessions = store.purge_sessions().await?;
    let lifetime = chrono::Duration::from_std(refresh_lifetime).unwrap_or(year);
    let revocations = store.purge_revocations(now - lifetime - chrono::Duration::hours(1)).await?;
    let audit = store.purge_audit(now - chrono::Duration::from_std(audit_retention).unwrap_or(year)).await?;
    Ok((sessions, revocations, audit))
}

async fn audit(args: AuditArgs) -> anyhow::Result<()> {
    let store = Store::new(open_db(&args.db).await?);
    let user_id = match &args.user {
        None => None,
        Some(email) => match store.find_by_email(&normalize_email(email)?).await? {
            Some(c) => Some(c.user.id),
            None => anyhow::bail!("no user with email {email:?}"),
        },
    };
    let since = match args.since {
        None => None,
        Some(d) => Some(shared_user::user::now_utc() - chrono::Duration::from_std(d)?),
    };
    let filter = crate::store::audit::AuditFilter {
        user_id,
        kind: args.kind.map(|k| k.as_str().to_owned()),
        since,
        before_id: None,
        limit: args.limit,
    };
    for row in store.list_audit(&filter).await? {
        if args.json {
            println!("{}", serde_json::to_string(&row)?);
        } else {
            let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
            println!(
                "{}  {:<22}  user={}  actor={}  ip={}  agent={:?}  {}",
                shared_user::user::format_datetime(&row.created_at),
                row.kind,
                or_dash(row.user_id.map(|i| i.to_string())),
                or_dash(row.actor_id.map(|i| i.to_string())),
                or_dash(row.ip),
                row.user_agent.unwrap_or_default(),
                row.detail.unwrap_or_default(),
            );
        }
    }
    Ok(())
}
