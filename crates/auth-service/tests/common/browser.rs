//! The real browser of the browser tests: Debian's Chromium, headless, driven over WebDriver by
//! `fantoccini` through a chromedriver started on a free port, with the W3C WebAuthn extension
//! commands for a virtual authenticator (passkeys without a mock).
//!
//! Under CI (`CI` set to anything but empty, `0` or `false`) a missing `/usr/bin/chromium` or
//! `/usr/bin/chromedriver` fails the test; elsewhere the test is skipped with a printed reason.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use shared_user::testing::under_ci;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Longest wait for the browser or a page (a readiness bound, not a measurement).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A chromedriver process, killed on drop.
pub struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

/// Whether the browser packages are here; under CI their absence is a failure.
pub fn browser_available() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER].into_iter().filter(|p| !Path::new(p).exists()).collect();
    if missing.is_empty() {
        return true;
    }
    let reason = format!("{missing:?} missing (apt-get install -y chromium chromium-driver)");
    if under_ci() {
        panic!("running under CI and {reason}");
    }
    eprintln!("skipped: {reason}");
    false
}

/// Starts chromedriver and connects a headless Chromium (1280×860) with a fresh profile.
pub async fn browser(profile: &Path) -> (Driver, Client) {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver(child);
    let args = [
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--window-size=1280,860".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let mut caps = fantoccini::wd::Capabilities::new();
    caps.insert("goog:chromeOptions".into(), json!({"binary": CHROMIUM, "args": args}));
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector).capabilities(caps.clone()).connect(&url).await {
            Ok(client) => return (driver, client),
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => panic!("no WebDriver session: {e}"),
        }
    }
}

/// Waits until the page's URL contains `needle`.
pub async fn wait_for_url(client: &Client, needle: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let url = client.current_url().await.unwrap();
        if url.as_str().contains(needle) {
            return;
        }
        assert!(Instant::now() < deadline, "still at {url}, waiting for {needle}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the element `css`.
pub async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
    client.wait().at_most(PATIENCE).for_element(Locator::Css(css)).await.unwrap_or_else(|e| {
        panic!("no {css}: {e}");
    })
}

/// The workspace's `target/` directory (screenshots).
pub fn target_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The W3C WebAuthn extension command "Add Virtual Authenticator"
/// (`POST /session/{id}/webauthn/authenticator`): a platform authenticator with resident keys
/// and user verification that always succeeds.
#[derive(Debug)]
pub struct AddVirtualAuthenticator;

impl WebDriverCompatibleCommand for AddVirtualAuthenticator {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/webauthn/authenticator", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserVerified": true,
        });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// The W3C WebAuthn extension command "Get Credentials" of a virtual authenticator.
#[derive(Debug)]
pub struct GetCredentials(pub String);

impl WebDriverCompatibleCommand for GetCredentials {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/webauthn/authenticator/{}/credentials",
            session_id.unwrap_or_default(),
            self.0
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::GET, None)
    }
}
