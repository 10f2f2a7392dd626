//! A mirrored user as the memory cache keeps it: cheap enough that a million of them fit in
//! a few hundred bytes each.
//!
//! [`User`] is the type handlers get (an `Arc<User>` per request), with a `String` per field
//! and a `Vec` of groups each holding its own strings: about 450 bytes a user in the cache,
//! most of them allocations and their bookkeeping. [`CompactUser`] keeps the three strings in
//! one allocation and the access groups as a shared, immutable set: users with the same groups
//! (most users of a service share a handful of sets) point at one copy, interned by
//! [`GroupSets`]. A request that finds its user in the cache builds the `User` from it (a few
//! small allocations, well under a microsecond).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::NaiveDateTime;
use shared_user::{AccessGroup, User};

/// A mirrored user in memory, without its id (the cache's key).
#[derive(Debug, Clone)]
pub(crate) struct CompactUser {
    /// Email, first name and last name, back to back.
    text: Box<str>,
    /// The access groups, ordered by name; shared with every user holding the same set when
    /// [`GroupSets`] interned it.
    groups: Arc<[AccessGroup]>,
    date_joined: NaiveDateTime,
    last_login: Option<NaiveDateTime>,
    /// When it was fetched from the auth-service (UTC).
    pub(crate) synced_at: Option<NaiveDateTime>,
    /// Where the first name starts in `text`, and where the last name starts.
    first_at: u32,
    last_at: u32,
    /// `is_active`, `is_staff`, `is_superuser` as bits 0, 1 and 2.
    flags: u8,
    /// Whether `groups` is an interned set (its memory is counted by [`GroupSets`], not by
    /// this user).
    shared_groups: bool,
}

const ACTIVE: u8 = 1;
const STAFF: u8 = 2;
const SUPERUSER: u8 = 4;

impl CompactUser {
    /// `user` made compact, its groups interned in `sets` where there is room.
    pub(crate) fn new(user: &User, synced_at: Option<NaiveDateTime>, sets: &GroupSets) -> Self {
        let mut text = String::with_capacity(user.email.len() + user.first_name.len() + user.last_name.len());
        text.push_str(&user.email);
        text.push_str(&user.first_name);
        text.push_str(&user.last_name);
        // A string of 4 GiB is no user's: such lengths simply saturate (and the user then reads
        // back cut, which no auth-service can produce).
        let first_at = u32::try_from(user.email.len()).unwrap_or(u32::MAX);
        let last_at = u32::try_from(user.email.len() + user.first_name.len()).unwrap_or(u32::MAX);
        let (groups, shared_groups) = sets.intern(&user.access_groups);
        let flags = [(user.is_active, ACTIVE), (user.is_staff, STAFF), (user.is_superuser, SUPERUSER)]
            .into_iter()
            .filter(|(on, _)| *on)
            .fold(0, |flags, (_, bit)| flags | bit);
        Self {
            text: text.into_boxed_str(),
            groups,
            date_joined: user.date_joined,
            last_login: user.last_login,
            synced_at,
            first_at,
            last_at,
            flags,
            shared_groups,
        }
    }

    /// The user `id` as handlers see it.
    pub(crate) fn user(&self, id: i64) -> User {
        let text = &*self.text;
        let cut = |from: u32, to: u32| {
            let (from, to) = (from as usize, to as usize);
            text.get(from.min(text.len())..to.min(text.len())).unwrap_or_default().to_owned()
        };
        User {
            id,
            email: cut(0, self.first_at),
            first_name: cut(self.first_at, self.last_at),
            last_name: cut(self.last_at, u32::MAX),
            date_joined: self.date_joined,
            last_login: self.last_login,
            is_active: self.flags & ACTIVE != 0,
            is_staff: self.flags & STAFF != 0,
            is_superuser: self.flags & SUPERUSER != 0,
            access_groups: self.groups.to_vec(),
        }
    }

    /// About the bytes this entry keeps alive in the cache: itself, its key and the cache's
    /// bookkeeping, its text as the allocator rounds it, and its groups unless they are shared.
    pub(crate) fn bytes(&self) -> u32 {
        let own = std::mem::size_of::<Self>() + 8 + 32 + allocation(self.text.len());
        let groups = if self.shared_groups { 0 } else { set_bytes(&self.groups) };
        u32::try_from(own + groups).unwrap_or(u32::MAX)
    }
}

