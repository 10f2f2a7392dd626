//! Automatic rotation of the asymmetric signing keys (`KEY_ROTATION_INTERVAL`, default 30 days).
//!
//! Every replica's [`KeyWatch`](super::watch::KeyWatch) checks the stored keys each second
//! ([`step`]), and the database decides who acts:
//! 1. **Stage.** Once the signing (`current`) key has signed for the interval, a successor of
//!    the same algorithm is stored as `next`: published at once (by this replica now, by the
//!    others at their next reload), not signing. The database holds at most one `next` key (a
//!    unique index), so when every replica finds the key due at once exactly one insert wins.
//! 2. **Promote.** Once the staged key has been stored for the publication lead
//!    ([`Policy::lead`]: `KEYS_RELOAD_INTERVAL` for every replica to publish it, `JWKS_MAX_AGE`
//!    for every verifier's cached JWKS to hold it, `LEEWAY`, and a second), it becomes `current`
//!    and the old key `retired`, in one conditional transaction that only one replica can win.
//! 3. **Unpublish.** A retired key stays in the JWKS, and verifies, until every token it signed
//!    has expired (`REFRESH_TOKEN_LIFETIME` + `LEEWAY` after it stopped signing); the hourly
//!    housekeeping then deletes it.
//!
//! Each step is audited as `key_rotated`. A key staged by hand (`keys rotate`) is promoted the
//! same way once its lead has passed; with `KEY_ROTATION_INTERVAL=0` nothing is automatic.

use std::time::Duration;

use chrono::NaiveDateTime;
use shared_user::jsonwebtoken::Algorithm;

use super::{KeyEncryptionKey, KeyError, new_kid, to_store};
use crate::settings::Settings;
use crate::store::Store;
use crate::store::signing_keys::{KeyStep, SigningKeyRow};
use crate::tokens::generate_private_pem;

/// When keys move on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long a key signs before its successor is staged; zero: never automatically.
    pub interval: Duration,
    /// How long a staged key is published before it signs.
    pub lead: Duration,
    /// How long a retired key stays published (and verifies) after it stopped signing: the
    /// refresh lifetime and the leeway, plus `KEYS_RELOAD_INTERVAL` for the replicas that go on
    /// signing with it until their next reload shows them the promotion.
    pub keep_retired: Duration,
}

impl Policy {
    /// The policy of `settings`.
    pub fn of(settings: &Settings) -> Self {
        Self::new(
            settings.key_rotation_interval,
            settings.keys_reload_interval,
            settings.jwks_max_age,
            settings.leeway,
            settings.refresh_token_lifetime,
        )
    }

    /// The policy of these settings: `KEY_ROTATION_INTERVAL`, `KEYS_RELOAD_INTERVAL`,
    /// `JWKS_MAX_AGE`, `LEEWAY` (seconds) and `REFRESH_TOKEN_LIFETIME`.
    pub fn new(interval: Duration, reload: Duration, jwks_max_age: Duration, leeway: u64, refresh: Duration) -> Self {
        Self {
            interval,
            lead: crate::settings::publication_lead(reload, jwks_max_age, leeway),
            // A replica signs with a retired key until its next reload shows it the promotion.
            keep_retired: refresh + Duration::from_secs(leeway) + reload,
        }
    }

    /// Whether keys rotate by themselves.
    pub fn automatic(&self) -> bool {
        !self.interval.is_zero()
    }
}

fn after(at: NaiveDateTime, d: Duration) -> NaiveDateTime {
    at + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(365 * 100))
}

/// The next thing that happens to `row` by itself, and when: `"stage_successor"` (the signing
/// key), `"sign"` (a staged key), `"unpublish"` (a retired key); none for a revoked key, or
/// for the first two when rotation is manual.
pub fn next_step(row: &SigningKeyRow, policy: &Policy) -> Option<(&'static str, NaiveDateTime)> {
    match row.status.as_str() {
        "current" if policy.automatic() => {
            Some(("stage_successor", after(row.activated_at.unwrap_or(row.created_at), policy.interval)))
        }
        "next" if policy.automatic() => Some(("sign", after(row.created_at, policy.lead))),
        "retired" => row.retired_at.map(|at| ("unpublish", after(at, policy.keep_retired))),
        _ => None,
    }
}

