//! Replay: a buyer's logged events in a seq range, read back from the event log, or from the
//! Redis mirror when the exchange runs as several nodes.

use rtbcore_proto::v1::BidEvent;

use crate::events::{from_record, ts_ns, type_bit, T_ANSWER};
use crate::hub::Hub;
use crate::mirror::entry_event;
use crate::streams::ReplayPlan;

/// Entries read from Redis per call.
const PAGE: usize = 1024;

/// The buyer's events with seq in `plan.from..=plan.to` still held, in order, filtered by the
/// subscription's event types and the retention / `since_time` bound.
pub fn replay_events(hub: &Hub, buyer: &str, plan: &ReplayPlan) -> Vec<BidEvent> {
    if plan.mirrored {
        if let Some(evs) = mirrored(hub, buyer, plan) {
            return evs;
        }
        hub.metrics.replay_fallbacks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let mut entries = Vec::new();
    let read = hub.log.read_range(plan.start_pos, plan.end_pos, |_, e| {
        let r = &e.rec;
        if r.buyer == plan.buyer_key
            && r.seq >= plan.from
            && r.seq <= plan.to
            && r.time_ns >= plan.not_before_ns
        {
            entries.push(e);
        }
        true
    });
    if let Err(e) = read {
        eprintln!("rtbcore serve: replay read failed: {e}");
    }
    let table = hub.table.lock();
    let mut last = 0;
    entries
        .iter()
        .filter_map(|e| from_record(buyer, e, hub.currency, &*table))
        .filter(|ev| {
            // a record appears once, but a scan that restarts after an overrun may see an
            // entry twice: keep seq strictly increasing
            let fresh = ev.seq > last;
            last = last.max(ev.seq);
            fresh && wanted(ev, plan)
        })
        .collect()
}

fn wanted(ev: &BidEvent, plan: &ReplayPlan) -> bool {
    let bit = ev.event.as_ref().map_or(T_ANSWER, type_bit);
    bit == T_ANSWER || plan.mask & bit != 0
}

/// The replay from the buyer's Redis stream; None when Redis does not answer.
fn mirrored(hub: &Hub, buyer: &str, plan: &ReplayPlan) -> Option<Vec<BidEvent>> {
    let m = hub.streams.mirror.as_ref()?;
    let mut out = Vec::new();
    let mut after = plan.from.saturating_sub(1);
    while after < plan.to {
        let page = m.read(plan.buyer_key, after, plan.to, PAGE).ok()?;
        let Some(&(last, _)) = page.last() else { break };
        for (seq, payload) in page {
            let Some(ev) = entry_event(buyer, seq, &payload) else { continue };
            if ev.timestamp.as_ref().map_or(0, ts_ns) < plan.not_before_ns {
                continue;
            }
            if wanted(&ev, plan) {
                out.push(ev);
            }
        }
        after = last;
    }
    Some(out)
}
