//! Password hashing: argon2id on a bounded blocking pool, Django `pbkdf2_sha256` hashes accepted
//! and upgraded, and a dummy hash for unknown users so both failures take comparable time.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::config::HashArgs;

/// Outcome of a password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// The password matched.
    pub ok: bool,
    /// It matched, and the stored hash should be replaced (old parameters or Django format).
    pub needs_rehash: bool,
}

/// Hashes and checks passwords off the async runtime, at most `concurrency` at once.
#[derive(Clone)]
pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    dummy: Arc<str>,
    checks: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher").field("params", &self.params).finish()
    }
}

/// Hashing failed (a bug or exhausted resources, never the user's fault).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl Hasher {
    /// A hasher with the given argon2id parameters.
    pub fn new(args: &HashArgs, concurrency: Option<usize>) -> Result<Self, String> {
        let params = Params::new(args.argon2_memory_kib, args.argon2_iterations, args.argon2_parallelism, None)
            .map_err(|e| format!("invalid argon2 parameters: {e}"))?;
        let concurrency =
            concurrency.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)).max(1);
        let mut hasher = Self {
            params,
            permits: Arc::new(Semaphore::new(concurrency)),
            dummy: Arc::from(""),
            checks: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        };
        hasher.dummy = Arc::from(hasher.hash_now("gatehouse-dummy-password").map_err(|e| e.0)?);
        Ok(hasher)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    fn hash_now(&self, password: &str) -> Result<String, HashError> {
        let salt = SaltString::generate(&mut OsRng);
        self.argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| HashError(e.to_string()))
    }

    fn check_now(&self, password: &str, stored: &str) -> Checked {
        if stored.starts_with("pbkdf2_sha256$") {
            let ok = check_django_pbkdf2(password, stored);
            return Checked { ok, needs_rehash: ok };
        }
        let Ok(parsed) = PasswordHash::new(stored) else {
            // An unusable hash (empty, Django's `!...`): spend the same time as a wrong password.
            if let Ok(dummy) = PasswordHash::new(&self.dummy) {
                let _ = Argon2::default().verify_password(password.as_bytes(), &dummy);
            }
            return Checked { ok: false, needs_rehash: false };
        };
        let ok = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        let current = parsed.algorithm.as_str() == "argon2id"
            && Params::try_from(&parsed).is_ok_and(|p| {
                p.m_cost() == self.params.m_cost()
                    && p.t_cost() == self.params.t_cost()
                    && p.p_cost() == self.params.p_cost()
            });
        Checked { ok, needs_rehash: ok && !current }
    }

    async fn blocking<R: Send + 'static>(&self, f: impl FnOnce(Hasher) -> R + Send + 'static) -> Result<R, HashError> {
        let _permit = self.permits.acquire().await.map_err(|e| HashError(e.to_string()))?;
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(me)).await.map_err(|e| HashError(e.to_string()))
    }

    /// How many password checks ran (known and unknown users alike): lets tests and metrics
    /// see that an unknown email costs the same hash work as a wrong password.
    pub fn checks(&self) -> u64 {
        self.checks.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Hashes `password` with the configured parameters (PHC string).
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.blocking(move |h| h.hash_now(&password)).await?
    }

    /// Checks `password` against `stored`; with `None` (unknown user) a dummy hash is checked
    /// so the answer takes as long as for a known user.
    pub async fn check(&self, password: String, stored: Option<String>) -> Result<Checked, HashError> {
        self.checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.blocking(move |h| match stored {
            Some(stored) => h.check_now(&password, &stored),
            None => {
                let dummy = h.dummy.clone();
                let _ = h.check_now(&password, &dummy);
                Checked { ok: false, needs_rehash: false }
            }
        })
        .await
    }
}

/// Checks a Django `pbkdf2_sha256$<iterations>$<salt>$<base64 sha256>` hash.
fn check_django_pbkdf2(password: &str, stored: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some(_), Some(iterations), Some(salt), Some(expected), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(iterations) = iterations.parse::<u32>() else { return false };
    if iterations == 0 || iterations > 10_000_000 {
        return false;
    }
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(expected) else { return false };
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut out);
    expected.len() == out.len() && bool::from(out.ct_eq(&expected[..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> HashArgs {
        HashArgs { argon2_memory_kib: 64, argon2_iterations: 1, argon2_parallelism: 1 }
    }

    #[tokio::test]
    async fn argon2_round_trip_and_rehash_on_parameter_change() {
        let h = Hasher::new(&cheap(), Some(1)).unwrap();
        let stored = h.hash("s3cret!pass".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert_eq!(
            h.check("s3cret!pass".into(), Some(stored.clone())).await.unwrap(),
            Checked { ok: true, needs_rehash: false }
        );
        assert!(!h.check("wrong".into(), Some(stored.clone())).await.unwrap().ok);
        let stronger = Hasher::new(&HashArgs { argon2_memory_kib: 128, ..cheap() }, Some(1)).unwrap();
        assert_eq!(
            stronger.check("s3cret!pass".into(), Some(stored)).await.unwrap(),
            Checked { ok: true, needs_rehash: true }
        );
        assert!(!h.check("x".into(), None).await.unwrap().ok);
    }

    #[test]
    fn django_pbkdf2_hashes_are_accepted() {
        // Django: make_password("password", salt="salt", hasher="pbkdf2_sha256") at 1 iteration
        // equals PBKDF2-HMAC-SHA256("password", "salt", 1) = 120fb6cf...
        let stored = "pbkdf2_sha256$1$salt$Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs=";
        assert!(check_django_pbkdf2("password", stored));
        assert!(!check_django_pbkdf2("passw0rd", stored));
        assert!(!check_django_pbkdf2("password", "pbkdf2_sha256$x$salt$abc"));
    }
}
