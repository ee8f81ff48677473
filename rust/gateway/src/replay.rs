//! Replay: a buyer's logged events in a seq range, read back from the event log.

use rtbcore_proto::v1::BidEvent;

use crate::events::{from_record, type_bit, T_ANSWER};
use crate::hub::Hub;
use crate::streams::ReplayPlan;

/// The buyer's events with seq in `plan.from..=plan.to` still in the log, in order, filtered
/// by the subscription's event types and the retention / `since_time` bound.
pub fn replay_events(hub: &Hub, buyer: &str, plan: &ReplayPlan) -> Vec<BidEvent> {
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
        .filter_map(|e| from_record(buyer, e, &hub.currency, &*table))
        .filter(|ev| {
            // a record appears once, but a scan that restarts after an overrun may see an
            // entry twice: keep seq strictly increasing
            let fresh = ev.seq > last;
            last = last.max(ev.seq);
            let bit = ev.event.as_ref().map_or(T_ANSWER, type_bit);
            fresh && (bit == T_ANSWER || plan.mask & bit != 0)
        })
        .collect()
}
