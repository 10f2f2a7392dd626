//! The admin user search and paging as the data grows (#26): substrings of emails and names
//! found through the trigram index and kept in step with changes, short terms matching the
//! start of the email, a count that stops at 100, and pages after an id (keyset) that the
//! `next` links switch to after page 4; bad cursors are 400s. A term holding trigrams nearly
//! every user holds is looked up by its rare part and checked whole.

mod common;

use auth_service::schema::users;
use axum::http::{Method, StatusCode};
use common::*;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde_json::{Value, json};
use shared_user::testing::Backend;
use shared_user::{DbError, both_backends, with_conn};

const PW: &str = "correct horse battery";

async fn app(backend: Backend) -> Option<TestApp> {
    TestApp::new(backend, &[] as &[&str]).await
}

async fn get(app: &TestApp, path: &str, token: &str) -> Reply {
    let auth = format!("Bearer {token}");
    app.send(Method::GET, path, None, &[("authorization", auth.as_str())]).await
}

fn emails(v: &Value) -> Vec<String> {
    v["results"].as_array().expect("results").iter().map(|u| u["email"].as_str().unwrap().to_owned()).collect()
}

/// Inserts users `bulk{i:04}@example.com` for `i` in `0..n` (no password) in a few statements.
async fn add_bulk_users(app: &TestApp, n: usize) {
    let db = &app.db.db;
    let now = chrono::Utc::now().naive_utc();
    let rows: Vec<_> = (0..n)
        .map(|i| {
            (users::email.eq(format!("bulk{i:04}@example.com")), users::password.eq("!"), users::date_joined.eq(now))
        })
        .collect();
    let done: Result<(), DbError> = async {
        for chunk in rows.chunks(250) {
            with_conn!(db, |conn| {
                // One row per statement (diesel-async's SQLite has no multi-row insert), one
                // transaction per chunk.
                conn.transaction(async move |conn| {
                    for row in chunk {
                        diesel::insert_into(users::table).values(row.clone()).execute(conn).await?;
                    }
                    Ok::<(), DbError>(())
                })
                .await
            })?;
        }
        Ok(())
    }
    .await;
    done.unwrap();
}

