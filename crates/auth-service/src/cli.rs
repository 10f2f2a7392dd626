//! Subcommands: serve, migrate, createsuperuser, users ..., purge-tokens.

use std::io::BufRead;

use shared_user::{AccessGroup, Db, DbError};

use crate::config::{Command, CreateSuperuserArgs, DbArgs, HashArgs, KeysCommand, ServeArgs, UsersCommand};
use crate::passwords::Hasher;
use crate::store::{NewUser, Store};
use crate::{AppState, app, shutdown_signal};

/// Opens and migrates the database named by `args`.
pub async fn open_db(args: &DbArgs) -> anyhow::Result<Db> {
    let db = Db::connect(&args.database_url, args.db_pool_size.max(1)).await?;
    let applied = db.migrate().await?;
    if applied > 0 {
        tracing::info!(applied, "database migrated");
    }
    Ok(db)
}

/// Runs one subcommand to completion.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(db) => {
            let db = Db::connect(&db.database_url, 1).await?;
            let n = db.migrate().await?;
            println!("{n} migration(s) applied");
            Ok(())
        }
        Command::Createsuperuser(args) => createsuperuser(args).await,
        Command::Users(cmd) => users(cmd).await,
        Command::Keys(cmd) => keys(cmd).await,
        Command::PurgeTokens(db) => {
            let store = Store::new(open_db(&db).await?);
            let n = store.purge_expired().await?;
            let counters = store.throttle_purge(shared_user::user::now_utc() - chrono::Duration::days(1)).await?;
            println!("{n} expired refresh token record(s) and {counters} idle login counter(s) deleted");
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Validate every setting before touching the database.
    args.settings.validate().map_err(anyhow::Error::msg)?;
    let db = open_db(&args.db).await?;
    let state = AppState::build(&args.settings, db).await.map_err(anyhow::Error::msg)?;
    if args.settings.dev && args.settings.signing_key.is_none() {
        tracing::warn!("development mode: using a generated signing key; tokens die with this process");
    }
    if args.settings.is_asymmetric() {
        let (store, keys) = (state.store.clone(), state.keys.clone());
        let every = args.settings.keys_reload_interval.max(std::time::Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                match store.signing_keys().await.map_err(|e| e.to_string()).and_then(|rows| keys.reload(&rows)) {
                    Ok(()) => metrics::counter!("gatehouse_key_reloads_total", "outcome" => "success").increment(1),
                    Err(e) => {
                        metrics::counter!("gatehouse_key_reloads_total", "outcome" => "failure").increment(1);
                        tracing::warn!(error = %e, "signing key reload failed; keeping the loaded keys");
                    }
                }
            }
        });
    }
    let purger = state.store.clone();
    let refresh_lifetime = args.settings.refresh_token_lifetime;
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
        }
    });
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.bind))?;
    tracing::info!(addr = %listener.local_addr()?, "auth-service listening");
    axum::serve(listener, app(state).into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
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

async fn add_user(db: &DbArgs, hashing: &HashArgs, new: NewUser, password: String) -> anyhow::Result<()> {
    let store = Store::new(open_db(db).await?);
    let hasher = Hasher::new(hashing, Some(1)).map_err(anyhow::Error::msg)?;
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
    add_user(&args.db, &args.hashing, new, password).await
}

/// Trims and lowercases the whole email, as the EasyJWT user manager (and `POST
/// /auth/create-user/`) does, and checks its shape.
pub fn normalize_email(email: &str) -> anyhow::Result<String> {
    crate::validators::normalize_email(email)
        .ok_or_else(|| anyhow::anyhow!("{:?} is not a valid email address", email.trim()))
}

async fn users(cmd: UsersCommand) -> anyhow::Result<()> {
    match cmd {
        UsersCommand::Add { email, staff, groups, first_name, last_name, password_stdin, password, db, hashing } => {
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
            add_user(&db, &hashing, new, password).await
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
            found(store.set_staff(&email, staff).await?, &email)
        }
        UsersCommand::SetGroups { email, groups, db } => {
            let store = Store::new(open_db(&db).await?);
            let groups = parse_groups(&groups)?;
            found(store.set_groups(&email, groups).await?, &email)
        }
        UsersCommand::Deactivate { email, db } => {
            let store = Store::new(open_db(&db).await?);
            found(store.deactivate(&email).await?, &email)
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
        KeysCommand::Rotate { algorithm, db } => {
            let store = Store::new(open_db(&db).await?);
            match crate::keys::rotate_step(&store, algorithm).await.map_err(anyhow::Error::msg)? {
                crate::store::signing_keys::KeyStep::Staged(kid) => {
                    println!("staged {kid} as next: published now, signs after the next `keys rotate`")
                }
                crate::store::signing_keys::KeyStep::Promoted(kid) => {
                    println!("{kid} is now current; the previous key stays published until its tokens expire")
                }
            }
            Ok(())
        }
        KeysCommand::List { db } => {
            let store = Store::new(open_db(&db).await?);
            for k in store.signing_keys().await? {
                let line = serde_json::json!({
                    "kid": k.kid,
                    "algorithm": k.algorithm,
                    "status": k.status,
                    "created_at": shared_user::user::format_datetime(&k.created_at),
                    "activated_at": k.activated_at.as_ref().map(shared_user::user::format_datetime),
                    "retired_at": k.retired_at.as_ref().map(shared_user::user::format_datetime),
                });
                println!("{line}");
            }
            Ok(())
        }
    }
}

/// Deletes expired refresh-token records, idle login counters (a day without failures) and
/// retired signing keys whose tokens have all expired.
pub async fn housekeeping(
    store: &Store,
    refresh_lifetime: std::time::Duration,
) -> Result<(usize, usize, usize), DbError> {
    let now = shared_user::user::now_utc();
    let tokens = store.purge_expired().await?;
    let counters = store.throttle_purge(now - chrono::Duration::days(1)).await?;
    let lifetime = chrono::Duration::from_std(refresh_lifetime).unwrap_or_else(|_| chrono::Duration::days(365));
    let keys = store.delete_retired_keys(now - lifetime - chrono::Duration::hours(1)).await?;
    Ok((tokens, counters, keys))
}
