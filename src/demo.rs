//! The demo pair behind `cargo run --example pair`: the auth-service and the demo
//! client-service on one machine, on SQLite files in one directory, with revocation on, a seeded
//! user and a seeded staff account; and the walkthrough it prints.
//!
//! The walkthrough is data ([`Walkthrough`], a list of [`Step`]s): the example prints it, and the
//! root package's test `tests/demo.rs` starts the same [`Demo`] and executes the same steps in
//! order, so what the demo tells a newcomer to type is what the test checks.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use auth_service::store::NewUser;
use auth_service::{AppState, Settings};
use client_service::{ClientConfig, ClientState};
use serde_json::{Value, json};
use shared_user::{AccessGroup, Db, DbError};
use tokio::net::TcpListener;

/// The seeded user's email.
pub const EMAIL: &str = "demo@example.com";
/// The seeded user's password (reset at every start, so the printed one always works).
pub const PASSWORD: &str = "demo-password-2026";
/// The seeded staff (superuser) account's email; its password is new at every start.
pub const STAFF_EMAIL: &str = "admin@example.com";
/// How often the demo client polls the auth-service's revocation feed when a long poll fails
/// (it long-polls the feed, so revocations arrive within milliseconds).
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long the walkthrough waits after logout-all before it shows the old token refused: the
/// revocation is pushed at once; a second leaves room for a failed long poll's retry.
pub const REVOCATION_WAIT: Duration = Duration::from_secs(1);
/// Where the printed curl lines keep the login answer.
const TOKENS_FILE: &str = "/tmp/gatehouse-tokens.json";

/// Where the demo listens and keeps its databases.
#[derive(Debug, Clone)]
pub struct Options {
    /// The auth-service's address (`AUTH_BIND`, default `127.0.0.1:8000`).
    pub auth_bind: SocketAddr,
    /// The client-service's address (`CLIENT_BIND`, default `127.0.0.1:8001`).
    pub client_bind: SocketAddr,
    /// Directory of `auth.db` and `client.db` (created when missing).
    pub dir: PathBuf,
}

impl Options {
    /// `AUTH_BIND` and `CLIENT_BIND` from the environment, databases under `./gatehouse-demo/`.
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            auth_bind: addr("AUTH_BIND", "127.0.0.1:8000")?,
            client_bind: addr("CLIENT_BIND", "127.0.0.1:8001")?,
            dir: PathBuf::from("gatehouse-demo"),
        })
    }
}

fn addr(var: &str, default: &str) -> anyhow::Result<SocketAddr> {
    let value = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    value.parse().map_err(|e| anyhow::anyhow!("{var}={value:?}: {e}"))
}

/// A random secret of 64 hex characters.
fn random_secret() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// The pair, set up and listening, not yet serving.
#[derive(Debug)]
pub struct Demo {
    /// The auth-service's state.
    pub auth: AppState,
    /// The client-service's state.
    pub client: ClientState,
    /// Base URL of the auth-service (`http://ADDR`).
    pub auth_url: String,
    /// Base URL of the client-service.
    pub client_url: String,
    /// The auth-service's `DATABASE_URL`.
    pub auth_database_url: String,
    /// The staff account's password, new at every start.
    pub staff_password: String,
    auth_listener: TcpListener,
    client_listener: TcpListener,
}

impl Demo {
    /// Opens and migrates both databases, seeds the demo user and the staff account, builds both
    /// services with a fresh signing key and a fresh revocation feed token, and binds both
    /// listeners.
    pub async fn setup(options: Options) -> anyhow::Result<Demo> {
        std::fs::create_dir_all(&options.dir)?;
        let auth_listener = TcpListener::bind(options.auth_bind).await?;
        let client_listener = TcpListener::bind(options.client_bind).await?;
        let auth_url = format!("http://{}", auth_listener.local_addr()?);
        let client_url = format!("http://{}", client_listener.local_addr()?);

        // Fresh secrets per run, shared in-process: the client verifies tokens locally with the
        // signing key and reads the revocation feed with the feed token.
        let key = random_secret();
        let feed_token = random_secret();
        // The client-service runs on loopback too: trust it to forward its callers' addresses.
        let settings = Settings {
            signing_key: Some(key.clone().into()),
            rotate_refresh_tokens: true,
            trusted_proxies: vec!["127.0.0.1".into()],
            revocation_feed_token: Some(feed_token.clone().into()),
            ..Settings::default()
        };
        let auth_database_url = format!("sqlite://{}", options.dir.join("auth.db").display());
        let auth_db = Db::connect(&auth_database_url, 4).await?;
        auth_service::migrate(&auth_db).await?;
        let auth = AppState::build(settings, auth_db).await.map_err(anyhow::Error::msg)?;

        let groups = vec![AccessGroup { name: "billing".into(), level: Some("admin".into()) }];
        seed(&auth, EMAIL, PASSWORD, ("Demo", "User"), false, groups).await?;
        let staff_password = random_secret()[..20].to_owned();
        seed(&auth, STAFF_EMAIL, &staff_password, ("Demo", "Admin"), true, vec![]).await?;

        let client_db = Db::connect(&format!("sqlite://{}", options.dir.join("client.db").display()), 4).await?;
        client_service::migrate(&client_db).await?;
        let config = ClientConfig::builder(auth_url.clone())
            .local_hmac(key)
            .revocation_feed(feed_token)
            .revocation_poll_interval(POLL_INTERVAL)
            .build()?;
        let client = ClientState::new(config, client_db)?;
        Ok(Demo {
            auth,
            client,
            auth_url,
            client_url,
            auth_database_url,
            staff_password,
            auth_listener,
            client_listener,
        })
    }

