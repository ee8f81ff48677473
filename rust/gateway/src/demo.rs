//! Demo traffic: synthetic auctions with attributes, opened at a steady rate by the exchange
//! itself (a development exchange works at once, with something to bid on).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rtbcore_proto::v1::{Money, OpenAuction};

use crate::hub::Hub;

const VERTICALS: [&str; 5] = ["news", "sports", "finance", "travel", "gaming"];
const GEOS: [&str; 6] = ["US", "GB", "DE", "FR", "JP", "BR"];
const DEVICES: [&str; 3] = ["mobile", "desktop", "ctv"];

/// xorshift64*: enough randomness for synthetic attributes, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

/// One synthetic auction request.
pub fn synthetic_auction(seed: u64) -> OpenAuction {
    let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut attributes = HashMap::new();
    attributes.insert("vertical".to_string(), r.pick(&VERTICALS).to_string());
    attributes.insert("geography".to_string(), r.pick(&GEOS).to_string());
    attributes.insert("device".to_string(), r.pick(&DEVICES).to_string());
    let q = (r.next() % 100) as f64 / 100.0;
    attributes.insert("quality_score".to_string(), format!("{q:.2}"));
    OpenAuction {
        auction_id: String::new(),
        attributes,
        floor: Some(Money { currency: String::new(), micros: 100 + (r.next() % 900) as i64 }),
        tmax: None,
        expected_bids: 0,
    }
}

/// Opens `rate` synthetic auctions per second until the exchange drains.
pub async fn run(hub: Arc<Hub>, rate: f64) {
    if rate <= 0.0 {
        return;
    }
    // ticks of at least 1 ms, several auctions per tick at high rates
    let per_tick = (rate / 1000.0).ceil().max(1.0);
    let period = Duration::from_secs_f64(per_tick / rate);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = hub.shutdown.cancelled() => return,
        }
        if hub.is_draining() {
            return;
        }
        for _ in 0..per_tick as u64 {
            n += 1;
            let _ = hub.open_auction(None, &synthetic_auction(n));
        }
    }
}
