//! What an engine is started with: the clearing [`Mechanism`] and the [`EngineConfig`].

use std::sync::Arc;

use super::EventSink;

/// How each auction is cleared.
#[derive(Debug, Clone, PartialEq)]
pub enum Mechanism {
    FirstPrice,
    SecondPrice,
    /// Generalized second price over `ctrs.len()` slots.
    Gsp(Vec<f64>),
    /// VCG over `ctrs.len()` slots.
    Vcg(Vec<f64>),
}

impl Mechanism {
    /// Result rows per auction: 1, or the number of slots.
    pub fn rows_per_auction(&self) -> usize {
        match self {
            Mechanism::FirstPrice | Mechanism::SecondPrice => 1,
            Mechanism::Gsp(c) | Mechanism::Vcg(c) => c.len(),
        }
    }
}

/// Engine configuration; see [`super::Engine::start`].
#[derive(Clone)]
pub struct EngineConfig {
    pub workers: usize,
    pub pin: bool,
    pub mechanism: Mechanism,
    /// Default reserve (floor) of an auction opened without one.
    pub reserve: f64,
    pub increment: f64,
    /// Default time from open to deadline.
    pub tmax_ns: u64,
    /// Soft bound on records (bids + opens) queued for the workers, over all workers.
    pub capacity: usize,
    /// Bound on rejected bids held for `poll_rejected` (`None`: `max(capacity, 1024)`). A
    /// rejection beyond it is counted (`rejected_unreported`) and reported as a drop count by
    /// [`super::Engine::poll_rejected_batch`], never held.
    pub rejected_capacity: Option<usize>,
    pub event_sink: Option<Arc<dyn EventSink>>,
}

impl EngineConfig {
    /// The bound on rejected rows held for polling (see [`EngineConfig::rejected_capacity`]).
    pub fn rejected_bound(&self) -> usize {
        self.rejected_capacity.unwrap_or(self.capacity.max(1024))
    }
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("workers", &self.workers)
            .field("pin", &self.pin)
            .field("mechanism", &self.mechanism)
            .field("reserve", &self.reserve)
            .field("increment", &self.increment)
            .field("tmax_ns", &self.tmax_ns)
            .field("capacity", &self.capacity)
            .field("rejected_capacity", &self.rejected_capacity)
            .field("event_sink", &self.event_sink.is_some())
            .finish()
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 2,
            pin: true,
            mechanism: Mechanism::SecondPrice,
            reserve: 0.0,
            increment: 0.01,
            tmax_ns: 80_000_000,
            capacity: 1 << 20,
            rejected_capacity: None,
            event_sink: None,
        }
    }
}