/// What an allocation of `len` bytes costs with the allocator's header and rounding (none for
/// an empty one).
fn allocation(len: usize) -> usize {
    if len == 0 { 0 } else { (len + 8).div_ceil(16).max(2) * 16 }
}

/// The memory of one set of groups: the slice (with the `Arc`'s counts) and each string.
fn set_bytes(groups: &[AccessGroup]) -> usize {
    let strings: usize =
        groups.iter().map(|g| allocation(g.name.len()) + g.level.as_ref().map_or(0, |l| allocation(l.len()))).sum();
    allocation(16 + std::mem::size_of_val(groups)) + strings
}

/// Sets of access groups interned so far take at most this much memory; past it, a new set
/// is the user's own (and weighs on the cache like the rest of the user).
const INTERNED_BYTES: usize = 4 << 20;

/// The distinct sets of access groups seen, each kept once and shared by every cached user
/// holding it. Bounded by [`INTERNED_BYTES`]; a set stays for the life of the process (sets
/// of a service's users change rarely, and the bound holds whatever they do).
#[derive(Debug, Default)]
pub(crate) struct GroupSets {
    inner: Mutex<Interned>,
}

#[derive(Debug, Default)]
struct Interned {
    sets: HashSet<Arc<[AccessGroup]>>,
    bytes: usize,
}

impl GroupSets {
    /// The shared copy of `groups` and `true`, or an unshared copy and `false` when the
    /// interned sets are full.
    pub(crate) fn intern(&self, groups: &[AccessGroup]) -> (Arc<[AccessGroup]>, bool) {
        let mut interned = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(set) = interned.sets.get(groups) {
            return (set.clone(), true);
        }
        let set: Arc<[AccessGroup]> = Arc::from(groups);
        let bytes = set_bytes(groups) + 32;
        if interned.bytes + bytes > INTERNED_BYTES {
            return (set, false);
        }
        interned.bytes += bytes;
        interned.sets.insert(set.clone());
        (set, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(groups: &[(&str, Option<&str>)]) -> User {
        User {
            id: 7,
            email: "ana@example.com".into(),
            first_name: "Ana".into(),
            last_name: "Lóp".into(),
            date_joined: chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap().naive_utc(),
            last_login: None,
            is_active: true,
            is_staff: false,
            is_superuser: true,
            access_groups: groups
                .iter()
                .map(|(name, level)| AccessGroup { name: (*name).into(), level: level.map(Into::into) })
                .collect(),
        }
    }

    #[test]
    fn a_user_comes_back_as_it_went_in() {
        let sets = GroupSets::default();
        for original in [
            user(&[]),
            user(&[("billing", Some("admin")), ("support", None)]),
            User { first_name: String::new(), last_name: String::new(), ..user(&[]) },
            User { email: String::new(), is_active: false, is_superuser: false, is_staff: true, ..user(&[]) },
        ] {
            let compact = CompactUser::new(&original, None, &sets);
            assert_eq!(compact.user(7), original);
        }
    }

    #[test]
    fn users_with_the_same_groups_share_one_copy() {
        let sets = GroupSets::default();
        let a = CompactUser::new(&user(&[("billing", Some("admin"))]), None, &sets);
        let b = CompactUser::new(&user(&[("billing", Some("admin"))]), None, &sets);
        let c = CompactUser::new(&user(&[("billing", Some("user"))]), None, &sets);
        assert!(Arc::ptr_eq(&a.groups, &b.groups));
        assert!(!Arc::ptr_eq(&a.groups, &c.groups));
        // Shared groups weigh nothing on the user; a compact user is far under the old ~450 bytes.
        assert!(a.bytes() < 160, "{}", a.bytes());
    }

    #[test]
    fn past_the_bound_a_set_is_the_users_own() {
        let sets = GroupSets::default();
        let mut unshared = None;
        for i in 0..100_000 {
            let name = format!("group-{i}");
            let compact = CompactUser::new(&user(&[(&name, None)]), None, &sets);
            if !compact.shared_groups {
                unshared = Some(compact);
                break;
            }
        }
        let compact = unshared.expect("the interned sets fill up");
        assert!(compact.bytes() > CompactUser::new(&user(&[]), None, &sets).bytes());
        assert!(sets.inner.lock().unwrap().bytes <= INTERNED_BYTES);
    }
}
