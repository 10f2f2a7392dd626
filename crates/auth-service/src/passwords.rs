//! Password hashing: argon2id on a small pool of dedicated, low-priority threads, Django
//! `pbkdf2_sha256` hashes accepted and upgraded, and a dummy hash for unknown users so both
//! failures take comparable time.
//!
//! Each hashing thread owns its argon2 working memory (`m_cost` KiB, allocated at its first hash
//! and reused), so a login costs no 19 MiB allocation, zeroing and page faults, and the process
//! keeps at most `threads × m_cost` of it. The threads run at a raised nice value under
//! `SCHED_BATCH`: when a runtime worker needs the CPU for a token check it gets it at once, while
//! hashing still uses every idle cycle (DESIGN.md: logins never stall token verification).

use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::settings::Hashing;

/// Outcome of a password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// The password matched.
    pub ok: bool,
    /// It matched, and the stored hash should be replaced (old parameters or Django format).
    pub needs_rehash: bool,
}

/// Work for a hashing thread, given that thread's reusable argon2 memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// Hashes and checks passwords on `concurrency` dedicated threads.
#[derive(Clone)]
pub struct Hasher {
    params: Params,
    /// Held by a job from submission until it finishes, so no more than `concurrency` jobs are
    /// ever queued or running, whatever happens to the requests that asked for them.
    permits: Arc<Semaphore>,
    /// The job queue; the threads end when the last `Hasher` clone is dropped.
    jobs: Sender<Job>,
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

/// Why a [`Hasher`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HasherError {
    /// The argon2id parameters are out of range.
    #[error("invalid argon2 parameters: {0}")]
    Params(argon2::Error),
    /// A hashing thread could not be started.
    #[error("cannot start a password hashing thread: {0}")]
    Thread(std::io::Error),
    /// The dummy hash (for unknown users) could not be computed.
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// Niceness of the hashing threads, in thread-priority's 0..=99 scale: 20 is nice 11 on Linux
/// (CFS weight ~9 % of a nice-0 thread).
const HASHING_PRIORITY: u8 = 20;

fn lower_priority() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let result = ThreadPriorityValue::try_from(HASHING_PRIORITY).map_err(|e| e.to_string()).and_then(|value| {
        set_thread_priority_and_policy(
            thread_native_id(),
            ThreadPriority::Crossplatform(value),
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch),
        )
        .map_err(|e| format!("{e:?}"))
    });
    if let Err(e) = result {
        tracing::debug!(error = %e, "could not lower the priority of a hashing thread; hashing at normal priority");
    }
}

fn spawn_workers(count: usize) -> Result<Sender<Job>, HasherError> {
    let (sender, receiver) = std::sync::mpsc::channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    for n in 0..count {
        let receiver: Arc<Mutex<Receiver<Job>>> = receiver.clone();
        std::thread::Builder::new()
            .name(format!("argon2-{n}"))
            .spawn(move || {
                lower_priority();
                let mut memory = Vec::new();
                loop {
                    let job = receiver.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(job) = job else { return };
                    // A panicking job must not take the thread with it: its caller gets an
                    // error (the reply is dropped) and the thread serves the next job.
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut memory))).is_err() {
                        memory = Vec::new();
                    }
                }
            })
            .map_err(HasherError::Thread)?;
    }
    Ok(sender)
}

/// `params.block_count()` blocks of `memory`, grown on first use; parameters larger than the
/// configured ones (an imported hash) get a temporary buffer instead of growing it for good.
fn with_memory<R>(
    memory: &mut Vec<Block>,
    configured: &Params,
    params: &Params,
    f: impl FnOnce(&mut [Block]) -> R,
) -> R {
    let needed = params.block_count();
    if needed > configured.block_count() {
        return f(&mut vec![Block::default(); needed]);
    }
    if memory.len() < configured.block_count() {
        *memory = vec![Block::default(); configured.block_count()];
    }
    f(&mut memory[..needed])
}

