//! TLS listeners over real sockets and real handshakes: certificates from a test CA
//! (`shared_user::pki`), clients trusting exactly that CA (reqwest with rustls), client
//! certificates, reloads under load, and what a TLS port does with clients that do not speak TLS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::routing::get;
use axum::{Extension, Router};
use shared_user::pki::{Ca, Issued, Overwrite, Validity, write_issued};
use shared_user::server::{ClientAuth, ClientCertificate, Limits, Reloaded, Tls, TlsFiles, serve_tls};
use shared_user::testing::net::read_to_close;
use tokio::io::AsyncWriteExt;

/// The name the test servers are reached by (resolved to the listener's address by the client).
const HOST: &str = "gatehouse.test";

/// A CA, a server certificate for [`HOST`] in files, and a directory to write more into.
struct Pki {
    ca: Ca,
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let pki = Self { ca: Ca::new("test CA").unwrap(), dir: tempfile::tempdir().unwrap() };
        pki.write("server", &pki.ca.server(&[HOST]).unwrap());
        std::fs::write(pki.path("ca.pem"), pki.ca.cert_pem()).unwrap();
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `issued` as `NAME.pem` and `NAME-key.pem` (renamed into place, as `certs` does).
    fn write(&self, name: &str, issued: &Issued) {
        write_issued(self.dir.path(), &format!("{name}.pem"), &format!("{name}-key.pem"), issued, Overwrite::Replace)
            .unwrap();
    }

    fn files(&self) -> TlsFiles {
        TlsFiles::new(self.path("server.pem"), self.path("server-key.pem"))
    }

    fn client_auth(&self, auth: ClientAuth) -> TlsFiles {
        self.files().with_client_auth(self.path("ca.pem"), auth)
    }
}

/// A router answering `/` with `ok` and `/whoami` with the client certificate's common name.
fn router() -> Router {
    Router::new().route("/", get(|| async { "ok" })).route(
        "/whoami",
        get(|client: Option<Extension<ClientCertificate>>| async move {
            match client {
                Some(Extension(c)) => format!("{} {:?}", c.common_name().unwrap_or("-"), c.dns_names()),
                None => "anonymous".to_owned(),
            }
        }),
    )
}

struct Server {
    addr: SocketAddr,
    tls: Tls,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(files: TlsFiles, limits: Limits) -> Server {
    let tls = Tls::load(files).expect("the test files load");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve_tls(listener, router(), limits, Some(tls.clone()), async move {
        let _ = rx.await;
    }));
    Server { addr, tls, _stop: tx }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("https://{HOST}:{}{path}", self.addr.port())
    }
}

/// A client trusting exactly `ca_pem`, reaching [`HOST`] at `addr`, reporting TLS details.
fn client(addr: SocketAddr, ca_pem: &str) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .resolve(HOST, addr)
        .tls_info(true)
        .timeout(Duration::from_secs(10))
}

fn identity(issued: &Issued) -> reqwest::Identity {
    reqwest::Identity::from_pem(format!("{}{}", issued.cert_pem, issued.key_pem).as_bytes()).unwrap()
}

/// The DER of the certificate the server presented for `response`.
fn served_cert(response: &reqwest::Response) -> Vec<u8> {
    let info = response.extensions().get::<reqwest::tls::TlsInfo>().expect("tls_info is on");
    info.peer_certificate().expect("a server certificate").to_vec()
}

