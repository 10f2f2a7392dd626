//! Log capture for tests: one process-wide JSON tracing subscriber writing into memory, so a
//! test can read back the lines its requests produced (nothing is printed).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

/// Everything logged in this process since [`capture`] was first called.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// The raw text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    /// Every line, parsed (`fields`, `target`, `level`, `span`, `spans`).
    pub fn lines(&self) -> Vec<Value> {
        self.text().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// The lines logged inside the `request` span of request id `id`.
    pub fn of_request(&self, id: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l["spans"].as_array().is_some_and(|spans| spans.iter().any(|s| s["request_id"] == id)))
            .collect()
    }
}

struct Writer(Logs);

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs (once) a global subscriber logging every level from `debug` up as JSON lines into
/// memory, and returns the buffer. Panics when another global subscriber is already set.
pub fn capture() -> Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let sink = logs.clone();
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || Writer(sink.clone()))
            .try_init()
            .expect("no other global tracing subscriber in this test binary");
        logs
    })
    .clone()
}

/// The `role=` and `addr=` of the first `count` "`service` listening" lines a child process
/// (a binary's `serve`, `stderr` piped, text logs at `info`) writes; panics with the logs read so
/// far when the process stops first. The rest of its logs is read and dropped in the background,
/// so the process never blocks on a full pipe.
pub fn listening(child: &mut std::process::Child, service: &str, count: usize) -> Vec<(String, String)> {
    use std::io::{BufRead, BufReader};
    let stderr = child.stderr.take().expect("the child's stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let (mut seen, mut found) = (Vec::new(), Vec::new());
    let needle = format!("{service} listening");
    for line in lines.by_ref().map_while(Result::ok) {
        let field = |name: &str| line.split(name).nth(1).and_then(|v| v.split_whitespace().next()).map(str::to_owned);
        if line.contains(&needle)
            && let (Some(role), Some(addr)) = (field("role="), field("addr="))
        {
            found.push((role, addr));
        }
        seen.push(line);
        if found.len() == count {
            break;
        }
    }
    if found.len() < count {
        let _ = child.kill();
        panic!("serve did not say where it listens: {}", seen.join("\n"));
    }
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    found
}
