//! `cargo run --example pair`, checked: the demo's own setup ([`Demo::setup`]) on ephemeral
//! ports and a temp dir, and every line of the walkthrough it prints executed in order (each
//! curl line as the request it prints, the console URL signed in to with the printed staff
//! password, the audit command run), so the printed walkthrough cannot drift from the truth.

use std::collections::HashMap;
use std::time::Duration;

use auth_service::store::audit::AuditFilter;
use gatehouse::demo::{Check, Demo, Options, Request, STAFF_EMAIL, Step, Token, Walkthrough};
use serde_json::Value;

/// What one request answered.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let resp = req.send().await.expect("request failed at the transport level");
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    Answer { status, headers, text: resp.text().await.expect("body") }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("reqwest client")
}

fn location(a: &Answer) -> &str {
    a.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// An `application/x-www-form-urlencoded` body.
fn form_body(fields: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

/// `name=value` of every cookie an answer sets.
fn cookies(a: &Answer) -> Vec<String> {
    a.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect()
}

/// The walkthrough's state: the shell variables its lines set.
#[derive(Default)]
struct Shell {
    vars: HashMap<&'static str, String>,
    saved: Option<String>,
}

impl Shell {
    fn var(&self, name: &str) -> &str {
        self.vars.get(name).unwrap_or_else(|| panic!("${name} is used before a line sets it"))
    }

    async fn request(&mut self, http: &reqwest::Client, r: &Request) {
        if let Some(wait) = r.after {
            tokio::time::sleep(wait).await;
        }
        let url = format!("{}{}", self.var(r.service.var()), r.path);
        let mut req = match r.method {
            "GET" => http.get(&url),
            "POST" => http.post(&url),
            other => panic!("the walkthrough prints a {other} this test cannot make"),
        };
        if let Some(token) = r.bearer {
            req = req.bearer_auth(self.var(token.var()));
        }
        let (access, refresh) = (
            self.vars.get("ACCESS").cloned().unwrap_or_default(),
            self.vars.get("REFRESH").cloned().unwrap_or_default(),
        );
        if let Some(body) = r.body_with(&access, &refresh) {
            req = req.header("content-type", "application/json").body(body);
        }
        let a = send(req).await;
        let what = format!("{} {}", r.method, r.path);
        assert_eq!(a.status, r.status, "{what}: the walkthrough says {} ({}); body {}", r.status, r.note, a.text);
        match &r.check {
            Check::Exact(body) => {
                let got: Value = serde_json::from_str(&a.text).unwrap_or_else(|e| panic!("{what}: not JSON ({e})"));
                assert_eq!(&got, body, "{what}");
            }
            Check::HasKeys(keys) => {
                let got: Value = serde_json::from_str(&a.text).unwrap_or_else(|e| panic!("{what}: not JSON ({e})"));
                let got: Vec<&str> = got.as_object().expect("an object").keys().map(String::as_str).collect();
                assert_eq!(&got, keys, "{what}: {}", a.text);
            }
            Check::Contains(needle) => assert!(a.text.contains(needle), "{what}: {needle:?} missing from {}", a.text),
        }
        if r.saves_tokens {
            self.saved = Some(a.text);
        }
    }

    /// `ACCESS=$(sed ...)` and `REFRESH=$(sed ...)`: the printed lines take the value between
    /// `"access":"` and the next quote of a one-line answer.
    fn read_tokens(&mut self) {
        let saved = self.saved.take().expect("a line saved the login answer before the tokens are read");
        assert!(!saved.contains('\n'), "the sed lines read a one-line answer: {saved}");
        for token in [Token::Access, Token::Refresh] {
            let key = format!("\"{}\":\"", token.var().to_ascii_lowercase());
            let start = saved.find(&key).unwrap_or_else(|| panic!("{key} missing from {saved}")) + key.len();
            let value = &saved[start..start + saved[start..].find('"').expect("closing quote")];
            self.vars.insert(token.var(), value.to_owned());
        }
    }
}

/// The console URL: it leads to the sign-in form, and the printed staff account signs in.
async fn sign_in_to_the_console(http: &reqwest::Client, url: &str, base: &str, staff_password: &str) {
    let a = send(http.get(url)).await;
    assert!((300..400).contains(&a.status), "{url}: {} {}", a.status, a.text);
    let a = send(http.get(format!("{base}{}", location(&a)))).await;
    assert_eq!((a.status, location(&a)), (303, "/admin/login/"), "signed out: to the sign-in form");
    let form = send(http.get(format!("{base}/admin/login/"))).await;
    assert_eq!(form.status, 200, "{}", form.text);
    let cookie = cookies(&form).join("; ");
    let csrf =
        cookie.split("; ").find_map(|c| c.strip_prefix("gatehouse_admin_csrf=")).expect("CSRF cookie").to_owned();
    let signed_in = send(
        http.post(format!("{base}/admin/login/"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(&[("csrf", &csrf), ("email", STAFF_EMAIL), ("password", staff_password)])),
    )
    .await;
    assert_eq!((signed_in.status, location(&signed_in)), (303, "/admin/users/"), "{}", signed_in.text);
    let session = cookies(&signed_in).into_iter().find(|c| c.starts_with("gatehouse_admin=")).expect("session cookie");
    let users = send(http.get(format!("{base}/admin/users/")).header("cookie", session)).await;
    assert_eq!(users.status, 200, "{}", users.text);
    assert!(users.text.contains(gatehouse::demo::EMAIL), "the seeded user is listed: {}", users.text);
}

/// The printed `auth-service` command line, run in-process; the audit trail it prints holds the
/// walkthrough's sign-in and logout-all.
async fn run_the_command(args: &[String], auth: &auth_service::AppState) {
    use clap::Parser;
    let cli = auth_service::cli::Cli::try_parse_from(std::iter::once("auth-service".to_owned()).chain(args.to_vec()))
        .unwrap_or_else(|e| panic!("the printed command does not parse: {e}"));
    auth_service::cli::run(cli.command).await.expect("the printed command runs");
    let filter = AuditFilter { user_id: None, kind: None, since: None, before_id: None, limit: 100 };
    let kinds: Vec<String> = auth.store.list_audit(&filter).await.unwrap().into_iter().map(|r| r.kind).collect();
    for kind in ["login_succeeded", "logout_all"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} missing from the audit trail: {kinds:?}");
    }
}

/// The demo set up in `dir` on ephemeral ports, serving: its walkthrough, what the test needs
/// of it, and the switch that stops it.
struct Running {
    walkthrough: Walkthrough,
    auth: auth_service::AppState,
    auth_url: String,
    auth_database_url: String,
    staff_password: String,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(dir: &std::path::Path) -> Running {
    let localhost = "127.0.0.1:0".parse().unwrap();
    let options = Options { auth_bind: localhost, client_bind: localhost, dir: dir.to_owned() };
    let demo = Demo::setup(options).await.expect("demo setup");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    Running {
        walkthrough: demo.walkthrough(),
        auth: demo.auth.clone(),
        auth_url: demo.auth_url.clone(),
        auth_database_url: demo.auth_database_url.clone(),
        staff_password: demo.staff_password.clone(),
        stop,
        served: tokio::spawn(demo.serve(async move {
            let _ = stopped.await;
        })),
    }
}

impl Running {
    async fn finish(self) {
        let _ = self.stop.send(());
        self.served.await.expect("serve task").expect("both services stopped cleanly");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_printed_line_of_the_demo_answers_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start(dir.path()).await;
    let printed = demo.walkthrough.to_string();
    eprintln!("{printed}");

    // Where everything is, printed.
    let a = &demo.auth_url;
    for needle in [
        format!("{a}/admin/"),
        "$A/metrics".to_owned(),
        "$C/metrics".to_owned(),
        "$A/openapi.json".to_owned(),
        "$C/openapi.json".to_owned(),
        format!("A={a}"),
        format!("cargo run -q -p auth-service -- audit --database-url {}", demo.auth_database_url),
        format!("{STAFF_EMAIL} / {}", demo.staff_password),
        "/auth/logout-all/".to_owned(),
        "README, section \"PostgreSQL\"".to_owned(),
        "README, section \"Running on a network\"".to_owned(),
    ] {
        assert!(printed.contains(&needle), "{needle:?} is not printed");
    }
    // Features that need setup and are not there yet are not advertised.
    for absent in ["MFA", "TOTP", "openid-configuration"] {
        assert!(!printed.contains(absent), "{absent} is printed");
    }
    // The logout-all line is followed by the line that shows its effect.
    let requests: Vec<&Request> =
        demo.walkthrough.steps.iter().filter_map(|s| if let Step::Request(r) = s { Some(r) } else { None }).collect();
    let logout = requests.iter().position(|r| r.path == "/auth/logout-all/").expect("a logout-all line");
    let next = requests[logout + 1];
    assert_eq!((next.status, next.bearer, next.after.is_some()), (401, Some(Token::Access), true), "{next:?}");

    // Every line, in order, as a newcomer would type it.
    let http = http();
    let mut shell = Shell::default();
    let mut kinds = std::collections::HashSet::new();
    for step in &demo.walkthrough.steps {
        match step {
            Step::Note(_) => continue,
            Step::Set { name, value } => {
                shell.vars.insert(name, value.clone());
            }
            Step::Request(r) => shell.request(&http, r).await,
            Step::ReadTokens => shell.read_tokens(),
            Step::Open { url, .. } => sign_in_to_the_console(&http, url, &demo.auth_url, &demo.staff_password).await,
            Step::Command { args, .. } => run_the_command(args, &demo.auth).await,
        }
        kinds.insert(std::mem::discriminant(step));
    }
    assert_eq!(kinds.len(), 5, "lines of every kind but notes were run");
    demo.finish().await;
}

/// A second run on the same databases (the demo's directory is kept between runs) starts, and
/// the passwords it prints work: the seeded accounts exist already and get them set again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_the_same_databases_prints_working_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path()).await;
    let first_password = first.staff_password.clone();
    first.finish().await;
    let second = start(dir.path()).await;
    assert_ne!(second.staff_password, first_password, "a new staff password per run");
    let http = http();
    for (email, password) in
        [(STAFF_EMAIL, second.staff_password.as_str()), (gatehouse::demo::EMAIL, gatehouse::demo::PASSWORD)]
    {
        let body = serde_json::json!({"email": email, "password": password});
        let a = send(http.post(format!("{}/auth/token/", second.auth_url)).json(&body)).await;
        assert_eq!(a.status, 200, "{email}: {}", a.text);
    }
    let old = serde_json::json!({"email": STAFF_EMAIL, "password": first_password});
    let a = send(http.post(format!("{}/auth/token/", second.auth_url)).json(&old)).await;
    assert_eq!(a.status, 401, "the first run's staff password is gone: {}", a.text);
    second.finish().await;
}
