//! `server.transparent_huge_pages`: the server turns transparent huge pages off for its process
//! unless told to keep them. Its own test binary: the setting is process-wide and one-way.

mod common;

use common::{config, start, TempDir};
use rtbcore_proto::v1::OpenAuction;

/// The process's "THP_enabled" line: 1 while transparent huge pages are allowed.
fn thp_enabled() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("THP_enabled:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn the_server_turns_huge_pages_off_unless_told_to_keep_them() {
    let Some(before) = thp_enabled() else {
        eprintln!("skipped: this kernel does not report THP_enabled");
        return;
    };
    assert_eq!(before, 1, "the test process starts with huge pages allowed");
    // `true` keeps them: the server works and the flag is untouched
    let d = TempDir::new("thp-keep");
    let mut cfg = config(&d.0, "");
    cfg.server.transparent_huge_pages = true;
    let mut keep = start(cfg);
    let open = OpenAuction { auction_id: "a".into(), ..Default::default() };
    assert!(keep.open_auction(&open).is_ok());
    keep.stop();
    assert_eq!(thp_enabled(), Some(1));
    // the default turns them off for the process
    let d2 = TempDir::new("thp-off");
    let mut off = start(config(&d2.0, ""));
    assert_eq!(thp_enabled(), Some(0));
    off.stop();
}
