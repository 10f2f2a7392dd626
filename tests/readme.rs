//! The documentation checked against the code, so the next drift fails CI:
//! - `docs/settings.md` has one table per binary (`variable | default | meaning`): every
//!   environment variable any subcommand's `--help` shows is a row there with the same default,
//!   and every row is a variable the binary reads;
//! - the README's ```` ```sh test ```` blocks run, in order, against the built binaries on
//!   ephemeral loopback ports, and print what their `#>` lines say;
//! - `cargo run --example pair` prints the banner the README shows, and its curl lines work;
//! - links between the documents resolve, and none leaves the repository.
//!
//! The binaries are the ones cargo built for this run, next to this test's own executable
//! (`cargo nextest run --workspace` builds them; a stale one is refused, not trusted).
#![cfg(unix)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The built binaries

/// `target/<profile>/`: this test runs from `target/<profile>/deps/`.
fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>").to_path_buf()
}

/// Newest modification time of the `.rs` files under `dirs` (relative to the repository).
fn newest_source(dirs: &[&str]) -> SystemTime {
    fn walk(dir: &Path, newest: &mut SystemTime) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, newest);
            } else if path.extension().is_some_and(|e| e == "rs")
                && let Ok(modified) = entry.metadata().and_then(|m| m.modified())
            {
                *newest = (*newest).max(modified);
            }
        }
    }
    let mut newest = SystemTime::UNIX_EPOCH;
    for dir in dirs {
        walk(&Path::new(ROOT).join(dir), &mut newest);
    }
    newest
}

/// The path of a binary cargo built for this run, refused when missing or older than its sources.
fn built(relative: &str, sources: &[&str]) -> PathBuf {
    let path = build_dir().join(relative);
    let modified = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}: build it first (`cargo nextest run --workspace` does)", path.display()));
    assert!(
        modified >= newest_source(sources),
        "{} is older than its sources: rebuild it (`cargo build --workspace --bins --examples`)",
        path.display()
    );
    path
}

fn auth_service_bin() -> PathBuf {
    built("auth-service", &["crates/auth-service/src", "crates/shared-user/src"])
}

fn client_service_bin() -> PathBuf {
    built("client-service", &["crates/client-service/src", "crates/shared-user/src"])
}

// ---------------------------------------------------------------------------------------------
// (a) settings tables against `--help`

/// One environment variable as a subcommand's `--help` shows it.
#[derive(Debug, Clone)]
struct HelpVar {
    /// The subcommand, e.g. `keys rotate`.
    command: String,
    /// `[default: X]`, if any.
    default: Option<String>,
}

fn help(bin: &Path, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(args)
        .arg("--help")
        .env_clear()
        .output()
        .unwrap_or_else(|e| panic!("{} {args:?} --help: {e}", bin.display()));
    assert!(out.status.success(), "{} {args:?} --help failed: {}", bin.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// The subcommands listed under `Commands:` (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    let mut lines = help.lines().skip_while(|l| l.trim_end() != "Commands:").skip(1);
    let mut names = Vec::new();
    for line in lines.by_ref() {
        if line.trim().is_empty() {
            break;
        }
        // Entries are indented by two spaces; wrapped descriptions by more.
        if line.starts_with("  ") && !line.starts_with("   ") {
            let name = line.split_whitespace().next().unwrap_or_default();
            if name != "help" {
                names.push(name.to_owned());
            }
        }
    }
    names
}

/// The text of `[NAME: ...]` starting at `from` in `text`: the value and where it ends.
fn bracket(text: &str, from: usize, name: &str) -> Option<(String, usize)> {
    let open = format!("[{name}: ");
    let start = text[from..].find(&open)? + from + open.len();
    let end = text[start..].find(']')? + start;
    Some((text[start..end].to_owned(), end))
}

/// Every `[env: NAME...]` of one `--help` text with the `[default: ...]` of the same argument.
fn env_vars(help: &str) -> Vec<(String, Option<String>)> {
    // One argument's block starts at a line whose first non-blank character is `-` or `<`.
    let mut blocks: Vec<String> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        let starts_arg = line.starts_with("  ") && (trimmed.starts_with('-') || trimmed.starts_with('<'));
        if starts_arg || blocks.is_empty() || (!line.starts_with(' ') && !line.is_empty()) {
            blocks.push(String::new());
        }
        let block = blocks.last_mut().expect("a block");
        block.push_str(line);
        block.push('\n');
    }
    let mut vars = Vec::new();
    for block in &blocks {
        let Some((env, _)) = bracket(block, 0, "env") else { continue };
        // `NAME=value` (the value of the test's empty environment) or `NAME` (hidden values).
        let name = env.split('=').next().unwrap_or_default().to_owned();
        let default = bracket(block, 0, "default").map(|(d, _)| d);
        vars.push((name, default));
    }
    vars
}

