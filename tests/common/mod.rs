//! End-to-end harness: a real auth-service and the demo client-service, each on its own fresh
//! database and its own ephemeral port, talked to over HTTP. The auth-service counts the
//! requests it receives per path and can be killed mid-test.
#![allow(dead_code, reason = "each test binary uses a different part of the harness")]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_service::settings::Hashing;
use auth_service::store::NewUser;
use auth_service::{AppState, Settings};
use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use client_service::{ClientConfig, ClientConfigBuilder, ClientState, VerifyMode};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};
use shared_user::testing::{Backend, TestDb};
use shared_user::{AccessGroup, Db, DbError, with_conn};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// Signing key shared by the auth-service and (in local mode) the client.
pub const KEY: &str = "e2e-signing-key-0123456789abcdef0123456789";
/// Key sealing the auth-service's asymmetric private keys (base64 of 32 bytes).
pub const KEK: &str = "ZTJlLWtleS1lbmNyeXB0aW9uLWtleS0zMi1ieXRlcyE=";

/// Password of every seeded user.
pub const PASSWORD: &str = "correct horse battery";
/// `WWW-Authenticate` of the 401s the auth-service makes (a client passing one on puts its own).
pub const WWW_AUTH: &str = "Bearer realm=\"api\"";
/// `WWW-Authenticate` of every 401 the client-service answers, its own or proxied (the EasyJWT 1.1 client's).
pub const CLIENT_WWW_AUTH: &str = "Bearer";

// The mirror's tables as a host service sees them in its database.
diesel::table! {
    gatehouse_users (id) {
        id -> BigInt,
        email -> Text,
        is_active -> Bool,
        synced_at -> Timestamp,
    }
}
diesel::table! {
    gatehouse_access_groups (user_id, name) {
        user_id -> BigInt,
        name -> Text,
        level -> Nullable<Text>,
    }
}
use gatehouse_access_groups as access_groups;
use gatehouse_users as users;
/// Upper bound for a request that must fail fast instead of hanging.
pub const FAST: Duration = Duration::from_secs(10);

/// `per_mode!(body => local_name, remote_name);` defines `async fn local_name(Backend)` and
/// `async fn remote_name(Backend)` running `body(backend, mode)` in each client verification
/// mode, ready for `both_backends!`. One test per mode keeps each test short.
#[allow(unused_macros, reason = "not every test binary has per-mode tests")]
macro_rules! per_mode {
    ($($body:ident => $local:ident, $remote:ident);+ $(;)?) => {
        $(
            async fn $local(backend: shared_user::testing::Backend) {
                $body(backend, client_service::VerifyMode::Local).await;
            }
            async fn $remote(backend: shared_user::testing::Backend) {
                $body(backend, client_service::VerifyMode::Remote).await;
            }
        )+
    };
}

/// How a pair is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Client verification mode.
    pub mode: VerifyMode,
    /// How long the client trusts a mirrored user.
    pub mirror_ttl: Duration,
    /// Timeout of each client call to the auth-service.
    pub client_timeout: Duration,
    /// The auth-service's settings (default: the shipped ones with [`KEY`] and cheap argon2);
    /// an asymmetric `algorithm` makes the client verify with the auth-service's JWKS instead
    /// of the shared key.
    pub auth: Settings,
    /// Last changes to the client's configuration (cookie mode, JWKS settings...).
    pub configure: Option<fn(ClientConfigBuilder) -> ClientConfigBuilder>,
    /// The auth-service over mutual TLS: certificates from a private CA made for the test, the
    /// auth-service requiring a client certificate, the client trusting exactly that CA and
    /// presenting its own certificate (named [`TLS_CLIENT_NAME`]).
    pub mutual_tls: bool,
    /// `ISSUER` is the auth-service's URL, and the client finds the JWKS through discovery.
    pub discovery: bool,
}

/// The name of the client-service's certificate in a [`Options::mutual_tls`] pair.
pub const TLS_CLIENT_NAME: &str = "e2e-client-service";

impl Options {
    /// `mode` with a long mirror TTL.
    pub fn new(mode: VerifyMode) -> Self {
        Self {
            mode,
            mirror_ttl: Duration::from_secs(300),
            client_timeout: Duration::from_secs(2),
            auth: Settings {
                signing_key: Some(KEY.into()),
                hashing: Hashing { argon2_memory_kib: 256, argon2_iterations: 1, ..Hashing::default() },
                ..Settings::default()
            },
            configure: None,
            mutual_tls: false,
            discovery: false,
        }
    }

