//! One password hash at the configured parameters (the auth-service's defaults: OWASP argon2id
//! m=19456 KiB, t=2, p=1), with the argon2 crate directly and through the service's `Hasher`
//! (blocking pool + semaphore), which is what bounds login throughput.

use std::hint::black_box;
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use auth_service::passwords::Hasher;
use criterion::{Criterion, criterion_group, criterion_main};

fn argon2(c: &mut Criterion) {
    let settings = loadtest::setup::auth_settings(&loadtest::setup::signing_key());
    let args = settings.hashing;
    let params = Params::new(args.argon2_memory_kib, args.argon2_iterations, args.argon2_parallelism, None).unwrap();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = SaltString::generate(&mut OsRng);
    let password = "correct horse battery staple";

    let mut g = c.benchmark_group("argon2");
    g.measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1)).sample_size(10);
    let name = format!(
        "argon2id hash m={} t={} p={}",
        args.argon2_memory_kib, args.argon2_iterations, args.argon2_parallelism
    );
    g.bench_function(name, |b| b.iter(|| argon.hash_password(black_box(password.as_bytes()), &salt).unwrap()));

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let hasher = Hasher::new(args, None).unwrap();
    let stored = rt.block_on(hasher.hash(password.to_owned())).unwrap();
    g.bench_function("Hasher::check (login path)", |b| {
        b.to_async(&rt).iter(|| async {
            let checked = hasher.check(password.to_owned(), Some(stored.clone())).await.unwrap();
            assert!(checked.ok);
        })
    });
    g.finish();
}

criterion_group!(benches, argon2);
criterion_main!(benches);
