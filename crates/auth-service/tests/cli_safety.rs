//! The admin commands an operator runs from their own shell, where the server's environment
//! (a unit file, a container spec) is not set: `keys rotate` / `keys revoke` keep the signing
//! key's algorithm unless told otherwise and confirmed, passwords set by the CLI pass sign-up's
//! validators (or are forced, with a warning), and `--help` documents the logging settings.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;
use shared_user::both_backends;
use shared_user::testing::{Backend, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_auth-service");
const PW: &str = "s3cret pass phrase";

/// What a finished command said.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    #[track_caller]
    fn ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "stdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }

    /// Failed with exactly one non-empty line on stderr, which is returned.
    #[track_caller]
    fn failed(&self) -> &str {
        assert!(matches!(self.code, Some(c) if c != 0), "expected a failure: {self:?}");
        let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one clear line on stderr: {:?}", self.stderr);
        lines[0]
    }
}

/// Runs the binary as an operator would from a shell holding only `DATABASE_URL`, the
/// key-encryption key and `env` (no `ALGORITHM`), with `stdin` piped in.
fn run(database_url: &str, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Out {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("DATABASE_URL", database_url)
        .env("KEY_ENCRYPTION_KEY", common::KEK)
        .env("ARGON2_MEMORY_KIB", "256")
        .env("ARGON2_ITERATIONS", "1")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::task::block_in_place(|| {
        let mut child = cmd.spawn().expect("spawn auth-service");
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        child.wait_with_output().expect("wait auth-service")
    });
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `keys list` as `(kid, algorithm, status)`, newest first.
fn keys(url: &str) -> Vec<(String, String, String)> {
    let out = run(url, &["keys", "list"], &[], None);
    out.ok()
        .stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_owned();
            (s("kid"), s("algorithm"), s("status"))
        })
        .collect()
}

fn with_status<'a>(keys: &'a [(String, String, String)], status: &str) -> Vec<&'a (String, String, String)> {
    keys.iter().filter(|k| k.2 == status).collect()
}

/// A deployment whose service runs with `ALGORITHM=ES256`: its first key is ES256.
async fn es256_deployment(backend: Backend) -> Option<common::TestApp> {
    let app = common::TestApp::asymmetric(backend, &["--algorithm", "ES256"]).await?;
    let listed = keys(&app.db.url);
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].1.as_str(), listed[0].2.as_str()), ("ES256", "current"));
    Some(app)
}

async fn keys_rotate_keeps_the_signing_keys_algorithm_unless_a_change_is_confirmed(backend: Backend) {
    let Some(app) = es256_deployment(backend).await else { return };
    let url = app.db.url.clone();

    // No ALGORITHM in the operator's shell: the staged key is ES256 like the signing key.
    let said = run(&url, &["keys", "rotate"], &[], None);
    assert!(said.ok().stdout.starts_with("staged "), "{said:?}");
    let listed = keys(&url);
    assert_eq!(with_status(&listed, "next").len(), 1);
    assert_eq!(with_status(&listed, "next")[0].1, "ES256", "{listed:?}");
    assert!(run(&url, &["keys", "rotate"], &[], None).ok().stdout.contains("is now current"));
    let listed = keys(&url);
    assert_eq!(with_status(&listed, "current")[0].1, "ES256", "{listed:?}");

    // Naming the same algorithm is no change.
    assert!(run(&url, &["keys", "rotate", "--algorithm", "ES256"], &[], None).ok().stdout.starts_with("staged "));
    assert!(run(&url, &["keys", "rotate"], &[], None).ok().stdout.contains("is now current"));
    let before = keys(&url);

    // Another algorithm, by flag or by the environment, is refused with one line until confirmed,
    // and nothing is stored.
    for (args, env) in [
        (&["keys", "rotate", "--algorithm", "EdDSA"][..], &[][..]),
        (&["keys", "rotate"][..], &[("ALGORITHM", "EdDSA")][..]),
    ] {
        let out = run(&url, args, env, None);
        let line = out.failed();
        assert!(line.starts_with("auth-service: the signing key is ES256 and a EdDSA key was asked for"), "{line}");
        assert!(line.contains("accept only ES256") && line.contains("--yes"), "{line}");
    }
    assert_eq!(keys(&url), before, "a refused change stores nothing");

    // Confirmed: staged as EdDSA, and the command says what it means for pinned clients.
    let out = run(&url, &["keys", "rotate", "--algorithm", "EdDSA", "--yes"], &[], None);
    let said = &out.ok().stdout;
    assert!(
        said.starts_with("changing the signing algorithm from ES256 to EdDSA: clients that accept only ES256"),
        "{said}"
    );
    assert!(said.lines().nth(1).is_some_and(|l| l.starts_with("staged ")), "{said}");
    let listed = keys(&url);
    assert_eq!(with_status(&listed, "next")[0].1, "EdDSA", "{listed:?}");
    assert_eq!(with_status(&listed, "current")[0].1, "ES256", "{listed:?}");
}

