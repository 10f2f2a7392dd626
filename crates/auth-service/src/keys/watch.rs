//! Keeps a replica's asymmetric keys in step with the database, which other replicas and the
//! `keys` CLI write to.
//!
//! Two paces, because the two changes differ in urgency and cost:
//! - **Revocation, within a second.** Every [`REVOKED_POLL_INTERVAL`] the replica reads the
//!   revoked kids (one small query on a table of a handful of rows; no private key is read or
//!   opened) and [refuses](Keys::refuse) them at once from the key material in memory: they are
//!   no longer verified (verify, refresh, `/auth/user/`, GraphQL, Hasura all check through the
//!   same verifier) nor published in the JWKS. When that dropped a key in force, the whole set
//!   is reloaded right away too (the one time keys are decrypted), so signing moves to the
//!   successor `keys revoke` promoted.
//! - **Rotation, every `KEYS_RELOAD_INTERVAL`.** A staged key is published for at least the
//!   clients' JWKS cache time before it signs, so a slow reload is harmless.
//!
//! - **Automatic rotation, checked each second** when `KEY_ROTATION_INTERVAL` is set
//!   ([`super::rotation`]): the replica that stages or promotes a key reloads at once.
//!
//! A token check never reads the database. A replica that cannot read the database keeps its
//! keys and says so once in its logs (and in `gatehouse_revoked_key_polls_total`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::rotation::{self, Policy};
use super::{KeyEncryptionKey, load_rows};
use crate::store::Store;
use crate::tokens::Keys;

/// How often each replica reads the revoked kids: the bound on how long a revoked key is still
/// accepted by a replica that did not revoke it (plus one query).
pub const REVOKED_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The background task of one replica (see the module doc).
#[derive(Debug)]
pub struct KeyWatch {
    store: Store,
    keys: Arc<Keys>,
    kek: Option<KeyEncryptionKey>,
    reload_every: Duration,
    policy: Option<Policy>,
}

impl KeyWatch {
    /// The watch of `state`'s keys; `kek` opens the stored private keys; the whole set is
    /// reloaded every `reload_every` (`KEYS_RELOAD_INTERVAL`, at least a second).
    pub fn new(store: Store, keys: Arc<Keys>, kek: Option<KeyEncryptionKey>, reload_every: Duration) -> Self {
        let reload_every = reload_every.max(REVOKED_POLL_INTERVAL);
        Self { store, keys, kek, reload_every, policy: None }
    }

    /// Same, also taking the automatic rotation steps of `policy` when they are due.
    pub fn rotating(mut self, policy: Policy) -> Self {
        self.policy = policy.automatic().then_some(policy);
        self
    }

    /// Runs the watch until the runtime stops (or the handle is aborted).
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(self) {
        let mut tick = tokio::time::interval(REVOKED_POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The state was built from the stored rows just now.
        let mut last_reload = Instant::now();
        let mut revoked_in_force = false;
        let mut poll_failing = false;
        loop {
            tick.tick().await;
            match self.store.revoked_kids().await {
                Ok(kids) => {
                    metrics::counter!("gatehouse_revoked_key_polls_total", "outcome" => "success").increment(1);
                    if std::mem::take(&mut poll_failing) {
                        tracing::info!("revoked signing keys readable again");
                    }
                    if self.keys.refuse(kids.iter().map(String::as_str)) {
                        tracing::warn!(
                            "a signing key in use was revoked: its tokens are refused and it is unpublished"
                        );
                        revoked_in_force = true;
                    }
                }
                Err(e) => {
                    metrics::counter!("gatehouse_revoked_key_polls_total", "outcome" => "failure").increment(1);
                    if !std::mem::replace(&mut poll_failing, true) {
                        tracing::warn!(error = %e, "cannot read revoked signing keys; keeping the loaded keys");
                    }
                }
            }
            let rotated = self.rotate().await;
            if rotated || revoked_in_force || last_reload.elapsed() >= self.reload_every {
                last_reload = Instant::now();
                // After a revocation, retried each second until the successor is loaded.
                revoked_in_force &= !self.reload().await;
            }
        }
    }

    /// Takes the rotation step that is due, if any (and sets the rotation gauges); `true` when
    /// this replica changed the stored keys.
    async fn rotate(&self) -> bool {
        let Some(policy) = &self.policy else { return false };
        let rows = match self.store.signing_keys().await {
            Ok(rows) => rows,
            // The revoked-kids poll of the same tick reports a database that cannot be read.
            Err(_) => return false,
        };
        let now = shared_user::user::now_utc();
        let epoch = |at: chrono::NaiveDateTime| at.and_utc().timestamp() as f64;
        if let Some(current) = rows.iter().filter(|r| r.status == "current").max_by_key(|r| r.activated_at) {
            let since = current.activated_at.unwrap_or(current.created_at);
            metrics::gauge!("gatehouse_signing_key_age_seconds").set((now - since).num_milliseconds() as f64 / 1e3);
        }
        if let Some(at) = rotation::next_due(&rows, policy) {
            metrics::gauge!("gatehouse_signing_key_next_step_timestamp_seconds").set(epoch(at));
        }
        match rotation::step(&self.store, &rows, policy, self.kek.as_ref(), now).await {
            Ok(Some(step)) => {
                metrics::counter!("gatehouse_key_rotation_steps_total", "outcome" => "success").increment(1);
                tracing::info!(?step, "automatic key rotation");
                true
            }
            Ok(None) => false,
            Err(e) => {
                metrics::counter!("gatehouse_key_rotation_steps_total", "outcome" => "failure").increment(1);
                tracing::warn!(error = %e, "automatic key rotation failed; retrying in a second");
                false
            }
        }
    }

    /// Reloads the whole stored set (opening the private keys); `true` when it worked.
    async fn reload(&self) -> bool {
        match load_rows(&self.store, self.kek.as_ref()).await.and_then(|rows| self.keys.reload(&rows)) {
            Ok(()) => {
                metrics::counter!("gatehouse_key_reloads_total", "outcome" => "success").increment(1);
                true
            }
            Err(e) => {
                metrics::counter!("gatehouse_key_reloads_total", "outcome" => "failure").increment(1);
                tracing::warn!(error = %e, "signing key reload failed; keeping the loaded keys");
                false
            }
        }
    }
}