    /// What the demo prints at start: where everything is, and the requests to try, in order.
    pub fn walkthrough(&self) -> Walkthrough {
        use Service::{Auth, Client};
        use Token::Access;
        let (a, c) = (&self.auth_url, &self.client_url);
        let login = json!({"email": EMAIL, "password": PASSWORD}).to_string();
        let not_valid = json!({"detail": "Token is invalid or expired", "code": "token_not_valid"});
        let steps = vec![
            Step::Note(format!("Gatehouse demo: auth-service on {a}, client-service on {c}")),
            Step::Note(
                "Revocation feed on: the client long-polls it, revocations arrive at once (random feed token, new at every start)"
                    .into(),
            ),
            Step::Note(format!("Seeded user:   {EMAIL} / {PASSWORD} (access group billing:admin)")),
            Step::Note(format!(
                "Staff account: {STAFF_EMAIL} / {} (superuser; new password at every start)",
                self.staff_password
            )),
            Step::Note(String::new()),
            Step::Note("Try it through the client-service, as a frontend would:".into()),
            Step::Set { name: "C", value: c.clone() },
            Step::Set { name: "A", value: a.clone() },
            Step::Request(Request::post(Client, "/auth/token/", &login).saves_tokens().expect(
                200,
                Check::HasKeys(&["refresh", "access"]),
                "a token pair",
            )),
            Step::ReadTokens,
            Step::Request(Request::get(Client, "/api/test/").bearer(Access).expect(
                200,
                Check::Exact(json!("success")),
                "\"success\"",
            )),
            Step::Request(Request::get(Client, "/api/me/").bearer(Access).expect(
                200,
                Check::Contains(EMAIL),
                "the mirrored user",
            )),
            Step::Request(Request::get(Client, "/api/billing/").bearer(Access).expect(
                200,
                Check::Exact(json!({"detail": format!("Welcome to billing, {EMAIL}.")})),
                "needs group billing",
            )),
            Step::Request(Request::post(Client, "/auth/token/verify/", r#"{"token":"$ACCESS"}"#).expect(
                200,
                Check::Exact(json!({})),
                "{}",
            )),
            Step::Request(Request::post(Client, "/auth/token/refresh/", r#"{"refresh":"$REFRESH"}"#).expect(
                200,
                Check::HasKeys(&["access", "refresh"]),
                "a new access token (and a rotated refresh token)",
            )),
            Step::Request(Request::get(Client, "/api/test/").expect(
                401,
                Check::Exact(json!({"detail": "Authentication credentials were not provided."})),
                "no credentials",
            )),
            Step::Request(Request::get(Client, "/auth/sessions/").bearer(Access).expect(
                200,
                Check::Contains("\"user_agent\""),
                "the user's sessions",
            )),
            Step::Request(Request::post(Client, "/auth/logout-all/", "{}").bearer(Access).expect(
                200,
                Check::Exact(json!({})),
                "every token of the user revoked",
            )),
            Step::Request(Request::get(Client, "/api/test/").bearer(Access).after(REVOCATION_WAIT).expect(
                401,
                Check::Exact(not_valid),
                "the old access token, refused: the revocation was pushed to the client",
            )),
            Step::Note(String::new()),
            Step::Note("Operate it:".into()),
            Step::Open { url: format!("{a}/admin/"), note: format!("admin console: sign in as {STAFF_EMAIL}") },
            Step::Request(Request::get(Auth, "/metrics").expect(
                200,
                Check::Contains("# TYPE gatehouse_"),
                "Prometheus text, auth-service",
            )),
            Step::Request(Request::get(Client, "/metrics").expect(
                200,
                Check::Contains("# TYPE gatehouse_"),
                "Prometheus text, client-service",
            )),
            Step::Request(Request::get(Auth, "/openapi.json").expect(
                200,
                Check::Contains("\"openapi\":\"3.1"),
                "OpenAPI 3.1, auth-service",
            )),
            Step::Request(Request::get(Client, "/openapi.json").expect(
                200,
                Check::Contains("\"openapi\":\"3.1"),
                "OpenAPI 3.1, client-service",
            )),
            Step::Command {
                args: vec!["audit".into(), "--database-url".into(), self.auth_database_url.clone()],
                note: "the audit trail: sign-ins, logout_all, ...",
            },
            Step::Note(String::new()),
            Step::Note("PostgreSQL instead of SQLite: README, section \"PostgreSQL\".".into()),
            Step::Note(
                "On a network: TLS, and metrics/OpenAPI/health on MANAGEMENT_BIND (monitoring only), the console on"
                    .into(),
            ),
            Step::Note("CONSOLE_BIND (administrators only): README, section \"Running on a network\".".into()),
            Step::Note("Ctrl-C stops both services.".into()),
        ];
        Walkthrough { steps }
    }

