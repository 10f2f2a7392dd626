//! The whole pair on one machine: the auth-service on 127.0.0.1:8000 and the demo
//! client-service on 127.0.0.1:8001, both on SQLite files under `./gatehouse-demo/`, with a
//! seeded user, and the curl lines to try printed at start.
//!
//! `cargo run --example pair` (ports: `AUTH_BIND`, `CLIENT_BIND`; Ctrl-C stops both).

use std::net::SocketAddr;

use auth_service::Settings;
use auth_service::store::NewUser;
use client_service::{ClientConfig, ClientState};
use shared_user::{AccessGroup, Db, DbError};

const EMAIL: &str = "demo@example.com";
const PASSWORD: &str = "demo-password-2026";

async fn open(path: &std::path::Path) -> anyhow::Result<Db> {
    Ok(Db::connect(&format!("sqlite://{}", path.display()), 4).await?)
}

fn addr(var: &str, default: &str) -> anyhow::Result<SocketAddr> {
    let value = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    value.parse().map_err(|e| anyhow::anyhow!("{var}={value:?}: {e}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    auth_service::init_tracing();
    let auth_bind = addr("AUTH_BIND", "127.0.0.1:8000")?;
    let client_bind = addr("CLIENT_BIND", "127.0.0.1:8001")?;
    let dir = std::path::Path::new("gatehouse-demo");
    std::fs::create_dir_all(dir)?;

    // A fresh secret per run, shared in-process: the client verifies tokens locally with it.
    let key = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    // The client-service runs on loopback too: trust it to forward its callers' addresses.
    let settings = Settings {
        signing_key: Some(key.clone()),
        rotate_refresh_tokens: true,
        trusted_proxies: vec!["127.0.0.1".into()],
        ..Settings::default()
    };
    let auth_db = open(&dir.join("auth.db")).await?;
    auth_service::migrate(&auth_db).await?;
    let auth = auth_service::AppState::build(settings, auth_db).await.map_err(anyhow::Error::msg)?;

    let hash = auth.hasher.hash(PASSWORD.to_owned()).await?;
    let seeded = auth
        .store
        .create_user(NewUser {
            email: EMAIL.into(),
            password_hash: hash,
            first_name: "Demo".into(),
            last_name: "User".into(),
            is_staff: false,
            is_superuser: false,
            groups: vec![AccessGroup { name: "billing".into(), level: Some("admin".into()) }],
        })
        .await;
    match seeded {
        Ok(_) | Err(DbError::Unique) => {}
        Err(e) => return Err(e.into()),
    }
    // The password is reset on every run so the printed one always works.
    if let Some(c) = auth.store.find_by_email(EMAIL).await? {
        auth.store.set_password(c.user.id, &auth.hasher.hash(PASSWORD.to_owned()).await?).await?;
    }

    let client_db = open(&dir.join("client.db")).await?;
    client_service::migrate(&client_db).await?;
    let client =
        ClientState::new(ClientConfig::builder(format!("http://{auth_bind}")).local_hmac(key).build()?, client_db)?;

    let auth_listener = tokio::net::TcpListener::bind(auth_bind).await?;
    let client_listener = tokio::net::TcpListener::bind(client_bind).await?;
    println!(
        r#"
Gatehouse demo: auth-service on http://{auth_bind}, client-service on http://{client_bind}
Seeded user: {EMAIL} / {PASSWORD} (access group billing:admin)

  C=http://{client_bind}
  curl -s -X POST $C/auth/token/ -H 'Content-Type: application/json' \
       -d '{{"email":"{EMAIL}","password":"{PASSWORD}"}}' | tee /tmp/gatehouse-tokens.json
  ACCESS=$(sed -E 's/.*"access":"([^"]+)".*/\1/' /tmp/gatehouse-tokens.json)
  REFRESH=$(sed -E 's/.*"refresh":"([^"]+)".*/\1/' /tmp/gatehouse-tokens.json)
  curl -s $C/api/test/ -H "Authorization: Bearer $ACCESS"            # "success"
  curl -s $C/api/me/ -H "Authorization: Bearer $ACCESS"              # the mirrored user
  curl -s $C/api/billing/ -H "Authorization: Bearer $ACCESS"         # needs group billing
  curl -s -X POST $C/auth/token/verify/ -H 'Content-Type: application/json' -d "{{\"token\":\"$ACCESS\"}}"
  curl -s -X POST $C/auth/token/refresh/ -H 'Content-Type: application/json' -d "{{\"refresh\":\"$REFRESH\"}}"
  curl -s $C/api/test/                                                # 401, no credentials

Ctrl-C stops both services.
"#
    );
    use shared_user::server::{self, Limits};
    let auth_server =
        server::serve(auth_listener, auth_service::app(auth), Limits::default(), auth_service::shutdown_signal());
    let client_server = server::serve(
        client_listener,
        client_service::demo::app(client.clone()),
        Limits::default(),
        client_service::shutdown_signal(),
    );
    let (a, c) = tokio::join!(auth_server, client_server);
    client.flush_mirror().await;
    a?;
    c?;
    Ok(())
}
