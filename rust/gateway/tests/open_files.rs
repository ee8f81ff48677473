//! The server raises its open-file limit to what `server.max_connections` needs (a test binary
//! of its own: it lowers the process's limit first).

mod common;

use common::*;
use rlimit::Resource;

#[test]
fn the_open_file_limit_is_raised_to_what_the_connections_need() {
    let (_, hard) = Resource::NOFILE.get().unwrap();
    // as low a soft limit as some systems start with
    let low = 128.min(hard);
    Resource::NOFILE.set(low, hard).unwrap();
    let dir = TempDir::new("nofile");
    let max = 1_000u64;
    let server = format!("max_connections = {max}\nmax_connections_per_buyer = {max}");
    let gw = start(config_with(&dir.0, &server, "", ""));
    let (soft, _) = Resource::NOFILE.get().unwrap();
    assert_eq!(soft, (max + 256).min(hard));
    // this process holds both ends: 200 connections need about 400 descriptors, three times
    // the limit it started with
    let n = 200.min((soft as usize - 64) / 2);
    assert!(n as u64 * 2 > low, "hard limit {hard} too low to show anything");
    let addr = gw.local_addr();
    runtime().block_on(async move {
        let mut held = Vec::new();
        for _ in 0..n {
            held.push(Client::login(addr, "key-acme").await);
        }
        assert_eq!(held.len(), n);
    });
    let m = gw.metrics_text();
    assert!(m.contains(&format!("rtbcore_gateway_connections_total {n}")), "{m}");
}