    /// Serves both services until `shutdown` completes, then writes the client's pending mirror
    /// updates.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        use shared_user::server::{Limits, serve};
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let signal = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let auth = serve(self.auth_listener, auth_service::app(self.auth), Limits::default(), signal(stopped.clone()));
        let client = serve(
            self.client_listener,
            client_service::demo::app(self.client.clone()),
            Limits::default(),
            signal(stopped),
        );
        let (a, c) = tokio::join!(auth, client);
        self.client.flush_mirror().await;
        a?;
        c?;
        Ok(())
    }
}

/// Creates the account, or sets its password again when it exists (an earlier run).
async fn seed(
    auth: &AppState,
    email: &str,
    password: &str,
    (first_name, last_name): (&str, &str),
    superuser: bool,
    groups: Vec<AccessGroup>,
) -> anyhow::Result<()> {
    let hash = auth.hasher.hash(password.to_owned()).await?;
    let created = auth
        .store
        .create_user(NewUser {
            email: email.into(),
            password_hash: hash.clone(),
            first_name: first_name.into(),
            last_name: last_name.into(),
            is_staff: superuser,
            is_superuser: superuser,
            groups,
        })
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(DbError::Unique) => {
            let existing = auth.store.find_by_email(email).await?.ok_or_else(|| anyhow::anyhow!("{email} vanished"))?;
            auth.store.set_password(existing.user.id, &hash).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Which service a request goes to: `$A` or `$C` in the printed lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The auth-service.
    Auth,
    /// The client-service.
    Client,
}

impl Service {
    /// The shell variable holding its base URL.
    pub fn var(self) -> &'static str {
        match self {
            Service::Auth => "A",
            Service::Client => "C",
        }
    }
}

/// A token read from the login answer ([`Step::ReadTokens`]): `$ACCESS` or `$REFRESH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// `$ACCESS`.
    Access,
    /// `$REFRESH`.
    Refresh,
}

impl Token {
    /// The shell variable holding it.
    pub fn var(self) -> &'static str {
        match self {
            Token::Access => "ACCESS",
            Token::Refresh => "REFRESH",
        }
    }
}

/// What a request's answer must show.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Exactly this JSON body.
    Exact(Value),
    /// A JSON object with these keys, in this order.
    HasKeys(&'static [&'static str]),
    /// The body contains this text.
    Contains(&'static str),
}

/// One printed curl line.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Which service.
    pub service: Service,
    /// Path, from the root.
    pub path: String,
    /// `Authorization: Bearer $ACCESS` (or `$REFRESH`).
    pub bearer: Option<Token>,
    /// A JSON body, where `$ACCESS` and `$REFRESH` stand for the tokens.
    pub body: Option<String>,
    /// The answer is kept in the tokens file for [`Step::ReadTokens`].
    pub saves_tokens: bool,
    /// Waited before the request (printed as `sleep N;`).
    pub after: Option<Duration>,
    /// The expected status.
    pub status: u16,
    /// What the body must show.
    pub check: Check,
    /// The printed comment after the status.
    pub note: &'static str,
}

