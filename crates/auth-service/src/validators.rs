//! Input validation for account endpoints: Django's `EmailValidator` (simplified) with the
//! EasyJWT manager's normalisation, and Django's four default password validators with their
//! exact messages.
//!
//! Password checks run in Django's default `AUTH_PASSWORD_VALIDATORS` order, and every problem
//! is reported (Django collects them all):
//! 1. `UserAttributeSimilarityValidator`: ported as written in Django 5: the password is
//!    lowercased; each attribute (first name, last name, email) is lowercased and split on
//!    `\W+`, and the parts plus the whole value are compared with difflib's
//!    `SequenceMatcher.quick_ratio()` (twice the multiset character overlap over the summed
//!    lengths). A ratio >= 0.7 is "too similar", except parts so short that the password is at
//!    least ten times longer (Django's `exceeds_maximum_length_ratio`). The first match wins.
//!    One addition: the email's whole local part is compared too, so `alice.smith` is refused
//!    for `alice.smith@example.com` (Django only sees `alice`, `smith` and the whole address).
//! 2. `MinimumLengthValidator` (8 characters, counted as Unicode scalar values like Python).
//! 3. `CommonPasswordValidator`, over [`COMMON_PASSWORDS`], a short embedded list (Django ships
//!    20,000 entries; ours holds the most frequent ones), compared lowercased and trimmed.
//! 4. `NumericPasswordValidator` (every character numeric).
//!
//! Text that is stored or looked up (emails, names, group names, searches) must be free of
//! characters no such field needs ([`text_problem`]): NUL (PostgreSQL cannot store it; DRF's
//! `ProhibitNullCharactersValidator` refuses it with the same message), the other control
//! characters, and the bidirectional formatting characters that make a name display as
//! something else (U+202E turns `moc.elpmaxe@eve` around). Every front end refuses such input
//! with a 400 field error through the service functions that take it. Passwords are exempt:
//! they are only hashed, never stored or shown.

/// Django's message for an invalid email.
pub const INVALID_EMAIL: &str = "Enter a valid email address.";
/// `MinimumLengthValidator` with the default 8.
pub const PASSWORD_TOO_SHORT: &str = "This password is too short. It must contain at least 8 characters.";
/// `CommonPasswordValidator`.
pub const PASSWORD_TOO_COMMON: &str = "This password is too common.";
/// `NumericPasswordValidator`.
pub const PASSWORD_ENTIRELY_NUMERIC: &str = "This password is entirely numeric.";
/// `UserAttributeSimilarityValidator` for the email.
pub const PASSWORD_SIMILAR_TO_EMAIL: &str = "The password is too similar to the email address.";
/// `UserAttributeSimilarityValidator` for the first name.
pub const PASSWORD_SIMILAR_TO_FIRST_NAME: &str = "The password is too similar to the first name.";
/// `UserAttributeSimilarityValidator` for the last name.
pub const PASSWORD_SIMILAR_TO_LAST_NAME: &str = "The password is too similar to the last name.";

/// DRF's `ProhibitNullCharactersValidator` message: a NUL in a text field.
pub const NULL_CHARACTERS: &str = "Null characters are not allowed.";
/// Another control character, or a bidirectional formatting character, in a text field.
pub const CONTROL_CHARACTERS: &str = "Control characters and bidirectional formatting characters are not allowed.";

/// Minimum password length (Django default).
pub const MIN_PASSWORD_LENGTH: usize = 8;
/// Similarity ratio from which a password is refused (Django default).
const MAX_SIMILARITY: f64 = 0.7;
/// Longest email accepted (Django's `EmailField` and `EmailValidator`).
pub const MAX_EMAIL_LENGTH: usize = 254;

