//! The client crate's per-request work in local mode: `ClientState::authenticate` (bearer
//! parsing, HS256 verification or a verified-token cache hit, mirror lookup) against a SQLite
//! mirror that already holds the user, with the token cache on (a client re-sending its token)
//! and off (every token new), with both caches off (every request reads the mirror database),
//! and the signature check alone.

use std::hint::black_box;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use client_service::{ClientConfig, ClientState};
use criterion::{Criterion, criterion_group, criterion_main};
use diesel_async::SimpleAsyncConnection;
use shared_user::jsonwebtoken::{EncodingKey, Header};
use shared_user::{TokenType, Verifier, VerifySettings, with_conn};

fn client(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = loadtest::setup::signing_key();
    let state_with = |token_cache_memory: u64, mirror_cache_memory: u64| {
        let db_name = format!("mirror-{token_cache_memory}-{mirror_cache_memory}.db");
        rt.block_on(async {
            let db = loadtest::setup::sqlite(dir.path(), &db_name, 8, client_service::MIGRATIONS).await.unwrap();
            // The user as a login through the proxy would have mirrored it.
            let seed = async {
                with_conn!(&db, |conn| {
                    conn.batch_execute(
                        "INSERT INTO gatehouse_users (id, email, first_name, last_name, date_joined, is_active, \
                     is_staff, is_superuser, synced_at) VALUES (42, 'bench@example.com', 'Bench', 'User', \
                     CURRENT_TIMESTAMP, TRUE, FALSE, FALSE, CURRENT_TIMESTAMP); \
                     INSERT INTO gatehouse_access_groups (user_id, name, level) VALUES (42, 'billing', 'admin');",
                    )
                    .await?;
                    Ok::<(), shared_user::DbError>(())
                })
            };
            seed.await.unwrap();
            // Nothing listens on the discard port: the mirror must answer every lookup itself.
            let config = ClientConfig::builder("http://127.0.0.1:9")
                .local_hmac(key.as_bytes())
                .mirror_ttl(Duration::from_secs(3600))
                .token_cache_memory(token_cache_memory)
                .mirror_cache_memory(mirror_cache_memory)
                .build()
                .unwrap();
            ClientState::new(config, db).unwrap()
        })
    };
    let state = state_with(1 << 20, 1 << 20);
    let uncached = state_with(0, 1 << 20);
    let no_caches = state_with(0, 0);
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "token_type": "access", "exp": now + 3600, "iat": now,
        "jti": uuid::Uuid::new_v4().simple().to_string(), "user_id": 42
    });
    let token =
        shared_user::jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(key.as_bytes()))
            .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    for s in [&state, &uncached, &no_caches] {
        assert_eq!(rt.block_on(s.authenticate(&headers)).unwrap().id, 42);
    }

    let mut g = c.benchmark_group("client");
    g.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(30);
    g.bench_function("authenticate (token cache hit + mirror)", |b| {
        b.to_async(&rt).iter(|| async { state.authenticate(black_box(&headers)).await.unwrap() })
    });
    g.bench_function("authenticate (TOKEN_CACHE_MEMORY=0: verify + mirror)", |b| {
        b.to_async(&rt).iter(|| async { uncached.authenticate(black_box(&headers)).await.unwrap() })
    });
    let verifier = Verifier::hmac(VerifySettings::default(), key.as_bytes());
    g.bench_function("Verifier::decode only", |b| {
        b.iter(|| verifier.decode(black_box(&token), Some(TokenType::Access)).unwrap())
    });
    g.bench_function("authenticate (both caches off: verify + SQLite mirror read)", |b| {
        b.to_async(&rt).iter(|| async { no_caches.authenticate(black_box(&headers)).await.unwrap() })
    });
    g.finish();
}

criterion_group!(benches, client);
criterion_main!(benches);