    /// Same, with `ISSUER` set to the auth-service's URL and a client configured by that URL
    /// alone (local mode, the JWKS found through discovery).
    pub fn discovery(mut self) -> Self {
        self.discovery = true;
        self
    }

    /// Same, with the auth-service behind mutual TLS.
    pub fn mutual_tls(mut self) -> Self {
        self.mutual_tls = true;
        self
    }

    /// Same, with changed auth-service settings.
    pub fn auth(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(&mut self.auth);
        self
    }

    /// Same, with a last change to the client's configuration.
    pub fn configure(mut self, f: fn(ClientConfigBuilder) -> ClientConfigBuilder) -> Self {
        self.configure = Some(f);
        self
    }

    /// Same, with the given mirror TTL.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.mirror_ttl = ttl;
        self
    }

    /// Same, with the given timeout for each client call to the auth-service.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.client_timeout = timeout;
        self
    }
}

/// Requests received by the auth-service, per path; and a switch that makes it hang.
#[derive(Debug, Clone)]
pub struct Counter {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    frozen: Arc<watch::Sender<bool>>,
}

impl Default for Counter {
    fn default() -> Self {
        Self { counts: Arc::default(), frozen: Arc::new(watch::Sender::new(false)) }
    }
}

impl Counter {
    /// How many requests `path` received.
    pub fn get(&self, path: &str) -> usize {
        self.counts.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Every request so far, on any path.
    pub fn total(&self) -> usize {
        self.counts.lock().unwrap().values().sum()
    }

    /// Forgets everything counted so far.
    pub fn reset(&self) {
        self.counts.lock().unwrap().clear();
    }

    /// A copy of the counts, for assertion messages.
    pub fn snapshot(&self) -> HashMap<String, usize> {
        self.counts.lock().unwrap().clone()
    }
}

async fn count_requests(State(counter): State<Counter>, req: Request, next: Next) -> Response {
    *counter.counts.lock().unwrap().entry(req.uri().path().to_owned()).or_default() += 1;
    // A frozen auth-service accepts connections and reads requests but answers nothing.
    let _ = counter.frozen.subscribe().wait_for(|frozen| !frozen).await;
    next.run(req).await
}

/// One served router: stop it with [`Server::stop`].
struct Server {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    async fn start(router: Router) -> Server {
        Server::start_tls(router, None).await
    }

    async fn start_tls(router: Router, tls: Option<shared_user::server::Tls>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        Server::serve_on(listener, router, tls)
    }

    fn serve_on(listener: tokio::net::TcpListener, router: Router, tls: Option<shared_user::server::Tls>) -> Server {
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let limits = shared_user::server::Limits::default();
            shared_user::server::serve_tls(listener, router, limits, tls, async move {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        Server { addr, shutdown: Some(tx), task: Some(task) }
    }

    /// Stops accepting, closes idle keep-alive connections and drops the listener, so later
    /// connections are refused.
    async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err()
        {
            task.abort();
            // The listener goes away with the task's future, once the abort has landed.
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The answer to one request.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    /// The body as JSON; panics when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    /// A header value ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The `Content-Type` ("" when absent).
    pub fn content_type(&self) -> &str {
        self.header("content-type")
    }

    /// Asserts status, exact `Content-Type: application/json` and the exact JSON body.
    #[track_caller]
    pub fn expect_json(&self, status: u16, body: Value) {
        assert_eq!(self.status, status, "status; body {}", self.text);
        assert_eq!(self.content_type(), "application/json", "content type; body {}", self.text);
        assert_eq!(self.json(), body, "body");
    }

    /// Asserts a 401 with `WWW-Authenticate: Bearer realm="api"` and the exact JSON body.
    #[track_caller]
    pub fn expect_401(&self, body: Value) {
        self.expect_json(401, body);
        assert_eq!(self.header("www-authenticate"), WWW_AUTH, "WWW-Authenticate");
    }

    /// Asserts a 401 answered by the client-service (its own, or the auth-service's passed on):
    /// `WWW-Authenticate: Bearer` (no realm, as the EasyJWT 1.1 client) and the exact JSON body.
    #[track_caller]
    pub fn expect_client_401(&self, body: Value) {
        self.expect_json(401, body);
        assert_eq!(self.header("www-authenticate"), CLIENT_WWW_AUTH, "WWW-Authenticate");
    }

    /// The keys of a JSON object body, in order.
    pub fn keys(&self) -> Vec<String> {
        self.json().as_object().expect("object body").keys().cloned().collect()
    }
}

/// The body of the client-service's 401 for any refused bearer token.
pub fn token_not_valid() -> Value {
    json!({"detail": "Token is invalid or expired", "code": "token_not_valid"})
}

/// The body of the auth-service's 401 for a refused bearer token.
pub fn invalid_bearer(message: &str) -> Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}],
    })
}