/// Every environment variable of every subcommand of `bin`, by name.
fn help_vars(bin: &Path) -> BTreeMap<String, Vec<HelpVar>> {
    let mut vars: BTreeMap<String, Vec<HelpVar>> = BTreeMap::new();
    let mut queue: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = queue.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let text = help(bin, &args);
        for sub in subcommands(&text) {
            let mut next = path.clone();
            next.push(sub);
            queue.push(next);
        }
        for (name, default) in env_vars(&text) {
            vars.entry(name).or_default().push(HelpVar { command: path.join(" "), default });
        }
    }
    vars
}

/// One row of a settings table.
#[derive(Debug)]
struct Row {
    default: String,
    meaning: String,
}

/// The table under the heading `## {heading}` of `docs/settings.md`, by variable.
fn settings_table(heading: &str) -> BTreeMap<String, Row> {
    let doc = read("docs/settings.md");
    let marker = format!("\n## {heading}\n");
    let start = doc.find(&marker).unwrap_or_else(|| panic!("docs/settings.md has no `## {heading}`")) + marker.len();
    let section = &doc[start..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut rows = BTreeMap::new();
    let table = section.lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|'));
    for line in table.skip(2) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        assert!(cells.len() >= 5, "{heading}: a row needs `| variable | default | meaning |`: {line}");
        let name = cells[1].strip_prefix('`').and_then(|n| n.strip_suffix('`'));
        let name = name.unwrap_or_else(|| panic!("{heading}: one backticked variable per row: {line}"));
        assert!(
            name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
            "{heading}: one variable per row, not {name:?}"
        );
        let row = Row { default: cells[2].to_owned(), meaning: cells[3..cells.len() - 1].join("|") };
        assert!(rows.insert(name.to_owned(), row).is_none(), "{heading}: {name} has two rows");
    }
    assert!(!rows.is_empty(), "{heading}: no table");
    rows
}

/// The differences between a binary's `--help` and its settings table, one line each.
fn settings_drift(bin: &Path, heading: &str) -> Vec<String> {
    let help = help_vars(bin);
    let table = settings_table(heading);
    let mut problems = Vec::new();
    for (name, seen) in &help {
        let Some(row) = table.get(name) else {
            problems.push(format!("{name} (in `{}` --help) has no row under `## {heading}`", seen[0].command));
            continue;
        };
        // The documented default is `serve`'s (the service), else the first subcommand's.
        let primary = seen.iter().find(|v| v.command == "serve").unwrap_or(&seen[0]);
        let documented = match &primary.default {
            Some(default) => format!("`{default}`"),
            None => String::new(),
        };
        match &primary.default {
            Some(_) if row.default != documented => problems.push(format!(
                "{name}: default {:?} in the table, {documented} in `{}` --help",
                row.default, primary.command
            )),
            None if row.default.starts_with('`') => problems.push(format!(
                "{name}: default {:?} in the table, none in `{}` --help (write what unset means, without backticks)",
                row.default, primary.command
            )),
            _ => {}
        }
        for other in seen.iter().filter(|v| v.default != primary.default) {
            if !row.meaning.contains(&other.command) {
                problems.push(format!(
                    "{name}: `{}` has another default ({:?}) than `{}`: its row must say so, naming `{}`",
                    other.command, other.default, primary.command, other.command
                ));
            }
        }
    }
    for name in table.keys() {
        if !help.contains_key(name) {
            problems.push(format!("{name} is under `## {heading}` but no `--help` of {} shows it", bin.display()));
        }
    }
    problems
}

#[test]
fn the_auth_service_settings_table_matches_its_help() {
    let problems = settings_drift(&auth_service_bin(), "auth-service settings");
    assert!(problems.is_empty(), "docs/settings.md drifted from `auth-service --help`:\n{}", problems.join("\n"));
}

