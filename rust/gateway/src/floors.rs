//! Floors learned per segment from the exchange's own results (`[floors]`), applied with no
//! Python in the path. A segment is named by attribute values (`floors.segment_by` for the
//! publishers' auctions, `floors.openrtb_segment_by` for OpenRTB imps); each has a
//! [`FloorLearner`] key. An auction gets max(its own floor, the segment's learned floor, which
//! is sometimes an explored candidate); its close teaches the segment the floor it had, whether
//! it sold and at what price. Learned floors and prices are in currency units; the exchange's
//! floors are micros.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use rtbcore_core::floors::{FloorLearner, FloorParams};

use crate::config::FloorsConfig;
use crate::events::to_micros;

/// The segment of the traffic beyond `floors.max_segments`.
pub const OTHER: &str = "(other)";

/// A learned floor given to an auction: its segment and the floor it teaches at close.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Learn {
    pub segment: u32,
    /// The floor the auction had, in currency units: the learned candidate itself when it set
    /// the floor (so that the learner finds it on its grid), else the auction's own floor.
    pub floor: f64,
}

struct State {
    learner: FloorLearner,
    index: HashMap<String, u32>,
    names: Vec<String>,
    other: Option<u32>,
}

pub struct Floors {
    max_segments: usize,
    max_micros: i64,
    state: Mutex<State>,
    /// Auctions whose floor the learned floor raised.
    pub floored: AtomicU64,
    /// Results learned from.
    pub learned: AtomicU64,
    /// Auctions put in the "(other)" segment.
    pub other: AtomicU64,
}

impl Floors {
    /// The learner of a validated `[floors]` section; None when it is not enabled.
    pub fn new(cfg: &FloorsConfig, max_micros: i64) -> Option<Floors> {
        if !cfg.enabled {
            return None;
        }
        let p = FloorParams {
            half_life: cfg.half_life,
            explore: cfg.explore,
            explore_steps: cfg.explore_steps,
            min_fill: cfg.min_fill,
            min_weight: cfg.min_weight,
            initial: cfg.initial,
            seed: cfg.seed,
        };
        let learner = FloorLearner::new(&cfg.grid(), 0, &p).expect("validated with the config");
        Some(Floors {
            max_segments: cfg.max_segments,
            max_micros,
            state: Mutex::new(State {
                learner,
                index: HashMap::new(),
                names: Vec::new(),
                other: None,
            }),
            floored: AtomicU64::new(0),
            learned: AtomicU64::new(0),
            other: AtomicU64::new(0),
        })
    }

