//! The user as it travels on the wire (`/auth/user/`, `/auth/users/{id}/`) and as both sides store it.

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One access group of a user ("extra data"): a name such as `billing` and an optional level
/// such as `admin` or `3`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessGroup {
    /// Group name, unique per user.
    pub name: String,
    /// Optional level or user type within the group.
    #[serde(default)]
    pub level: Option<String>,
}

/// Why [`AccessGroup::parse`] refused a spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupSpecError {
    /// Nothing before the `:` (or nothing at all).
    #[error("invalid group {spec:?}: the name is empty")]
    EmptyName {
        /// The spec as given.
        spec: String,
    },
}

/// An access group as a row reads it: name and level.
pub type GroupRow = (String, Option<String>);

impl AccessGroup {
    /// A record and its groups from the rows of a left join of the record with its access
    /// groups: one row per group, a record without groups being one row without a group; `None`
    /// for no rows. Groups keep the rows' order.
    pub fn fold_joined<R>(rows: Vec<(R, Option<GroupRow>)>) -> Option<(R, Vec<AccessGroup>)> {
        let mut rows = rows.into_iter();
        let (record, first) = rows.next()?;
        let groups = first
            .into_iter()
            .chain(rows.filter_map(|(_, group)| group))
            .map(|(name, level)| AccessGroup { name, level })
            .collect();
        Some((record, groups))
    }

    /// Parses the command line form `NAME` or `NAME:LEVEL`.
    pub fn parse(spec: &str) -> Result<Self, GroupSpecError> {
        let (name, level) = match spec.split_once(':') {
            Some((name, level)) => (name.trim(), Some(level.trim())),
            None => (spec.trim(), None),
        };
        if name.is_empty() {
            return Err(GroupSpecError::EmptyName { spec: spec.to_owned() });
        }
        let level = level.filter(|l| !l.is_empty()).map(str::to_owned);
        Ok(Self { name: name.to_owned(), level })
    }
}

/// A user without its password: what `/auth/user/` answers and what a client mirror holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// Integer id, identical in the `user_id` claim, on the auth-service and in every mirror.
    pub id: i64,
    /// Email, the username.
    pub email: String,
    /// First name (may be empty).
    pub first_name: String,
    /// Last name (may be empty).
    pub last_name: String,
    /// When the account was created (UTC).
    pub date_joined: NaiveDateTime,
    /// Last successful login (UTC), if any.
    pub last_login: Option<NaiveDateTime>,
    /// Inactive users cannot log in, refresh or authenticate.
    pub is_active: bool,
    /// Staff may read any user on the legacy `/auth/users/{id}/` route.
    pub is_staff: bool,
    /// Superuser flag, mirrored as is.
    pub is_superuser: bool,
    /// Access groups, ordered by name.
    pub access_groups: Vec<AccessGroup>,
}

impl User {
    /// Whether the user is in `group` (and, when `level` is given, at exactly that level).
    pub fn has_group(&self, group: &str, level: Option<&str>) -> bool {
        self.access_groups.iter().any(|g| g.name == group && level.is_none_or(|l| g.level.as_deref() == Some(l)))
    }
}

/// Current UTC time truncated to microseconds (what PostgreSQL keeps and DRF prints).
pub fn now_utc() -> NaiveDateTime {
    let now = Utc::now().naive_utc();
    now.with_nanosecond(now.nanosecond() / 1_000 * 1_000).unwrap_or(now)
}

/// Formats a UTC time as DRF does: `2026-11-22T19:16:07.250330Z`, no fraction when it is zero.
pub fn format_datetime(t: &NaiveDateTime) -> String {
    if t.nanosecond() / 1_000 == 0 {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }
}

/// A `date_joined` / `last_login` that is neither RFC 3339 nor a naive ISO 8601 time.
#[derive(Debug, thiserror::Error)]
#[error("invalid datetime {text:?}: {source}")]
struct DateTimeError {
    text: String,
    source: chrono::ParseError,
}

fn parse_datetime(s: &str) -> Result<NaiveDateTime, DateTimeError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc).naive_utc())
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
        .map_err(|source| DateTimeError { text: s.to_owned(), source })
}

impl Serialize for User {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Legacy<'a> {
            user_type: &'a str,
        }
        let mut map = serializer.serialize_map(Some(11))?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("email", &self.email)?;
        map.serialize_entry("first_name", &self.first_name)?;
        map.serialize_entry("last_name", &self.last_name)?;
        map.serialize_entry("date_joined", &format_datetime(&self.date_joined))?;
        map.serialize_entry("last_login", &self.last_login.as_ref().map(format_datetime))?;
        map.serialize_entry("is_active", &self.is_active)?;
        map.serialize_entry("is_staff", &self.is_staff)?;
        map.serialize_entry("is_superuser", &self.is_superuser)?;
        // The EasyJWT README's one-to-one "accessgroup" shape, from the first group.
        let legacy = self.access_groups.first().map(|g| Legacy { user_type: g.level.as_deref().unwrap_or(&g.name) });
        map.serialize_entry("accessgroup", &legacy)?;
        map.serialize_entry("access_groups", &self.access_groups)?;
        map.end()
    }
}

