//! Many idle authenticated connections, and the server memory they cost.
//!
//! The server's resident set (`VmRSS` in /proc/PID/status) is read before the first connection
//! and again once every connection has authenticated and the server has settled for a second;
//! the difference divided by the connections held is the memory per idle connection (it
//! includes the kernel-side socket buffers only as far as they are charged to the process,
//! i.e. not at all: RSS is user-space memory).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::conn::{Conn, Target};
use crate::stats::rss_bytes;

/// Handshakes in progress at once: enough to be quick, few enough not to trip SYN backlogs.
const CONCURRENT_HANDSHAKES: usize = 256;

pub async fn open_idle(
    target: &Target,
    keys: &[String],
    n: usize,
    sources: &[IpAddr],
    server_pid: Option<u32>,
) -> (Vec<Conn>, Value) {
    let before = server_pid.and_then(rss_bytes);
    let t0 = Instant::now();
    let gate = Arc::new(Semaphore::new(CONCURRENT_HANDSHAKES));
    let mut set = JoinSet::new();
    for i in 0..n {
        let target = target.clone();
        let key = keys[i % keys.len()].clone();
        let source = (!sources.is_empty()).then(|| sources[i % sources.len()]);
        let gate = gate.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            let mut conn = target.connect_idle(source).await.map_err(|e| e.to_string())?;
            conn.login(&key, None).await.map_err(|e| e.to_string())?;
            Ok::<Conn, String>(conn)
        });
    }
    let mut conns = Vec::with_capacity(n);
    let mut failed = 0usize;
    let mut first_error = None;
    while let Some(r) = set.join_next().await {
        match r.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(c) => conns.push(c),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    let connect_s = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server_pid.and_then(rss_bytes);
    let per_conn = match (before, after) {
        (Some(b), Some(a)) if !conns.is_empty() => Some((a as f64 - b as f64) / conns.len() as f64),
        _ => None,
    };
    let report = json!({
        "requested": n,
        "held": conns.len(),
        "failed": failed,
        "first_error": first_error,
        "connect_s": connect_s,
        "server_rss_before_bytes": before,
        "server_rss_after_bytes": after,
        "server_bytes_per_connection": per_conn,
    });
    (conns, report)
}
