//! The limits under a real attacker, over real sockets: parallel guesses, many source
//! addresses (the whole 127.0.0.0/8), sign-up floods in one GraphQL request, and the owner of
//! an account still signing in while strangers are locked out.

mod common;

use std::net::IpAddr;
use std::sync::Arc;

use auth_service::throttle::Throttle;
use auth_service::{AppState, app};
use serde_json::{Value, json};
use shared_user::both_backends;
use shared_user::testing::{Backend, TestDb};

const OWNER: &str = "owner@example.com";
const PW: &str = "correct horse battery";
const STRONG: &str = "Plenty-of-entropy-93!";

/// The service served on a loopback port with peer addresses.
struct Served {
    url: String,
    state: AppState,
    _stop: tokio::sync::oneshot::Sender<()>,
    db: TestDb,
}

/// Locks long enough that none expires during a test (the limits, not the clock, decide).
fn long_locks() -> Throttle {
    let mut t = Throttle::default();
    for limit in [&mut t.ip, &mut t.account_ip, &mut t.account] {
        limit.base_lock = chrono::Duration::minutes(15);
    }
    t
}

async fn serve(backend: Backend, extra: &[&str]) -> Option<Served> {
    let db = TestDb::new(backend, "auth-service abuse test", auth_service::MIGRATIONS).await?;
    let mut state = AppState::build(common::settings(extra), db.db.clone()).await.expect("state");
    state.throttle = Arc::new(Throttle { signup: state.throttle.signup, ..long_locks() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let router = app(state.clone());
    tokio::spawn(shared_user::server::serve(listener, router, Default::default(), async move {
        let _ = rx.await;
    }));
    Some(Served { url, state, _stop: tx, db })
}

impl Served {
    async fn add_owner(&self) {
        let hash = self.state.hasher.hash(PW.to_owned()).await.unwrap();
        self.state
            .store
            .create_user(auth_service::store::NewUser {
                email: OWNER.into(),
                password_hash: hash,
                first_name: String::new(),
                last_name: String::new(),
                is_staff: false,
                is_superuser: false,
                groups: vec![],
            })
            .await
            .unwrap();
    }

    /// POSTs `body` to `path` from the loopback address `from`; returns the status and JSON body.
    async fn post_from(&self, from: &str, path: &str, body: &Value) -> (u16, Value) {
        let http = reqwest::Client::builder()
            .local_address(from.parse::<IpAddr>().unwrap())
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .unwrap();
        let resp = http.post(format!("{}{path}", self.url)).json(body).send().await.expect("transport");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn login_from(&self, from: &str, email: &str, password: &str) -> u16 {
        self.post_from(from, "/auth/token/", &json!({"email": email, "password": password})).await.0
    }

    /// Sends every login at once (one task each) and counts the statuses.
    async fn parallel_logins(self: &Arc<Self>, attempts: Vec<(String, &'static str)>) -> (usize, usize) {
        let tasks: Vec<_> = attempts
            .into_iter()
            .map(|(from, password)| {
                let me = self.clone();
                tokio::spawn(async move { me.login_from(&from, OWNER, password).await })
            })
            .collect();
        let (mut unauthorized, mut throttled) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                401 => unauthorized += 1,
                429 => throttled += 1,
                other => panic!("unexpected status {other}"),
            }
        }
        (unauthorized, throttled)
    }
}

async fn parallel_guesses_from_one_address(backend: Backend, n: usize) {
    let Some(s) = serve(backend, &[]).await else { return };
    s.add_owner().await;
    let s = Arc::new(s);
    let (unauthorized, throttled) = s.parallel_logins(vec![("127.0.0.21".to_owned(), "wrong"); n]).await;
    assert_eq!(unauthorized, 5, "only the per-account-and-address limit got a password check");
    assert_eq!(throttled, n - 5);
    assert_eq!(s.state.hasher.checks(), 5, "no hash ran for a refused attempt");
}

async fn forty_parallel_guesses_from_one_address_pass_at_most_the_limit(backend: Backend) {
    parallel_guesses_from_one_address(backend, 40).await;
}

async fn a_hundred_and_fifty_parallel_guesses_pass_at_most_the_limit(backend: Backend) {
    parallel_guesses_from_one_address(backend, 150).await;
}

async fn parallel_guesses_from_sixty_addresses_pass_at_most_the_account_limit(backend: Backend) {
    let Some(s) = serve(backend, &[]).await else { return };
    s.add_owner().await;
    let s = Arc::new(s);
    let attempts = (1..=60).map(|i| (format!("127.0.1.{i}"), "wrong")).collect();
    let (unauthorized, throttled) = s.parallel_logins(attempts).await;
    assert_eq!((unauthorized, throttled), (50, 10), "the account-wide limit holds across addresses");
}

async fn the_owner_signs_in_from_a_known_address_while_strangers_are_locked(backend: Backend) {
    let Some(s) = serve(backend, &[]).await else { return };
    s.add_owner().await;
    assert_eq!(s.login_from("127.0.2.1", OWNER, PW).await, 200, "the owner's usual address");
    for i in 1..=60 {
        let status = s.login_from(&format!("127.0.3.{i}"), OWNER, "guess").await;
        assert!(matches!(status, 401 | 429), "guess {i}: {status}");
    }
    assert_eq!(s.login_from("127.0.2.2", OWNER, PW).await, 429, "a new address stays locked");
    assert_eq!(s.login_from("127.0.2.1", OWNER, PW).await, 200, "the known address is not locked out");
    // The known address still has its own counter.
    for _ in 0..5 {
        assert_eq!(s.login_from("127.0.2.1", OWNER, "typo").await, 401);
    }
    assert_eq!(s.login_from("127.0.2.1", OWNER, PW).await, 429, "its own limit applies");
}

async fn twenty_aliased_graphql_sign_ups_create_at_most_the_allowance(backend: Backend) {
    // Above the root-field cap's default (10), which would refuse the whole operation first.
    let Some(s) = serve(backend, &["--allow-create-user", "open", "--graphql-max-root-fields", "30"]).await else {
        return;
    };
    let fields: Vec<String> = (0..20)
        .map(|i| format!(r#"u{i}: createUser(email: "user{i}@example.com", password: "{STRONG}") {{ token }}"#))
        .collect();
    let query = format!("mutation {{ {} }}", fields.join(" "));
    let (status, body) = s.post_from("127.0.4.1", "/graphql/", &json!({"query": query})).await;
    assert_eq!(status, 200, "{body}");
    let users = s.state.store.list_users().await.unwrap();
    assert_eq!(users.len(), 10, "SIGNUP_THROTTLE_PER_HOUR (10) users, not 20");
    let throttled = body["errors"].as_array().map(|e| e.len()).unwrap_or(0);
    assert_eq!(throttled, 10, "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().starts_with("Request was throttled."), "{body}");
    // Every path shares the allowance; another address has its own.
    let new = json!({"email": "rest@example.com", "password": STRONG});
    assert_eq!(s.post_from("127.0.4.1", "/auth/create-user/", &new).await.0, 429);
    assert_eq!(s.post_from("127.0.4.2", "/auth/create-user/", &new).await.0, 201);
    drop(s.db);
}

async fn the_sign_up_limit_can_be_lifted(backend: Backend) {
    let Some(s) = serve(backend, &["--allow-create-user", "open", "--signup-throttle-per-hour", "0"]).await else {
        return;
    };
    for i in 0..12 {
        let new = json!({"email": format!("u{i}@example.com"), "password": STRONG});
        assert_eq!(s.post_from("127.0.4.3", "/auth/create-user/", &new).await.0, 201, "sign-up {i}");
    }
}

async fn parallel_successes_and_failures_on_one_account_never_fail_the_server(backend: Backend) {
    let Some(s) = serve(backend, &[]).await else { return };
    s.add_owner().await;
    let s = Arc::new(s);
    let tasks: Vec<_> = (1..=40)
        .map(|i| {
            let s = s.clone();
            let password = if i % 2 == 0 { PW } else { "wrong" };
            tokio::spawn(
                async move { (password, s.login_from(&format!("127.0.5.{}", i % 8 + 1), OWNER, password).await) },
            )
        })
        .collect();
    for t in tasks {
        let (password, status) = t.await.unwrap();
        let expected: &[u16] = if password == PW { &[200, 429] } else { &[401, 429] };
        assert!(expected.contains(&status), "{password}: {status}");
    }
}

const REFRESH_WITHOUT_BLACKLIST: [&str; 4] = ["--rotate-refresh-tokens", "true", "--blacklist-after-rotation", "false"];

async fn a_refresh_that_read_its_token_before_a_password_change_mints_nothing(backend: Backend) {
    let Some(app) = common::TestApp::new(backend, &REFRESH_WITHOUT_BLACKLIST).await else { return };
    let id = app.add_user(OWNER, PW, false, &[]).await;
    let (refresh, _) = app.login(OWNER, PW).await;
    // The refresh has checked its token...
    let record = auth_service::service::live_refresh(&app.state, &refresh).await.unwrap();
    // ...when the password change lands...
    let hash = app.state.hasher.hash("Another-long-pass-42".into()).await.unwrap();
    app.state.store.change_password(id, &hash).await.unwrap();
    // ...so its rotation must not record a live successor.
    let exp = chrono::Utc::now().naive_utc() + chrono::Duration::hours(1);
    let outcome = app.state.store.rotate_refresh(&record, "0123456789abcdef0123456789abcdef", exp, false).await;
    assert_eq!(outcome.unwrap(), auth_service::store::Rotation::AlreadyUsed);
    assert!(app.state.store.find_refresh("0123456789abcdef0123456789abcdef").await.unwrap().is_none());
}

/// Whatever the order a refresh and a password change land in, no token minted by the refresh
/// outlives the change. Even rounds let the refresh finish first (the case the race can hide:
/// a successor minted just before the change), odd rounds race them; the case where the refresh
/// won must have been seen and checked.
async fn refreshes_racing_password_changes_leave_no_live_token(backend: Backend) {
    let Some(app) = common::TestApp::new(backend, &REFRESH_WITHOUT_BLACKLIST).await else { return };
    let id = app.add_user(OWNER, PW, false, &[]).await;
    let app = Arc::new(app);
    let mut refresh_won = 0;
    for round in 0..10 {
        let (refresh, _) = app.login(OWNER, PW).await;
        let hash = app.state.hasher.hash(format!("Another-long-pass-{round}")).await.unwrap();
        let refresher = {
            let app = app.clone();
            let body = json!({"refresh": refresh}).to_string();
            tokio::spawn(async move { app.post("/auth/token/refresh/", &body).await })
        };
        let r = if round % 2 == 0 {
            let r = refresher.await.unwrap();
            app.state.store.change_password(id, &hash).await.unwrap();
            r
        } else {
            app.state.store.change_password(id, &hash).await.unwrap();
            refresher.await.unwrap()
        };
        if r.status == axum::http::StatusCode::OK {
            refresh_won += 1;
            // The refresh won the race: the password change then revoked its new token too.
            let new = r.json()["refresh"].as_str().unwrap().to_owned();
            let again = app.post("/auth/token/refresh/", &json!({"refresh": new}).to_string()).await;
            assert_eq!(
                again.status, 401,
                "round {round}: a token minted around a password change lives: {}",
                again.text
            );
        } else {
            assert_eq!(r.status, 401, "round {round}: a refresh that lost is refused, nothing else: {}", r.text);
        }
        // The token the round started with is dead either way.
        let old = app.post("/auth/token/refresh/", &json!({"refresh": refresh}).to_string()).await;
        assert_eq!(old.status, 401, "round {round}: the pre-change token lives: {}", old.text);
        // Set the known password back for the next login.
        let hash = app.state.hasher.hash(PW.to_owned()).await.unwrap();
        app.state.store.set_password(id, &hash).await.unwrap();
    }
    assert!(refresh_won >= 5, "the rounds where the refresh finished first ran: {refresh_won}");
}

/// Rows of `login_throttle`, and `throttled` audit events.
async fn throttle_rows(s: &Served) -> (i64, usize) {
    use auth_service::schema::login_throttle;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let db = &s.db.db;
    let counters: Result<i64, shared_user::DbError> =
        async { shared_user::with_conn!(db, |conn| Ok(login_throttle::table.count().get_result(conn).await?)) }.await;
    let filter =
        auth_service::store::audit::AuditFilter { kind: Some("throttled".into()), limit: 1000, ..Default::default() };
    (counters.unwrap(), s.state.store.list_audit(&filter).await.unwrap().len())
}

/// An address locked by spraying accounts sends 60 more guesses, each with a new email: every
/// one is refused, not one of them adds a counter row, and the audit trail gets one
/// `throttled` event for the address, not one per email.
async fn a_locked_address_writes_nothing_whatever_emails_it_sends(backend: Backend) {
    let Some(s) = serve(backend, &[]).await else { return };
    s.add_owner().await;
    for i in 0..20 {
        assert_eq!(s.login_from("127.0.0.4", &format!("spray{i}@example.com"), "guess").await, 401, "guess {i}");
    }
    assert_eq!(s.login_from("127.0.0.4", OWNER, PW).await, 429, "the address is locked");
    let (counters, throttled) = throttle_rows(&s).await;
    assert_eq!(throttled, 1, "the first refusal is recorded");
    for i in 0..60 {
        assert_eq!(s.login_from("127.0.0.4", &format!("fresh{i}@example.com"), "guess").await, 429, "guess {i}");
    }
    assert_eq!(throttle_rows(&s).await, (counters, throttled), "no counter and no event per refused email");
    // Another address is not held back by it.
    assert_eq!(s.login_from("127.0.0.5", OWNER, PW).await, 200);
    assert_eq!(s.state.hasher.checks(), 20 + 1, "no hash ran for a refused attempt");
}

/// 60 strangers lock the account; its owner signs in from their known address, which clears
/// only that address's counter: the next stranger is still refused, and the owner still is not.
async fn the_owners_login_does_not_unlock_the_account_for_strangers(backend: Backend) {
    let Some(s) = serve(backend, &[]).await else { return };
    s.add_owner().await;
    assert_eq!(s.login_from("127.0.0.2", OWNER, PW).await, 200, "the owner's usual address");
    for i in 1..=60 {
        let status = s.login_from(&format!("127.0.0.{}", 100 + i), OWNER, "guess").await;
        assert!(matches!(status, 401 | 429), "guess {i}: {status}");
    }
    assert_eq!(s.login_from("127.0.0.99", OWNER, "guess").await, 429, "strangers are locked out");
    for round in 0..3 {
        assert_eq!(s.login_from("127.0.0.2", OWNER, PW).await, 200, "round {round}: the owner signs in");
        assert_eq!(s.login_from("127.0.0.98", OWNER, "guess").await, 429, "round {round}: still locked for strangers");
        assert_eq!(s.login_from("127.0.0.97", OWNER, PW).await, 429, "round {round}: even with the password");
    }
}

both_backends!(
    parallel_successes_and_failures_on_one_account_never_fail_the_server,
    a_refresh_that_read_its_token_before_a_password_change_mints_nothing,
    refreshes_racing_password_changes_leave_no_live_token,
    forty_parallel_guesses_from_one_address_pass_at_most_the_limit,
    a_hundred_and_fifty_parallel_guesses_pass_at_most_the_limit,
    parallel_guesses_from_sixty_addresses_pass_at_most_the_account_limit,
    the_owner_signs_in_from_a_known_address_while_strangers_are_locked,
    twenty_aliased_graphql_sign_ups_create_at_most_the_allowance,
    the_sign_up_limit_can_be_lifted,
    a_locked_address_writes_nothing_whatever_emails_it_sends,
    the_owners_login_does_not_unlock_the_account_for_strangers,
);