impl Request {
    fn new(method: &'static str, service: Service, path: &str, body: Option<String>) -> Self {
        Request {
            method,
            service,
            path: path.to_owned(),
            bearer: None,
            body,
            saves_tokens: false,
            after: None,
            status: 200,
            check: Check::Contains(""),
            note: "",
        }
    }

    fn get(service: Service, path: &str) -> Self {
        Self::new("GET", service, path, None)
    }

    fn post(service: Service, path: &str, body: &str) -> Self {
        Self::new("POST", service, path, Some(body.to_owned()))
    }

    fn bearer(mut self, token: Token) -> Self {
        self.bearer = Some(token);
        self
    }

    fn saves_tokens(mut self) -> Self {
        self.saves_tokens = true;
        self
    }

    fn after(mut self, wait: Duration) -> Self {
        self.after = Some(wait);
        self
    }

    fn expect(mut self, status: u16, check: Check, note: &'static str) -> Self {
        self.status = status;
        self.check = check;
        self.note = note;
        self
    }

    /// The body with the tokens put in.
    pub fn body_with(&self, access: &str, refresh: &str) -> Option<String> {
        self.body.as_ref().map(|b| b.replace("$ACCESS", access).replace("$REFRESH", refresh))
    }

    /// The curl command line, without the comment.
    fn command(&self) -> String {
        let mut line = String::new();
        if let Some(wait) = self.after {
            line.push_str(&format!("sleep {}; ", wait.as_secs()));
        }
        line.push_str("curl -s");
        if self.method != "GET" {
            line.push_str(&format!(" -X {}", self.method));
        }
        line.push_str(&format!(" ${}{}", self.service.var(), self.path));
        if let Some(token) = self.bearer {
            line.push_str(&format!(" -H \"Authorization: Bearer ${}\"", token.var()));
        }
        if let Some(body) = &self.body {
            line.push_str(" -H 'Content-Type: application/json'");
            if body.contains('$') {
                // Double quotes so the shell puts the tokens in.
                line.push_str(&format!(" -d \"{}\"", body.replace('\\', "\\\\").replace('"', "\\\"")));
            } else {
                line.push_str(&format!(" -d '{body}'"));
            }
        }
        if self.saves_tokens {
            line.push_str(&format!(" | tee {TOKENS_FILE}"));
        }
        line
    }
}

/// One line of the walkthrough.
#[derive(Debug, Clone)]
pub enum Step {
    /// A line of text.
    Note(String),
    /// `NAME=value`: a service's base URL.
    Set {
        /// The variable ([`Service::var`]).
        name: &'static str,
        /// The URL.
        value: String,
    },
    /// A request to make.
    Request(Request),
    /// `ACCESS=...` and `REFRESH=...` read from the answer of the request that saved them.
    ReadTokens,
    /// A page to open in a browser.
    Open {
        /// The URL.
        url: String,
        /// What it is.
        note: String,
    },
    /// An `auth-service` command line.
    Command {
        /// Its arguments, after `auth-service`.
        args: Vec<String>,
        /// What it shows.
        note: &'static str,
    },
}

/// The lines the demo prints, in order.
#[derive(Debug, Clone)]
pub struct Walkthrough {
    /// Every line, in order.
    pub steps: Vec<Step>,
}

/// Commands and their comments line up at this column.
const COMMENT_COLUMN: usize = 66;

fn commented(command: &str, comment: &str) -> String {
    format!("  {command:<COMMENT_COLUMN$}  # {comment}")
}

impl fmt::Display for Walkthrough {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            match step {
                Step::Note(text) => writeln!(f, "{text}")?,
                Step::Set { name, value } => writeln!(f, "  {name}={value}")?,
                Step::Request(r) => {
                    let comment =
                        if r.note.is_empty() { r.status.to_string() } else { format!("{} {}", r.status, r.note) };
                    writeln!(f, "{}", commented(&r.command(), &comment))?;
                }
                Step::ReadTokens => {
                    for token in [Token::Access, Token::Refresh] {
                        let key = token.var().to_ascii_lowercase();
                        writeln!(f, "  {}=$(sed -E 's/.*\"{key}\":\"([^\"]+)\".*/\\1/' {TOKENS_FILE})", token.var())?;
                    }
                }
                Step::Open { url, note } => writeln!(f, "{}", commented(url, note))?,
                Step::Command { args, note } => {
                    writeln!(f, "{}", commented(&format!("cargo run -q -p auth-service -- {}", args.join(" ")), note))?;
                }
            }
        }
        Ok(())
    }
}
