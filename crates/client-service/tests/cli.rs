//! The `client-service` binary refuses weak HMAC secrets, bad listener settings and an
//! open-file limit too low for MAX_CONNECTIONS at start, with one line that never repeats the
//! secret, before it touches its database; its listener limits connections per address and
//! closes connections that send no request.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use shared_user::testing::net::{connect_from, read_to_close};

/// How long a test waits for the server to close a connection it should close.
const CLOSE_WITHIN: Duration = Duration::from_secs(30);

const BIN: &str = env!("CARGO_BIN_EXE_client-service");

/// Runs `client-service serve` with `env`; returns the exit code and the non-empty stderr lines.
fn serve(env: &[(&str, &str)]) -> (Option<i32>, Vec<String>, tempfile::TempDir) {
    serve_with(Command::new(BIN), env)
}

/// `client-service ARGS` run by `sh` after `ulimit OPTION` (`-n 256`: soft and hard open-file limits).
fn under_ulimit(option: &str) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", &format!("ulimit {option} && exec \"$0\" \"$@\""), BIN]);
    cmd
}

/// Runs `cmd serve` with `env`; returns the exit code and the non-empty stderr lines.
fn serve_with(mut cmd: Command, env: &[(&str, &str)]) -> (Option<i32>, Vec<String>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("client.db");
    let out = cmd
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env_clear()
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("REMOTE_AUTH_SERVICE_URL", "http://127.0.0.1:9")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run client-service");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = stderr.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect();
    (out.status.code(), lines, dir)
}

#[test]
fn weak_signing_keys_are_refused_at_start() {
    for (key, why) in [
        ("x", "shorter than 32 bytes"),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "repeats a 1-byte pattern"),
        ("changemechangemechangemechangemechangeme", "repeats a 8-byte pattern"),
        ("changeme", "development placeholder"),
        ("abcdefabcdefabcdefabcdefabcdefabcdefX", "distinct characters"),
    ] {
        let (code, lines, dir) = serve(&[("SIGNING_KEY", key)]);
        assert!(matches!(code, Some(c) if c != 0), "{key}: started anyway");
        assert_eq!(lines.len(), 1, "{key}: one clear line: {lines:?}");
        assert!(lines[0].starts_with("client-service: SIGNING_KEY") && lines[0].contains(why), "{key}: {lines:?}");
        assert!(key == "changeme" || !lines[0].contains(key), "the key is never printed: {lines:?}");
        assert!(!dir.path().join("client.db").exists(), "refused before the database was created");
    }
}

#[test]
fn bad_listener_limits_are_refused_at_start() {
    let key = "8Jq1sZ0bV7xYt3Lw9Pe2Rk5Hn6Cm4Ud0";
    for (name, value) in [
        ("MAX_CONNECTIONS", "0"),
        ("MAX_CONNECTIONS_PER_IP", "0"),
        ("HEADER_READ_TIMEOUT", "0s"),
        ("IDLE_TIMEOUT", "0s"),
    ] {
        let (code, lines, dir) = serve(&[("SIGNING_KEY", key), (name, value)]);
        assert!(matches!(code, Some(c) if c != 0), "{name}={value}: started anyway");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains(name), "{name}: {lines:?}");
        assert!(!dir.path().join("client.db").exists(), "{name}={value}: refused after the database was created");
    }
}

#[test]
fn max_connections_beyond_the_hard_open_file_limit_is_refused_at_start() {
    let key = "8Jq1sZ0bV7xYt3Lw9Pe2Rk5Hn6Cm4Ud0";
    let (code, lines, dir) = serve_with(under_ulimit("-n 256"), &[("SIGNING_KEY", key), ("MAX_CONNECTIONS", "1000")]);
    assert!(matches!(code, Some(c) if c != 0), "started anyway");
    assert_eq!(lines.len(), 1, "one clear line: {lines:?}");
    assert!(
        lines[0].starts_with("client-service: MAX_CONNECTIONS=1000 needs") && lines[0].contains("at most 256"),
        "{lines:?}"
    );
    assert!(!dir.path().join("client.db").exists(), "refused before the database was created");
}