/// The step due now for `rows`, if any.
fn due(rows: &[SigningKeyRow], policy: &Policy, now: NaiveDateTime) -> Option<Due> {
    if !policy.automatic() {
        return None;
    }
    if let Some(next) = rows.iter().find(|r| r.status == "next") {
        let (_, at) = next_step(next, policy)?;
        return (at <= now).then(|| Due::Promote(next.kid.clone()));
    }
    let current = rows.iter().filter(|r| r.status == "current").max_by_key(|r| r.activated_at)?;
    let (_, at) = next_step(current, policy)?;
    let alg = shared_user::settings::parse_algorithm(&current.algorithm).ok()?;
    (at <= now).then_some(Due::Stage(alg))
}

#[derive(Debug, PartialEq, Eq)]
enum Due {
    Stage(Algorithm),
    Promote(String),
}

/// When the next automatic step of `rows` is due (for the `gatehouse_signing_key_next_step`
/// gauge): the staged key's promotion, else the signing key's successor.
pub fn next_due(rows: &[SigningKeyRow], policy: &Policy) -> Option<NaiveDateTime> {
    let next = rows.iter().find(|r| r.status == "next").or_else(|| rows.iter().find(|r| r.status == "current"))?;
    next_step(next, policy).map(|(_, at)| at)
}

/// Checks `rows` (the stored keys) against `policy` at `now` and takes the step that is due:
/// what this replica did, `None` when nothing was due or another replica took the step first.
pub async fn step(
    store: &Store,
    rows: &[SigningKeyRow],
    policy: &Policy,
    kek: Option<&KeyEncryptionKey>,
    now: NaiveDateTime,
) -> Result<Option<KeyStep>, KeyError> {
    match due(rows, policy, now) {
        None => Ok(None),
        Some(Due::Stage(alg)) => {
            let kid = new_kid();
            let stored = to_store(kek, &kid, &generate_private_pem(alg)?)?;
            match store.add_signing_key(&kid, &format!("{alg:?}"), &stored, "next").await {
                Ok(()) => Ok(Some(KeyStep::Staged(kid))),
                // Another replica staged one meanwhile (the database holds one `next` key).
                Err(shared_user::DbError::Unique) => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
        Some(Due::Promote(kid)) => Ok(store.promote_staged_key(&kid).await?.then_some(KeyStep::Promoted(kid))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kid: &str, status: &str, created: i64, activated: Option<i64>, retired: Option<i64>) -> SigningKeyRow {
        let at = |s: i64| chrono::DateTime::from_timestamp(s, 0).unwrap().naive_utc();
        SigningKeyRow {
            kid: kid.into(),
            algorithm: "EdDSA".into(),
            private_pem: String::new(),
            status: status.into(),
            created_at: at(created),
            activated_at: activated.map(at),
            retired_at: retired.map(at),
        }
    }

    fn at(s: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(s, 0).unwrap().naive_utc()
    }

    const POLICY: Policy = Policy {
        interval: Duration::from_secs(100),
        lead: Duration::from_secs(10),
        keep_retired: Duration::from_secs(50),
    };

    #[test]
    fn the_signing_key_gets_a_successor_when_it_is_due_and_the_successor_signs_after_the_lead() {
        let signing = [row("a", "current", 0, Some(0), None)];
        assert_eq!(due(&signing, &POLICY, at(99)), None);
        assert_eq!(due(&signing, &POLICY, at(100)), Some(Due::Stage(Algorithm::EdDSA)));
        let staged = [row("b", "next", 100, None, None), row("a", "current", 0, Some(0), None)];
        assert_eq!(due(&staged, &POLICY, at(109)), None, "published for less than the lead");
        assert_eq!(due(&staged, &POLICY, at(110)), Some(Due::Promote("b".into())));
        let manual = Policy { interval: Duration::ZERO, ..POLICY };
        assert_eq!(due(&staged, &manual, at(10_000)), None, "0: manual only");
    }

    #[test]
    fn every_key_says_what_happens_next() {
        assert_eq!(next_step(&row("a", "current", 0, Some(5), None), &POLICY), Some(("stage_successor", at(105))));
        assert_eq!(next_step(&row("b", "next", 100, None, None), &POLICY), Some(("sign", at(110))));
        assert_eq!(next_step(&row("c", "retired", 0, Some(0), Some(110)), &POLICY), Some(("unpublish", at(160))));
        assert_eq!(next_step(&row("d", "revoked", 0, Some(0), Some(110)), &POLICY), None);
    }
}
