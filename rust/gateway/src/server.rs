//! Starting and stopping the exchange: its own tokio runtime, the listener, the result thread,
//! demo traffic, and the drain on shutdown.

use axum::serve::ListenerExt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rtbcore_proto::v1::{AuctionOpened, OpenAuction};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::auctions::Reject;
use crate::auth::{generate_key, Authenticator, Identity, ALL_SCOPES};
use crate::config::Config;
use crate::evlog::EventLog;
use crate::http::{router, AppState};
use crate::hub::{AuctionOutcome, Hub};

/// How to start a gateway.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub config: Config,
    /// Generate a development API key (buyer "dev", every scope); see [`Gateway::dev_key`].
    pub dev_key: bool,
    /// Runtime threads (0: 2).
    pub threads: usize,
}

/// A running exchange server.
pub struct Gateway {
    hub: Arc<Hub>,
    rt: Option<tokio::runtime::Runtime>,
    addr: SocketAddr,
    dev_key: Option<String>,
    results: Option<JoinHandle<()>>,
    /// The mirror's poll (`[mirror]`): other nodes' events for buyers connected here, and
    /// events held while Redis did not answer.
    mirror_poll: Option<JoinHandle<()>>,
    tracker: TaskTracker,
    _tmp_dir: Option<TempDir>,
}

/// A directory removed when the gateway is dropped (the default event log's home).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> Result<TempDir, String> {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).map_err(|e| e.to_string())?;
    let p = std::env::temp_dir().join(format!(
        "rtbcore-gateway-{}-{:016x}",
        std::process::id(),
        u64::from_le_bytes(b)
    ));
    std::fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(TempDir(p))
}

/// Turns transparent huge pages off for this process. Where the allocator's or the engine's
/// memory is advised to use them, the first touch of each 2 MB page zeroes all of it in one
/// fault: milliseconds on a virtual machine, taken by whichever thread touched it (often while
/// it holds the auction table or a buyer's stream), which is the whole p99 of event delivery.
/// 4 KB pages spread that cost evenly. Only new faults are affected; a failure changes nothing.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes one integer flag and reads or writes no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Open files the server needs beside its connections (listener, event log, runtime, Redis).
const FD_MARGIN: u64 = 256;

/// Raises the process's soft limit of open files to what `server.max_connections` needs, as far
/// as the hard limit allows (a common soft limit is 1024), and says so when the hard limit is
/// lower: connections past it would wait in the listen queue until others close.
fn open_files_for(max_connections: usize) {
    let need = max_connections as u64 + FD_MARGIN;
    match rlimit::increase_nofile_limit(need) {
        Ok(got) if got < need => eprintln!(
            "rtbcore serve: server.max_connections = {max_connections} needs about {need} open \
             files, and the hard limit (RLIMIT_NOFILE) allows {got}: raise it (ulimit -Hn, \
             LimitNOFILE=) or lower server.max_connections"
        ),
        Ok(_) => {}
        Err(e) => eprintln!("rtbcore serve: cannot raise the open-file limit: {e}"),
    }
}