#[test]
fn the_soft_open_file_limit_is_raised_to_the_hard_one() {
    // 100 connections, the pool and the spare need more than 128 descriptors but fit the hard limit.
    let (mut child, addr, _dir) = spawn_serve_with(
        under_ulimit("-S -n 128"),
        &[("SIGNING_KEY", "8Jq1sZ0bV7xYt3Lw9Pe2Rk5Hn6Cm4Ud0"), ("MAX_CONNECTIONS", "100")],
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap_or_default();
    let health = raw_get(&addr, "/healthz", "");
    let _ = child.kill();
    let _ = child.wait();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("the open-file limit in /proc");
    let numbers: Vec<&str> = line.split_whitespace().filter(|w| w.parse::<u64>().is_ok()).collect();
    assert_eq!(numbers.len(), 2, "{line}");
    assert_eq!(numbers[0], numbers[1], "soft = hard: {line}");
    assert_ne!(numbers[0], "128", "{line}");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_gets_max_connections_per_ip_and_silent_connections_are_closed() {
    let env = [
        ("SIGNING_KEY", "8Jq1sZ0bV7xYt3Lw9Pe2Rk5Hn6Cm4Ud0"),
        ("MAX_CONNECTIONS_PER_IP", "2"),
        ("HEADER_READ_TIMEOUT", "3s"),
    ];
    let (mut child, addr, _dir) = tokio::task::block_in_place(|| spawn_serve(&env));
    let socket: std::net::SocketAddr = addr.parse().unwrap();
    let mut silent = [connect_from(2, socket).await, connect_from(2, socket).await];
    let mut refused = connect_from(2, socket).await;
    let over = read_to_close(&mut refused, CLOSE_WITHIN).await;
    // Another address is served meanwhile, and the refusal shows in the metrics.
    let metrics = {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || raw_get(&addr, "/metrics", "")).await.unwrap()
    };
    let mut closed = Vec::new();
    for stream in &mut silent {
        closed.push(read_to_close(stream, CLOSE_WITHIN).await);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(over.as_deref(), Some(&b""[..]), "the third connection from 127.0.0.2 is closed unanswered");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("gatehouse_connections_refused_total{reason=\"per_ip\"} 1"), "{metrics}");
    assert!(closed.iter().all(|c| c.as_deref() == Some(&b""[..])), "silent connections closed unanswered: {closed:?}");
}

#[test]
fn cache_budgets_take_sizes_and_refuse_anything_else() {
    let key = "8Jq1sZ0bV7xYt3Lw9Pe2Rk5Hn6Cm4Ud0";
    for name in ["MIRROR_CACHE_MEMORY", "TOKEN_CACHE_MEMORY"] {
        for value in ["lots", "-5MiB", "12 parsecs"] {
            let (code, lines, dir) = serve(&[("SIGNING_KEY", key), (name, value)]);
            assert!(matches!(code, Some(c) if c != 0), "{name}={value}: started anyway");
            assert!(!dir.path().join("client.db").exists(), "{name}={value}: refused after the database was created");
            let all = lines.join("\n");
            assert!(all.contains(name) || all.contains(&name.to_ascii_lowercase().replace('_', "-")), "{name}: {all}");
            assert!(all.contains("64MiB"), "the error shows the expected form: {all}");
        }
    }
}

#[test]
fn a_client_that_never_finishes_its_request_head_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env_clear()
        .env("DATABASE_URL", format!("sqlite://{}", dir.path().join("client.db").display()))
        .env("REMOTE_AUTH_SERVICE_URL", "http://127.0.0.1:9")
        .env("SIGNING_KEY", "8Jq1sZ0bV7xYt3Lw9Pe2Rk5Hn6Cm4Ud0")
        .env("HEADER_READ_TIMEOUT", "300ms")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run client-service");
    let addr = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.split("addr=").nth(1).map(|a| a.split_whitespace().next().unwrap().to_owned()));
    let Some(addr) = addr else {
        let _ = child.kill();
        panic!("serve never said where it listens");
    };
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /api/test/ HTTP/1.1\r\nHost: x\r\nAuthoriz").unwrap();
    // A bound far above the deadline, so a hang fails the test instead of blocking it.
    slow.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut rest = Vec::new();
    let closed = slow.read_to_end(&mut rest);
    let _ = child.kill();
    let _ = child.wait();
    assert!(closed.is_ok(), "the server closed the stalled connection: {closed:?}");
}

/// Starts `client-service serve` on an ephemeral port with `env`; returns the child and its
/// address. Its stderr is drained in the background.
fn spawn_serve(env: &[(&str, &str)]) -> (std::process::Child, String, tempfile::TempDir) {
    spawn_serve_with(Command::new(BIN), env)
}

/// [`spawn_serve`] of `cmd`.
fn spawn_serve_with(mut cmd: Command, env: &[(&str, &str)]) -> (std::process::Child, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = cmd
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env_clear()
        .env("DATABASE_URL", format!("sqlite://{}", dir.path().join("client.db").display()))
        .env("REMOTE_AUTH_SERVICE_URL", "http://127.0.0.1:9")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run client-service");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| line.split("addr=").nth(1).map(|a| a.split_whitespace().next().unwrap().to_owned()));
    let Some(addr) = addr else {
        let _ = child.kill();
        panic!("serve never said where it listens");
    };
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr, dir)
}