async fn keys_revoke_makes_a_successor_of_the_revoked_keys_algorithm(backend: Backend) {
    let Some(app) = es256_deployment(backend).await else { return };
    let url = app.db.url.clone();
    let current = keys(&url)[0].0.clone();

    // Another algorithm for the successor needs --yes; nothing is revoked without it.
    let out = run(&url, &["keys", "revoke", &current, "--algorithm", "RS256"], &[], None);
    assert!(out.failed().contains("--yes"), "{out:?}");
    assert_eq!(with_status(&keys(&url), "current")[0].0, current);

    let out = run(&url, &["keys", "revoke", &current], &[], None);
    assert!(out.ok().stdout.starts_with(&format!("{current} revoked")), "{out:?}");
    let listed = keys(&url);
    let successor = with_status(&listed, "current");
    assert_eq!(successor.len(), 1, "{listed:?}");
    assert_eq!(successor[0].1, "ES256", "the successor keeps the algorithm: {listed:?}");
}

async fn cli_passwords_pass_the_sign_up_validators_or_are_forced(backend: Backend) {
    let Some(db) = TestDb::new(backend, "cli passwords", auth_service::MIGRATIONS).await else { return };
    let url = db.url.clone();
    let short = "auth-service: the password is refused: This password is too short. It must contain at \
                 least 8 characters. (--force sets it anyway)";
    let out = run(&url, &["createsuperuser", "--email", "root@example.com", "--password-stdin"], &[], Some("x\n"));
    assert_eq!(out.failed(), short);
    let out = run(&url, &["createsuperuser", "--email", "root@example.com"], &[("AUTH_SUPERUSER_PASSWORD", "x")], None);
    assert_eq!(out.failed(), short);
    let out = run(&url, &["users", "add", "--email", "bob@example.com"], &[("AUTH_USER_PASSWORD", "12345678")], None);
    assert_eq!(
        out.failed(),
        "auth-service: the password is refused: This password is too common. This password is entirely numeric. \
         (--force sets it anyway)"
    );
    let out = run(
        &url,
        &["users", "add", "--email", "carol.smith@example.com", "--password-stdin"],
        &[],
        Some("carol.smith\n"),
    );
    assert!(out.failed().contains("The password is too similar to the email address."), "{out:?}");
    let users = run(&url, &["users", "list"], &[], None);
    assert_eq!(users.ok().stdout, "", "no refused user was created");

    // Forced: created, with a warning naming the problems.
    let out =
        run(&url, &["createsuperuser", "--email", "root@example.com", "--password-stdin", "--force"], &[], Some("x\n"));
    out.ok();
    assert!(out.stderr.contains("warning") && out.stderr.contains("too short"), "{out:?}");
    // A good password needs no --force and says nothing.
    let out =
        run(&url, &["users", "add", "--email", "dave@example.com", "--password-stdin"], &[], Some(&format!("{PW}\n")));
    assert_eq!(out.ok().stderr.trim(), "");
    let users = run(&url, &["users", "list"], &[], None);
    assert_eq!(users.ok().stdout.lines().count(), 2);
    let app = common::TestApp::with_db(db, &[]).await;
    app.login("root@example.com", "x").await;
    app.login("dave@example.com", PW).await;
}

async fn help_documents_the_logging_settings(backend: Backend) {
    let Some(db) = TestDb::new(backend, "cli help", auth_service::MIGRATIONS).await else { return };
    for args in [&["--help"][..], &["serve", "--help"], &["keys", "rotate", "--help"]] {
        let out = run(&db.url, args, &[], None);
        let help = &out.ok().stdout;
        assert!(
            help.contains("[env: RUST_LOG=") && help.contains("[default: info,tower_http=warn]"),
            "{args:?}: {help}"
        );
        assert!(help.contains("[env: LOG_FORMAT=") && help.contains("json"), "{args:?}: {help}");
    }
}

both_backends!(
    keys_rotate_keeps_the_signing_keys_algorithm_unless_a_change_is_confirmed,
    keys_revoke_makes_a_successor_of_the_revoked_keys_algorithm,
    cli_passwords_pass_the_sign_up_validators_or_are_forced,
    help_documents_the_logging_settings,
);
