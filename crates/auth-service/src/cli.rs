//! Subcommands: serve, migrate, createsuperuser, users ..., purge-tokens.

use std::io::BufRead;

use shared_user::{AccessGroup, Db, DbError};

use crate::config::{Command, CreateSuperuserArgs, DbArgs, HashArgs, ServeArgs, UsersCommand};
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
        Command::PurgeTokens(db) => {
            let store = Store::new(open_db(&db).await?);
            let n = store.purge_expired().await?;
            println!("{n} expired refresh token record(s) deleted");
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Validate every setting before touching the database.
    args.settings.validate().map_err(anyhow::Error::msg)?;
    let db = open_db(&args.db).await?;
    let state = AppState::new(&args.settings, db).map_err(anyhow::Error::msg)?;
    if args.settings.dev && args.settings.signing_key.is_none() {
        tracing::warn!("development mode: using a generated signing key; tokens die with this process");
    }
    let purger = state.store.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            match purger.purge_expired().await {
                Ok(n) if n > 0 => tracing::info!(deleted = n, "expired refresh tokens purged"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "refresh token purge failed"),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.bind))?;
    tracing::info!(addr = %listener.local_addr()?, "auth-service listening");
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown_signal()).await?;
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
