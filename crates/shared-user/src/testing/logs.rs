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
