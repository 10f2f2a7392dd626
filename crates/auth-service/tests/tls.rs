//! The auth-service over TLS for real: `certs init` / `certs client` files, the service on a
//! TLS listener with client certificates, the revocation feed opened by a client certificate,
//! and the binary reloading its certificate on SIGHUP.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use auth_service::{AppState, app};
use shared_user::both_backends;
use shared_user::server::{ClientAuth, Tls};
use shared_user::testing::{Backend, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_auth-service");
/// The name the service is reached by.
const HOST: &str = "gatehouse.test";
const FEED: &str = "/auth/revocations/?after=0";
const FEED_TOKEN: &str = "feed-token-0123456789abcdef";

/// Runs `auth-service ARGS` to completion: (exit code, stdout, stderr).
fn certs(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).args(args).env_clear().stdin(Stdio::null()).output().expect("run auth-service");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

/// A client trusting exactly `dir`'s CA, presenting the client certificate `name` when given.
fn client(dir: &Path, addr: std::net::SocketAddr, name: Option<&str>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(read(dir, "ca.pem").as_bytes()).unwrap();
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([ca])
        .resolve(HOST, addr)
        .tls_info(true)
        .timeout(Duration::from_secs(10));
    if let Some(name) = name {
        let pem =
            format!("{}{}", read(dir, &format!("client-{name}.pem")), read(dir, &format!("client-{name}-key.pem")));
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

fn url(addr: std::net::SocketAddr, path: &str) -> String {
    format!("https://{HOST}:{}{path}", addr.port())
}

#[test]
fn certs_init_and_client_write_private_keys_0600_and_never_replace_them_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("certs");
    let ds = d.to_str().unwrap();
    let (code, stdout, stderr) = certs(&["certs", "init", ds, "--host", HOST, "--host", "127.0.0.1"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("TLS_CERT_FILE="), "says what to set: {stdout}");
    assert_eq!((mode(&d.join("ca-key.pem")), mode(&d.join("server-key.pem"))), (0o600, 0o600));
    assert_eq!((mode(&d.join("ca.pem")), mode(&d.join("server.pem"))), (0o644, 0o644));
    let ca = read(&d, "ca.pem");

    let (code, _, stderr) = certs(&["certs", "init", ds, "--host", HOST]);
    assert_eq!(code, Some(1), "a second init is refused");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("ca-key.pem exists; pass --force to replace it"), "{stderr}");
    assert_eq!(read(&d, "ca.pem"), ca, "the CA is untouched");

    let (code, _, stderr) = certs(&["certs", "client", "feed-reader", "--dir", ds]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(mode(&d.join("client-feed-reader-key.pem")), 0o600);
    let (code, _, stderr) = certs(&["certs", "client", "feed-reader", "--dir", ds]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("client-feed-reader-key.pem exists; pass --force"), "{stderr}");
    let (code, _, stderr) = certs(&["certs", "client", "feed-reader", "--dir", ds, "--force"]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _, _) = certs(&["certs", "init", ds, "--host", HOST, "--force"]);
    assert_eq!(code, Some(0), "--force replaces the CA");
    assert_ne!(read(&d, "ca.pem"), ca);
    let (code, _, stderr) = certs(&["certs", "client", "../evil", "--dir", ds]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("use letters, digits"), "{stderr}");
}

/// `certs init` + `certs client` for two clients, in a temp dir.
fn make_certs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ds = dir.path().to_str().unwrap();
    assert_eq!(certs(&["certs", "init", ds, "--host", HOST]).0, Some(0));
    for name in ["feed-reader", "stranger"] {
        assert_eq!(certs(&["certs", "client", name, "--dir", ds]).0, Some(0));
    }
    dir
}

/// The service on a TLS listener with the certificates of `dir`, client certificates `auth`,
/// and `tweak` applied to its settings.
async fn serve_tls(
    db: &TestDb,
    dir: &Path,
    auth: ClientAuth,
    tweak: impl FnOnce(&mut auth_service::Settings),
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let settings = common::settings(|s: &mut auth_service::Settings| {
        s.tls_cert_file = Some(dir.join("server.pem"));
        s.tls_key_file = Some(dir.join("server-key.pem"));
        s.tls_client_ca_file = Some(dir.join("ca.pem"));
        s.tls_client_auth = auth;
        tweak(s);
    });
    let tls = Tls::load(settings.tls_files().unwrap().unwrap()).expect("the certs files load");
    let state = AppState::build(settings, db.db.clone()).await.expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(shared_user::server::serve_tls(listener, app(state), Default::default(), Some(tls), async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// With `REVOCATION_FEED_CLIENT_NAMES`, a verified client certificate of a listed name reads the
/// feed without the token; another name, or no certificate, is refused as without a token.
async fn a_listed_client_certificate_reads_the_feed_without_the_token(backend: Backend) {
    let Some(db) = TestDb::new(backend, "tls feed", auth_service::MIGRATIONS).await else { return };
    let dir = make_certs();
    let names = |s: &mut auth_service::Settings| s.revocation_feed_client_names = vec!["FEED-reader".into()];
    let (addr, _stop) = serve_tls(&db, dir.path(), ClientAuth::Optional, names).await;
    let forbidden = r#"{"detail":"You do not have permission to perform this action."}"#;
    let reader = client(dir.path(), addr, Some("feed-reader")).get(url(addr, FEED)).send().await.unwrap();
    assert_eq!(reader.status(), 200, "a listed name (case ignored)");
    assert_eq!(reader.text().await.unwrap(), r#"{"cursor":0,"revocations":[]}"#);
    let stranger = client(dir.path(), addr, Some("stranger")).get(url(addr, FEED)).send().await.unwrap();
    assert_eq!((stranger.status().as_u16(), stranger.text().await.unwrap().as_str()), (403, forbidden), "unlisted");
    let anonymous = client(dir.path(), addr, None).get(url(addr, FEED)).send().await.unwrap();
    assert_eq!(anonymous.status(), 403, "no certificate, no token");
    // The token still works next to the names.
    let (addr, _stop2) = serve_tls(&db, dir.path(), ClientAuth::Optional, |s: &mut auth_service::Settings| {
        s.revocation_feed_client_names = vec!["feed-reader".into()];
        s.revocation_feed_token = Some(FEED_TOKEN.into());
    })
    .await;
    let c = client(dir.path(), addr, Some("stranger"));
    let r = c.get(url(addr, FEED)).header("x-revocation-feed-token", FEED_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200, "the token lets in a client of an unlisted name");
    // Neither a token nor names: the feed stays off, certificate or not.
    let (addr, _stop3) = serve_tls(&db, dir.path(), ClientAuth::Optional, |_: &mut auth_service::Settings| {}).await;
    let off = client(dir.path(), addr, Some("feed-reader")).get(url(addr, FEED)).send().await.unwrap();
    assert_eq!(off.status(), 404);
    // Required: a client without a certificate does not get through the handshake.
    let (addr, _stop4) = serve_tls(&db, dir.path(), ClientAuth::Required, names).await;
    assert!(client(dir.path(), addr, None).get(url(addr, "/healthz")).send().await.is_err());
    let ok = client(dir.path(), addr, Some("feed-reader")).get(url(addr, FEED)).send().await.unwrap();
    assert_eq!(ok.status(), 200);
}

both_backends!(a_listed_client_certificate_reads_the_feed_without_the_token);

fn served_cert(response: &reqwest::Response) -> Vec<u8> {
    response.extensions().get::<reqwest::tls::TlsInfo>().unwrap().peer_certificate().unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_speaks_tls_and_reloads_its_certificate_on_sighup() {
    let Some(db) = TestDb::new(Backend::Sqlite, "tls serve", auth_service::MIGRATIONS).await else { return };
    let dir = make_certs();
    let d = dir.path();
    let env = [
        ("DATABASE_URL", db.url.clone()),
        ("SIGNING_KEY", common::KEY.to_owned()),
        ("RUST_LOG", "info".to_owned()),
        ("TLS_CERT_FILE", d.join("server.pem").display().to_string()),
        ("TLS_KEY_FILE", d.join("server-key.pem").display().to_string()),
    ];
    // A partial TLS configuration is one line at start.
    let out = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env_clear()
        .envs(env[..4].iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "auth-service: TLS_CERT_FILE is set without TLS_KEY_FILE");

    let mut child = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.ok().flatten();
        let Some(line) = line else {
            let _ = child.kill();
            panic!("serve never said where it listens");
        };
        if let Some(addr) = line.split("addr=").nth(1) {
            break addr.split_whitespace().next().unwrap().parse::<std::net::SocketAddr>().unwrap();
        }
    };
    let fresh = || {
        let ca = reqwest::Certificate::from_pem(read(d, "ca.pem").as_bytes()).unwrap();
        let builder = reqwest::Client::builder().tls_certs_only([ca]).resolve(HOST, addr).tls_info(true);
        builder.pool_max_idle_per_host(0).timeout(Duration::from_secs(10)).build().unwrap()
    };
    let response = fresh().get(url(addr, "/healthz")).send().await.expect("https");
    assert_eq!(response.status(), 200);
    let first = served_cert(&response);

    // A new server certificate from the same CA, then SIGHUP.
    let ca = shared_user::pki::Ca::read(d).unwrap();
    let issued = ca.server(&[HOST]).unwrap();
    shared_user::pki::write_issued(d, "server.pem", "server-key.pem", &issued, shared_user::pki::Overwrite::Replace)
        .unwrap();
    assert!(Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap().success());
    let mut served = first.clone();
    for _ in 0..100 {
        served = served_cert(&fresh().get(url(addr, "/healthz")).send().await.unwrap());
        if served != first {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert_ne!(served, first, "the new certificate serves after SIGHUP");
    assert!(status.success(), "still alive after SIGHUP, stopped by SIGTERM: {status}");
    let mut logged = Vec::new();
    while let Ok(line) = rx.try_recv() {
        logged.push(line);
    }
    // Reloaded by the signal (or, when the file poll came first, found unchanged by it).
    assert!(logged.iter().any(|l| l.contains("SIGHUP: TLS")), "the signal was handled: {logged:#?}");
}