#[test]
fn the_client_service_settings_table_matches_its_help() {
    let problems = settings_drift(&client_service_bin(), "client-service settings");
    assert!(problems.is_empty(), "docs/settings.md drifted from `client-service --help`:\n{}", problems.join("\n"));
}

/// The `.rs` files of the repository (examples, tests, crates), as one text per file.
fn rust_sources() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs")
                && let Ok(text) = std::fs::read_to_string(&path)
            {
                out.push(text);
            }
        }
    }
    let mut out = Vec::new();
    for dir in ["examples", "tests", "crates"] {
        walk(&Path::new(ROOT).join(dir), &mut out);
    }
    out
}

#[test]
fn the_variables_of_the_examples_and_tests_are_read_somewhere() {
    let sources = rust_sources();
    for name in settings_table("Examples and tests").keys() {
        let quoted = format!("\"{name}\"");
        assert!(sources.iter().any(|s| s.contains(&quoted)), "{name} is documented but no Rust source names {quoted}");
    }
}

#[test]
fn the_help_parser_reads_defaults_hidden_values_and_subcommands() {
    let text = "Usage: x serve [OPTIONS]\n\nCommands:\n  serve  Run\n          more\n  keys   Keys\n  help   Print\n\nOptions:\n      --bind <BIND>\n          Address to listen on\n\n          [env: BIND=]\n          [default: 127.0.0.1:8000]\n\n      --signing-key <SIGNING_KEY>\n          Secret [env: SIGNING_KEY]\n\n  -h, --help\n          Print help\n";
    assert_eq!(subcommands(text), ["serve", "keys"]);
    let vars = env_vars(text);
    assert_eq!(vars.len(), 2, "{vars:?}");
    assert_eq!(vars[0], ("BIND".to_owned(), Some("127.0.0.1:8000".to_owned())));
    assert_eq!(vars[1], ("SIGNING_KEY".to_owned(), None));
}

// ---------------------------------------------------------------------------------------------
// (b) the README's runnable blocks and the pair example

