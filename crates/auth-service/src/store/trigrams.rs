//! Which part of a search term the trigram index looks up. An index of trigrams answers a
//! substring by reading the rows of each of its trigrams, and a trigram that nearly every row
//! holds (`@ex`, `exa`, `com` in a table of `@example.com` emails) costs a read of nearly every
//! row: at a million users, such a term took 20-50 ms where its rare part alone took under one.
//! So a search looks up only the run of rare trigrams around the rarest one and checks the whole
//! term on the rows that finds. How common a trigram is comes from a sample of users (at most
//! [`SAMPLE_ROWS`], ids spread over the table), taken at the first substring search of a process and
//! again when it is an hour old: nothing is read at start, and the sample's size does not
//! grow with the table.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use shared_user::{Db, DbError, with_conn};

use crate::schema::users;

/// Users read for a sample.
pub(crate) const SAMPLE_ROWS: i64 = 4096;

/// A trigram held by a smaller share of the sampled users than this is rare: the index reads
/// few rows for it.
pub(crate) const RARE: f64 = 0.02;

/// How long a sample is used before the next search takes a new one.
const SAMPLE_LIFETIME: Duration = Duration::from_secs(3600);

/// Sampled ids read per query.
const SAMPLE_CHUNK: usize = 512;

/// The trigrams of `s` (its three-character windows, as the indexes cut them).
fn trigrams(s: &str) -> impl Iterator<Item = [char; 3]> {
    let chars: Vec<char> = s.chars().collect();
    (0..chars.len().saturating_sub(2)).map(move |i| [chars[i], chars[i + 1], chars[i + 2]])
}

/// How many of a sample's users hold each trigram (in any searched column, lowercased).
#[derive(Debug, Default)]
pub(crate) struct TrigramSample {
    rows: u32,
    holders: HashMap<[char; 3], u32>,
}

impl TrigramSample {
    /// The sample of `rows`, each a user's searched columns.
    pub(crate) fn of<I, R, S>(rows: I) -> Self
    where
        I: IntoIterator<Item = R>,
        R: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut sample = TrigramSample::default();
        let mut held = HashSet::new();
        for row in rows {
            held.clear();
            for column in row {
                held.extend(trigrams(&column.as_ref().to_lowercase()));
            }
            for trigram in &held {
                *sample.holders.entry(*trigram).or_default() += 1;
            }
            sample.rows += 1;
        }
        sample
    }

    /// The share of sampled users holding `trigram` (0 for an empty sample).
    fn share(&self, trigram: &[char; 3]) -> f64 {
        match self.rows {
            0 => 0.0,
            rows => f64::from(self.holders.get(trigram).copied().unwrap_or(0)) / f64::from(rows),
        }
    }

    /// The part of `term` (lowercased, three characters or more) for the index to look up:
    /// the longest run of [`RARE`] trigrams around the rarest one. `None` when the whole term
    /// is that run (look it up whole) or when none of its trigrams is rare (its matches are
    /// common, and the whole term's lookup stops at the first page of them).
    pub(crate) fn lookup_part(&self, term: &str) -> Option<String> {
        let chars: Vec<char> = term.chars().collect();
        let shares: Vec<f64> = trigrams(term).map(|t| self.share(&t)).collect();
        let (rarest, _) =
            shares.iter().copied().enumerate().min_by(|a, b| a.1.total_cmp(&b.1)).filter(|(_, s)| *s < RARE)?;
        let (mut first, mut last) = (rarest, rarest);
        while first > 0 && shares[first - 1] < RARE {
            first -= 1;
        }
        while last + 1 < shares.len() && shares[last + 1] < RARE {
            last += 1;
        }
        if first == 0 && last + 1 == shares.len() {
            return None;
        }
        Some(chars[first..last + 3].iter().collect())
    }
}

/// Takes a store's sample when it has none or an old one; searches share it.
#[derive(Debug, Default)]
pub(crate) struct Sampler {
    current: tokio::sync::Mutex<Option<(Instant, Arc<TrigramSample>)>>,
}

