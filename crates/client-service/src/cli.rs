//! The command line form of the client crate's settings (`cli` feature): [`ClientSettings`]
//! derives its clap arguments (EASY_JWT environment names) behind this feature; this module adds
//! the warnings about settings an earlier version read.

use crate::settings::ClientSettings;

/// The command line and environment form of the client's settings: [`ClientSettings`] itself,
/// under the name earlier versions gave it. Flatten it into a clap command
/// (`#[command(flatten)]`) and call [`ClientSettings::into_config`].
pub type ClientArgs = ClientSettings;

/// Settings an earlier version read and their successors: still set, they would be ignored
/// without a word, so [`ClientSettings::into_config`] warns about each one.
pub const REPLACED_SETTINGS: [(&str, &str); 2] = [
    ("MIRROR_CACHE_SIZE", "MIRROR_CACHE_MEMORY (a memory budget such as 64MiB)"),
    ("TOKEN_CACHE_SIZE", "TOKEN_CACHE_MEMORY (a memory budget such as 16MiB)"),
];

/// One warning line for each replaced setting still set in the environment, naming its successor.
pub(crate) fn warn_replaced_settings() {
    for (old, successor) in REPLACED_SETTINGS {
        if std::env::var_os(old).is_some() {
            tracing::warn!("{old} is set but no longer read: it was replaced by {successor}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        client: ClientArgs,
    }

    #[test]
    fn the_revocation_feed_is_polled_every_two_seconds_by_default() {
        let args =
            ["client-service", "--signing-key", "8Jq1sZ0bV7xYt3Lw9Pe2Rk5Hn6Cm4Ud0", "--revocation-feed-token", "t"];
        let args = Command::try_parse_from(args).unwrap().client;
        assert_eq!(args.revocation_poll_interval, Duration::from_secs(2), "REVOCATION_POLL_INTERVAL");
        let config = args.into_config().unwrap();
        assert_eq!(config.revocation_poll_interval, Duration::from_secs(2));
        assert!(config.revocation_feed_token.is_some());
    }

    #[test]
    fn the_django_meta_form_of_the_header_name_is_accepted() {
        let args = ["client-service", "--signing-key", "8Jq1sZ0bV7xYt3Lw9Pe2Rk5Hn6Cm4Ud0", "--auth-header-name"];
        for (given, read) in [("HTTP_AUTHORIZATION", "authorization"), ("HTTP_X_AUTH", "x-auth")] {
            let parsed = Command::try_parse_from(args.iter().copied().chain([given])).unwrap();
            assert_eq!(parsed.client.into_config().unwrap().auth_header_name, read, "{given}");
        }
    }
}