impl Hasher {
    /// A hasher with the given argon2id parameters and `concurrency` hashing threads (default:
    /// the number of cores).
    pub fn new(args: Hashing, concurrency: Option<usize>) -> Result<Self, HasherError> {
        let params = Params::new(args.argon2_memory_kib, args.argon2_iterations, args.argon2_parallelism, None)
            .map_err(HasherError::Params)?;
        let concurrency =
            concurrency.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)).max(1);
        let mut hasher = Self {
            params,
            permits: Arc::new(Semaphore::new(concurrency)),
            jobs: spawn_workers(concurrency)?,
            dummy: Arc::from(""),
            checks: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        };
        let mut memory = Vec::new();
        hasher.dummy = Arc::from(hasher.hash_now("gatehouse-dummy-password", &mut memory)?);
        Ok(hasher)
    }

    fn hash_now(&self, password: &str, memory: &mut Vec<Block>) -> Result<String, HashError> {
        let failed = |e: &dyn std::fmt::Display| HashError(e.to_string());
        let salt = SaltString::generate(&mut OsRng);
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|e| failed(&e))?;
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone());
        with_memory(memory, &self.params, &self.params, |blocks| {
            argon2.hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut out, blocks)
        })
        .map_err(|e| failed(&e))?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.params).map_err(|e| failed(&e))?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
        };
        Ok(phc.to_string())
    }

    /// Recomputes an argon2 PHC hash for `password` in `memory` and compares in constant time.
    fn argon2_matches(&self, password: &str, parsed: &PasswordHash<'_>, memory: &mut Vec<Block>) -> bool {
        let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) =
            (Algorithm::try_from(parsed.algorithm), Params::try_from(parsed), parsed.salt, parsed.hash)
        else {
            return false;
        };
        let version = match parsed.version.map(Version::try_from).transpose() {
            Ok(version) => version.unwrap_or_default(),
            Err(_) => return false,
        };
        let mut salt_bytes = [0u8; 64];
        let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else { return false };
        let mut out = [0u8; Output::MAX_LENGTH];
        let out = &mut out[..expected.len()];
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let computed = with_memory(memory, &self.params, &params, |blocks| {
            argon2.hash_password_into_with_memory(password.as_bytes(), salt_bytes, out, blocks)
        });
        computed.is_ok() && bool::from(out.ct_eq(expected.as_bytes()))
    }

    fn check_now(&self, password: &str, stored: &str, memory: &mut Vec<Block>) -> Checked {
        if stored.starts_with("pbkdf2_sha256$") {
            let ok = check_django_pbkdf2(password, stored);
            return Checked { ok, needs_rehash: ok };
        }
        let Ok(parsed) = PasswordHash::new(stored) else {
            // An unusable hash (empty, Django's `!...`): spend the same time as a wrong password.
            if let Ok(dummy) = PasswordHash::new(&self.dummy) {
                let _ = self.argon2_matches(password, &dummy, memory);
            }
            return Checked { ok: false, needs_rehash: false };
        };
        let ok = self.argon2_matches(password, &parsed, memory);
        let current = parsed.algorithm.as_str() == "argon2id"
            && Params::try_from(&parsed).is_ok_and(|p| {
                p.m_cost() == self.params.m_cost()
                    && p.t_cost() == self.params.t_cost()
                    && p.p_cost() == self.params.p_cost()
            });
        Checked { ok, needs_rehash: ok && !current }
    }

    /// Runs `f` on a hashing thread once a permit is free. A caller that goes away before its
    /// turn costs nothing: the job sees the closed reply channel and skips the work.
    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Hasher, &mut Vec<Block>) -> R + Send + 'static,
    ) -> Result<R, HashError> {
        let queued = crate::metrics::Queued::enter();
        let permit: OwnedSemaphorePermit =
            self.permits.clone().acquire_owned().await.map_err(|e| HashError(e.to_string()))?;
        drop(queued);
        let (reply, answer) = oneshot::channel();
        let me = self.clone();
        let job: Job = Box::new(move |memory| {
            let _permit = permit;
            if !reply.is_closed() {
                let started = std::time::Instant::now();
                let out = f(&me, memory);
                metrics::histogram!("gatehouse_hash_duration_seconds").record(started.elapsed().as_secs_f64());
                let _ = reply.send(out);
            }
        });
        self.jobs.send(job).map_err(|_| HashError("the hashing threads are gone".into()))?;
        answer.await.map_err(|_| HashError("a hashing thread stopped".into()))
    }

    /// How many password checks ran (known and unknown users alike): lets tests and metrics
    /// see that an unknown email costs the same hash work as a wrong password.
    pub fn checks(&self) -> u64 {
        self.checks.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Hashes `password` with the configured parameters (PHC string).
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move |h, memory| h.hash_now(&password, memory)).await?
    }

    /// Checks `password` against `stored`; with `None` (unknown user) a dummy hash is checked
    /// so the answer takes as long as for a known user.
    pub async fn check(&self, password: String, stored: Option<String>) -> Result<Checked, HashError> {
        self.checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.run(move |h, memory| match stored {
            Some(stored) => h.check_now(&password, &stored, memory),
            None => {
                let _ = h.check_now(&password, &h.dummy, memory);
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

    fn cheap() -> Hashing {
        Hashing { argon2_memory_kib: 64, argon2_iterations: 1, argon2_parallelism: 1 }
    }

    #[tokio::test]
    async fn argon2_round_trip_and_rehash_on_parameter_change() {
        let h = Hasher::new(cheap(), Some(1)).unwrap();
        let stored = h.hash("s3cret!pass".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert_eq!(
            h.check("s3cret!pass".into(), Some(stored.clone())).await.unwrap(),
            Checked { ok: true, needs_rehash: false }
        );
        assert!(!h.check("wrong".into(), Some(stored.clone())).await.unwrap().ok);
        let stronger = Hasher::new(Hashing { argon2_memory_kib: 128, ..cheap() }, Some(1)).unwrap();
        assert_eq!(
            stronger.check("s3cret!pass".into(), Some(stored)).await.unwrap(),
            Checked { ok: true, needs_rehash: true }
        );
        assert!(!h.check("x".into(), None).await.unwrap().ok);
    }

    #[tokio::test]
    async fn hashes_are_standard_phc_strings_both_ways() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let h = Hasher::new(cheap(), Some(2)).unwrap();
        // Ours verifies with the argon2 crate's own verifier...
        let ours = h.hash("s3cret!pass".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"s3cret!pass", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"s3cret!pas", &parsed).is_err());
        // ...and the crate's hashes (other parameters, argon2i, v0x10) verify with ours.
        for (algorithm, version) in [
            (Algorithm::Argon2id, Version::V0x13),
            (Algorithm::Argon2i, Version::V0x13),
            (Algorithm::Argon2d, Version::V0x10),
        ] {
            let params = Params::new(96, 2, 2, Some(24)).unwrap();
            let salt = SaltString::generate(&mut OsRng);
            let theirs =
                Argon2::new(algorithm, version, params).hash_password(b"pw-123456", &salt).unwrap().to_string();
            let checked = h.check("pw-123456".into(), Some(theirs.clone())).await.unwrap();
            assert_eq!(checked, Checked { ok: true, needs_rehash: true }, "{theirs}");
            assert!(!h.check("pw-12345".into(), Some(theirs)).await.unwrap().ok);
        }
        // A larger memory cost than configured (an imported hash) works with a temporary buffer.
        let big = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(256, 1, 1, None).unwrap())
            .hash_password(b"pw", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(h.check("pw".into(), Some(big)).await.unwrap().ok);
        // Garbage never matches, and costs a dummy check.
        for stored in [
            "",
            "!unusable",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$",
            "$argon2id$v=99$m=64,t=1,p=1$c2FsdHNhbHQ$AAAA",
        ] {
            assert!(!h.check("pw".into(), Some(stored.into())).await.unwrap().ok, "{stored}");
        }
    }

    #[tokio::test]
    async fn many_concurrent_checks_on_few_threads() {
        let h = Hasher::new(cheap(), Some(2)).unwrap();
        let stored = h.hash("pw-123456".into()).await.unwrap();
        let mut checks = tokio::task::JoinSet::new();
        for i in 0..40 {
            let (h, stored) = (h.clone(), stored.clone());
            let password = if i % 2 == 0 { "pw-123456" } else { "nope" };
            checks.spawn(async move { (i % 2 == 0, h.check(password.into(), Some(stored)).await.unwrap().ok) });
        }
        let mut finished = 0;
        while let Some(result) = checks.join_next().await {
            let (expected, ok) = result.unwrap();
            assert_eq!(ok, expected);
            finished += 1;
        }
        assert_eq!((finished, h.checks()), (40, 40));
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone_and_the_thread_keeps_serving() {
        let h = Hasher::new(cheap(), Some(1)).unwrap();
        let failed = h.run(|_, _| -> () { panic!("injected") }).await;
        assert!(failed.is_err());
        let stored = h.hash("still-works-1".into()).await.unwrap();
        assert!(h.check("still-works-1".into(), Some(stored)).await.unwrap().ok);
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
