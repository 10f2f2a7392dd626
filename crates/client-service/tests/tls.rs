//! The client over TLS, with real handshakes on sockets: an auth-service stand-in served over
//! tokio-rustls on 127.0.0.1 with certificates made here (rcgen). A private CA
//! (`REMOTE_AUTH_CA_FILE`) works end to end (login through the proxy, remote verify, the user
//! fetch, the JWKS, the revocation feed); an unknown CA, an expired certificate and a wrong host
//! name each answer 503 with the outage body and one log line naming the cause; a client
//! certificate is presented when configured and its absence is named when the server requires
//! one; `REMOTE_AUTH_SSL_VERIFY=false` needs development mode.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use client_service::{ClientConfig, ClientConfigBuilder, ClientState, ConfigError, RevocationStatus, SslVerify};
use http_body_util::BodyExt;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use shared_user::testing::{Backend, TestDb, logs};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

const KEY: &str = "tls-test-signing-key-0123456789abcdef0123";
/// The client's answer when the auth-service cannot be reached (any transport failure).
const OUTAGE: &str = r#"{"detail":"Authentication Service Connection Error."}"#;

/// A certificate authority of the test.
struct Ca(CertifiedIssuer<'static, KeyPair>);

/// A certificate and its key, in PEM files and in the forms rustls takes.
struct Leaf {
    cert: PathBuf,
    key: PathBuf,
    der: CertificateDer<'static>,
    key_der: PrivatePkcs8KeyDer<'static>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ca(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    /// The CA certificate in `dir/NAME.pem`.
    fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, self.0.pem()).unwrap();
        path
    }

    /// A certificate for `names` (host names or addresses), changed by `change`, in
    /// `dir/NAME.pem` and `dir/NAME.key`.
    fn leaf(&self, dir: &Path, name: &str, names: &[&str], change: impl FnOnce(&mut CertificateParams)) -> Leaf {
        let mut params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        change(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.0).unwrap();
        let (cert_path, key_path) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Leaf { cert: cert_path, key: key_path, der: cert.der().clone(), key_der: key.serialize_der().into() }
    }
}

/// Serves `app` over TLS with `leaf`; with `client_ca`, a client certificate signed by it is
/// required. Returns the port and the client certificates seen in finished handshakes.
async fn serve_tls(app: Router, leaf: &Leaf, client_ca: Option<&Ca>) -> (u16, Arc<Mutex<Vec<Vec<u8>>>>) {
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.0.der().clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build().unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let key = PrivateKeyDer::Pkcs8(leaf.key_der.clone_key());
    let mut config = builder.with_single_cert(vec![leaf.der.clone()], key).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = TlsListener { tcp, acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)), seen: seen.clone() };
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, seen)
}