/// A fenced block of a markdown text: its info string and its lines.
fn fenced_blocks(markdown: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in markdown.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(info)) => current = Some((info.trim().to_owned(), String::new())),
            (Some(_), Some(rest)) if rest.trim().is_empty() => blocks.extend(current.take()),
            (Some((_, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

/// A loopback address nobody listens on (at the time of asking).
fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("its address").to_string()
}

/// Runs `script` with bash in `dir`, in a process group of its own that is ended afterwards
/// (so servers it started in the background stop too); returns its exit success and output.
fn run_bash(script: &str, dir: &Path, env: &[(&str, String)], deadline: Duration) -> (bool, String, String) {
    use std::os::unix::process::CommandExt;
    let path = dir.join("script.sh");
    std::fs::write(&path, script).expect("write the script");
    let mut child = Command::new("bash")
        .arg(&path)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("run bash");
    let group = child.id();
    let reader = |mut stream: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stream.read_to_string(&mut text);
            text
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("stdout")));
    let err = reader(Box::new(child.stderr.take().expect("stderr")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for bash") {
            break Some(status);
        }
        if started.elapsed() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Every process the script started (servers in the background included) is in this group,
    // named after `--` as a negative number: without it, procps' `kill -TERM -N` does not take
    // N as a process group (it signals nothing, and the servers outlive the test).
    if group > 1 {
        let _ = Command::new("kill").args(["-s", "TERM", "--", &format!("-{group}")]).status();
    }
    let _ = child.wait();
    let (out, mut err) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    if status.is_none() {
        err.push_str(&format!("\n(stopped after {deadline:?})"));
    }
    (status.is_some_and(|s| s.success()), out, err)
}

/// The checks `#>` lines ask for: each text appears in the output, in this order.
fn check_expectations(expected: &[String], output: &str) -> Result<(), String> {
    let mut rest = output;
    for text in expected {
        match rest.find(text.as_str()) {
            Some(at) => rest = &rest[at + text.len()..],
            None => return Err(format!("expected {text:?} next in the output")),
        }
    }
    Ok(())
}

/// The README's `sh test` blocks as one bash script: `sh test serve` blocks run in the
/// background and the script waits until the address of their `--bind` is ready.
fn readme_script(readme: &str, bin_dir: &Path, auth: &str, client: &str) -> (String, Vec<String>) {
    let substitute = |text: &str| {
        text.replace("./target/release/", &format!("{}/", bin_dir.display()))
            .replace("127.0.0.1:8000", auth)
            .replace("127.0.0.1:8001", client)
    };
    let mut script = String::from("set -euo pipefail\n");
    let mut expected = Vec::new();
    let mut servers = 0;
    for (info, body) in fenced_blocks(readme) {
        let words: Vec<&str> = info.split_whitespace().collect();
        if words.first() != Some(&"sh") || words.get(1) != Some(&"test") {
            continue;
        }
        let body = substitute(&body);
        assert!(
            !body.contains(":8000") && !body.contains(":8001") && !body.contains("target/release"),
            "a runnable block uses an address or path the test cannot substitute:\n{body}"
        );
        expected.extend(body.lines().filter_map(|l| l.strip_prefix("#> ")).map(str::to_owned));
        if words.get(2) == Some(&"serve") {
            let bind = body
                .split_whitespace()
                .skip_while(|w| *w != "--bind")
                .nth(1)
                .unwrap_or_else(|| panic!("a `sh test serve` block names its address with --bind:\n{body}"));
            servers += 1;
            script.push_str(&format!("(\n{body}) > server-{servers}.log 2>&1 &\n"));
            script.push_str(&format!(
                "for _ in $(seq 1 300); do curl -sf http://{bind}/readyz >/dev/null && break; sleep 0.1; done\n\
                 curl -sf http://{bind}/readyz >/dev/null || {{ echo 'server {servers} never became ready' >&2; cat server-{servers}.log >&2; exit 1; }}\n"
            ));
        } else {
            script.push_str(&body);
            script.push('\n');
        }
    }
    assert!(servers > 0, "the README has no `sh test serve` block");
    (script, expected)
}

#[test]
fn the_readme_runnable_blocks_work_against_the_built_binaries() {
    let curl = Command::new("curl").arg("--version").output();
    assert!(
        curl.is_ok_and(|o| o.status.success()),
        "the README's commands need curl: install it (apt-get install curl)"
    );
    let bin_dir = build_dir();
    auth_service_bin();
    client_service_bin();
    let (auth, client) = (free_addr(), free_addr());
    let (script, expected) = readme_script(&read("README.md"), &bin_dir, &auth, &client);
    assert!(!expected.is_empty(), "the README's runnable blocks check nothing (`#>` lines)");
    let dir = tempfile::tempdir().expect("temporary directory");
    let (ok, out, err) = run_bash(&script, dir.path(), &[("RUST_LOG", "warn".into())], Duration::from_secs(120));
    let logs: String = (1..=4)
        .filter_map(|n| std::fs::read_to_string(dir.path().join(format!("server-{n}.log"))).ok())
        .collect::<Vec<_>>()
        .join("\n--\n");
    assert!(
        ok,
        "the README's `sh test` blocks failed\nscript:\n{script}\nstdout:\n{out}\nstderr:\n{err}\nservers:\n{logs}"
    );
    if let Err(e) = check_expectations(&expected, &out) {
        panic!("the README's `sh test` blocks printed something else: {e}\nstdout:\n{out}\nstderr:\n{err}");
    }
}

#[test]
fn the_pair_example_prints_the_readme_banner_and_its_curl_lines_work() {
    let pair = built("examples/pair", &["examples", "crates/auth-service/src", "crates/client-service/src"]);
    let (auth, client) = (free_addr(), free_addr());
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut child: Child = Command::new(&pair)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AUTH_BIND", &auth)
        .env("CLIENT_BIND", &client)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("pair.log")).expect("the pair's log file"))
        .spawn()
        .expect("run the pair example");
    let mut banner = String::new();
    let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    // Read to the end, not only to the banner's last line: a reader that hangs up early is a
    // closed pipe for whatever the pair writes next.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60).saturating_sub(started.elapsed())) {
        banner.push_str(&line);
        banner.push('\n');
        if line.starts_with("Ctrl-C stops both") {
            break;
        }
    }

    let readme = read("README.md");
    let shown = fenced_blocks(&readme)
        .into_iter()
        .find(|(info, _)| info == "text pair-output")
        .map(|(_, body)| body.replace("127.0.0.1:8000", &auth).replace("127.0.0.1:8001", &client))
        .expect("the README shows the pair's banner in a ```text pair-output block");
    let printed = banner.trim_start_matches('\n');
    // The staff password is new at every start: the README shows a placeholder for it.
    let masked: String = printed
        .lines()
        .map(|line| match line.strip_prefix("Staff account: ").and_then(|rest| rest.split_once(" / ")) {
            Some((email, rest)) => {
                let after = rest.split_once(' ').map_or("", |(_, after)| after);
                format!("Staff account: {email} / <new at every start> {after}\n")
            }
            None => format!("{line}\n"),
        })
        .collect();

    // The printed curl lines, against the running pair (tokens in the temporary directory).
    let tokens = dir.path().join("tokens.json");
    let curl: String = printed
        .lines()
        .map(str::trim_start)
        .skip_while(|l| !l.starts_with("C="))
        .take_while(|l| !l.is_empty())
        .map(|l| l.replace("/tmp/gatehouse-tokens.json", &tokens.display().to_string()) + "\necho\n")
        .collect::<String>()
        .replace("\\\necho\n", "\\\n");
    let (ok, out, err) = if curl.is_empty() {
        (false, String::new(), "no curl lines".to_owned())
    } else {
        run_bash(&format!("set -euo pipefail\n{curl}"), dir.path(), &[], Duration::from_secs(60))
    };
    let exited = child.try_wait().ok().flatten();
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("pair.log")).unwrap_or_default();
    let log = format!(
        "the pair {}; its log:\n{log}",
        exited.map_or("was running".to_owned(), |s| format!("had exited ({s})"))
    );

    // The printed comments are aligned to a column, which moves with the length of the ports.
    let spaced = |text: &str| -> String {
        text.lines()
            .map(|line| {
                let body = line.trim_start();
                let indent = &line[..line.len() - body.len()];
                format!("{indent}{}\n", body.split_whitespace().collect::<Vec<_>>().join(" "))
            })
            .collect()
    };
    let (masked, shown) = (spaced(&masked), spaced(&shown));
    assert_eq!(masked, shown, "the README's pair-output block is not what `cargo run --example pair` prints");
    assert!(ok, "the pair's curl lines failed:\n{curl}\nstdout:\n{out}\nstderr:\n{err}\n{log}");
    let expected = [
        "\"refresh\":\"",
        "\"success\"",
        "\"email\":\"demo@example.com\"",
        "Welcome to billing, demo@example.com.",
        "{}",
        "{\"access\":\"",
        "{\"detail\":\"Authentication credentials were not provided.\"}",
    ]
    .map(str::to_owned);
    if let Err(e) = check_expectations(&expected, &out) {
        panic!("the pair's curl lines printed something else: {e}\n{out}\n{log}");
    }
}