/// Three characters or more: a substring of the email, first or last name, case-insensitive,
/// following renames and deletions (the SQLite index is a separate table kept by triggers).
async fn substrings_of_emails_and_names_are_found_and_kept_in_step(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    app.add_user("staff@example.com", PW, true, &[]).await;
    let ada = app.add_user_with_hash("ada@example.com", "!").await;
    let bob = app.add_user_with_hash("bob@lovelace.org", "!").await;
    let (_, staff) = app.login("staff@example.com", PW).await;

    let v = get(&app, "/auth/admin/users/?search=LOVE", &staff).await.json();
    assert_eq!(emails(&v), ["bob@lovelace.org"], "a substring of an email");
    assert_eq!((v["count"].clone(), v["count_exact"].clone()), (json!(1), json!(true)));

    let r = app
        .send(
            Method::PATCH,
            &format!("/auth/admin/users/{ada}/"),
            Some(r#"{"last_name": "Lovelace", "first_name": "Augusta"}"#),
            &[("authorization", &format!("Bearer {staff}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = get(&app, "/auth/admin/users/?search=lovelace", &staff).await.json();
    assert_eq!(emails(&v), ["ada@example.com", "bob@lovelace.org"], "a renamed user is found by the new name");
    assert_eq!(emails(&get(&app, "/auth/admin/users/?search=gust", &staff).await.json()), ["ada@example.com"]);

    let r = app
        .send(
            Method::PATCH,
            &format!("/auth/admin/users/{ada}/"),
            Some(r#"{"first_name": "Ada"}"#),
            &[("authorization", &format!("Bearer {staff}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = get(&app, "/auth/admin/users/?search=gust", &staff).await.json();
    assert_eq!((emails(&v).len(), v["count"].clone()), (0, json!(0)), "no longer by the old name");

    app.delete_user(bob).await;
    assert_eq!(emails(&get(&app, "/auth/admin/users/?search=lovelace", &staff).await.json()), ["ada@example.com"]);
    let v = get(&app, "/auth/admin/users/?search=%22a%22%20OR%20b", &staff).await.json();
    assert_eq!(v["count"], json!(0), "quotes and operators are literal text");
}

/// One or two characters: the start of the email only (no trigram holds them).
async fn short_terms_match_the_start_of_the_email(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    app.add_user("staff@example.com", PW, true, &[]).await;
    for email in ["ab@example.com", "Abe@example.com", "cab@example.com", "b@example.com"] {
        app.add_user_with_hash(email, "!").await;
    }
    let (_, staff) = app.login("staff@example.com", PW).await;
    let v = get(&app, "/auth/admin/users/?search=AB", &staff).await.json();
    let mut found = emails(&v);
    found.sort();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.iter().all(|e| e.to_lowercase().starts_with("ab")), "{found:?}");
    assert_eq!(emails(&get(&app, "/auth/admin/users/?search=b", &staff).await.json()), ["b@example.com"]);
    assert_eq!(get(&app, "/auth/admin/users/?search=%25", &staff).await.json()["count"], json!(0), "% is literal");
}

/// More than 100 matches: `count` stops at 100 with `count_exact` false; `next` links pages
/// by number up to page 4 and then after the last id; following the links visits every user
/// once; a bad cursor is a 400.
async fn deep_pages_follow_the_last_id(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    app.add_user("staff@example.com", PW, true, &[]).await;
    add_bulk_users(&app, 1030).await;
    let (_, staff) = app.login("staff@example.com", PW).await;

    let v = get(&app, "/auth/admin/users/", &staff).await.json();
    assert_eq!((v["count"].clone(), v["count_exact"].clone()), (json!(100), json!(false)));
    assert_eq!(v["next"], json!("/auth/admin/users/?page=2"));

    let v = get(&app, "/auth/admin/users/?page=4&search=bulk", &staff).await.json();
    let last = v["results"][24]["id"].as_i64().expect("25 on page 4");
    assert_eq!(v["next"], json!(format!("/auth/admin/users/?after={last}&search=bulk")));
    assert_eq!(v["previous"], json!("/auth/admin/users/?page=3&search=bulk"));

    let mut seen = Vec::new();
    let mut next = Some("/auth/admin/users/?search=bulk".to_owned());
    while let Some(path) = next {
        let r = get(&app, &path, &staff).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        let v = r.json();
        seen.extend(emails(&v));
        next = v["next"].as_str().map(str::to_owned);
        if path.contains("after=") {
            assert_eq!(v["previous"], Value::Null, "a page after an id links forward only");
        }
    }
    let expected: Vec<String> = (0..1030).map(|i| format!("bulk{i:04}@example.com")).collect();
    assert_eq!(seen, expected, "every user once, in id order");

    let r = get(&app, &format!("/auth/admin/users/?after={}", i64::MAX), &staff).await;
    assert_eq!((r.status, emails(&r.json()).len(), r.json()["next"].clone()), (StatusCode::OK, 0, Value::Null));
    for bad in ["abc", "-1", "", "1.5"] {
        let r = get(&app, &format!("/auth/admin/users/?after={bad}"), &staff).await;
        assert_json(&r, StatusCode::BAD_REQUEST, r#"{"after":["A valid integer is required."]}"#);
    }
    let r = get(&app, "/auth/admin/users/?page=2&after=5", &staff).await;
    assert_json(&r, StatusCode::BAD_REQUEST, r#"{"after":["Give either page or after, not both."]}"#);
    app.add_user("plain@example.com", PW, false, &[]).await;
    let (_, plain) = app.login("plain@example.com", PW).await;
    assert_eq!(
        get(&app, "/auth/admin/users/?after=abc", &plain).await.status,
        StatusCode::FORBIDDEN,
        "permission first"
    );
}

/// A term with trigrams nearly every user holds (`@ex`, `exa`, ...) besides rare ones: the index
/// looks up the rare part, and only users holding the whole term are listed (wildcards in it
/// literal, case folded), as when the whole term is looked up.
async fn a_term_with_common_trigrams_finds_exactly_its_matches(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    app.add_user("staff@example.com", PW, true, &[]).await;
    add_bulk_users(&app, 1030).await;
    for email in ["b_c@example.com", "bxc@example.com", "b_c@example.org"] {
        app.add_user_with_hash(email, "!").await;
    }
    let (_, staff) = app.login("staff@example.com", PW).await;

    let v = get(&app, "/auth/admin/users/?search=K1017%40EXAM", &staff).await.json();
    assert_eq!(emails(&v), ["bulk1017@example.com"], "the rare part '1017@' and then the whole term");
    assert_eq!((v["count"].clone(), v["count_exact"].clone()), (json!(1), json!(true)));
    let v = get(&app, "/auth/admin/users/?search=b_c%40example.co", &staff).await.json();
    assert_eq!(emails(&v), ["b_c@example.com"], "_ is literal in the part and in the whole term");
    let v = get(&app, "/auth/admin/users/?search=7%40example.com", &staff).await.json();
    assert_eq!(v["count"], json!(100), "a term of common trigrams only: counted to the cap");
    assert_eq!(emails(&v)[0], "bulk0007@example.com");
    let v = get(&app, "/auth/admin/users/?search=k099", &staff).await.json();
    let expected: Vec<String> = (990..1000).map(|i| format!("bulk{i:04}@example.com")).collect();
    assert_eq!(emails(&v), expected, "eleven users hold the part '099', ten the whole term");
}

both_backends!(
    a_term_with_common_trigrams_finds_exactly_its_matches,
    substrings_of_emails_and_names_are_found_and_kept_in_step,
    short_terms_match_the_start_of_the_email,
    deep_pages_follow_the_last_id,
);