#[derive(Deserialize)]
struct UserWire {
    id: IdWire,
    email: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    date_joined: Option<String>,
    #[serde(default)]
    last_login: Option<String>,
    #[serde(default = "yes")]
    is_active: bool,
    #[serde(default)]
    is_staff: bool,
    #[serde(default)]
    is_superuser: bool,
    #[serde(default)]
    access_groups: Option<Vec<AccessGroup>>,
    #[serde(default)]
    accessgroup: Option<LegacyGroupWire>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IdWire {
    Number(i64),
    Text(String),
}

#[derive(Deserialize)]
struct LegacyGroupWire {
    user_type: Option<String>,
}

fn yes() -> bool {
    true
}

impl<'de> Deserialize<'de> for User {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let w = UserWire::deserialize(deserializer)?;
        let id = match w.id {
            IdWire::Number(n) => n,
            IdWire::Text(s) => s.parse().map_err(|_| D::Error::custom("id is not an integer"))?,
        };
        let date_joined = match w.date_joined.as_deref() {
            Some(s) => parse_datetime(s).map_err(D::Error::custom)?,
            None => now_utc(),
        };
        let last_login = w.last_login.as_deref().map(parse_datetime).transpose().map_err(D::Error::custom)?;
        // A Django EasyJWT upstream sends only the one-to-one shape; null means "no group".
        let mut access_groups = match (w.access_groups, w.accessgroup) {
            (Some(groups), _) => groups,
            (None, Some(LegacyGroupWire { user_type: Some(t) })) => {
                vec![AccessGroup { name: t, level: None }]
            }
            (None, _) => Vec::new(),
        };
        access_groups.sort_by(|a, b| a.name.cmp(&b.name));
        access_groups.dedup_by(|a, b| a.name == b.name);
        Ok(User {
            id,
            email: w.email,
            first_name: w.first_name,
            last_name: w.last_name,
            date_joined,
            last_login,
            is_active: w.is_active,
            is_staff: w.is_staff,
            is_superuser: w.is_superuser,
            access_groups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_rows_fold_into_a_record_and_its_groups() {
        let group = |name: &str, level: Option<&str>| Some((name.to_owned(), level.map(str::to_owned)));
        let rows = vec![(7, group("admin", None)), (7, group("staff", Some("3")))];
        let (record, groups) = AccessGroup::fold_joined(rows).unwrap();
        assert_eq!(record, 7);
        assert_eq!(
            groups,
            [
                AccessGroup { name: "admin".into(), level: None },
                AccessGroup { name: "staff".into(), level: Some("3".into()) },
            ]
        );
        assert_eq!(AccessGroup::fold_joined(vec![(7, None)]), Some((7, Vec::new())), "a record without groups");
        assert_eq!(AccessGroup::fold_joined(Vec::<(i32, _)>::new()), None, "no record");
    }

    fn sample() -> User {
        User {
            id: 2,
            email: "user@test.com".into(),
            first_name: "Test".into(),
            last_name: "User".into(),
            date_joined: parse_datetime("2026-11-22T19:16:07.250330Z").unwrap(),
            last_login: None,
            is_active: true,
            is_staff: false,
            is_superuser: false,
            access_groups: vec![AccessGroup { name: "billing".into(), level: Some("admin".into()) }],
        }
    }

    #[test]
    fn user_json_has_django_keys_in_order_and_round_trips() {
        let json = serde_json::to_string(&sample()).unwrap();
        assert_eq!(
            json,
            r#"{"id":2,"email":"user@test.com","first_name":"Test","last_name":"User","date_joined":"2026-11-22T19:16:07.250330Z","last_login":null,"is_active":true,"is_staff":false,"is_superuser":false,"accessgroup":{"user_type":"admin"},"access_groups":[{"name":"billing","level":"admin"}]}"#
        );
        let back: User = serde_json::from_str(&json).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn easyjwt_accessgroup_shape_is_understood_and_null_means_no_group() {
        let u: User = serde_json::from_str(
            r#"{"id":1,"email":"a@x.io","first_name":"A","last_name":"","accessgroup":{"user_type":"admin"}}"#,
        )
        .unwrap();
        assert_eq!(u.access_groups, vec![AccessGroup { name: "admin".into(), level: None }]);
        let u: User = serde_json::from_str(r#"{"id":"1","email":"a@x.io","accessgroup":null}"#).unwrap();
        assert!(u.access_groups.is_empty());
    }

    #[test]
    fn whole_second_times_print_without_fraction() {
        let t = parse_datetime("2026-11-22T19:16:07Z").unwrap();
        assert_eq!(format_datetime(&t), "2026-11-22T19:16:07Z");
    }

    #[test]
    fn group_specs_parse() {
        assert_eq!(AccessGroup::parse("ops:3").unwrap().level.as_deref(), Some("3"));
        assert_eq!(AccessGroup::parse("ops").unwrap().level, None);
        assert!(AccessGroup::parse(":3").is_err());
    }

    #[test]
    fn a_group_without_a_name_is_refused_in_the_same_words() {
        let e = AccessGroup::parse(" :3").unwrap_err();
        assert_eq!(e, GroupSpecError::EmptyName { spec: " :3".into() });
        assert_eq!(e.to_string(), r#"invalid group " :3": the name is empty"#);
    }

    #[test]
    fn a_bad_datetime_names_the_text() {
        let e = serde_json::from_str::<User>(r#"{"id":1,"email":"a@x.io","date_joined":"yesterday"}"#).unwrap_err();
        assert!(e.to_string().starts_with(r#"invalid datetime "yesterday": "#), "{e}");
    }
}
