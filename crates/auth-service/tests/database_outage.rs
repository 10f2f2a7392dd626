//! Database faults under load: the test database's connections are terminated
//! (`pg_terminate_backend`) while four workers log in and rotate refresh tokens. Every answer
//! is a success or a 503 with `Retry-After`, never a 500, and a refresh that failed left its
//! token usable for the retry. (The shared PostgreSQL server itself is never restarted.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use auth_service::{AppState, app};
use diesel_async::SimpleAsyncConnection;
use serde_json::{Value, json};
use shared_user::testing::{Backend, TestDb};
use shared_user::{Db, DbError};

const PW: &str = "correct horse battery";

struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Answer {
    let resp = http.post(url).json(body).send().await.expect("transport");
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    Answer { status, retry_after, body: resp.json().await.unwrap_or(Value::Null) }
}

/// Panics on anything but `ok` or a well-formed 503; `true` when it was `ok`.
fn accept(a: &Answer, ok: u16, what: &str, unavailable: &AtomicUsize) -> bool {
    if a.status == ok {
        return true;
    }
    assert_eq!(a.status, 503, "{what}: {}", a.body);
    assert_eq!(a.body, json!({"detail": "Service temporarily unavailable, try again later."}), "{what}");
    assert!(a.retry_after.as_deref().is_some_and(|s| s.parse::<u64>().is_ok()), "{what}: Retry-After");
    unavailable.fetch_add(1, Ordering::Relaxed);
    false
}

/// Terminates every other connection to database `name`.
async fn terminate_connections(admin: &Db, name: &str) -> Result<(), DbError> {
    let Db::Postgres(pool) = admin else { unreachable!("PostgreSQL only") };
    let mut conn = pool.get().await?;
    conn.batch_execute(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    ))
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn terminated_connections_give_503_and_never_half_written_refreshes() {
    let Some(db) = TestDb::new(Backend::Postgres, "database outage", auth_service::MIGRATIONS).await else { return };
    let name = db.url.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
    let settings = common::settings(&["--rotate-refresh-tokens", "true", "--login-throttle", "false"]);
    let state = AppState::build(settings, db.db.clone()).await.expect("state");
    for i in 0..4 {
        let hash = state.hasher.hash(PW.to_owned()).await.unwrap();
        state
            .store
            .create_user(auth_service::store::NewUser {
                email: format!("w{i}@example.com"),
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (_stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(shared_user::server::serve(listener, app(state), Default::default(), async move {
        let _ = rx.await;
    }));

    let admin = Db::connect(&db.url, 1).await.expect("admin connection");
    let done = Arc::new(AtomicBool::new(false));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let refreshed = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let (base, done, unavailable, refreshed) =
                (base.clone(), done.clone(), unavailable.clone(), refreshed.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
                let login = json!({"email": format!("w{i}@example.com"), "password": PW});
                while !done.load(Ordering::Relaxed) {
                    let a = post(&http, &format!("{base}/auth/token/"), &login).await;
                    if !accept(&a, 200, "login", &unavailable) {
                        continue;
                    }
                    let mut refresh = a.body["refresh"].as_str().unwrap().to_owned();
                    for _ in 0..5 {
                        // A failed refresh must leave `refresh` usable: retry it until it works.
                        let mut tries = 0;
                        loop {
                            let a =
                                post(&http, &format!("{base}/auth/token/refresh/"), &json!({"refresh": refresh})).await;
                            if accept(&a, 200, "refresh (retry of the same token)", &unavailable) {
                                refresh = a.body["refresh"].as_str().unwrap().to_owned();
                                refreshed.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            tries += 1;
                            assert!(tries < 100, "the database never came back");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            })
        })
        .collect();
    // At least 15 rounds of terminations, and on until a request has met one (a terminated
    // idle connection is replaced unseen; one terminated mid-query fails its request).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut rounds = 0;
    while rounds < 15 || unavailable.load(Ordering::Relaxed) == 0 {
        assert!(std::time::Instant::now() < deadline, "no request met a terminated connection in {rounds} rounds");
        tokio::time::sleep(Duration::from_millis(60)).await;
        terminate_connections(&admin, &name).await.expect("terminate");
        rounds += 1;
    }
    done.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }
    assert!(refreshed.load(Ordering::Relaxed) > 0, "the load ran");
    let unavailable = unavailable.load(Ordering::Relaxed);
    // Every 503 counted here passed `accept`: the exact body and a numeric Retry-After.
    assert!(unavailable > 0, "no request met the fault: the test proved nothing");
    eprintln!("{unavailable} answers were 503 over {rounds} rounds of terminations");
}