    /// The segment name of an auction: `key=value` for each key, joined by `,` (a missing
    /// attribute is an empty value); None when `keys` is empty (no learned floor).
    pub fn segment_name<'a>(
        keys: &[String],
        value: impl Fn(&str) -> Option<&'a str>,
    ) -> Option<String> {
        if keys.is_empty() {
            return None;
        }
        let mut s = String::new();
        for (i, k) in keys.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, "{k}={}", value(k).unwrap_or(""));
        }
        Some(s)
    }

    /// The floor in micros for an auction of segment `name` whose own floor is `own` micros,
    /// and what its close will teach (None: `learn` was false). `explore`: the auction may get
    /// an explored candidate.
    pub fn apply(&self, name: &str, own: i64, explore: bool, learn: bool) -> (i64, Option<Learn>) {
        let (segment, learned) = {
            let mut st = self.state.lock();
            let seg = match st.index.get(name) {
                Some(&s) => s,
                None if st.names.len() < self.max_segments => {
                    let s = st.learner.add_key() as u32;
                    st.index.insert(name.to_string(), s);
                    st.names.push(name.to_string());
                    s
                }
                None => {
                    self.other.fetch_add(1, Ordering::Relaxed);
                    match st.other {
                        Some(s) => s,
                        None => {
                            let s = st.learner.add_key() as u32;
                            st.other = Some(s);
                            s
                        }
                    }
                }
            };
            (seg, st.learner.lookup(seg as usize, explore))
        };
        let micros = to_micros(learned).min(self.max_micros);
        let (floor, taught) = if micros > own {
            self.floored.fetch_add(1, Ordering::Relaxed);
            (micros, learned)
        } else if micros == own {
            (own, learned)
        } else {
            (own, own as f64 / 1e6)
        };
        (floor, learn.then_some(Learn { segment, floor: taught }))
    }

    /// Learns an auction's close: sold or not, and its price in micros. A short lock, no
    /// allocation.
    pub fn learn(&self, l: Learn, sold: bool, price_micros: i64) {
        let price = price_micros as f64 / 1e6;
        let ok = self.state.lock().learner.update_one(l.segment as usize, l.floor, price, sold);
        if ok.is_ok() {
            self.learned.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The current learned floor of a segment (None: not seen yet).
    pub fn floor_of(&self, name: &str) -> Option<f64> {
        let st = self.state.lock();
        let s = if name == OTHER { st.other? } else { *st.index.get(name)? };
        Some(st.learner.floor(s as usize))
    }

    /// The floor metrics in Prometheus text.
    pub fn render(&self, out: &mut String) {
        let floors: Vec<(String, f64)> = {
            let st = self.state.lock();
            let mut v: Vec<(String, f64)> =
                st.names.iter().zip(st.learner.floors()).map(|(n, f)| (n.clone(), *f)).collect();
            if let Some(o) = st.other {
                v.push((OTHER.to_string(), st.learner.floor(o as usize)));
            }
            v
        };
        let _ = writeln!(
            out,
            "# HELP rtbcore_gateway_floor the learned floor of a segment, currency units\n\
             # TYPE rtbcore_gateway_floor gauge"
        );
        for (n, f) in &floors {
            let _ = writeln!(out, "rtbcore_gateway_floor{{segment=\"{}\"}} {f}", escape(n));
        }
        let _ = writeln!(
            out,
            "# HELP rtbcore_gateway_floor_segments segments with a learned floor\n\
             # TYPE rtbcore_gateway_floor_segments gauge\nrtbcore_gateway_floor_segments {}",
            floors.len()
        );
        let v = |a: &AtomicU64| a.load(Ordering::Relaxed);
        for (name, help, n) in [
            (
                "rtbcore_gateway_floor_auctions_floored_total",
                "auctions whose floor the learned floor raised",
                v(&self.floored),
            ),
            (
                "rtbcore_gateway_floor_auctions_learned_total",
                "closed auctions the floors learned from",
                v(&self.learned),
            ),
            (
                "rtbcore_gateway_floor_auctions_other_total",
                "auctions beyond floors.max_segments, in the segment \"(other)\"",
                v(&self.other),
            ),
        ] {
            crate::metrics::write_metric(out, name, help, n);
        }
    }
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(toml_text: &str) -> FloorsConfig {
        let c = crate::Config::from_toml(toml_text, std::path::Path::new(".")).unwrap();
        c.floors
    }

    #[test]
    fn segments_beyond_the_limit_share_other() {
        let f = Floors::new(
            &cfg("[floors]\nenabled = true\nmax_segments = 2\nsegment_by = [\"s\"]\n"),
            1 << 40,
        )
        .unwrap();
        for name in ["s=a", "s=b", "s=c", "s=d", "s=a"] {
            f.apply(name, 0, false, true);
        }
        assert_eq!(f.other.load(Ordering::Relaxed), 2);
        assert!(f.floor_of("s=a").is_some() && f.floor_of(OTHER).is_some());
        assert!(f.floor_of("s=c").is_none());
        let mut m = String::new();
        f.render(&mut m);
        assert!(m.contains("rtbcore_gateway_floor_segments 3"), "{m}");
        assert!(m.contains("rtbcore_gateway_floor{segment=\"(other)\"} 0"), "{m}");
        assert!(m.contains("rtbcore_gateway_floor_auctions_other_total 2"), "{m}");
    }

    #[test]
    fn the_own_floor_wins_when_higher_and_is_what_is_taught() {
        let f = Floors::new(
            &cfg("[floors]\nenabled = true\ninitial = 0.5\ngrid = [0.0, 0.5, 1.0]\n"),
            1 << 40,
        )
        .unwrap();
        let (micros, l) = f.apply("x", 700_000, false, true);
        assert_eq!((micros, l.unwrap().floor), (700_000, 0.7));
        let (micros, l) = f.apply("x", 100_000, false, true);
        assert_eq!((micros, l.unwrap().floor), (500_000, 0.5));
        assert_eq!(f.floored.load(Ordering::Relaxed), 1);
        assert_eq!(f.apply("x", 0, false, false).1, None);
    }
}