/// Frequent passwords refused by the common-password check (lowercase).
pub const COMMON_PASSWORDS: &[&str] = &[
    "000000",
    "00000000",
    "1111",
    "11111",
    "111111",
    "1111111",
    "11111111",
    "112233",
    "11223344",
    "121212",
    "123123",
    "123123123",
    "123321",
    "1234",
    "12341234",
    "12345",
    "123456",
    "1234567",
    "12345678",
    "123456789",
    "1234567890",
    "1234554321",
    "123456a",
    "123abc",
    "123qwe",
    "1234qwer",
    "131313",
    "147258369",
    "159753",
    "1q2w3e",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "1qaz2wsx",
    "2000",
    "555555",
    "654321",
    "666666",
    "696969",
    "7777777",
    "777777",
    "88888888",
    "987654321",
    "aaaaaa",
    "abc123",
    "abcd1234",
    "abcdef",
    "abcdefg",
    "abcdefgh",
    "access",
    "admin",
    "admin123",
    "administrator",
    "amanda",
    "andrew",
    "apple",
    "arsenal",
    "asdf1234",
    "asdfasdf",
    "asdfgh",
    "asdfghjkl",
    "ashley",
    "austin",
    "azerty",
    "bailey",
    "baseball",
    "baseball1",
    "batman",
    "biteme",
    "buster",
    "changeme",
    "charlie",
    "charlie1",
    "cheese",
    "chelsea",
    "computer",
    "computer1",
    "corvette",
    "dallas",
    "daniel",
    "default",
    "dragon",
    "dragon1",
    "ferrari",
    "flower",
    "football",
    "football1",
    "freedom",
    "george",
    "ginger",
    "google",
    "hannah",
    "harley",
    "hello",
    "hello123",
    "hockey",
    "hunter",
    "hunter2",
    "iloveyou",
    "iloveyou1",
    "internet",
    "jennifer",
    "jessica",
    "jordan",
    "jordan23",
    "joshua",
    "killer",
    "klaster",
    "letmein",
    "letmein1",
    "liverpool",
    "login",
    "love",
    "lovely",
    "maggie",
    "master",
    "master1",
    "matrix",
    "matthew",
    "mercedes",
    "michael",
    "michael1",
    "michelle",
    "monkey",
    "monkey1",
    "mustang",
    "nicole",
    "p@ssw0rd",
    "p@ssword",
    "pass",
    "pass123",
    "passw0rd",
    "password",
    "password!",
    "password1",
    "password12",
    "password123",
    "pepper",
    "porsche",
    "princess",
    "princess1",
    "q1w2e3r4",
    "q1w2e3r4t5",
    "qazwsx",
    "qwe123",
    "qwerty",
    "qwerty1",
    "qwerty12",
    "qwerty123",
    "qwertyui",
    "qwertyuiop",
    "ranger",
    "robert",
    "samsung",
    "secret",
    "shadow",
    "shadow1",
    "soccer",
    "starwars",
    "starwars1",
    "summer",
    "sunshine",
    "sunshine1",
    "superman",
    "superman1",
    "taylor",
    "test",
    "test123",
    "thomas",
    "thunder",
    "tigger",
    "trustno1",
    "welcome",
    "welcome1",
    "welcome123",
    "whatever",
    "yankees",
    "zaq12wsx",
    "zxcvbn",
    "zxcvbnm",
];

/// A user's attributes the similarity check compares a password with.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserAttributes<'a> {
    /// First name (may be empty).
    pub first_name: &'a str,
    /// Last name (may be empty).
    pub last_name: &'a str,
    /// Email.
    pub email: &'a str,
}