impl Sampler {
    /// The current sample, taken first when missing or older than an hour (one search takes
    /// it; the others wait for it).
    pub(crate) async fn sample(&self, db: &Db) -> Result<Arc<TrigramSample>, DbError> {
        let mut current = self.current.lock().await;
        if let Some((taken, sample)) = current.as_ref()
            && taken.elapsed() < SAMPLE_LIFETIME
        {
            return Ok(sample.clone());
        }
        let sample = Arc::new(take_sample(db).await?);
        *current = Some((Instant::now(), sample.clone()));
        Ok(sample)
    }
}

/// Reads the searched columns of up to [`SAMPLE_ROWS`] users, ids spread up to the highest (a
/// deleted id is simply missing).
async fn take_sample(db: &Db) -> Result<TrigramSample, DbError> {
    let highest: Option<i64> = with_conn!(db, |conn| {
        users::table.select(diesel::dsl::max(users::id)).first(conn).await.map_err(DbError::from)
    })?;
    let Some(highest) = highest.filter(|h| *h > 0) else {
        return Ok(TrigramSample::default());
    };
    // Ids spread by the golden ratio (k·φ mod 1, scaled) rather than evenly spaced: a fixed
    // step would alias with numbered data (every 244th of `user{n}@` ends in a multiple of 4,
    // and its sample would hold no `5@e`).
    let spread = |k: i64| {
        let fraction = (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        1 + ((u128::from(fraction) * highest as u128) >> 64) as i64
    };
    let mut ids: Vec<i64> =
        if highest <= SAMPLE_ROWS { (1..=highest).collect() } else { (0..SAMPLE_ROWS).map(spread).collect() };
    ids.sort_unstable();
    ids.dedup();
    let mut rows: Vec<(String, String, String)> = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(SAMPLE_CHUNK) {
        let read: Vec<(String, String, String)> = with_conn!(db, |conn| {
            users::table
                .filter(users::id.eq_any(chunk))
                .select((users::email, users::first_name, users::last_name))
                .load(conn)
                .await
                .map_err(DbError::from)
        })?;
        rows.extend(read);
    }
    Ok(TrigramSample::of(rows.into_iter().map(|(e, f, l)| [e, f, l])))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bulk0000@example.com` .. `bulk{n-1}@example.com`, no names.
    fn bulk(n: usize) -> TrigramSample {
        TrigramSample::of((0..n).map(|i| [format!("bulk{i:05}@example.com"), String::new(), String::new()]))
    }

    #[test]
    fn the_rare_part_of_a_term_is_looked_up_without_the_common_trigrams() {
        let sample = bulk(20_000);
        assert_eq!(sample.lookup_part("12345@exam").as_deref(), Some("12345@"), "'5@e' and after are common");
        assert_eq!(sample.lookup_part("bulk12345").as_deref(), Some("12345"), "'bul', 'ulk', 'lk1' are common");
        assert_eq!(sample.lookup_part("ulk1234").as_deref(), Some("1234"), "'lk1' and 'k12' hold 1/2 and 1/20");
    }

    #[test]
    fn a_term_that_is_all_rare_or_all_common_is_looked_up_whole() {
        let sample = bulk(20_000);
        assert_eq!(sample.lookup_part("12345"), None, "every trigram rare: the term is its rare part");
        assert_eq!(sample.lookup_part("@example.com"), None, "nothing rare: matches are dense");
        assert_eq!(sample.lookup_part("xyz"), None, "one trigram");
        assert_eq!(TrigramSample::default().lookup_part("bulk12345"), None, "an empty sample: everything rare");
    }

    #[test]
    fn unseen_trigrams_are_the_rarest_and_case_is_folded() {
        let sample = bulk(1000);
        assert_eq!(sample.lookup_part("zoë@example.com").as_deref(), Some("zoë@e"));
        let named = TrigramSample::of([["a@x.org", "Élodie", "Durand"], ["b@x.org", "", ""], ["c@x.org", "", ""]]);
        assert!(named.share(&['é', 'l', 'o']) > 0.3, "names are sampled lowercased");
        assert!(named.share(&['@', 'x', '.']) > 0.99);
    }
}
