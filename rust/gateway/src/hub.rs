//! The shared state every task holds a handle to (mini-redis' `Db` idea): configuration,
//! credentials, the engine, the auction table, the buyer streams, counters and the shutdown
//! signal.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use rtbcore_core::engine::{Engine, EngineConfig, Mechanism};
use tokio_util::sync::CancellationToken;

use crate::auctions::Table;
use crate::auth::{Authenticator, FailedAuthLimiter};
use crate::config::Config;
use crate::evlog::{EventLog, Recovered};
use crate::floors::Floors;
use crate::metrics::Metrics;
use crate::mirror::Mirror;
use crate::streams::Streams;

/// An auction's outcome, for the embedding program (`Gateway::results`).
#[derive(Debug, Clone, PartialEq)]
pub struct AuctionOutcome {
    pub auction_id: String,
    pub attributes: HashMap<String, String>,
    /// The winner's buyer id and bid id (None: no sale).
    pub winner: Option<(String, String)>,
    pub price_micros: i64,
    pub n_bids: u32,
    /// "deadline", "all_bids" or "shutdown".
    pub closed_by: &'static str,
    pub publisher: Option<String>,
}

/// A bid as it stood when its auction closed.
#[derive(Debug, Clone)]
pub struct ClosedBid {
    pub buyer: String,
    pub bid: u64,
    pub amount: i64,
    /// Took part in the clearing: live and not judged late by the engine.
    pub counted: bool,
    /// The ad a buyer's bid named in its criteria.
    pub creative: Option<Box<crate::auctions::Creative>>,
}

/// The bids of a closed auction, for a caller waiting on it (the OpenRTB door).
pub type ClosedWaiter = tokio::sync::oneshot::Sender<Vec<ClosedBid>>;

/// Results kept for the embedding program before the oldest are dropped (counted).
pub const OUTCOME_QUEUE: usize = 65_536;

pub struct Hub {
    pub cfg: Config,
    pub auth: Authenticator,
    pub limiter: FailedAuthLimiter,
    pub metrics: Arc<Metrics>,
    pub engine: Engine,
    pub table: Mutex<Table>,
    pub streams: Streams,
    pub log: Arc<EventLog>,
    pub outcomes_tx: Sender<AuctionOutcome>,
    pub outcomes_rx: Receiver<AuctionOutcome>,
    pub draining: AtomicBool,
    pub shutdown: CancellationToken,
    pub next_conn: AtomicU64,
    pub next_auction: AtomicU64,
    pub next_bid: AtomicU64,
    pub rt: tokio::runtime::Handle,
    pub currency: &'static str,
    /// Callers waiting for an auction to close, by auction id.
    pub closed_waiters: Mutex<HashMap<Arc<str>, ClosedWaiter>>,
    /// Learned floors (`[floors]`), when enabled.
    pub floors: Option<Floors>,
}

impl Hub {
    /// The exchange's own metrics (with `extra` gauges) and the learned floors', as Prometheus
    /// text.
    pub fn metrics_text(&self, extra: &[(&str, &str, f64)]) -> String {
        let mut m = self.metrics.render(extra);
        if let Some(f) = &self.floors {
            f.render(&mut m);
        }
        if let Some(mi) = &self.streams.mirror {
            mi.metrics.render(&mut m);
        }
        m
    }

    pub fn new(
        cfg: Config,
        auth: Authenticator,
        log: EventLog,
        recovered: Recovered,
        rt: tokio::runtime::Handle,
    ) -> Result<Arc<Hub>, String> {
        let mechanism = match cfg.engine.mechanism.as_str() {
            "first_price" => Mechanism::FirstPrice,
            _ => Mechanism::SecondPrice,
        };
        let ecfg = EngineConfig {
            workers: cfg.engine.workers,
            pin: cfg.engine.pin,
            mechanism,
            reserve: 0.0,
            // amounts are integer micros: no increment, so prices stay whole micros
            increment: 0.0,
            tmax_ns: cfg.engine.tmax_ms * 1_000_000,
            capacity: 1 << 20,
            rejected_capacity: None,
            event_sink: None,
        };
        let engine = Engine::start(ecfg).map_err(|e| format!("engine: {e}"))?;
        let metrics = Arc::new(Metrics::default());
        let log = Arc::new(log);
        let (outcomes_tx, outcomes_rx) = crossbeam_channel::bounded(OUTCOME_QUEUE);
        let retention_ns = (cfg.events.retention_s * 1e9) as u64;
        let mirror =
            if cfg.mirror.enabled() { Some(Arc::new(Mirror::connect(&cfg.mirror)?)) } else { None };
        // a node's bid and auction numbers live in its own range, so that ids never collide in
        // a buyer's stream across nodes
        let base = if cfg.mirror.enabled() { (cfg.mirror.node as u64) << 48 } else { 0 };
        let table = Table::new(recovered.auctions);
        if let Some(m) = &mirror {
            let n =
                crate::mirror::reconcile(m, &log, &recovered.buyers, &table, &cfg.engine.currency)
                    .map_err(|e| {
                        format!("mirror: appending what the log holds beyond Redis: {e}")
                    })?;
            if n > 0 {
                eprintln!(
                    "rtbcore serve: mirror: appended {n} events held in the log before the stop"
                );
            }
        }
        let streams = Streams::new(
            log.clone(),
            recovered.buyers,
            metrics.clone(),
            cfg.server.idempotency_window,
            retention_ns,
            mirror,
        );
        let floors = Floors::new(&cfg.floors, cfg.engine.max_amount_micros);
        Ok(Arc::new(Hub {
            limiter: FailedAuthLimiter::new(cfg.server.failed_auth_limit, cfg.failed_auth_window()),
            currency: crate::events::currency_code(&cfg.engine.currency),
            cfg,
            auth,
            metrics,
            engine,
            table: Mutex::new(table),
            streams,
            log,
            outcomes_tx,
            outcomes_rx,
            draining: AtomicBool::new(false),
            shutdown: CancellationToken::new(),
            next_conn: AtomicU64::new(1),
            next_auction: AtomicU64::new(recovered.max_auction.max(base) + 1),
            next_bid: AtomicU64::new(recovered.max_bid.max(base) + 1),
            rt,
            closed_waiters: Mutex::new(HashMap::new()),
            floors,
        }))
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Hands an outcome to the embedding program; the oldest is dropped (and counted) when it
    /// does not keep up.
    pub fn publish_outcome(&self, o: AuctionOutcome) {
        if let Err(crossbeam_channel::TrySendError::Full(o)) = self.outcomes_tx.try_send(o) {
            let _ = self.outcomes_rx.try_recv();
            self.metrics.results_dropped.fetch_add(1, Ordering::Relaxed);
            let _ = self.outcomes_tx.try_send(o);
        }
    }
}
