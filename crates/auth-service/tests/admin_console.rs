//! The admin console at `/admin/` without a browser: sign-in (CSRF, throttle, staff only),
//! cookies and security headers, every form and its error cases, read-only readers, sign-out,
//! and that deactivation and sign-out end console sessions.

mod common;

use std::collections::BTreeMap;

use auth_service::store::NewUser;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use shared_user::both_backends;
use shared_user::testing::Backend;
use tower::ServiceExt;

const PW: &str = "correct horse battery";

async fn app(backend: Backend) -> Option<TestApp> {
    TestApp::new(backend, &["--users-reader-group", "manager"]).await
}

/// A cookie-keeping client of the test router.
struct Client<'a> {
    app: &'a TestApp,
    jar: BTreeMap<String, String>,
    extra: Vec<(&'static str, &'static str)>,
    /// The socket peer the router sees (none: no peer address, as under `oneshot`).
    peer: Option<std::net::SocketAddr>,
}

impl<'a> Client<'a> {
    fn new(app: &'a TestApp) -> Self {
        Client { app, jar: BTreeMap::new(), extra: Vec::new(), peer: None }
    }

    async fn send(&mut self, method: Method, path: &str, form: Option<&[(&str, &str)]>) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if !self.jar.is_empty() {
            let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header("cookie", cookies.join("; "));
        }
        for (k, v) in &self.extra {
            req = req.header(*k, *v);
        }
        if let Some(peer) = self.peer {
            req = req.extension(axum::extract::ConnectInfo(peer));
        }
        let body = match form {
            Some(pairs) => {
                req = req.header("content-type", "application/x-www-form-urlencoded");
                Body::from(serde_urlencoded::to_string(pairs).unwrap())
            }
            None => Body::empty(),
        };
        let resp = self.app.router.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        for set in headers.get_all("set-cookie") {
            let c = cookie::Cookie::parse(set.to_str().unwrap().to_owned()).unwrap();
            if c.max_age().is_some_and(|a| a.is_zero()) {
                self.jar.remove(c.name());
            } else {
                self.jar.insert(c.name().to_owned(), c.value().to_owned());
            }
        }
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Reply { status, headers, text: String::from_utf8_lossy(&bytes).into_owned() }
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Reply {
        self.send(Method::POST, path, Some(form)).await
    }

    /// Signs in; panics unless redirected to the user list.
    async fn sign_in(&mut self, email: &str, password: &str) {
        let r = self.try_sign_in(email, password).await;
        assert_eq!((r.status, r.header("location")), (StatusCode::SEE_OTHER, Some("/admin/users/")), "{}", r.text);
    }

    async fn try_sign_in(&mut self, email: &str, password: &str) -> Reply {
        let page = self.get("/admin/login/").await;
        let csrf = csrf_of(&page.text);
        self.post("/admin/login/", &[("csrf", &csrf), ("email", email), ("password", password)]).await
    }

    /// The CSRF token of a signed-in page.
    async fn csrf(&mut self) -> String {
        csrf_of(&self.get("/admin/users/").await.text)
    }
}

/// The first form's CSRF token in `html`.
fn csrf_of(html: &str) -> String {
    let start = html.find(r#"name="csrf" value=""#).expect("a CSRF field") + r#"name="csrf" value=""#.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

async fn add_superuser(app: &TestApp, email: &str) -> i64 {
    let hash = app.state.hasher.hash(PW.to_owned()).await.unwrap();
    let new = NewUser {
        email: email.into(),
        password_hash: hash,
        first_name: String::new(),
        last_name: String::new(),
        is_staff: true,
        is_superuser: true,
        groups: Vec::new(),
    };
    app.state.store.create_user(new).await.unwrap().id
}

fn assert_page(r: &Reply, status: StatusCode, needle: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.content_type(), "text/html; charset=utf-8");
    assert!(r.text.contains(needle), "{needle:?} not in {}", r.text);
}

/// Sign-in: CSRF on the form (missing or wrong: 403), wrong password and non-staff refused
/// with the form again, cookie attributes, the security headers on every page, and the
/// redirect of a stranger to the sign-in page.
async fn sign_in_checks_csrf_credentials_and_role(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    app.add_user("staff@example.com", PW, true, &[]).await;
    app.add_user("alice@example.com", PW, false, &[]).await;
    let mut c = Client::new(&app);

    let r = c.get("/admin/users/").await;
    assert_eq!((r.status, r.header("location")), (StatusCode::SEE_OTHER, Some("/admin/login/")));
    let r = c.get("/admin/login/").await;
    assert_page(&r, StatusCode::OK, "Sign in");
    let csp = r.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(!r.text.contains("<script"), "no script at all");
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let set = r.header("set-cookie").unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/admin"), "{set}");
    let csrf = csrf_of(&r.text);

    let r = c.post("/admin/login/", &[("email", "staff@example.com"), ("password", PW)]).await;
    assert_page(&r, StatusCode::FORBIDDEN, "CSRF check failed");
    let r = c.post("/admin/login/", &[("csrf", "forged"), ("email", "staff@example.com"), ("password", PW)]).await;
    assert_page(&r, StatusCode::FORBIDDEN, "CSRF check failed");
    // The token without its cookie (another browser) is refused too.
    let mut stranger = Client::new(&app);
    let r = stranger.post("/admin/login/", &[("csrf", &csrf), ("email", "staff@example.com"), ("password", PW)]).await;
    assert_page(&r, StatusCode::FORBIDDEN, "CSRF check failed");

    let r = c.try_sign_in("staff@example.com", "wrong").await;
    assert_page(&r, StatusCode::BAD_REQUEST, "Email or password is wrong");
    assert!(r.text.contains(r#"value="staff@example.com""#));
    let r = c.try_sign_in("alice@example.com", PW).await;
    assert_page(&r, StatusCode::FORBIDDEN, "may not use the admin console");
    assert!(!c.jar.contains_key("gatehouse_admin"));
    let r = c.try_sign_in("", "").await;
    assert_page(&r, StatusCode::BAD_REQUEST, "Enter your email and password");

    let r = c.try_sign_in("staff@example.com", PW).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let session = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("gatehouse_admin="))
        .unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(session.contains(attr), "{attr} in {session}");
    }
    assert!(!session.contains("Secure"), "plain HTTP: {session}");
    assert_page(&c.get("/admin/users/").await, StatusCode::OK, "staff@example.com");
    assert_eq!(c.get("/admin/login/").await.status, StatusCode::SEE_OTHER, "signed in already");
    let css = c.get("/admin/static/console.css").await;
    assert_eq!((css.status, css.content_type()), (StatusCode::OK, "text/css; charset=utf-8"));
}

/// Behind a trusted TLS proxy (`X-Forwarded-Proto: https`) the cookies are Secure.
async fn cookies_are_secure_over_tls(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--trusted-proxies", "10.255.0.1"]).await else { return };
    app.add_user("staff@example.com", PW, true, &[]).await;
    // `X-Forwarded-Proto` from anyone but a trusted proxy is not believed.
    let mut stranger = Client::new(&app);
    stranger.extra.push(("x-forwarded-proto", "https"));
    stranger.peer = Some("127.0.0.9:40000".parse().unwrap());
    let r = stranger.get("/admin/login/").await;
    assert!(!r.header("set-cookie").unwrap().contains("Secure"), "an untrusted peer's forwarded proto");
    let mut c = Client::new(&app);
    c.extra.push(("x-forwarded-proto", "https"));
    c.peer = Some("10.255.0.1:40000".parse().unwrap());
    let r = c.get("/admin/login/").await;
    assert!(r.header("set-cookie").unwrap().contains("Secure"));
    let r = c.try_sign_in("staff@example.com", PW).await;
    let session = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("gatehouse_admin="))
        .unwrap();
    assert!(session.contains("Secure"), "{session}");
}