/// A TCP listener whose connections are TLS; a failed handshake is dropped and the next
/// connection accepted.
struct TlsListener {
    tcp: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else { continue };
            let tls = match self.acceptor.accept(tcp).into_fallible().await {
                Ok(tls) => tls,
                Err((_, tcp)) => {
                    tokio::spawn(close_after_alert(tcp));
                    continue;
                }
            };
            if let Some(first) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                self.seen.lock().unwrap().push(first.to_vec());
            }
            return (tls, addr);
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Ends a connection whose handshake failed as a real server does (the auth-service's listener
/// too): the alert is sent, then the client's first request (TLS 1.3 sends it before the server
/// has checked the client's certificate) is read and dropped until the client closes. Dropping
/// the socket with that request unread would answer with a reset that can overtake the alert.
async fn close_after_alert(mut tcp: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let drain = async {
        tcp.shutdown().await?;
        let mut buffer = [0u8; 4096];
        while tcp.read(&mut buffer).await? > 0 {}
        std::io::Result::Ok(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

fn access_token(user_id: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"token_type": "access", "exp": now + 300, "iat": now, "jti": "j", "user_id": user_id});
    shared_user::jsonwebtoken::encode(
        &shared_user::jsonwebtoken::Header::default(),
        &claims,
        &shared_user::jsonwebtoken::EncodingKey::from_secret(KEY.as_bytes()),
    )
    .unwrap()
}

/// The auth-service's side of login, verify, the user fetch and the revocation feed.
fn auth_service_stub() -> Router {
    let user = json!({
        "id": 7, "email": "tls@example.com", "first_name": "", "last_name": "",
        "date_joined": "2026-01-01T00:00:00", "last_login": null,
        "is_active": true, "is_staff": false, "is_superuser": false, "access_groups": []
    });
    Router::new()
        .route("/auth/token/", post(|| async { axum::Json(json!({"refresh": "r", "access": access_token(7)})) }))
        .route("/auth/token/verify/", post(|| async { axum::Json(json!({})) }))
        .route("/auth/user/", get(move || async move { axum::Json(user) }))
        .route("/auth/revocations/", get(|| async { axum::Json(json!({"cursor": 0, "revocations": []})) }))
}

/// One request to the client's demo app.
async fn call(app: &Router, method: &str, path: &str, body: Value, token: Option<&str>) -> (StatusCode, String) {
    let mut req = axum::http::Request::builder().method(method).uri(path).header("content-type", "application/json");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let resp = app.clone().oneshot(req.body(axum::body::Body::from(body.to_string())).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// The demo app of a client configured by `config`, on a fresh SQLite mirror.
async fn client(config: ClientConfigBuilder) -> (Router, ClientState, TestDb) {
    let db = TestDb::new(Backend::Sqlite, "tls", client_service::MIGRATIONS).await.unwrap();
    let config = config.request_timeout(Duration::from_secs(5)).build().unwrap();
    let state = ClientState::new(config, db.db.clone()).unwrap();
    (client_service::demo::app(state.clone()), state, db)
}

/// The log lines whose message contains `text`.
fn lines_with(logs: &logs::Logs, text: &str) -> Vec<Value> {
    logs.lines().into_iter().filter(|l| l["fields"]["message"].as_str().is_some_and(|m| m.contains(text))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_carries_login_remote_verify_the_user_and_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Gatehouse test CA");
    let ca_file = ca.write(dir.path(), "ca");
    let leaf = ca.leaf(dir.path(), "auth", &["127.0.0.1", "localhost"], |_| {});
    let (port, _) = serve_tls(auth_service_stub(), &leaf, None).await;
    let url = format!("https://127.0.0.1:{port}");

    let (app, _state, _db) = client(ClientConfig::builder(&url).remote().ca_file(&ca_file)).await;
    let (status, body) =
        call(&app, "POST", "/auth/token/", json!({"email": "tls@example.com", "password": "p"}), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = serde_json::from_str::<Value>(&body).unwrap()["access"].as_str().unwrap().to_owned();
    // Remote verify and the user (mirrored at login, fetched again for /api/me/ when stale).
    let (status, body) = call(&app, "GET", "/api/test/", json!(null), Some(&access)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#""success""#));
    let (status, body) = call(&app, "GET", "/api/me/", json!(null), Some(&access)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["email"], "tls@example.com");
    // The same bundle named by EasyJWT's setting instead.
    let named = ClientConfig::builder(&url).remote().ssl_verify(SslVerify::CaFile(ca_file.clone()));
    let (app, _state, _db) = client(named).await;
    let (status, _) = call(&app, "GET", "/api/test/", json!(null), Some(&access)).await;
    assert_eq!(status, StatusCode::OK);

    // Local mode: the revocation feed is read over the same TLS client.
    let local = ClientConfig::builder(&url).local_hmac(KEY).ca_file(&ca_file).revocation_feed("feed-token-0123456789");
    let (_app, state, _db) = client(local).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !matches!(state.revocation_status(), RevocationStatus::Live { .. }) {
        assert!(std::time::Instant::now() < deadline, "{:?}", state.revocation_status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Login and a remote verify through a client trusting `ca_file` against a server with `leaf`:
/// both 503 with the outage body; returns the log lines naming `cause`.
async fn refused(ca_file: &Path, leaf: &Leaf, cause: &str) -> Vec<Value> {
    let logs = logs::capture();
    let (port, _) = serve_tls(auth_service_stub(), leaf, None).await;
    let url = format!("https://127.0.0.1:{port}");
    let (app, _state, _db) = client(ClientConfig::builder(&url).remote().ca_file(ca_file)).await;
    let (status, body) = call(&app, "POST", "/auth/token/", json!({"email": "a@b.co", "password": "p"}), None).await;
    assert_eq!((status, body.as_str()), (StatusCode::SERVICE_UNAVAILABLE, OUTAGE));
    let (status, body) = call(&app, "GET", "/api/test/", json!(null), Some(&access_token(7))).await;
    assert_eq!((status, body.as_str()), (StatusCode::SERVICE_UNAVAILABLE, OUTAGE));
    let (_, metrics) = call(&app, "GET", "/metrics", json!(null), None).await;
    assert!(metrics.contains(r#"gatehouse_upstream_requests_total{outcome="tls"}"#), "{metrics}");
    let lines = lines_with(&logs, cause);
    assert_eq!(lines.len(), 2, "one line per failed call naming {cause:?}: {}", logs.text());
    assert!(
        lines_with(&logs, "auth-service call failed").is_empty(),
        "no generic connection error for a refused certificate"
    );
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_of_an_unknown_ca_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let trusted = Ca::new("trusted CA").write(dir.path(), "ca");
    let leaf = Ca::new("someone else's CA").leaf(dir.path(), "auth", &["127.0.0.1"], |_| {});
    let lines = refused(&trusted, &leaf, "auth-service certificate not trusted: UnknownIssuer").await;
    assert_eq!((lines[0]["fields"]["cause"].as_str(), lines[0]["level"].as_str()), (Some("untrusted"), Some("ERROR")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let ca_file = ca.write(dir.path(), "ca");
    let leaf = ca.leaf(dir.path(), "auth", &["127.0.0.1"], |p| {
        p.not_before = rcgen::date_time_ymd(2024, 1, 1);
        p.not_after = rcgen::date_time_ymd(2025, 1, 1);
    });
    let lines = refused(&ca_file, &leaf, "auth-service certificate expired on 2025-01-01").await;
    assert_eq!(lines[0]["fields"]["cause"], "expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_host_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let ca_file = ca.write(dir.path(), "ca");
    let leaf = ca.leaf(dir.path(), "auth", &["auth.internal"], |_| {});
    let lines = refused(&ca_file, &leaf, "auth-service certificate host name mismatch").await;
    let message = lines[0]["fields"]["message"].as_str().unwrap();
    assert!(message.contains("127.0.0.1") && message.contains("auth.internal"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_is_presented_when_configured() {
    let logs = logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let ca_file = ca.write(dir.path(), "ca");
    let server = ca.leaf(dir.path(), "auth", &["127.0.0.1"], |_| {});
    let clients = Ca::new("client CA");
    let me = clients.leaf(dir.path(), "billing-service", &[], |_| {});
    let (port, seen) = serve_tls(auth_service_stub(), &server, Some(&clients)).await;
    let url = format!("https://127.0.0.1:{port}");

    let with_cert = ClientConfig::builder(&url).remote().ca_file(&ca_file).client_certificate(&me.cert, &me.key);
    let (app, _state, _db) = client(with_cert).await;
    let (status, body) = call(&app, "GET", "/api/test/", json!(null), Some(&access_token(7))).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#""success""#));
    assert_eq!(seen.lock().unwrap().first(), Some(&me.der.to_vec()), "the server saw this client's certificate");

    // Without the setting the server ends the handshake: 503, and the line says why.
    let (app, _state, _db) = client(ClientConfig::builder(&url).remote().ca_file(&ca_file)).await;
    let (status, body) = call(&app, "GET", "/api/test/", json!(null), Some(&access_token(7))).await;
    assert_eq!((status, body.as_str()), (StatusCode::SERVICE_UNAVAILABLE, OUTAGE));
    let lines = lines_with(&logs, "auth-service refused this client's certificate: CertificateRequired");
    assert_eq!(lines.len(), 1, "{}", logs.text());
}

#[test]
fn ssl_verify_false_is_for_development_only() {
    let off = || ClientConfig::builder("https://auth.internal").remote().ssl_verify(SslVerify::Off);
    let e = off().build().unwrap_err();
    assert_eq!(e, ConfigError::VerifyOffOutsideDev);
    assert!(e.to_string().starts_with("REMOTE_AUTH_SSL_VERIFY=false (no check of the auth-service's certificate) is refused outside development mode (GATEHOUSE_DEV=true)"), "{e}");
    off().dev(true).build().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_verify_false_in_development_mode_takes_any_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let leaf = Ca::new("unknown CA").leaf(dir.path(), "auth", &["auth.internal"], |_| {});
    let (port, _) = serve_tls(auth_service_stub(), &leaf, None).await;
    let config =
        ClientConfig::builder(format!("https://127.0.0.1:{port}")).remote().ssl_verify(SslVerify::Off).dev(true);
    let (app, _state, _db) = client(config).await;
    let (status, body) = call(&app, "GET", "/api/test/", json!(null), Some(&access_token(7))).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#""success""#));
}

#[test]
fn unusable_tls_files_are_start_up_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let ca_file = ca.write(dir.path(), "ca");
    let me = ca.leaf(dir.path(), "me", &[], |_| {});
    let other = ca.leaf(dir.path(), "other", &[], |_| {});
    let b = || ClientConfig::builder("https://auth.internal").remote();

    let e = b().ca_file(dir.path().join("missing.pem")).build().unwrap_err().to_string();
    assert!(e.starts_with("REMOTE_AUTH_CA_FILE=") && e.contains("cannot be read"), "{e}");
    let e = b().ca_file(&me.key).build().unwrap_err().to_string();
    assert!(e.contains("holds no PEM block of CERTIFICATE"), "{e}");
    let e = b().ssl_verify(SslVerify::CaFile(ca_file.clone())).ca_file(&me.cert).build().unwrap_err();
    assert!(matches!(e, ConfigError::CaConflict { .. }), "{e}");
    b().ssl_verify(SslVerify::CaFile(ca_file.clone())).ca_file(&ca_file).build().unwrap();
    // A key that is not the certificate's.
    let e = b().client_certificate(&me.cert, &other.key).build().unwrap_err().to_string();
    assert!(e.starts_with("REMOTE_AUTH_CLIENT_KEY_FILE="), "{e}");
    let e = b().client_certificate(&me.cert, &me.cert).build().unwrap_err().to_string();
    assert!(e.contains("holds no PEM block of PRIVATE KEY"), "{e}");
    b().client_certificate(&me.cert, &me.key).build().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwks_is_fetched_through_the_private_ca_too() {
    use shared_user::jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let ca_file = ca.write(dir.path(), "ca");
    let leaf = ca.leaf(dir.path(), "auth", &["127.0.0.1"], |_| {});
    let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8v1(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
    let signing = EncodingKey::from_ed_der(pkcs8.as_ref());
    let jwk = shared_user::jwks::public_jwk(&signing, Algorithm::EdDSA, "k1").unwrap();
    let jwks = json!({"keys": [jwk]});
    let app = auth_service_stub().route("/.well-known/jwks.json", get(move || async move { axum::Json(jwks) }));
    let (port, _) = serve_tls(app, &leaf, None).await;

    let url = format!("https://127.0.0.1:{port}");
    let (app, _state, _db) = client(ClientConfig::builder(&url).local_jwks().ca_file(&ca_file)).await;
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"token_type": "access", "exp": now + 300, "iat": now, "jti": "j", "user_id": 7});
    let header = Header { kid: Some("k1".into()), ..Header::new(Algorithm::EdDSA) };
    let token = encode(&header, &claims, &signing).unwrap();
    let (status, body) = call(&app, "GET", "/api/me/", json!(null), Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["email"], "tls@example.com");
}