/// Every problem Django's default validators find in `password`, in their order; empty when
/// the password is acceptable.
pub fn password_problems(password: &str, user: &UserAttributes<'_>) -> Vec<&'static str> {
    let mut problems = Vec::new();
    if let Some(similar) = too_similar(password, user) {
        problems.push(similar);
    }
    if password.chars().count() < MIN_PASSWORD_LENGTH {
        problems.push(PASSWORD_TOO_SHORT);
    }
    let folded = password.to_lowercase();
    if COMMON_PASSWORDS.contains(&folded.trim()) {
        problems.push(PASSWORD_TOO_COMMON);
    }
    if !password.is_empty() && password.chars().all(char::is_numeric) {
        problems.push(PASSWORD_ENTIRELY_NUMERIC);
    }
    problems
}

fn too_similar(password: &str, user: &UserAttributes<'_>) -> Option<&'static str> {
    let password: Vec<char> = password.to_lowercase().chars().collect();
    let attributes = [
        (user.first_name, PASSWORD_SIMILAR_TO_FIRST_NAME, false),
        (user.last_name, PASSWORD_SIMILAR_TO_LAST_NAME, false),
        (user.email, PASSWORD_SIMILAR_TO_EMAIL, true),
    ];
    for (value, message, is_email) in attributes {
        if value.is_empty() {
            continue;
        }
        let value = value.to_lowercase();
        let mut candidates: Vec<&str> = value.split(|c: char| !(c.is_alphanumeric() || c == '_')).collect();
        if let Some((local, _)) = value.rsplit_once('@').filter(|_| is_email) {
            candidates.push(local);
        }
        candidates.push(&value);
        for part in candidates {
            let part: Vec<char> = part.chars().collect();
            if exceeds_maximum_length_ratio(password.len(), part.len()) {
                continue;
            }
            if quick_ratio(&password, &part) >= MAX_SIMILARITY {
                return Some(message);
            }
        }
    }
    None
}

/// Django skips attribute parts far shorter than the password: they cannot reach the ratio
/// meaningfully and would only produce false positives.
fn exceeds_maximum_length_ratio(password_len: usize, value_len: usize) -> bool {
    let bound = MAX_SIMILARITY / 2.0 * password_len as f64;
    password_len >= 10 * value_len && (value_len as f64) < bound
}

/// difflib's `SequenceMatcher(a=a, b=b).quick_ratio()`: an upper bound of `ratio()` computed
/// from character counts alone.
fn quick_ratio(a: &[char], b: &[char]) -> f64 {
    let total = a.len() + b.len();
    if total == 0 {
        return 1.0;
    }
    let mut available = std::collections::HashMap::<char, usize>::new();
    for &c in b {
        *available.entry(c).or_default() += 1;
    }
    let mut matches = 0usize;
    for c in a {
        if let Some(n) = available.get_mut(c).filter(|n| **n > 0) {
            *n -= 1;
            matches += 1;
        }
    }
    2.0 * matches as f64 / total as f64
}

/// Whether `c` is a bidirectional formatting character: the embeddings and overrides
/// (U+202A-202E), the isolates (U+2066-2069), the marks (U+200E, U+200F, U+061C), or a line or
/// paragraph separator (U+2028, U+2029), which break a line where none may be.
fn is_bidi_or_separator(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
        || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Why `text` may not be stored or looked up, in DRF's words: [`NULL_CHARACTERS`] for a NUL,
/// [`CONTROL_CHARACTERS`] for another control character (U+0001-001F, U+007F-009F, tab and
/// newlines included) or a bidirectional formatting character; `None` when it is fine. The one
/// check every front end applies to emails, names, group names and searches.
pub fn text_problem(text: &str) -> Option<&'static str> {
    if text.contains('\0') {
        return Some(NULL_CHARACTERS);
    }
    text.chars().any(|c| c.is_control() || is_bidi_or_separator(c)).then_some(CONTROL_CHARACTERS)
}

/// Trims and lowercases the whole email (the EasyJWT user manager's normalisation), or `None`
/// when it is not a valid address.
pub fn normalize_email(email: &str) -> Option<String> {
    let email = email.trim().to_lowercase();
    is_valid_email(&email).then_some(email)
}

/// A simplified Django `EmailValidator`: a dot-atom local part, `@`, and a domain of
/// letter/digit/hyphen labels ending in a TLD of two or more characters (or `localhost`, or a
/// bracketed IP literal). Quoted local parts and non-ASCII domains are not accepted.
pub fn is_valid_email(email: &str) -> bool {
    if email.is_empty() || email.len() > 320 {
        return false;
    }
    let Some((local, domain)) = email.rsplit_once('@') else { return false };
    valid_local_part(local) && (domain == "localhost" || valid_domain(domain) || valid_ip_literal(domain))
}

fn valid_local_part(local: &str) -> bool {
    const SPECIALS: &str = "!#$%&'*+/=?^_`{|}~-";
    !local.is_empty()
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(|c| c.is_ascii_alphanumeric() || SPECIALS.contains(c)))
}

fn valid_domain(domain: &str) -> bool {
    let Some((labels, tld)) = domain.rsplit_once('.') else { return false };
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    labels.split('.').all(label_ok)
        && (2..=63).contains(&tld.len())
        && tld.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !tld.ends_with('-')
}

fn valid_ip_literal(domain: &str) -> bool {
    let Some(inner) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) else { return false };
    match inner.strip_prefix("IPv6:") {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => inner.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(email: &'static str) -> UserAttributes<'static> {
        UserAttributes { email, ..UserAttributes::default() }
    }

    #[test]
    fn a_strong_password_passes() {
        assert!(password_problems("correct horse battery", &user("alice@example.com")).is_empty());
    }

    #[test]
    fn short_common_and_numeric_are_reported_together_in_django_order() {
        assert_eq!(
            password_problems("12345", &user("alice@example.com")),
            vec![PASSWORD_TOO_SHORT, PASSWORD_TOO_COMMON, PASSWORD_ENTIRELY_NUMERIC]
        );
        assert_eq!(password_problems("Password", &user("a@b.io")), vec![PASSWORD_TOO_COMMON]);
        assert_eq!(password_problems(" qwerty123 ", &user("a@b.io")), vec![PASSWORD_TOO_COMMON]);
        assert_eq!(password_problems("73920461735", &user("a@b.io")), vec![PASSWORD_ENTIRELY_NUMERIC]);
        assert_eq!(password_problems("x7#", &user("a@b.io")), vec![PASSWORD_TOO_SHORT]);
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert_eq!(password_problems("ééééééé", &user("a@b.io")), vec![PASSWORD_TOO_SHORT]);
        assert!(password_problems("éééééééé", &user("a@b.io")).is_empty());
    }

    #[test]
    fn passwords_close_to_the_email_are_too_similar() {
        let u = user("alice.smith@example.com");
        assert_eq!(password_problems("alice.smith", &u), vec![PASSWORD_SIMILAR_TO_EMAIL]);
        assert_eq!(password_problems("smith.alice", &u), vec![PASSWORD_SIMILAR_TO_EMAIL]);
        assert_eq!(password_problems("alice2024", &u), vec![PASSWORD_SIMILAR_TO_EMAIL]);
        assert_eq!(password_problems("alice.smith@example", &u), vec![PASSWORD_SIMILAR_TO_EMAIL]);
        // 10/15 against "alice": just under the ratio, as in Django.
        assert!(password_problems("Alice2024!", &u).is_empty());
        assert_eq!(password_problems("examples!", &u), vec![PASSWORD_SIMILAR_TO_EMAIL]);
        assert!(password_problems("tangerine-voyage-42", &u).is_empty());
    }

    #[test]
    fn similarity_follows_difflib_quick_ratio() {
        let chars = |s: &str| s.chars().collect::<Vec<_>>();
        assert!((quick_ratio(&chars("abcd"), &chars("bcde")) - 0.75).abs() < 1e-9);
        assert!((quick_ratio(&chars("alice2024"), &chars("alice")) - 10.0 / 14.0).abs() < 1e-9);
        assert_eq!(quick_ratio(&[], &[]), 1.0);
        // "com" is far shorter than a 30-character password: skipped, like Django.
        assert!(exceeds_maximum_length_ratio(30, 3));
        assert!(!exceeds_maximum_length_ratio(9, 5));
    }

    #[test]
    fn names_are_checked_before_the_email() {
        let u = UserAttributes { first_name: "Bartholomew", last_name: "", email: "bart@example.com" };
        assert_eq!(password_problems("bartholomew1", &u), vec![PASSWORD_SIMILAR_TO_FIRST_NAME]);
        let u = UserAttributes { first_name: "", last_name: "Vandersloot", email: "x@example.com" };
        assert_eq!(password_problems("vandersloot!", &u), vec![PASSWORD_SIMILAR_TO_LAST_NAME]);
    }

    #[test]
    fn emails_are_validated_and_lowercased_whole() {
        assert_eq!(normalize_email(" New.User@Test.COM ").as_deref(), Some("new.user@test.com"));
        assert_eq!(normalize_email("o'brien+tag@mail.example.org").as_deref(), Some("o'brien+tag@mail.example.org"));
        assert_eq!(normalize_email("root@localhost").as_deref(), Some("root@localhost"));
        assert_eq!(normalize_email("a@[127.0.0.1]").as_deref(), Some("a@[127.0.0.1]"));
        for bad in [
            "",
            "plainaddress",
            "@example.com",
            "a@",
            "a@example",
            "a@example.c",
            "a..b@example.com",
            ".a@example.com",
            "a b@example.com",
            "a@-example.com",
            "a@example-.com",
            "a@exa_mple.com",
            "a@b@example.com",
            "a@[999.0.0.1]",
        ] {
            assert_eq!(normalize_email(bad), None, "{bad:?} should be refused");
        }
    }

    #[test]
    fn control_and_bidi_characters_are_refused_in_text() {
        for fine in ["alice@example.com", "Zoë O'Brien", "李 小龍", "", "a b", "emoji 🦀", "عربي"] {
            assert_eq!(text_problem(fine), None, "{fine:?}");
        }
        assert_eq!(text_problem("a\0@example.com"), Some(NULL_CHARACTERS));
        assert_eq!(text_problem("\0\u{202E}"), Some(NULL_CHARACTERS), "NUL named first");
        for bad in ["a\tb", "line\nbreak", "\r", "\u{7}", "\u{1B}[31m", "\u{7F}", "\u{85}", "\u{9F}"] {
            assert_eq!(text_problem(bad), Some(CONTROL_CHARACTERS), "{bad:?}");
        }
        for bad in ['\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}', '\u{2028}'] {
            assert_eq!(text_problem(&format!("eve{bad}moc.elpmaxe")), Some(CONTROL_CHARACTERS), "{bad:?}");
        }
    }

    #[test]
    fn the_common_list_is_lowercase_and_free_of_duplicates() {
        let mut seen = std::collections::HashSet::new();
        for p in COMMON_PASSWORDS {
            assert_eq!(*p, p.to_lowercase());
            assert!(seen.insert(*p), "duplicate {p}");
        }
    }
}