/// Console sign-in is throttled like the login endpoint.
async fn sign_in_is_throttled(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    app.add_user("staff@example.com", PW, true, &[]).await;
    let mut c = Client::new(&app);
    for _ in 0..5 {
        assert_eq!(c.try_sign_in("staff@example.com", "wrong").await.status, StatusCode::BAD_REQUEST);
    }
    let r = c.try_sign_in("staff@example.com", PW).await;
    assert_page(&r, StatusCode::TOO_MANY_REQUESTS, "Too many failed sign-ins");
    assert!(r.header("retry-after").is_some());
    assert!(!c.jar.contains_key("gatehouse_admin"));
}

/// The user list: search, pagination links, and escaping of what users typed.
async fn users_are_searched_and_paged(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    app.add_user("staff@example.com", PW, true, &[]).await;
    for i in 0..30 {
        app.add_user_with_hash(&format!("user{i:02}@example.com"), "!").await;
    }
    let evil = app.add_user_with_hash("evil@example.com", "!").await;
    let patch =
        auth_service::store::admin::UserPatch { first_name: Some("<script>x</script>".into()), ..Default::default() };
    let event = auth_service::audit::AuditEvent::new(auth_service::audit::AuditKind::UserUpdated);
    app.state.store.patch_user(evil, &patch, &event).await.unwrap();
    let mut c = Client::new(&app);
    c.sign_in("staff@example.com", PW).await;

    let r = c.get("/admin/users/").await;
    assert_page(&r, StatusCode::OK, "Users <span class=\"muted\">(32)</span>");
    assert!(r.text.contains(r#"href="/admin/users/?page=2""#), "a next link");
    let r = c.get("/admin/users/?page=2").await;
    assert_page(&r, StatusCode::OK, "evil@example.com");
    assert!(
        r.text.contains("&#60;script&#62;x&#60;/script&#62;") && !r.text.contains("<script>"),
        "escaped: {}",
        r.text
    );
    let r = c.get("/admin/users/?search=USER1").await;
    assert_page(&r, StatusCode::OK, "(10)");
    assert!(r.text.contains("user15@example.com") && !r.text.contains("user20@example.com"));
    let r = c.get("/admin/users/?search=%22%3E%3Cb%3E").await;
    assert!(r.text.contains(r#"value="&#34;&#62;&#60;b&#62;""#), "{}", r.text);
    assert_page(&c.get("/admin/users/?page=9").await, StatusCode::NOT_FOUND, "There is no such page.");
}

/// The user page's forms: details (names, groups) saved; bad groups and long names shown with
/// the form again; flags only for superusers; set-password checks; CSRF missing or wrong on
/// any form is 403 and changes nothing.
async fn user_forms_save_and_show_errors(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &["billing"]).await;
    app.add_user("staff@example.com", PW, true, &[]).await;
    let mut c = Client::new(&app);
    c.sign_in("staff@example.com", PW).await;
    let csrf = c.csrf().await;
    let page = format!("/admin/users/{alice}/");

    let r = c.get(&page).await;
    assert_page(&r, StatusCode::OK, "alice@example.com");
    assert!(r.text.contains("<fieldset disabled>"), "flags are for superusers");

    let forms: Vec<(String, Vec<(&str, &str)>)> = vec![
        (page.clone(), vec![("first_name", "Mallory"), ("access_groups", "")]),
        (format!("{page}password/"), vec![("password", "a fresh passphrase"), ("password2", "a fresh passphrase")]),
        (format!("{page}deactivate/"), vec![]),
        (format!("{page}sessions/end-all/"), vec![]),
        ("/admin/logout/".to_owned(), vec![]),
    ];
    for (path, fields) in &forms {
        let r = c.post(path, fields).await;
        assert_page(&r, StatusCode::FORBIDDEN, "CSRF check failed");
        let mut forged = fields.clone();
        forged.push(("csrf", "not-the-token"));
        assert_page(&c.post(path, &forged).await, StatusCode::FORBIDDEN, "CSRF check failed");
    }
    let user = app.state.store.find_user(alice).await.unwrap().unwrap();
    assert!(user.is_active && user.first_name.is_empty() && user.access_groups.len() == 1);

    let r = c
        .post(
            &page,
            &[
                ("csrf", &csrf),
                ("first_name", "Alice"),
                ("last_name", "L"),
                ("access_groups", "billing\nsupport:agent"),
                ("is_staff", "on"),
            ],
        )
        .await;
    assert_eq!((r.status, r.header("location")), (StatusCode::SEE_OTHER, Some(format!("{page}?done=saved").as_str())));
    let user = app.state.store.find_user(alice).await.unwrap().unwrap();
    assert_eq!((user.first_name.as_str(), user.is_staff), ("Alice", false), "flags ignored from staff");
    assert_eq!(
        user.access_groups.iter().map(|g| (g.name.as_str(), g.level.as_deref())).collect::<Vec<_>>(),
        [("billing", None), ("support", Some("agent"))]
    );
    assert_page(&c.get(&format!("{page}?done=saved")).await, StatusCode::OK, "Changes saved.");

    let r = c
        .post(&page, &[("csrf", &csrf), ("first_name", "A"), ("last_name", ""), ("access_groups", "ops\n:lead")])
        .await;
    assert_page(&r, StatusCode::BAD_REQUEST, "the name is empty");
    assert!(r.text.contains("ops\n:lead</textarea>"), "the text typed is kept");
    let long = "x".repeat(151);
    let r = c.post(&page, &[("csrf", &csrf), ("first_name", &long), ("last_name", ""), ("access_groups", "")]).await;
    assert_page(&r, StatusCode::BAD_REQUEST, "first_name: Ensure this field has no more than 150 characters.");

    let pw = format!("{page}password/");
    let r = c.post(&pw, &[("csrf", &csrf), ("password", "a fresh passphrase"), ("password2", "another")]).await;
    assert_page(&r, StatusCode::BAD_REQUEST, "The two passwords differ.");
    let r = c.post(&pw, &[("csrf", &csrf), ("password", "123"), ("password2", "123")]).await;
    assert_page(&r, StatusCode::BAD_REQUEST, "This password is too short.");
    let r =
        c.post(&pw, &[("csrf", &csrf), ("password", "a fresh passphrase"), ("password2", "a fresh passphrase")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    app.login("alice@example.com", "a fresh passphrase").await;

    assert_page(&c.get("/admin/users/abc/").await, StatusCode::NOT_FOUND, "No such user.");
    assert_page(&c.get("/admin/users/999999/").await, StatusCode::NOT_FOUND, "No such record.");
}

/// Superusers set the flags; staff may not touch a superuser's account.
async fn superusers_grant_roles(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let root = add_superuser(&app, "root@example.com").await;
    app.add_user("staff@example.com", PW, true, &[]).await;
    let mut su = Client::new(&app);
    su.sign_in("root@example.com", PW).await;
    let csrf = su.csrf().await;
    let r = su
        .post(
            &format!("/admin/users/{alice}/"),
            &[("csrf", &csrf), ("first_name", ""), ("last_name", ""), ("access_groups", ""), ("is_staff", "on")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert!(app.state.store.find_user(alice).await.unwrap().unwrap().is_staff);

    let mut staff = Client::new(&app);
    staff.sign_in("staff@example.com", PW).await;
    let csrf = staff.csrf().await;
    let r = staff.get(&format!("/admin/users/{root}/")).await;
    assert!(!r.text.contains("/password/"), "no change forms for a superuser's account");
    let r = staff
        .post(
            &format!("/admin/users/{root}/password/"),
            &[("csrf", &csrf), ("password", "a fresh passphrase"), ("password2", "a fresh passphrase")],
        )
        .await;
    assert_page(&r, StatusCode::FORBIDDEN, "do not have permission");
}

/// Deactivation from the console ends the user's sessions (and their console session when
/// they are an admin); sessions are listed and ended one by one; the audit log shows it.
async fn deactivation_ends_sessions_and_is_audited(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let bob = app.add_user("bob@example.com", PW, true, &[]).await;
    // A staff account only a superuser deactivates.
    add_superuser(&app, "staff@example.com").await;
    let (bob_refresh, _) = app.login("bob@example.com", PW).await;
    let (other_refresh, _) = app.login("bob@example.com", PW).await;
    let mut bob_console = Client::new(&app);
    bob_console.sign_in("bob@example.com", PW).await;
    let mut c = Client::new(&app);
    c.sign_in("staff@example.com", PW).await;
    let csrf = c.csrf().await;
    let page = format!("/admin/users/{bob}/");

    let r = c.get(&page).await;
    assert_page(&r, StatusCode::OK, "Sessions <span class=\"muted\">(3)</span>");
    let one = jti_of(&other_refresh);
    let r = c.post(&format!("{page}sessions/{one}/end/"), &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_page(&c.get(&format!("{page}?done=session")).await, StatusCode::OK, "(2)");
    assert_page(
        &c.post(&format!("{page}sessions/{one}/end/"), &[("csrf", &csrf)]).await,
        StatusCode::NOT_FOUND,
        "No such record.",
    );

    let r = c.post(&format!("{page}deactivate/"), &[("csrf", &csrf)]).await;
    assert_eq!(r.header("location"), Some(format!("{page}?done=deactivated").as_str()));
    let r = c.get(&format!("{page}?done=deactivated")).await;
    assert_page(&r, StatusCode::OK, "User deactivated");
    assert!(r.text.contains("No active session."));
    assert_eq!(
        app.post("/auth/token/refresh/", &serde_json::json!({"refresh": bob_refresh}).to_string()).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = bob_console.get("/admin/users/").await;
    assert_eq!(
        (r.status, r.header("location")),
        (StatusCode::SEE_OTHER, Some("/admin/login/")),
        "console session ended"
    );

    // Not oneself.
    let me = app.state.store.find_by_email("staff@example.com").await.unwrap().unwrap().user.id;
    let r = c.post(&format!("/admin/users/{me}/deactivate/"), &[("csrf", &csrf)]).await;
    assert_page(&r, StatusCode::BAD_REQUEST, "You cannot deactivate your own account.");

    let r = c.get(&format!("/admin/audit/?user={bob}&kind=user_updated")).await;
    assert_page(&r, StatusCode::OK, "&#34;is_active&#34;:false");
    assert!(!r.text.contains(r#"<span class="tag">login_succeeded</span>"#), "filtered by kind");
    let r = c.get("/admin/audit/?user=abc").await;
    assert_page(&r, StatusCode::BAD_REQUEST, "user: A valid integer is required.");
    let r = c.post(&format!("{page}activate/"), &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(app.state.store.find_user(bob).await.unwrap().unwrap().is_active);
}

/// A reader (`USERS_READER_GROUP`) sees users and sessions without forms; every change is 403
/// and the audit log is closed.
async fn readers_are_read_only(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    app.add_user("manager@example.com", PW, false, &["manager"]).await;
    let mut c = Client::new(&app);
    c.sign_in("manager@example.com", PW).await;
    let csrf = c.csrf().await;
    let r = c.get(&format!("/admin/users/{alice}/")).await;
    assert_page(&r, StatusCode::OK, "alice@example.com");
    assert!(r.text.contains("read-only"));
    assert!(!r.text.contains("/deactivate/") && !r.text.contains("/password/"), "no forms");
    for (path, fields) in [
        (format!("/admin/users/{alice}/"), vec![("csrf", csrf.as_str()), ("first_name", "X")]),
        (format!("/admin/users/{alice}/deactivate/"), vec![("csrf", csrf.as_str())]),
        (
            format!("/admin/users/{alice}/password/"),
            vec![("csrf", csrf.as_str()), ("password", "a fresh passphrase"), ("password2", "a fresh passphrase")],
        ),
        (format!("/admin/users/{alice}/sessions/end-all/"), vec![("csrf", csrf.as_str())]),
    ] {
        assert_page(&c.post(&path, &fields).await, StatusCode::FORBIDDEN, "do not have permission");
    }
    assert_page(&c.get("/admin/audit/").await, StatusCode::FORBIDDEN, "do not have permission");
    assert!(app.state.store.find_user(alice).await.unwrap().unwrap().is_active);
}

/// Sign-out needs the CSRF token, ends the session server-side and drops the cookie: the old
/// cookie no longer works.
async fn sign_out_ends_the_session(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    app.add_user("staff@example.com", PW, true, &[]).await;
    let mut c = Client::new(&app);
    c.sign_in("staff@example.com", PW).await;
    let old_cookie = c.jar.get("gatehouse_admin").unwrap().clone();
    let csrf = c.csrf().await;
    let r = c.post("/admin/logout/", &[("csrf", &csrf)]).await;
    assert_eq!((r.status, r.header("location")), (StatusCode::SEE_OTHER, Some("/admin/login/")));
    assert!(!c.jar.contains_key("gatehouse_admin"));
    let mut replay = Client::new(&app);
    replay.jar.insert("gatehouse_admin".into(), old_cookie);
    assert_eq!(replay.get("/admin/users/").await.status, StatusCode::SEE_OTHER, "the cookie is dead server-side");
}

/// The path of the pager's "Older →" link in an audit page, unescaped.
fn older_link(html: &str) -> Option<String> {
    let start = html.find(r#"<nav class="pager"><a href=""#)? + r#"<nav class="pager"><a href=""#.len();
    let end = start + html[start..].find('"')?;
    assert!(html[end..].starts_with(r#"">Older →</a>"#), "the pager's link is Older →");
    Some(html[start..end].replace("&#38;", "&").replace("&amp;", "&"))
}

/// How many events an audit page lists.
fn audit_rows(html: &str) -> usize {
    html.matches(r#"<td data-label="Kind">"#).count()
}

/// The old, unkeyed CSRF formula: SHA-256 of a constant and the session's id.
fn csrf_from_session_id(session_id: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("gatehouse-admin-csrf\0{session_id}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// The CSRF token cannot be computed from the session's id, which other admins see (on the
/// user page of the session's owner): a form posted with the hash of the id is refused with
/// 403 and changes nothing, the page's token works, and each console session has its own.
async fn the_csrf_token_is_not_computable_from_the_session_id(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let staff = app.add_user("staff@example.com", PW, true, &[]).await;
    // Staff accounts are a superuser's to change: only one sees their session forms.
    add_superuser(&app, "peer@example.com").await;
    let (alice_refresh, _) = app.login("alice@example.com", PW).await;
    let mut c = Client::new(&app);
    c.sign_in("staff@example.com", PW).await;
    let session_id = jti_of(c.jar.get("gatehouse_admin").expect("a session cookie"));
    let mut peer = Client::new(&app);
    peer.sign_in("peer@example.com", PW).await;
    let r = peer.get(&format!("/admin/users/{staff}/")).await;
    assert_page(&r, StatusCode::OK, &format!("/sessions/{session_id}/end/"));

    let guessed = csrf_from_session_id(&session_id);
    let real = c.csrf().await;
    assert_ne!(real, guessed);
    let page = format!("/admin/users/{alice}/");
    let session = jti_of(&alice_refresh);
    let forms: Vec<(String, Vec<(&str, &str)>)> = vec![
        (page.clone(), vec![("first_name", "Mallory"), ("access_groups", "")]),
        (format!("{page}password/"), vec![("password", "a fresh passphrase"), ("password2", "a fresh passphrase")]),
        (format!("{page}deactivate/"), vec![]),
        (format!("{page}sessions/end-all/"), vec![]),
        (format!("{page}sessions/{session}/end/"), vec![]),
        ("/admin/logout/".to_owned(), vec![]),
    ];
    for (path, fields) in &forms {
        let mut forged = fields.clone();
        forged.push(("csrf", guessed.as_str()));
        assert_page(&c.post(path, &forged).await, StatusCode::FORBIDDEN, "CSRF check failed");
    }
    let user = app.state.store.find_user(alice).await.unwrap().unwrap();
    assert!(user.is_active && user.first_name.is_empty(), "nothing changed");
    assert_eq!(app.state.store.live_sessions(alice).await.unwrap().len(), 1, "alice's session lives");
    assert_page(&c.get("/admin/users/").await, StatusCode::OK, "staff@example.com");

    assert_eq!(c.csrf().await, real, "one token for the whole session");
    assert_ne!(peer.csrf().await, real, "another session has another token");
    let mut second = Client::new(&app);
    second.sign_in("staff@example.com", PW).await;
    assert_ne!(second.csrf().await, real, "so does another session of the same admin");

    let r = c.post(&format!("{page}deactivate/"), &[("csrf", &real)]).await;
    assert_eq!(
        (r.status, r.header("location")),
        (StatusCode::SEE_OTHER, Some(format!("{page}?done=deactivated").as_str()))
    );
    assert!(!app.state.store.find_user(alice).await.unwrap().unwrap().is_active);
}

/// Activation and ending one session need the CSRF token too: missing or wrong is 403 and
/// changes nothing; with it, the user is active again and the session is gone.
async fn activate_and_end_one_session_check_csrf(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let bob = app.add_user("bob@example.com", PW, false, &[]).await;
    app.add_user("staff@example.com", PW, true, &[]).await;
    let (alice_refresh, _) = app.login("alice@example.com", PW).await;
    app.set_active(bob, false).await;
    let mut c = Client::new(&app);
    c.sign_in("staff@example.com", PW).await;
    let csrf = c.csrf().await;

    let activate = format!("/admin/users/{bob}/activate/");
    let end_one = format!("/admin/users/{alice}/sessions/{}/end/", jti_of(&alice_refresh));
    for path in [&activate, &end_one] {
        assert_page(&c.post(path, &[]).await, StatusCode::FORBIDDEN, "CSRF check failed");
        assert_page(&c.post(path, &[("csrf", "not-the-token")]).await, StatusCode::FORBIDDEN, "CSRF check failed");
        assert_page(&c.post(path, &[("csrf", "")]).await, StatusCode::FORBIDDEN, "CSRF check failed");
    }
    assert!(!app.state.store.find_user(bob).await.unwrap().unwrap().is_active, "bob still inactive");
    assert_eq!(app.state.store.live_sessions(alice).await.unwrap().len(), 1, "alice's session lives");

    let r = c.post(&activate, &[("csrf", &csrf)]).await;
    assert_eq!(r.header("location"), Some(format!("/admin/users/{bob}/?done=activated").as_str()), "{}", r.text);
    assert!(app.state.store.find_user(bob).await.unwrap().unwrap().is_active);
    assert_page(&c.get(&format!("/admin/users/{bob}/?done=activated")).await, StatusCode::OK, "User activated.");

    let r = c.post(&end_one, &[("csrf", &csrf)]).await;
    assert_eq!(r.header("location"), Some(format!("/admin/users/{alice}/?done=session").as_str()), "{}", r.text);
    assert!(app.state.store.live_sessions(alice).await.unwrap().is_empty());
    let r = app.post("/auth/token/refresh/", &serde_json::json!({"refresh": alice_refresh}).to_string()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
}

/// "End all sessions": every session of the user ends (API sessions and their console
/// session), refresh tokens die, the earlier access token is refused, the page says so and the
/// audit log records it with its actor; the acting admin stays signed in.
async fn end_all_sessions_ends_every_session(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let bob = app.add_user("bob@example.com", PW, true, &[]).await;
    // A staff account's sessions are a superuser's to end.
    let staff = add_superuser(&app, "staff@example.com").await;
    let (phone_refresh, bob_access) = app.login("bob@example.com", PW).await;
    let (laptop_refresh, _) = app.login("bob@example.com", PW).await;
    let mut bob_console = Client::new(&app);
    bob_console.sign_in("bob@example.com", PW).await;
    let mut c = Client::new(&app);
    c.sign_in("staff@example.com", PW).await;
    let csrf = c.csrf().await;
    let page = format!("/admin/users/{bob}/");
    assert_page(&c.get(&page).await, StatusCode::OK, "Sessions <span class=\"muted\">(3)</span>");

    let r = c.post(&format!("{page}sessions/end-all/"), &[("csrf", &csrf)]).await;
    assert_eq!(
        (r.status, r.header("location")),
        (StatusCode::SEE_OTHER, Some(format!("{page}?done=sessions").as_str()))
    );
    let r = c.get(&format!("{page}?done=sessions")).await;
    assert_page(&r, StatusCode::OK, "Every session of the user was ended.");
    assert!(r.text.contains("No active session."), "{}", r.text);
    assert!(app.state.store.live_sessions(bob).await.unwrap().is_empty());
    for refresh in [&phone_refresh, &laptop_refresh] {
        let r = app.post("/auth/token/refresh/", &serde_json::json!({"refresh": refresh}).to_string()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    }
    assert_401(&app.get_bearer("/auth/user/", &bob_access).await, &bearer_not_valid("Token is invalid or expired"));
    let r = bob_console.get("/admin/users/").await;
    assert_eq!(
        (r.status, r.header("location")),
        (StatusCode::SEE_OTHER, Some("/admin/login/")),
        "console session ended"
    );
    assert_page(&c.get("/admin/users/").await, StatusCode::OK, "bob@example.com");

    let filter = auth_service::store::audit::AuditFilter { user_id: Some(bob), ..Default::default() };
    let rows = app.state.store.list_audit(&filter).await.unwrap();
    assert!(rows.iter().any(|r| r.kind == "logout_all" && r.actor_id == Some(staff)), "{rows:?}");
    // Bob signs in again.
    app.login("bob@example.com", PW).await;
}

/// The audit log shows 50 events a page, newest first; "Older →" keeps the filter and leads
/// to the older events; the last page has no such link.
async fn audit_log_pages_to_older_events(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let bob = app.add_user("bob@example.com", PW, false, &[]).await;
    app.add_user("staff@example.com", PW, true, &[]).await;
    for n in 0..60 {
        let event = auth_service::audit::AuditEvent::new(auth_service::audit::AuditKind::UserUpdated)
            .user(alice)
            .detail(serde_json::json!({ "n": n }));
        app.state.store.record_audit(&event).await.unwrap();
        let other = auth_service::audit::AuditEvent::new(auth_service::audit::AuditKind::UserUpdated)
            .user(bob)
            .detail(serde_json::json!({ "bob": n }));
        app.state.store.record_audit(&other).await.unwrap();
    }
    let mut c = Client::new(&app);
    c.sign_in("staff@example.com", PW).await;
    let n = |i: i32| format!("{{&#34;n&#34;:{i}}}");

    let r = c.get(&format!("/admin/audit/?user={alice}")).await;
    assert_page(&r, StatusCode::OK, &n(59));
    assert_eq!(audit_rows(&r.text), 50, "a full page");
    assert!(r.text.find(&n(59)).unwrap() < r.text.find(&n(58)).unwrap(), "newest first");
    assert!(r.text.contains(&n(10)) && !r.text.contains(&n(9)), "the 50 newest");
    assert!(!r.text.contains("&#34;bob&#34;"), "filtered by user");
    let older = older_link(&r.text).expect("an Older link");
    assert!(older.starts_with("/admin/audit/?") && older.contains(&format!("user={alice}")), "{older}");

    let r = c.get(&older).await;
    assert_page(&r, StatusCode::OK, &n(9));
    assert!((0..10).all(|i| r.text.contains(&n(i))), "the ten older ones: {}", r.text);
    assert!(!r.text.contains(&n(10)), "nothing of the first page again");
    assert!(r.text.contains(r#"<span class="tag">user_created</span>"#), "down to the first event");
    assert_eq!(audit_rows(&r.text), 11);
    assert!(!r.text.contains("&#34;bob&#34;"), "the filter is kept");
    assert_eq!(older_link(&r.text), None, "the last page");
}

/// Setting a password from the console ends every session of the user: refresh tokens,
/// the earlier access token and their own console session; the new password signs in.
async fn console_set_password_ends_sessions(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let bob = app.add_user("bob@example.com", PW, true, &[]).await;
    // A staff account's password is a superuser's to set.
    add_superuser(&app, "staff@example.com").await;
    let (bob_refresh, bob_access) = app.login("bob@example.com", PW).await;
    let mut bob_console = Client::new(&app);
    bob_console.sign_in("bob@example.com", PW).await;
    let mut c = Client::new(&app);
    c.sign_in("staff@example.com", PW).await;
    let csrf = c.csrf().await;
    let page = format!("/admin/users/{bob}/");

    let r = c
        .post(
            &format!("{page}password/"),
            &[("csrf", &csrf), ("password", "a fresh passphrase"), ("password2", "a fresh passphrase")],
        )
        .await;
    assert_eq!(
        (r.status, r.header("location")),
        (StatusCode::SEE_OTHER, Some(format!("{page}?done=password").as_str()))
    );
    let r = c.get(&format!("{page}?done=password")).await;
    assert_page(&r, StatusCode::OK, "Password set; every session of the user was ended.");
    assert!(r.text.contains("No active session."), "{}", r.text);
    assert!(app.state.store.live_sessions(bob).await.unwrap().is_empty());
    let r = app.post("/auth/token/refresh/", &serde_json::json!({"refresh": bob_refresh}).to_string()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_401(&app.get_bearer("/auth/user/", &bob_access).await, &bearer_not_valid("Token is invalid or expired"));
    let r = bob_console.get("/admin/users/").await;
    assert_eq!(
        (r.status, r.header("location")),
        (StatusCode::SEE_OTHER, Some("/admin/login/")),
        "console session ended"
    );

    assert_eq!(bob_console.try_sign_in("bob@example.com", PW).await.status, StatusCode::BAD_REQUEST, "old password");
    bob_console.sign_in("bob@example.com", "a fresh passphrase").await;
}

/// A `gatehouse_admin_csrf` cookie an attacker planted (a sibling subdomain can set one) with
/// a value of their choosing does not make the sign-in accept that value: the token must be
/// one this service signed, and one another service (another key) signed is refused too.
async fn a_planted_sign_in_cookie_is_refused(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    app.add_user("attacker@example.com", PW, true, &[]).await;
    let now = chrono::Utc::now().timestamp();
    let forged_tag = format!("{now}.0123456789abcdef0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let Some(other) = TestApp::new(backend, &["--signing-key", "another-signing-key-0123456789abcdef012345"]).await
    else {
        return;
    };
    let elsewhere = csrf_of(&Client::new(&other).get("/admin/login/").await.text);
    for planted in ["planted-by-the-attacker", forged_tag.as_str(), elsewhere.as_str()] {
        let mut victim = Client::new(&app);
        victim.jar.insert("gatehouse_admin_csrf".into(), planted.to_owned());
        let form = [("csrf", planted), ("email", "attacker@example.com"), ("password", PW)];
        let r = victim.post("/admin/login/", &form).await;
        assert_page(&r, StatusCode::FORBIDDEN, "CSRF check failed");
        assert!(!victim.jar.contains_key("gatehouse_admin"), "{planted}: not signed in as the attacker");
    }
    // The form's own token still works (and is refused once its cookie is swapped).
    let mut c = Client::new(&app);
    let csrf = csrf_of(&c.get("/admin/login/").await.text);
    c.jar.insert("gatehouse_admin_csrf".into(), elsewhere.clone());
    let r = c.post("/admin/login/", &[("csrf", &csrf), ("email", "attacker@example.com"), ("password", PW)]).await;
    assert_page(&r, StatusCode::FORBIDDEN, "CSRF check failed");
    Client::new(&app).sign_in("attacker@example.com", PW).await;
}

/// Console POSTs a browser marks as cross-site (`Sec-Fetch-Site`, or an `Origin` of another
/// host when that header is missing) are refused with 403, sign-in included, whatever the
/// token; same-origin ones go through.
async fn cross_site_console_posts_are_refused(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    app.add_user("staff@example.com", PW, true, &[]).await;
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let mut c = Client::new(&app);
    c.sign_in("staff@example.com", PW).await;
    let csrf = c.csrf().await;
    let page = format!("/admin/users/{alice}/");
    let form = [("csrf", csrf.as_str()), ("first_name", "Mallory"), ("last_name", ""), ("access_groups", "")];
    let refused: [&[(&'static str, &'static str)]; 4] = [
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
        &[("origin", "https://evil.example"), ("host", "console.example")],
        &[("origin", "null"), ("host", "console.example")],
    ];
    for headers in refused {
        c.extra = headers.to_vec();
        assert_page(&c.post(&page, &form).await, StatusCode::FORBIDDEN, "cross-site request");
        let mut fresh = Client::new(&app);
        let login = csrf_of(&fresh.get("/admin/login/").await.text);
        fresh.extra = headers.to_vec();
        let r =
            fresh.post("/admin/login/", &[("csrf", &login), ("email", "staff@example.com"), ("password", PW)]).await;
        assert_page(&r, StatusCode::FORBIDDEN, "cross-site request");
    }
    assert_eq!(app.state.store.find_user(alice).await.unwrap().unwrap().first_name, "");

    let allowed: [&[(&'static str, &'static str)]; 3] = [
        &[("sec-fetch-site", "same-origin"), ("origin", "https://evil.example")],
        &[("origin", "http://console.example"), ("host", "console.example")],
        &[],
    ];
    for headers in allowed {
        c.extra = headers.to_vec();
        assert_eq!(c.post(&page, &form).await.status, StatusCode::SEE_OTHER, "{headers:?}");
    }
    assert_eq!(app.state.store.find_user(alice).await.unwrap().unwrap().first_name, "Mallory");
}

/// The console follows the staff limits of the admin API: staff cannot give the reader group
/// nor change another staff account; a superuser can.
async fn console_staff_cannot_widen_their_reach(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let me = app.add_user("staff@example.com", PW, true, &[]).await;
    let other = app.add_user("other@example.com", PW, true, &[]).await;
    add_superuser(&app, "root@example.com").await;
    let mut c = Client::new(&app);
    c.sign_in("staff@example.com", PW).await;
    let csrf = c.csrf().await;
    for id in [alice, me] {
        let form = [("csrf", csrf.as_str()), ("first_name", ""), ("last_name", ""), ("access_groups", "manager")];
        assert_page(
            &c.post(&format!("/admin/users/{id}/"), &form).await,
            StatusCode::FORBIDDEN,
            "do not have permission",
        );
    }
    let r = c.get(&format!("/admin/users/{other}/")).await;
    assert!(!r.text.contains("/password/"), "no change forms for a staff account");
    let pw = [("csrf", csrf.as_str()), ("password", "a fresh passphrase"), ("password2", "a fresh passphrase")];
    assert_page(&c.post(&format!("/admin/users/{other}/password/"), &pw).await, StatusCode::FORBIDDEN, "permission");
    assert_page(
        &c.post(&format!("/admin/users/{other}/deactivate/"), &[("csrf", &csrf)]).await,
        StatusCode::FORBIDDEN,
        "permission",
    );
    assert!(app.state.store.find_user(other).await.unwrap().unwrap().is_active);
    assert!(app.state.store.find_user(alice).await.unwrap().unwrap().access_groups.is_empty());

    let mut su = Client::new(&app);
    su.sign_in("root@example.com", PW).await;
    let csrf = su.csrf().await;
    let form = [("csrf", csrf.as_str()), ("first_name", ""), ("last_name", ""), ("access_groups", "manager")];
    assert_eq!(su.post(&format!("/admin/users/{alice}/"), &form).await.status, StatusCode::SEE_OTHER);
    assert_eq!(su.post(&format!("/admin/users/{other}/password/"), &pw_for(&csrf)).await.status, StatusCode::SEE_OTHER);
}

fn pw_for(csrf: &str) -> [(&str, &str); 3] {
    [("csrf", csrf), ("password", "a fresh passphrase"), ("password2", "a fresh passphrase")]
}

/// NUL, control and bidirectional formatting characters on the console: the sign-in form says
/// so (400, without echoing the email), a search and a name too; nothing reaches the database.
async fn console_refuses_control_characters(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    app.add_user("staff@example.com", PW, true, &[]).await;
    let alice = app.add_user("alice@example.com", PW, false, &[]).await;
    let mut c = Client::new(&app);
    let r = c.try_sign_in("staff\u{0}@example.com", PW).await;
    assert_page(&r, StatusCode::BAD_REQUEST, "Null characters are not allowed.");
    assert!(!c.jar.contains_key("gatehouse_admin"));
    c.sign_in("staff@example.com", PW).await;
    let r = c.get("/admin/users/?search=a%00b").await;
    assert_page(&r, StatusCode::BAD_REQUEST, "Null characters are not allowed.");
    let csrf = c.csrf().await;
    let form = [("csrf", csrf.as_str()), ("first_name", "\u{202E}nimda"), ("last_name", ""), ("access_groups", "")];
    let r = c.post(&format!("/admin/users/{alice}/"), &form).await;
    assert_page(&r, StatusCode::BAD_REQUEST, "bidirectional formatting characters are not allowed");
    assert_eq!(app.state.store.find_user(alice).await.unwrap().unwrap().first_name, "");
}

/// The TOTP secret shown on the console's enrolment page, and its authenticator.
fn shown_authenticator(html: &str, email: &str) -> auth_service::factors::Authenticator {
    let start = html.find(r#"id="totp-secret">"#).expect("the key is shown") + r#"id="totp-secret">"#.len();
    let secret: String = html[start..start + html[start..].find('<').unwrap()].split_whitespace().collect();
    let bytes = totp_rs::Secret::try_from_base32(&secret).unwrap().as_bytes().to_vec();
    auth_service::factors::Authenticator::new(bytes, "Gatehouse", email).unwrap()
}

/// The code of the step `offset` steps from now (each accepted once, in order).
fn totp_code(auth: &auth_service::factors::Authenticator, offset: i64) -> String {
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    auth.code_at(now.checked_add_signed(offset * 30).unwrap())
}

/// A staff account enrols TOTP from the console (QR code shown, recovery codes shown once);
/// its next sign-in asks for the code (a wrong one is said on the form), then opens the
/// console; a superuser resets the account's factors from the user page (audited).
async fn console_enrols_totp_and_asks_for_it_at_sign_in(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let staff = app.add_user("staff@example.com", PW, true, &[]).await;
    let mut c = Client::new(&app);
    c.sign_in("staff@example.com", PW).await;
    let page = c.get("/admin/mfa/").await;
    assert_page(&page, StatusCode::OK, r#"id="totp-status">not set up"#);
    let csrf = csrf_of(&page.text);
    let setup = c.post("/admin/mfa/totp/", &[("csrf", &csrf)]).await;
    assert_page(&setup, StatusCode::OK, "<svg");
    assert!(setup.text.contains(r#"href="otpauth://totp/Gatehouse:staff%40example.com?"#), "{}", setup.text);
    let auth = shown_authenticator(&setup.text, "staff@example.com");
    let wrong = c.post("/admin/mfa/totp/confirm/", &[("csrf", &csrf), ("code", "12345x")]).await;
    assert_page(&wrong, StatusCode::BAD_REQUEST, "That code is wrong");
    let done = c.post("/admin/mfa/totp/confirm/", &[("csrf", &csrf), ("code", &totp_code(&auth, -1))]).await;
    assert_page(&done, StatusCode::OK, r#"id="recovery-codes""#);
    assert_eq!(done.text.matches("<li><code>").count(), 10, "ten recovery codes");
    assert_page(&c.get("/admin/mfa/").await, StatusCode::OK, r#"id="totp-status">enrolled"#);

    let mut fresh = Client::new(&app);
    let step = fresh.try_sign_in("staff@example.com", PW).await;
    assert_page(&step, StatusCode::OK, r#"id="second-factor""#);
    assert!(!fresh.jar.contains_key("gatehouse_admin"), "no session before the second factor");
    let token_at = step.text.find(r#"name="mfa_token" value=""#).unwrap() + r#"name="mfa_token" value=""#.len();
    let token = step.text[token_at..token_at + step.text[token_at..].find('"').unwrap()].to_owned();
    let csrf = csrf_of(&step.text);
    let r = fresh.post("/admin/login/mfa/", &[("csrf", &csrf), ("mfa_token", &token), ("code", "000000x")]).await;
    assert_page(&r, StatusCode::BAD_REQUEST, "That code is wrong or was already used.");
    let csrf = csrf_of(&r.text);
    let r = fresh
        .post("/admin/login/mfa/", &[("csrf", &csrf), ("mfa_token", &token), ("code", &totp_code(&auth, 0))])
        .await;
    assert_eq!((r.status, r.header("location")), (StatusCode::SEE_OTHER, Some("/admin/users/")), "{}", r.text);
    assert_page(&fresh.get("/admin/users/").await, StatusCode::OK, "staff@example.com");
    // Without the form's CSRF token the second step is refused too.
    let r = fresh.post("/admin/login/mfa/", &[("mfa_token", &token), ("code", "123456")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    add_superuser(&app, "root@example.com").await;
    let mut root = Client::new(&app);
    root.sign_in("root@example.com", PW).await;
    let user_page = root.get(&format!("/admin/users/{staff}/")).await;
    assert_page(&user_page, StatusCode::OK, "Reset second factors");
    let csrf = csrf_of(&user_page.text);
    let r = root.post(&format!("/admin/users/{staff}/mfa/reset/"), &[("csrf", &csrf)]).await;
    assert_eq!(r.header("location"), Some(format!("/admin/users/{staff}/?done=mfa-reset").as_str()), "{}", r.text);
    assert!(!app.state.store.factor_count(staff).await.unwrap().any());
    let mut again = Client::new(&app);
    again.sign_in("staff@example.com", PW).await;
}

/// `MFA_REQUIRED_FOR_STAFF`: a staff account without a factor reaches only the enrolment page
/// of the console and gets 403 `mfa_enrolment_required` from the admin API; once enrolled, a
/// password-only session or token is refused (403 `mfa_required`) until it signs in with the
/// code. Users who are not staff are not affected.
async fn staff_must_enrol_when_required(backend: Backend) {
    let Some(app) = TestApp::new(backend, &["--mfa-required-for-staff", "true"]).await else { return };
    app.add_user("staff@example.com", PW, true, &[]).await;
    app.add_user("user@example.com", PW, false, &[]).await;
    let (_, before) = app.login("staff@example.com", PW).await;
    let api = app.get_bearer("/auth/admin/users/", &before).await;
    assert_eq!(api.status, StatusCode::FORBIDDEN, "{}", api.text);
    assert_eq!(api.json()["code"], "mfa_enrolment_required", "{}", api.text);
    let (_, plain) = app.login("user@example.com", PW).await;
    assert_eq!(app.get_bearer("/auth/user/", &plain).await.status, StatusCode::OK, "not staff: not affected");

    let mut c = Client::new(&app);
    c.sign_in("staff@example.com", PW).await;
    let users = c.get("/admin/users/").await;
    assert_eq!((users.status, users.header("location")), (StatusCode::SEE_OTHER, Some("/admin/mfa/")));
    let page = c.get("/admin/mfa/").await;
    assert_page(&page, StatusCode::OK, r#"id="must-enrol""#);
    let csrf = csrf_of(&page.text);
    let setup = c.post("/admin/mfa/totp/", &[("csrf", &csrf)]).await;
    let auth = shown_authenticator(&setup.text, "staff@example.com");
    let done = c.post("/admin/mfa/totp/confirm/", &[("csrf", &csrf), ("code", &totp_code(&auth, -1))]).await;
    assert_page(&done, StatusCode::OK, r#"id="recovery-codes""#);
    // The session began with a password only: sign in again with the new factor.
    let users = c.get("/admin/users/").await;
    assert_eq!((users.status, users.header("location")), (StatusCode::SEE_OTHER, Some("/admin/login/")));
    let api = app.get_bearer("/auth/admin/users/", &before).await;
    assert_eq!(api.status, StatusCode::FORBIDDEN, "{}", api.text);
    assert_eq!(
        api.text,
        r#"{"detail":"This action requires a sign-in with a second factor; sign in again.","code":"mfa_required"}"#
    );

    let step =
        app.post("/auth/token/", &serde_json::json!({"email": "staff@example.com", "password": PW}).to_string()).await;
    let token = step.json()["mfa_token"].as_str().unwrap().to_owned();
    let body = serde_json::json!({"mfa_token": token, "code": totp_code(&auth, 0)}).to_string();
    let pair = app.post("/auth/token/mfa/", &body).await;
    let access = pair.json()["access"].as_str().unwrap().to_owned();
    assert_eq!(app.get_bearer("/auth/admin/users/", &access).await.status, StatusCode::OK);
}

both_backends!(
    a_planted_sign_in_cookie_is_refused,
    cross_site_console_posts_are_refused,
    console_staff_cannot_widen_their_reach,
    console_refuses_control_characters,
    sign_in_checks_csrf_credentials_and_role,
    cookies_are_secure_over_tls,
    sign_in_is_throttled,
    users_are_searched_and_paged,
    user_forms_save_and_show_errors,
    superusers_grant_roles,
    deactivation_ends_sessions_and_is_audited,
    readers_are_read_only,
    sign_out_ends_the_session,
    the_csrf_token_is_not_computable_from_the_session_id,
    activate_and_end_one_session_check_csrf,
    end_all_sessions_ends_every_session,
    audit_log_pages_to_older_events,
    console_set_password_ends_sessions,
    console_enrols_totp_and_asks_for_it_at_sign_in,
    staff_must_enrol_when_required,
);
