//! The admin console in a real browser: Debian's Chromium, headless, driven over WebDriver by
//! `fantoccini` through a chromedriver this test starts on a free port. An admin signs in,
//! searches a user, adds a group, deactivates them and sees their session gone; screenshots
//! (laptop and phone width) are saved as `target/admin-console.png` and
//! `target/admin-console-phone.png`.
//!
//! Under CI (`CI` set to anything but empty, `0` or `false`) a missing `/usr/bin/chromium` or
//! `/usr/bin/chromedriver` fails the test; elsewhere the test is skipped with a printed reason.

mod common;

use std::net::{Ipv4Addr, SocketAddr};

use common::browser::*;
use common::*;
use fantoccini::{Client, Locator};
use serde_json::json;
use shared_user::testing::Backend;

const PW: &str = "correct horse battery";

/// Fills in and posts the console's sign-in form for `email`.
async fn sign_in(client: &Client, base: &str, email: &str) {
    client.goto(&format!("{base}/admin/login/")).await.unwrap();
    wait_for(client, "input[name=email]").await.send_keys(email).await.unwrap();
    client.find(Locator::Css("input[name=password]")).await.unwrap().send_keys(PW).await.unwrap();
    client.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_signs_in_searches_adds_a_group_and_deactivates() {
    if !browser_available() {
        return;
    }
    let Some(app) = TestApp::new(Backend::Sqlite, &["--users-reader-group", "manager"]).await else { return };
    app.add_user("admin@example.com", PW, true, &[]).await;
    for (email, groups) in [
        ("ada@example.com", &["billing:admin"][..]),
        ("grace@example.com", &["manager"][..]),
        ("linus@example.com", &[][..]),
    ] {
        app.add_user(email, PW, false, groups).await;
    }
    let dana = app.add_user("dana@example.com", PW, false, &["billing"]).await;
    for (email, first, last) in [
        ("ada@example.com", "Ada", "Lovelace"),
        ("grace@example.com", "Grace", "Hopper"),
        ("dana@example.com", "Dana", "Scully"),
    ] {
        let id = app.state.store.find_by_email(email).await.unwrap().unwrap().user.id;
        let patch = auth_service::store::admin::UserPatch {
            first_name: Some(first.into()),
            last_name: Some(last.into()),
            ..Default::default()
        };
        let event = auth_service::audit::AuditEvent::new(auth_service::audit::AuditKind::UserUpdated);
        app.state.store.patch_user(id, &patch, &event).await.unwrap();
    }
    let (dana_refresh, _) = app.login("dana@example.com", PW).await;

    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = app.router.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });

    let profile = tempfile::tempdir().unwrap();
    let (_driver, client) = browser(profile.path()).await;

    sign_in(&client, &base, "admin@example.com").await;

    // Search.
    wait_for(&client, "input[name=search]").await.send_keys("DANA").await.unwrap();
    client.find(Locator::Css("form.search button")).await.unwrap().click().await.unwrap();
    wait_for_url(&client, "search=DANA").await;
    let rows = client.find_all(Locator::Css("table.users tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 1, "one match");
    client.find(Locator::LinkText("dana@example.com")).await.unwrap().click().await.unwrap();
    wait_for_url(&client, &format!("/admin/users/{dana}/")).await;

    // Add a group.
    let groups = wait_for(&client, "textarea[name=access_groups]").await;
    groups.send_keys("\nsupport:agent").await.unwrap();
    client.find(Locator::Css("#details button[type=submit]")).await.unwrap().click().await.unwrap();
    let notice = wait_for(&client, ".notice").await;
    assert_eq!(notice.text().await.unwrap(), "Changes saved.");
    let text = client.find(Locator::Css("textarea[name=access_groups]")).await.unwrap().prop("value").await.unwrap();
    assert_eq!(text.as_deref(), Some("billing\nsupport:agent"));
    let sessions = client.find(Locator::Css(".sessions")).await.unwrap().text().await.unwrap();
    assert!(!sessions.is_empty(), "dana's session is listed");

    // Deactivate: the session is gone.
    client.find(Locator::Css("#deactivate")).await.unwrap().click().await.unwrap();
    wait_for(&client, "#activate").await;
    let status = client.find(Locator::Css("#status")).await.unwrap().text().await.unwrap();
    assert_eq!(status, "inactive");
    let none = client.find(Locator::Css("#no-sessions")).await.unwrap().text().await.unwrap();
    assert_eq!(none, "No active session.");

    let user = app.state.store.find_user(dana).await.unwrap().unwrap();
    assert!(!user.is_active);
    assert!(user.has_group("support", Some("agent")));
    let r = app.post("/auth/token/refresh/", &json!({"refresh": dana_refresh}).to_string()).await;
    assert_eq!(r.status, axum::http::StatusCode::UNAUTHORIZED, "{}", r.text);

    // Screenshots for people to look at: the user page on a laptop, the list on a phone.
    let target = target_dir();
    std::fs::write(target.join("admin-console.png"), client.screenshot().await.unwrap()).unwrap();
    client.set_window_size(390, 844).await.unwrap();
    client.goto(&format!("{base}/admin/users/")).await.unwrap();
    wait_for(&client, "table.users").await;
    std::fs::write(target.join("admin-console-phone.png"), client.screenshot().await.unwrap()).unwrap();

    client.close().await.unwrap();
    server.abort();
}

/// `MFA_REQUIRED_FOR_STAFF` in the browser: a staff account without a factor lands on the
/// enrolment page, sets up an authenticator app from the QR code's key, sees its recovery
/// codes once, is asked to sign in again, and the sign-in asks for the code. Screenshot of the
/// enrolment page: `target/admin-console-mfa.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_enrol_totp_and_sign_in_with_it() {
    if !browser_available() {
        return;
    }
    let Some(app) = TestApp::new(Backend::Sqlite, &["--mfa-required-for-staff", "true"]).await else { return };
    app.add_user("admin@example.com", PW, true, &[]).await;
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = app.router.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });
    let profile = tempfile::tempdir().unwrap();
    let (_driver, client) = browser(profile.path()).await;

    sign_in(&client, &base, "admin@example.com").await;
    wait_for(&client, "#must-enrol").await;
    wait_for_url(&client, "/admin/mfa/").await;
    client.find(Locator::Css("#totp button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_for(&client, "#qr svg").await;
    let secret: String = wait_for(&client, "#totp-secret").await.text().await.unwrap().split_whitespace().collect();
    let bytes = totp_rs::Secret::try_from_base32(&secret).unwrap().as_bytes().to_vec();
    let auth = auth_service::factors::Authenticator::new(bytes, "Gatehouse", "admin@example.com").unwrap();
    let at = |offset: i64| {
        let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
        auth.code_at(now.checked_add_signed(offset * 30).unwrap())
    };
    std::fs::write(target_dir().join("admin-console-mfa.png"), client.screenshot().await.unwrap()).unwrap();
    client.find(Locator::Css("#totp input[name=code]")).await.unwrap().send_keys(&at(-1)).await.unwrap();
    client.find(Locator::Css("#totp button[type=submit]")).await.unwrap().click().await.unwrap();
    let codes = wait_for(&client, "#recovery-codes").await;
    assert_eq!(codes.find_all(Locator::Css("code")).await.unwrap().len(), 10, "ten recovery codes");
    // The session began with a password only: on to sign in again, with the code this time.
    client.find(Locator::LinkText("Continue")).await.unwrap().click().await.unwrap();
    wait_for_url(&client, "/admin/login/").await;
    sign_in(&client, &base, "admin@example.com").await;
    wait_for(&client, "#second-factor input[name=code]").await.send_keys(&at(0)).await.unwrap();
    client.find(Locator::Css("#second-factor button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_for(&client, "table.users").await;
    wait_for_url(&client, "/admin/users/").await;

    client.close().await.unwrap();
    server.abort();
}

/// Passkeys in the console, with Chromium's virtual authenticator: a staff account registers
/// one on its *Second factor* page, then the sign-in asks for it after the password ("Use a
/// passkey"), and it signs in without a password from the sign-in page. Screenshot:
/// `target/admin-console-passkeys.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_register_a_passkey_and_sign_in_with_it() {
    if !browser_available() {
        return;
    }
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    // WebAuthn needs a secure context: http://localhost is one.
    let base = format!("http://localhost:{}", listener.local_addr().unwrap().port());
    let origin = base.clone();
    let Some(app) = TestApp::new(Backend::Sqlite, move |s: &mut auth_service::Settings| {
        s.webauthn_rp_id = Some("localhost".into());
        s.webauthn_origin = Some(origin);
    })
    .await
    else {
        return;
    };
    let admin = app.add_user("admin@example.com", PW, true, &[]).await;
    let router = app.router.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });
    let profile = tempfile::tempdir().unwrap();
    let (_driver, client) = browser(profile.path()).await;
    client.issue_cmd(AddVirtualAuthenticator).await.unwrap();

    sign_in(&client, &base, "admin@example.com").await;
    wait_for(&client, "table.users").await;
    client.goto(&format!("{base}/admin/mfa/")).await.unwrap();
    wait_for(&client, "#passkey-name").await.send_keys("laptop").await.unwrap();
    client.find(Locator::Css("#add-passkey")).await.unwrap().click().await.unwrap();
    wait_for_url(&client, "done=passkey").await;
    assert_eq!(wait_for(&client, ".passkey-name").await.text().await.unwrap(), "laptop");
    std::fs::write(target_dir().join("admin-console-passkeys.png"), client.screenshot().await.unwrap()).unwrap();
    assert_eq!(app.state.store.passkeys_of(admin).await.unwrap().len(), 1, "a row in mfa_passkeys");

    // After the password, the passkey: the code form is not offered (no authenticator app).
    client.find(Locator::Css("form.signout button")).await.unwrap().click().await.unwrap();
    wait_for_url(&client, "/admin/login/").await;
    sign_in(&client, &base, "admin@example.com").await;
    // The second step's button (the sign-in page has one too, without an mfa_token).
    wait_for(&client, "#use-passkey[data-mfa-token]").await.click().await.unwrap();
    wait_for(&client, "table.users").await;
    assert!(client.find(Locator::Css("#second-factor")).await.is_err());

    // Without a password.
    client.find(Locator::Css("form.signout button")).await.unwrap().click().await.unwrap();
    wait_for_url(&client, "/admin/login/").await;
    wait_for(&client, "#use-passkey").await.click().await.unwrap();
    wait_for(&client, "table.users").await;

    let filter = auth_service::store::audit::AuditFilter { user_id: Some(admin), ..Default::default() };
    let details: Vec<String> = app
        .state
        .store
        .list_audit(&filter)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "login_succeeded")
        .filter_map(|e| e.detail)
        .collect();
    assert!(
        details.iter().any(|d| d.contains(r#""pwd","hwk","mfa""#) || d.contains(r#""pwd","swk","mfa""#)),
        "{details:?}"
    );
    assert!(details.iter().any(|d| d.contains(r#""user","mfa""#)), "{details:?}");

    client.close().await.unwrap();
    server.abort();
}