/// `GET path` with extra header lines; returns the whole raw answer.
fn raw_get(addr: &str, path: &str, headers: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn the_django_meta_form_of_auth_header_name_is_accepted() {
    let (mut child, addr, _dir) =
        spawn_serve(&[("SIGNING_KEY", "8Jq1sZ0bV7xYt3Lw9Pe2Rk5Hn6Cm4Ud0"), ("AUTH_HEADER_NAME", "HTTP_AUTHORIZATION")]);
    let with_token = raw_get(&addr, "/api/test/", "Authorization: Bearer garbage\r\n");
    let without = raw_get(&addr, "/api/test/", "");
    let _ = child.kill();
    let _ = child.wait();
    // The token was read from `Authorization` (and refused as a bad token), not ignored.
    assert!(with_token.starts_with("HTTP/1.1 401"), "{with_token}");
    assert!(
        with_token.contains(r#"{"detail":"Token is invalid or expired","code":"token_not_valid"}"#),
        "{with_token}"
    );
    assert!(without.contains(r#"{"detail":"Authentication credentials were not provided."}"#), "{without}");
}

/// Starts `client-service serve` with `env`; the log lines written before it listens (the
/// start-up warnings), then stops it.
fn start_up_lines(env: &[(&str, &str)]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env_clear()
        .env("DATABASE_URL", format!("sqlite://{}", dir.path().join("client.db").display()))
        .env("REMOTE_AUTH_SERVICE_URL", "http://127.0.0.1:9")
        .env("SIGNING_KEY", "8Jq1sZ0bV7xYt3Lw9Pe2Rk5Hn6Cm4Ud0")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run client-service");
    let mut seen = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines().map_while(Result::ok) {
        let listening = line.contains("addr=");
        seen.push(line);
        if listening {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.last().is_some_and(|l| l.contains("addr=")), "serve never listened: {seen:?}");
    seen
}

#[test]
fn replaced_settings_still_set_get_one_warning_naming_their_successor() {
    let lines = start_up_lines(&[("MIRROR_CACHE_SIZE", "100000"), ("TOKEN_CACHE_SIZE", "5000")]);
    for (old, successor) in [("MIRROR_CACHE_SIZE", "MIRROR_CACHE_MEMORY"), ("TOKEN_CACHE_SIZE", "TOKEN_CACHE_MEMORY")] {
        let warnings: Vec<&String> = lines.iter().filter(|l| l.contains(old)).collect();
        assert_eq!(warnings.len(), 1, "one line about {old}: {lines:?}");
        assert!(warnings[0].contains("WARN") && warnings[0].contains(successor), "{warnings:?}");
    }
    let lines = start_up_lines(&[]);
    assert!(!lines.iter().any(|l| l.contains("WARN") && l.contains("CACHE")), "no warning when unset: {lines:?}");
}

#[test]
fn help_documents_the_logging_settings() {
    for args in [&["--help"][..], &["serve", "--help"], &["migrate", "--help"]] {
        let out = Command::new(BIN).args(args).env_clear().output().expect("run client-service");
        assert!(out.status.success(), "{args:?}");
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(
            help.contains("[env: RUST_LOG=]") && help.contains("[default: info,tower_http=warn]"),
            "{args:?}: {help}"
        );
        assert!(help.contains("[env: LOG_FORMAT=]") && help.contains("json"), "{args:?}: {help}");
    }
}

#[test]
fn ssl_verify_false_is_refused_outside_development_mode_with_one_line() {
    let key = ("SIGNING_KEY", "8Jq1sZ0bV7xYt3Lw9Pe2Rk5Hn6Cm4Ud0");
    for value in ["false", "False"] {
        let (code, lines, _dir) = serve(&[key, ("REMOTE_AUTH_SSL_VERIFY", value)]);
        assert!(matches!(code, Some(c) if c != 0), "{value}: started anyway");
        assert_eq!(lines.len(), 1, "one clear line: {lines:?}");
        assert!(
            lines[0].starts_with("client-service: REMOTE_AUTH_SSL_VERIFY=false (no check of the auth-service's certificate) is refused outside development mode (GATEHOUSE_DEV=true)"),
            "{lines:?}"
        );
    }
    // In development mode it starts, saying that nothing is checked.
    let lines = start_up_lines(&[("REMOTE_AUTH_SSL_VERIFY", "false"), ("GATEHOUSE_DEV", "true")]);
    assert_eq!(lines.iter().filter(|l| l.contains("certificate is not checked")).count(), 1, "{lines:?}");
}

#[test]
fn half_a_client_certificate_or_two_ca_bundles_are_refused_at_start() {
    let key = ("SIGNING_KEY", "8Jq1sZ0bV7xYt3Lw9Pe2Rk5Hn6Cm4Ud0");
    let (code, lines, _dir) = serve(&[key, ("REMOTE_AUTH_CLIENT_CERT_FILE", "/etc/client.pem")]);
    assert!(matches!(code, Some(c) if c != 0));
    assert_eq!(
        lines,
        [
            "client-service: REMOTE_AUTH_CLIENT_CERT_FILE is set without REMOTE_AUTH_CLIENT_KEY_FILE: a client certificate needs both"
        ]
    );
    let (code, lines, _dir) =
        serve(&[key, ("REMOTE_AUTH_SSL_VERIFY", "/etc/a.pem"), ("REMOTE_AUTH_CA_FILE", "/etc/b.pem")]);
    assert!(matches!(code, Some(c) if c != 0));
    assert_eq!(
        lines,
        [
            "client-service: REMOTE_AUTH_SSL_VERIFY=/etc/a.pem and REMOTE_AUTH_CA_FILE=/etc/b.pem name different CA bundles: set one of them"
        ]
    );
}