/// The body of a 503 when the auth-service cannot be reached.
pub fn connection_error() -> Value {
    json!({"detail": "Authentication Service Connection Error."})
}

/// A signed token with arbitrary claims (expired tokens and the like).
pub fn sign(claims: &Value) -> String {
    use shared_user::jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(KEY.as_bytes())).expect("sign")
}

/// An access token for `user_id` that expired a minute ago, signed with the real key.
pub fn expired_access(user_id: i64) -> String {
    let now = chrono_now();
    sign(&json!({
        "token_type": "access",
        "exp": now - 60,
        "iat": now - 360,
        "jti": "0123456789abcdef0123456789abcdef",
        "user_id": user_id,
    }))
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

/// Mirror rows of the client database: `(id, email, is_active)` per user and
/// `(user_id, name, level)` per access group, ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorRows {
    pub users: Vec<(i64, String, bool)>,
    pub groups: Vec<(i64, String, Option<String>)>,
}

async fn load_mirror(db: &Db) -> Result<MirrorRows, DbError> {
    with_conn!(db, |conn| {
        let users = users::table
            .order(users::id.asc())
            .select((users::id, users::email, users::is_active))
            .load::<(i64, String, bool)>(conn)
            .await?;
        let groups = access_groups::table
            .order((access_groups::user_id.asc(), access_groups::name.asc()))
            .select((access_groups::user_id, access_groups::name, access_groups::level))
            .load::<(i64, String, Option<String>)>(conn)
            .await?;
        Ok(MirrorRows { users, groups })
    })
}

async fn load_synced_at(db: &Db, id: i64) -> Result<Option<chrono::NaiveDateTime>, DbError> {
    with_conn!(db, |conn| {
        let t = users::table.find(id).select(users::synced_at).first::<chrono::NaiveDateTime>(conn).await.optional()?;
        Ok(t)
    })
}

/// A running auth-service + demo client-service pair.
pub struct Pair {
    /// Requests the auth-service received.
    pub counter: Counter,
    /// The auth-service's state (store, hasher): the admin's side door.
    pub auth: AppState,
    /// The client-service's state.
    pub client: ClientState,
    /// Base URL of the auth-service.
    pub auth_url: String,
    /// Base URL of the client-service.
    pub client_url: String,
    /// HTTP client of the test (never follows redirects).
    pub http: reqwest::Client,
    auth_server: Server,
    client_server: Server,
    // Dropped last: the servers hold pools on these databases.
    pub auth_db: TestDb,
    pub client_db: TestDb,
    /// The certificates of a mutual-TLS pair (`ca.pem`, ...), removed with the pair.
    pub pki: Option<tempfile::TempDir>,
}

/// A private CA, a server certificate for 127.0.0.1 and a client certificate named
/// [`TLS_CLIENT_NAME`], written as `certs init` and `certs client` write them.
fn make_pki() -> tempfile::TempDir {
    use shared_user::pki::{Ca, Overwrite, files, write_issued};
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new("e2e CA").expect("CA");
    ca.write(dir.path(), Overwrite::Refuse).expect("write CA");
    let server = ca.server(&["127.0.0.1", "localhost"]).expect("server certificate");
    write_issued(dir.path(), files::SERVER_CERT, files::SERVER_KEY, &server, Overwrite::Refuse).expect("write server");
    let client = ca.client(TLS_CLIENT_NAME).expect("client certificate");
    let (cert, key) = (files::client_cert(TLS_CLIENT_NAME), files::client_key(TLS_CLIENT_NAME));
    write_issued(dir.path(), &cert, &key, &client, Overwrite::Refuse).expect("write client");
    dir
}

