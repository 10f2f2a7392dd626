//! Auth-service metrics that need more than a one-line `metrics::counter!` at their call site.
//! The names and their meaning are listed in `shared_user::ops::metrics` and the README.

/// Counts a password job waiting for a hashing thread in `gatehouse_hash_queue_depth` for as
/// long as it lives (also when the waiting request goes away).
pub(crate) struct Queued(());

impl Queued {
    /// One more job waiting.
    pub(crate) fn enter() -> Self {
        metrics::gauge!("gatehouse_hash_queue_depth").increment(1.0);
        Self(())
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        metrics::gauge!("gatehouse_hash_queue_depth").decrement(1.0);
    }
}

/// The outcome of one refresh in `gatehouse_refreshes_total`: `rejected` unless
/// [`RefreshOutcome::succeeded`] is called before it is dropped.
#[derive(Default)]
pub(crate) struct RefreshOutcome {
    done: bool,
}

impl RefreshOutcome {
    /// The refresh succeeded.
    pub(crate) fn succeeded(mut self) {
        self.done = true;
        metrics::counter!("gatehouse_refreshes_total", "outcome" => "success").increment(1);
    }
}

impl Drop for RefreshOutcome {
    fn drop(&mut self) {
        if !self.done {
            metrics::counter!("gatehouse_refreshes_total", "outcome" => "rejected").increment(1);
        }
    }
}