fn der_of(pem: &str) -> Vec<u8> {
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn https_answers_over_tls_1_2_and_1_3_with_h2_and_http1_by_alpn() {
    let pki = Pki::new();
    let server = start(pki.files(), Limits::default()).await;
    for version in [reqwest::tls::Version::TLS_1_2, reqwest::tls::Version::TLS_1_3] {
        let c = client(server.addr, pki.ca.cert_pem()).min_tls_version(version).max_tls_version(version);
        let response = c.build().unwrap().get(server.url("/")).send().await.expect("handshake and answer");
        let info = response.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
        assert_eq!(info.version(), Some(version), "negotiated");
        assert_eq!(response.version(), reqwest::Version::HTTP_2, "ALPN chose h2");
        assert_eq!(response.text().await.unwrap(), "ok");
    }
    let http1 = client(server.addr, pki.ca.cert_pem()).http1_only().build().unwrap();
    let response = http1.get(server.url("/")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11, "ALPN http/1.1");
    assert_eq!(response.text().await.unwrap(), "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_refuse_an_unknown_ca_an_expired_certificate_and_a_wrong_host() {
    let pki = Pki::new();
    let server = start(pki.files(), Limits::default()).await;
    let stranger = Ca::new("another CA").unwrap();
    let refused = client(server.addr, stranger.cert_pem()).build().unwrap().get(server.url("/")).send().await;
    assert!(refused.is_err(), "a client trusting another CA refuses the server");
    let trusting = client(server.addr, pki.ca.cert_pem()).build().unwrap();
    assert_eq!(trusting.get(server.url("/")).send().await.unwrap().status(), 200, "the right CA is trusted");

    pki.write("expired", &pki.ca.server_valid(&[HOST], Validity::expired()).unwrap());
    pki.write("other-host", &pki.ca.server(&["other.test"]).unwrap());
    for name in ["expired", "other-host"] {
        let files = TlsFiles::new(pki.path(&format!("{name}.pem")), pki.path(&format!("{name}-key.pem")));
        let server = start(files, Limits::default()).await;
        let c = client(server.addr, pki.ca.cert_pem()).build().unwrap();
        let e = c.get(server.url("/")).send().await.expect_err(name);
        assert!(e.is_connect(), "{name}: refused at the handshake: {e:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn required_client_certificates_must_come_from_the_client_ca() {
    let pki = Pki::new();
    let server = start(pki.client_auth(ClientAuth::Required), Limits::default()).await;
    let anonymous = client(server.addr, pki.ca.cert_pem()).build().unwrap();
    assert!(anonymous.get(server.url("/")).send().await.is_err(), "no client certificate: handshake fails");
    let stranger = Ca::new("another CA").unwrap().client("client-service").unwrap();
    let foreign = client(server.addr, pki.ca.cert_pem()).identity(identity(&stranger)).build().unwrap();
    assert!(foreign.get(server.url("/")).send().await.is_err(), "a certificate of another CA: handshake fails");
    let good = pki.ca.client("client-service").unwrap();
    let good = client(server.addr, pki.ca.cert_pem()).identity(identity(&good)).build().unwrap();
    let response = good.get(server.url("/whoami")).send().await.expect("a certificate of the client CA");
    assert_eq!(response.text().await.unwrap(), r#"client-service ["client-service"]"#, "handlers see its names");
}

#[tokio::test(flavor = "multi_thread")]
async fn optional_client_certificates_serve_clients_without_one() {
    let pki = Pki::new();
    let server = start(pki.client_auth(ClientAuth::Optional), Limits::default()).await;
    let anonymous = client(server.addr, pki.ca.cert_pem()).build().unwrap();
    assert_eq!(anonymous.get(server.url("/whoami")).send().await.unwrap().text().await.unwrap(), "anonymous");
    let good = pki.ca.client("feed-reader").unwrap();
    let good = client(server.addr, pki.ca.cert_pem()).identity(identity(&good)).build().unwrap();
    assert_eq!(
        good.get(server.url("/whoami")).send().await.unwrap().text().await.unwrap(),
        r#"feed-reader ["feed-reader"]"#
    );
    let stranger = Ca::new("another CA").unwrap().client("feed-reader").unwrap();
    let foreign = client(server.addr, pki.ca.cert_pem()).identity(identity(&stranger)).build().unwrap();
    assert!(foreign.get(server.url("/")).send().await.is_err(), "a certificate given must verify");
    // Without client auth, the same certificate is never asked for: no names reach handlers.
    let plain = start(pki.files(), Limits::default()).await;
    let good = client(plain.addr, pki.ca.cert_pem()).identity(identity(&pki.ca.client("x").unwrap())).build().unwrap();
    assert_eq!(good.get(plain.url("/whoami")).send().await.unwrap().text().await.unwrap(), "anonymous");
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_on_a_tls_port_gets_a_clean_close_and_the_port_keeps_serving() {
    let pki = Pki::new();
    let server = start(pki.files(), Limits::default()).await;
    for request in [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"\x00\x01garbage"]
    {
        let mut plain = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        plain.write_all(request).await.unwrap();
        let answer = read_to_close(&mut plain, Duration::from_secs(5)).await.expect("closed, not left hanging");
        assert!(!String::from_utf8_lossy(&answer).contains("HTTP/"), "no HTTP answer in clear text");
    }
    let c = client(server.addr, pki.ca.cert_pem()).build().unwrap();
    assert_eq!(c.get(server.url("/")).send().await.unwrap().text().await.unwrap(), "ok", "still serving");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_starts_its_handshake_is_closed_at_the_head_deadline_and_held_a_slot() {
    let pki = Pki::new();
    let limits = Limits { header_read_timeout: Duration::from_millis(500), max_connections: 1, ..Limits::default() };
    let server = start(pki.files(), limits).await;
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    // The only slot is the silent client's: a second connection is closed at once.
    let c = client(server.addr, pki.ca.cert_pem()).build().unwrap();
    assert!(c.get(server.url("/")).send().await.is_err(), "the handshake counts against MAX_CONNECTIONS");
    // Far below the 60 s idle timeout: the head deadline, counted from the accept, closed it.
    let closed = read_to_close(&mut silent, Duration::from_secs(20)).await;
    assert_eq!(closed.as_deref(), Some(&b""[..]), "silent client closed without a byte");
    // Its slot serves again.
    let mut answered = false;
    for _ in 0..50 {
        if let Ok(response) = c.get(server.url("/")).send().await {
            answered = response.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answered, "the freed slot serves a TLS client");
}

/// Requests in a loop until `stop`, each on a kept-alive connection (`keep_alive`) or a new one;
/// counts failures, and remembers the certificates seen.
async fn request_loop(
    server_url: String,
    client: reqwest::Client,
    stop: Arc<AtomicBool>,
    failures: Arc<AtomicUsize>,
) -> (usize, Vec<Vec<u8>>) {
    let (mut done, mut seen): (usize, Vec<Vec<u8>>) = (0, Vec::new());
    // Bounded: at most a minute of requests whatever happens.
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::Relaxed) && tokio::time::Instant::now() < until {
        match client.get(&server_url).send().await {
            Ok(response) if response.status() == 200 => {
                let cert = served_cert(&response);
                if seen.last() != Some(&cert) {
                    seen.push(cert);
                }
                let _ = response.text().await;
            }
            _ => {
                failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        done += 1;
    }
    (done, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replaced_certificate_serves_new_connections_without_a_failed_request() {
    let pki = Pki::new();
    let server = start(pki.files(), Limits::default()).await;
    let _watch = server.tls.watch(Duration::from_millis(100));
    let first = der_of(&std::fs::read_to_string(pki.path("server.pem")).unwrap());
    let (stop, failures) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let kept = client(server.addr, pki.ca.cert_pem()).http1_only().build().unwrap();
    let fresh = client(server.addr, pki.ca.cert_pem()).http1_only().pool_max_idle_per_host(0).build().unwrap();
    let loops = [kept, fresh].map(|c| tokio::spawn(request_loop(server.url("/"), c, stop.clone(), failures.clone())));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Replaced on disk: picked up by the watcher.
    let second = pki.ca.server(&[HOST]).unwrap();
    pki.write("server", &second);
    let probe = client(server.addr, pki.ca.cert_pem()).pool_max_idle_per_host(0).build().unwrap();
    let mut served = Vec::new();
    for _ in 0..100 {
        served = served_cert(&probe.get(server.url("/")).send().await.unwrap());
        if served != first {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served, der_of(&second.cert_pem), "the watcher loaded the new certificate");

    // Replaced again and reloaded at once, as on SIGHUP.
    let third = pki.ca.server(&[HOST]).unwrap();
    pki.write("server", &third);
    assert!(matches!(server.tls.reload(), Ok(Reloaded::Changed | Reloaded::Unchanged)));
    assert_eq!(served_cert(&probe.get(server.url("/")).send().await.unwrap()), der_of(&third.cert_pem));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let [kept, fresh] = loops;
    let ((kept_done, kept_seen), (fresh_done, fresh_seen)) = (kept.await.unwrap(), fresh.await.unwrap());
    assert_eq!(failures.load(Ordering::Relaxed), 0, "no request failed ({kept_done} kept-alive, {fresh_done} new)");
    assert_eq!(
        kept_seen,
        std::slice::from_ref(&first),
        "the kept-alive connection stayed open on the first certificate"
    );
    assert_eq!(fresh_seen.first(), Some(&first), "new connections saw the first certificate...");
    assert_eq!(fresh_seen.last(), Some(&der_of(&third.cert_pem)), "...and the last one at the end");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_replacement_keeps_the_old_certificate_with_one_error_line() {
    let logs = shared_user::testing::logs::capture();
    let pki = Pki::new();
    let server = start(pki.files(), Limits::default()).await;
    let _watch = server.tls.watch(Duration::from_millis(50));
    let first = der_of(&std::fs::read_to_string(pki.path("server.pem")).unwrap());
    // A key that does not belong to the certificate, then a certificate that is not PEM.
    let other = pki.ca.server(&[HOST]).unwrap();
    shared_user::pki::write_file(&pki.path("server-key.pem"), &other.key_pem, 0o600).unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    shared_user::pki::write_file(&pki.path("server.pem"), "not a certificate\n", 0o644).unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let c = client(server.addr, pki.ca.cert_pem()).pool_max_idle_per_host(0).build().unwrap();
    let response = c.get(server.url("/")).send().await.expect("still serving");
    assert_eq!(served_cert(&response), first, "the old certificate is kept");
    let errors: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|l| l["level"] == "ERROR")
        .map(|l| l["fields"]["message"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(errors.len(), 2, "one error line per bad set of files, however often it is looked at: {errors:#?}");
    assert!(errors[0].starts_with("TLS files not reloaded, the previous certificate stays in use"), "{errors:?}");
    assert!(errors[1].contains("server.pem: no PEM certificate in it"), "names the file: {errors:?}");
    // As on SIGHUP: the same bad files are an error, and nothing changes.
    assert!(server.tls.reload().is_err());
    let response = c.get(server.url("/")).send().await.unwrap();
    assert_eq!(served_cert(&response), first);
}

#[test]
fn bad_files_at_start_are_one_line_naming_the_file() {
    let pki = Pki::new();
    let missing = Tls::load(TlsFiles::new(pki.path("nope.pem"), pki.path("server-key.pem"))).unwrap_err();
    assert!(missing.to_string().contains("nope.pem: "), "{missing}");
    let swapped = Tls::load(TlsFiles::new(pki.path("server-key.pem"), pki.path("server.pem"))).unwrap_err();
    assert!(swapped.to_string().contains("server-key.pem: no PEM certificate"), "{swapped}");
    let no_ca = Tls::load(pki.files().with_client_auth(pki.path("server-key.pem"), ClientAuth::Required)).unwrap_err();
    assert!(no_ca.to_string().contains("no usable CA certificate"), "{no_ca}");
    for e in [missing, swapped, no_ca] {
        assert!(!e.to_string().contains('\n'), "one line: {e}");
    }
}