impl Gateway {
    /// Binds, starts every thread and returns once the port accepts connections.
    pub fn start(opts: Options) -> Result<Gateway, String> {
        let cfg = opts.config;
        cfg.validate().map_err(|e| e.to_string())?;
        let mut auth = Authenticator::new(&cfg.auth.token_secret);
        if !cfg.auth.keys_file.is_empty() {
            auth.load_keys(&cfg.resolve(&cfg.auth.keys_file)).map_err(|e| e.to_string())?;
        }
        let dev_key = opts.dev_key.then(generate_key);
        if let Some(k) = &dev_key {
            auth.add_key(k, Identity { buyer: "dev".into(), scopes: ALL_SCOPES });
        }
        let (tmp, log_path) = if cfg.events.path.is_empty() {
            let t = temp_dir()?;
            let p = t.0.join("events.ring");
            (Some(t), p)
        } else {
            (None, cfg.resolve(&cfg.events.path))
        };
        if !cfg.server.transparent_huge_pages {
            no_huge_pages();
        }
        open_files_for(cfg.server.max_connections);
        let (log, recovered) = EventLog::open(&log_path, cfg.events.max_records)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(if opts.threads == 0 { 2 } else { opts.threads })
            .thread_name("rtbcore-gateway")
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        let bind = format!("{}:{}", cfg.server.host, cfg.server.port);
        let std_listener = std::net::TcpListener::bind(&bind)
            .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
        std_listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = std_listener.local_addr().map_err(|e| e.to_string())?;
        let demo = cfg.demo.traffic;
        let hub = Hub::new(cfg, auth, log, recovered, rt.handle().clone())?;
        let results = {
            let hub = hub.clone();
            std::thread::Builder::new()
                .name("rtbcore-results".into())
                .spawn(move || crate::results::run(hub))
                .map_err(|e| e.to_string())?
        };
        let mirror_poll = match hub.streams.mirror.as_ref().map(|m| m.poll) {
            Some(every) => {
                let hub = Arc::downgrade(&hub);
                Some(
                    std::thread::Builder::new()
                        .name("rtbcore-mirror".into())
                        .spawn(move || mirror_poll(hub, every))
                        .map_err(|e| e.to_string())?,
                )
            }
            None => None,
        };
        let tracker = TaskTracker::new();
        let state = AppState {
            hub: hub.clone(),
            conns: Arc::new(Semaphore::new(hub.cfg.server.max_connections)),
            tracker: tracker.clone(),
            openrtb: crate::openrtb::OpenRtb::new(hub.clone()),
        };
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        let token = hub.shutdown.clone();
        rt.spawn(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else { return };
            // every frame is a complete answer that a client waits for: no Nagle delay
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ =
                axum::serve(listener, app).with_graceful_shutdown(token.cancelled_owned()).await;
        });
        if demo > 0.0 {
            rt.spawn(crate::demo::run(hub.clone(), demo));
        }
        Ok(Gateway {
            hub,
            rt: Some(rt),
            addr,
            dev_key,
            results: Some(results),
            mirror_poll,
            tracker,
            _tmp_dir: tmp,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn dev_key(&self) -> Option<&str> {
        self.dev_key.as_deref()
    }

    pub fn event_log_path(&self) -> PathBuf {
        self.hub.log.path().to_path_buf()
    }

    /// Opens an auction on behalf of the embedding program (its results come from
    /// [`Gateway::next_outcome`]).
    pub fn open_auction(&self, o: &OpenAuction) -> Result<AuctionOpened, Reject> {
        self.hub.open_auction(None, o).map(|(_, opened)| opened)
    }

    /// The next auction outcome, waiting up to `timeout`.
    pub fn next_outcome(&self, timeout: Duration) -> Option<AuctionOutcome> {
        self.hub.outcomes_rx.recv_timeout(timeout).ok()
    }

    /// The `/metrics` text.
    pub fn metrics_text(&self) -> String {
        self.hub.metrics_text(&[])
    }

    pub fn auctions_open(&self) -> usize {
        self.hub.table.lock().open.len()
    }

    pub fn is_running(&self) -> bool {
        self.rt.is_some()
    }

    /// Drains and stops: stops taking auctions and connections, lets open auctions finish
    /// (`server.shutdown = "finish"`, up to `drain_timeout_s`) or closes them at once
    /// ("cancel"), delivers their results, flushes every connection's queue and closes it with
    /// 1001. Idempotent.
    pub fn stop(&mut self) {
        let Some(rt) = self.rt.take() else { return };
        let hub = &self.hub;
        hub.draining.store(true, Ordering::Release);
        if hub.cfg.server.shutdown == "finish" {
            let until = Instant::now() + hub.cfg.drain_timeout();
            while Instant::now() < until && !hub.table.lock().open.is_empty() {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        // closes what is still open (closed_by = SHUTDOWN); the result thread emits those
        // results and ends once the engine is drained
        let _ = hub.engine.close();
        if let Some(t) = self.results.take() {
            let _ = t.join();
        }
        hub.shutdown.cancel();
        self.tracker.close();
        let tracker = self.tracker.clone();
        rt.block_on(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
        });
        rt.shutdown_timeout(Duration::from_secs(1));
        // its last round appends what is still held for Redis
        if let Some(t) = self.mirror_poll.take() {
            let _ = t.join();
        }
        // a graceful stop leaves the whole log on disk, not only in the page cache
        if let Err(e) = hub.log.flush() {
            eprintln!("rtbcore serve: writing the event log to disk: {e}");
        }
    }
}

/// Every `every`: for each buyer connected here, delivers what other nodes made for it, and
/// appends what was held while Redis did not answer; a last round after shutdown.
fn mirror_poll(hub: std::sync::Weak<Hub>, every: Duration) {
    loop {
        let Some(h) = hub.upgrade() else { return };
        let done = h.shutdown.is_cancelled();
        h.streams.poll_mirror(!done);
        drop(h);
        if done {
            return;
        }
        std::thread::sleep(every);
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}