// ---------------------------------------------------------------------------------------------
// Links

/// GitHub's anchor of a heading: lowercase, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(markdown: &str) -> Vec<String> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            out.push(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

#[test]
fn links_between_the_documents_resolve_inside_the_repository() {
    let mut docs = vec!["README.md".to_owned()];
    for entry in std::fs::read_dir(Path::new(ROOT).join("docs")).expect("docs/").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") {
            docs.push(format!("docs/{name}"));
        }
    }
    let mut problems = Vec::new();
    for doc in &docs {
        let text = read(doc);
        let base = Path::new(doc).parent().unwrap_or(Path::new(""));
        for (i, _) in text.match_indices("](") {
            let target = &text[i + 2..];
            let Some(end) = target.find(')') else { continue };
            let target = &target[..end];
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let (file, fragment) = target.split_once('#').unwrap_or((target, ""));
            let path = if file.is_empty() { PathBuf::from(doc) } else { base.join(file) };
            let resolved = Path::new(ROOT).join(&path);
            let inside =
                resolved.canonicalize().ok().is_some_and(|p| p.starts_with(Path::new(ROOT).canonicalize().unwrap()));
            if !inside {
                problems.push(format!("{doc}: {target} is not a file of the repository"));
            } else if !fragment.is_empty() && !anchors(&read(&path.to_string_lossy())).contains(&fragment.to_owned()) {
                problems.push(format!("{doc}: {target}: no such heading"));
            }
        }
        if text.contains("../shared/") {
            problems.push(format!("{doc}: names a path outside the repository (../shared/)"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