impl Pair {
    /// Starts a pair on fresh databases; `None` when the backend is not available.
    pub async fn start(backend: Backend, options: Options) -> Option<Pair> {
        let auth_db = TestDb::new(backend, "e2e auth-service", auth_service::MIGRATIONS).await?;
        let client_db = TestDb::new(backend, "e2e client-service", client_service::MIGRATIONS).await?;

        let mut settings = options.auth.clone();
        let asymmetric = settings.is_asymmetric();
        if asymmetric {
            settings.signing_key = None;
            settings.key_encryption_key.get_or_insert_with(|| KEK.into());
        }
        // Mutual TLS as an operator sets it: `TLS_CERT_FILE`, `TLS_KEY_FILE`, `TLS_CLIENT_CA_FILE`
        // and `TLS_CLIENT_AUTH=required` on the files `certs` wrote.
        let pki = options.mutual_tls.then(make_pki);
        if let Some(dir) = &pki {
            use shared_user::pki::files;
            settings.tls_cert_file = Some(dir.path().join(files::SERVER_CERT));
            settings.tls_key_file = Some(dir.path().join(files::SERVER_KEY));
            settings.tls_client_ca_file = Some(dir.path().join(files::CA_CERT));
            settings.tls_client_auth = shared_user::server::ClientAuth::Required;
        }
        let tls = settings
            .tls_files()
            .expect("TLS settings")
            .map(|files| shared_user::server::Tls::load(files).expect("server TLS"));
        // Bound first: with discovery, the auth-service's URL is its ISSUER.
        let auth_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let auth_url = format!("{scheme}://{}", auth_listener.local_addr().expect("local addr"));
        if options.discovery {
            settings.issuer = Some(auth_url.clone());
        }
        let auth = AppState::build(settings, auth_db.db.clone()).await.expect("auth-service state");
        let counter = Counter::default();
        let auth_router =
            auth_service::app(auth.clone()).layer(middleware::from_fn_with_state(counter.clone(), count_requests));
        let auth_server = Server::serve_on(auth_listener, auth_router, tls);

        let mut config = match (options.mode, asymmetric) {
            (VerifyMode::Local, true) if options.discovery => {
                ClientConfig::builder(auth_url.clone()).issuer(auth_url.clone()).local_jwks_from_issuer()
            }
            (VerifyMode::Remote, _) => ClientConfig::builder(auth_url.clone()).remote(),
            (VerifyMode::Local, true) => ClientConfig::builder(auth_url.clone()).local_jwks(),
            (VerifyMode::Local, false) => ClientConfig::builder(auth_url.clone()).local_hmac(KEY),
        }
        .mirror_ttl(options.mirror_ttl)
        .request_timeout(options.client_timeout)
        .connect_timeout(options.client_timeout.min(Duration::from_secs(1)));
        if let Some(dir) = &pki {
            use shared_user::pki::files;
            config = config.ca_file(dir.path().join(files::CA_CERT)).client_certificate(
                dir.path().join(files::client_cert(TLS_CLIENT_NAME)),
                dir.path().join(files::client_key(TLS_CLIENT_NAME)),
            );
        }
        if let Some(configure) = options.configure {
            config = configure(config);
        }
        let client =
            ClientState::new(config.build().expect("client config"), client_db.db.clone()).expect("client state");
        let client_server = Server::start(client_service::demo::app(client.clone())).await;
        let client_url = format!("http://{}", client_server.addr);

        let mut http =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(20));
        if let Some(dir) = &pki {
            // The test's own calls to the auth-service: the same CA and client certificate.
            use shared_user::pki::files;
            let read = |name: &str| std::fs::read(dir.path().join(name)).expect("read test certificate");
            let identity =
                [read(&files::client_cert(TLS_CLIENT_NAME)), read(&files::client_key(TLS_CLIENT_NAME))].concat();
            http = http
                .tls_certs_only([reqwest::Certificate::from_pem(&read(files::CA_CERT)).expect("CA")])
                .identity(reqwest::Identity::from_pem(&identity).expect("identity"));
        }
        let http = http.build().expect("reqwest client");
        Some(Pair {
            counter,
            auth,
            client,
            auth_url,
            client_url,
            http,
            auth_server,
            client_server,
            auth_db,
            client_db,
            pki,
        })
    }

    /// Adds an active user with [`PASSWORD`] and `groups` (`NAME` or `NAME:LEVEL`) on the
    /// auth-service; returns its id.
    pub async fn add_user(&self, email: &str, groups: &[&str]) -> i64 {
        let hash = self.auth.hasher.hash(PASSWORD.to_owned()).await.expect("hash");
        let user = self
            .auth
            .store
            .create_user(NewUser {
                email: email.into(),
                password_hash: hash,
                first_name: "Test".into(),
                last_name: "User".into(),
                is_staff: false,
                is_superuser: false,
                groups: groups.iter().map(|g| AccessGroup::parse(g).expect("group")).collect(),
            })
            .await
            .expect("create user");
        user.id
    }

    /// Replaces a user's groups on the auth-service (what `users set-groups` does).
    pub async fn set_groups(&self, email: &str, groups: &[&str]) {
        let groups = groups.iter().map(|g| AccessGroup::parse(g).expect("group")).collect();
        assert!(self.auth.store.set_groups(email, groups).await.expect("set groups"), "no user {email}");
    }

    /// Deactivates a user on the auth-service (what `users deactivate` does).
    pub async fn deactivate(&self, email: &str) {
        assert!(self.auth.store.deactivate(email).await.expect("deactivate"), "no user {email}");
    }

    /// Makes the auth-service hang: connections are accepted, requests never answered.
    pub fn freeze_auth(&self) {
        self.counter.frozen.send_replace(true);
    }

    /// Lets a frozen auth-service answer again (held requests go on).
    pub fn thaw_auth(&self) {
        self.counter.frozen.send_replace(false);
    }

    /// Kills the auth-service: later connections to it are refused.
    pub async fn kill_auth(&mut self) {
        self.auth_server.stop().await;
        // The port is closed now (a fresh connect must fail at once).
        assert!(tokio::net::TcpStream::connect(self.auth_server.addr).await.is_err(), "auth-service still accepts");
    }

    /// The end of a test: stops both services, then drops both databases at once (dropping a
    /// used PostgreSQL database waits for a checkpoint; two in a row double the wait).
    pub async fn finish(mut self) {
        self.thaw_auth();
        self.client_server.stop().await;
        self.auth_server.stop().await;
        let Pair { auth_db, client_db, .. } = self;
        let auth_drop = tokio::task::spawn_blocking(move || drop(auth_db));
        let client_drop = tokio::task::spawn_blocking(move || drop(client_db));
        auth_drop.await.expect("drop auth-service database");
        client_drop.await.expect("drop client database");
    }

    /// Sends `req` and reads its answer.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request failed at the transport level");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        Reply { status, headers, text }
    }

    /// `POST` a JSON body to the client-service with extra headers.
    pub async fn post_with(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
        let mut req = self.http.post(format!("{}{path}", self.client_url)).json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }

    /// `POST` a JSON body to the client-service.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.post_with(path, body, &[]).await
    }

    /// `GET` on the client-service with raw headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = self.http.get(format!("{}{path}", self.client_url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }

    /// `GET` on the client-service with `Authorization: Bearer <token>`.
    pub async fn get(&self, path: &str, token: &str) -> Reply {
        let auth = format!("Bearer {token}");
        self.get_with(path, &[("authorization", auth.as_str())]).await
    }

    /// `POST` a JSON body straight to the auth-service (not through the client).
    pub async fn post_auth(&self, path: &str, body: &Value) -> Reply {
        self.send(self.http.post(format!("{}{path}", self.auth_url)).json(body)).await
    }

    /// Logs in through the client-service; panics unless 200. Returns `(refresh, access)`.
    pub async fn login(&self, email: &str) -> (String, String) {
        let r = self.post("/auth/token/", &json!({"email": email, "password": PASSWORD})).await;
        pair_of(&r)
    }

    /// Obtains a pair straight from the auth-service: the client never sees this login.
    pub async fn login_direct(&self, email: &str) -> (String, String) {
        let r = self.post_auth("/auth/token/", &json!({"email": email, "password": PASSWORD})).await;
        pair_of(&r)
    }

    /// The client mirror's rows, once every mirror write made so far is done.
    pub async fn mirror(&self) -> MirrorRows {
        self.client.flush_mirror().await;
        load_mirror(&self.client_db.db).await.expect("read mirror")
    }

    /// When the client last synced user `id` from the auth-service.
    pub async fn synced_at(&self, id: i64) -> Option<chrono::NaiveDateTime> {
        self.client.flush_mirror().await;
        load_synced_at(&self.client_db.db, id).await.expect("read synced_at")
    }
}

#[track_caller]
fn pair_of(r: &Reply) -> (String, String) {
    assert_eq!(r.status, 200, "login failed: {}", r.text);
    let v = r.json();
    (v["refresh"].as_str().expect("refresh").to_owned(), v["access"].as_str().expect("access").to_owned())
}

/// Reloads the auth-service's asymmetric keys from its database (what each replica does
/// every `KEYS_RELOAD_INTERVAL`).
pub async fn reload_auth_keys(pair: &Pair) {
    let kek = auth_service::keys::KeyEncryptionKey::parse(KEK).expect("KEK");
    let rows = auth_service::keys::load_rows(&pair.auth.store, Some(&kek)).await.expect("load keys");
    pair.auth.keys.reload(&rows).expect("reload keys");
}

/// One key rotation step on the auth-service (`auth-service keys rotate`).
pub async fn rotate_auth_key(pair: &Pair, alg: shared_user::jsonwebtoken::Algorithm) {
    let kek = auth_service::keys::KeyEncryptionKey::parse(KEK).expect("KEK");
    auth_service::keys::rotate_step(&pair.auth.store, alg, Some(&kek)).await.expect("rotate");
}
