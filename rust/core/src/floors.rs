//! Price floors learned online per key (a segment) from censored feedback: the applied floor,
//! the price and whether the auction sold. This is the rule of `rtbcore.floors.FloorOptimizer`
//! fed with `feedback="price"`, kept bit for bit: the same grid, decayed sums, difference
//! arrays, rescaling, selection rule and seeded exploration stream (splitmix64, geometric gaps
//! taken 64 at a time), so that a floor learned here equals the one the Python optimizer learns
//! from the same log.
//!
//! For each key and candidate floor `f_k` the learner keeps decayed sums over the auctions whose
//! applied floor was exactly `f_k`: `W_k` (auctions), `S_k` (revenue) and `F_k` (sales). A key's
//! floor is the candidate with the highest revenue per auction among those known from at least
//! `min_weight` decayed auctions and selling at least `min_fill` of them; when every known
//! candidate misses `min_fill`, the lowest known one. Every auction of a key decays its sums by
//! `0.5 ** (1 / half_life)`. A share `explore` of lookups gets a random candidate within
//! `explore_steps` grid steps of the floor, which is how the candidates around it become known.
//!
//! ```
//! use rtbcore_core::floors::{FloorLearner, FloorParams};
//! let grid = [0.0, 0.25, 0.5, 0.75];
//! let p = FloorParams { explore: 0.0, min_weight: 1.0, ..FloorParams::default() };
//! let mut l = FloorLearner::new(&grid, 1, &p).unwrap();
//! // two auctions at floor 0.5 sold at 0.6; two at 0.25 sold at 0.3
//! l.update(&[0, 0, 0, 0], &[0.5, 0.5, 0.25, 0.25], &[0.6, 0.6, 0.3, 0.3], &[true; 4]).unwrap();
//! assert_eq!(l.floor(0), 0.5);
//! ```

use crate::error::CoreError;

/// The learner's settings (the `FloorOptimizer` keywords of the same names).
#[derive(Debug, Clone, PartialEq)]
pub struct FloorParams {
    pub half_life: f64,
    pub explore: f64,
    pub explore_steps: u32,
    pub min_fill: f64,
    pub min_weight: f64,
    pub initial: f64,
    pub seed: u64,
}

impl Default for FloorParams {
    fn default() -> Self {
        FloorParams {
            half_life: 10_000.0,
            explore: 0.0,
            explore_steps: 4,
            min_fill: 0.0,
            min_weight: 20.0,
            initial: 0.0,
            seed: 0,
        }
    }
}

/// Gaps that never reach an auction: exploration off (or too rare to count).
const NEVER: i64 = 1 << 62;
const ROW: usize = 4;

/// splitmix64 (Steele, Lea, Flood 2014).
#[inline]
fn splitmix(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform on (0, 1].
#[inline]
fn uniform(s: &mut u64) -> f64 {
    ((splitmix(s) >> 11) as f64 + 1.0) * (1.0 / 9_007_199_254_740_992.0)
}

/// log(x) for a normal x > 0 to ~1e-9, evaluated exactly as the Cython kernel does (so that
/// the gaps, truncated to integers, agree): x = 2**e * m, m in [sqrt(1/2), sqrt(2)),
/// log(m) = 2 atanh(t) by its series to t**9.
#[inline]
fn fast_log(x: f64) -> f64 {
    let u = x.to_bits();
    let mut e = ((u >> 52) & 0x7FF) as i64 - 1023;
    let mut m = f64::from_bits((u & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000);
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let lm = 2.0 * t * (1.0 + t2 * (1.0 / 3.0 + t2 * (0.2 + t2 * (1.0 / 7.0 + t2 / 9.0))));
    e as f64 * std::f64::consts::LN_2 + lm
}

/// Per-key floors over a grid of candidates, learned from (floor, price, sold) rows.
#[derive(Debug, Clone)]
pub struct FloorLearner {
    grid: Vec<f64>,
    min_fill: f64,
    min_weight: f64,
    inv_lam: f64,
    initial: f64,
    k0: i64,
    /// `[key][k][(W, S, C, F)]` difference arrays, K + 1 positions per key; contributions are
    /// stored times `g[key]` (= lam ** -auctions) instead of decaying every sum.
    d: Vec<f64>,
    g: Vec<f64>,
    floors: Vec<f64>,
    kcur: Vec<i64>,
    touched: Vec<bool>,
    rng: u64,
    explore: f64,
    inv_log_stay: f64,
    steps: i64,
    gap: i64,
    step: i64,
    gbuf: [i64; 64],
    sbuf: [i64; 64],
    gpos: usize,
}

impl FloorLearner {
    /// A learner for `n_keys` keys (more can be added with [`FloorLearner::add_key`]).
    pub fn new(grid: &[f64], n_keys: usize, p: &FloorParams) -> Result<FloorLearner, CoreError> {
        if grid.len() < 2 {
            return Err(CoreError::invalid(
                "grid",
                format!("expected >= 2 floors, got {}", grid.len()),
            ));
        }
        for (i, &g) in grid.iter().enumerate() {
            if !(g.is_finite() && g >= 0.0) {
                return Err(CoreError::invalid(
                    "grid",
                    format!("grid[{i}] = {g}: must be finite and >= 0"),
                ));
            }
            if i > 0 && g <= grid[i - 1] {
                return Err(CoreError::invalid(
                    "grid",
                    format!("grid[{i}] = {g}: the grid must increase strictly"),
                ));
            }
        }
        let real = |name: &'static str, v: f64, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(CoreError::invalid(name, format!("{v} is out of range")))
            }
        };
        real("half_life", p.half_life, p.half_life.is_finite() && p.half_life > 0.0)?;
        real("explore", p.explore, (0.0..=1.0).contains(&p.explore))?;
        real("min_fill", p.min_fill, (0.0..=1.0).contains(&p.min_fill))?;
        real("min_weight", p.min_weight, p.min_weight.is_finite() && p.min_weight >= 0.0)?;
        real("initial", p.initial, p.initial.is_finite() && p.initial >= 0.0)?;
        let lam = 0.5f64.powf(1.0 / p.half_life);
        let k0 = (grid.partition_point(|&g| g <= p.initial) as i64 - 1).max(0);
        let mut l = FloorLearner {
            grid: grid.to_vec(),
            min_fill: p.min_fill,
            min_weight: p.min_weight,
            inv_lam: 1.0 / lam,
            initial: p.initial,
            k0,
            d: Vec::new(),
            g: Vec::new(),
            floors: Vec::new(),
            kcur: Vec::new(),
            touched: Vec::new(),
            rng: p.seed,
            explore: p.explore,
            inv_log_stay: if p.explore > 0.0 && p.explore < 1.0 {
                1.0 / (1.0 - p.explore).ln()
            } else {
                0.0
            },
            steps: i64::from(p.explore_steps),
            gap: 0,
            step: 0,
            gbuf: [0; 64],
            sbuf: [0; 64],
            gpos: 64,
        };
        for _ in 0..n_keys {
            l.add_key();
        }
        l.next_gap();
        Ok(l)
    }

    /// Adds a key with the initial floor and nothing learned; returns its index.
    pub fn add_key(&mut self) -> usize {
        let k = self.grid.len();
        self.d.resize(self.d.len() + ROW * (k + 1), 0.0);
        self.g.push(1.0);
        self.floors.push(self.initial);
        self.kcur.push(self.k0);
        self.touched.push(false);
        self.floors.len() - 1
    }

    pub fn n_keys(&self) -> usize {
        self.floors.len()
    }

    pub fn grid(&self) -> &[f64] {
        &self.grid
    }

    /// The current floor of every key.
    pub fn floors(&self) -> &[f64] {
        &self.floors
    }

    /// The current floor of `key` (no exploration). Panics when `key` is out of range.
    pub fn floor(&self, key: usize) -> f64 {
        self.floors[key]
    }

    fn next_gap(&mut self) {
        if self.gpos == 64 {
            self.refill();
        }
        self.gap = self.gbuf[self.gpos];
        self.step = self.sbuf[self.gpos];
        self.gpos += 1;
    }

    fn refill(&mut self) {
        for j in 0..64 {
            self.gbuf[j] = if self.explore <= 0.0 {
                NEVER
            } else if self.explore >= 1.0 {
                0
            } else {
                // both factors <= 0; a gap beyond 2**62 (or an infinite one, when
                // log(1 - explore) rounds to 0) means no exploration within reach
                let x = fast_log(uniform(&mut self.rng)) * self.inv_log_stay;
                if x >= 0.0 && x < NEVER as f64 {
                    x as i64
                } else {
                    NEVER
                }
            };
            let span = (2 * self.steps) as u64;
            let d = ((splitmix(&mut self.rng) >> 32).wrapping_mul(span) >> 32) as i64 - self.steps;
            self.sbuf[j] = if d >= 0 { d + 1 } else { d };
        }
        self.gpos = 0;
    }

    /// The floor to apply to the next auction of `key`: with `explore`, a share of auctions
    /// (drawn from the seeded stream) gets a random candidate near the key's floor.
    pub fn lookup(&mut self, key: usize, explore: bool) -> f64 {
        let f = self.floors[key];
        if !(explore && self.explore > 0.0 && self.steps > 0) {
            return f;
        }
        if self.gap >= 1 {
            self.gap -= 1;
            return f;
        }
        let k = (self.step + self.kcur[key]).clamp(0, self.grid.len() as i64 - 1);
        self.next_gap();
        self.grid[k as usize]
    }

    /// The last k with grid[k] <= x (-1 when none).
    #[inline]
    fn ix(&self, x: f64) -> i64 {
        self.grid.partition_point(|&g| g <= x) as i64 - 1
    }

    fn rescale(&mut self, key: usize) {
        let s = 1.0 / self.g[key];
        let n = ROW * (self.grid.len() + 1);
        for v in &mut self.d[key * n..(key + 1) * n] {
            *v *= s;
        }
        self.g[key] = 1.0;
    }

    /// Learns one auction of `key` without refreshing its floor. Only an auction whose floor is
    /// a candidate teaches anything; every auction moves the key's clock.
    fn learn(&mut self, key: usize, f: f64, p: f64, sold: bool) {
        let w = self.g[key] * self.inv_lam;
        self.g[key] = w;
        self.touched[key] = true;
        let lo = self.ix(f);
        if lo < 0 || self.grid[lo as usize] != f || (!sold && f <= 0.0) {
            if w > 1e100 {
                self.rescale(key);
            }
            return;
        }
        let lo = lo as usize;
        let row = &mut self.d[key * ROW * (self.grid.len() + 1)..];
        row[ROW * lo] += w;
        row[ROW * (lo + 1)] -= w;
        if sold {
            row[ROW * lo + 1] += p * w;
            row[ROW * (lo + 1) + 1] -= p * w;
            row[ROW * lo + 3] += w;
            row[ROW * (lo + 1) + 3] -= w;
        }
        if w > 1e100 {
            self.rescale(key);
        }
    }

    /// Picks the key's floor from its sums (see the module doc); with no known candidate the
    /// floor stays.
    fn refresh(&mut self, key: usize) {
        let k_n = self.grid.len();
        let row = &self.d[key * ROW * (k_n + 1)..];
        let (mut w, mut s, mut c, mut f) = (0.0, 0.0, 0.0, 0.0);
        let (mut best, mut lowest) = (-1i64, -1i64);
        let mut best_rev = -1.0;
        // a floor of 1e-6 auctions keeps the rounding residue of the difference arrays (where
        // nothing was observed) from counting as knowledge
        let mut need = if self.min_weight > 1e-6 { self.min_weight } else { 1e-6 } * self.g[key];
        need *= 1.0 - 1e-9;
        for k in 0..k_n {
            w += row[ROW * k];
            s += row[ROW * k + 1];
            c += row[ROW * k + 2];
            f += row[ROW * k + 3];
            if w <= 0.0 || w < need {
                continue;
            }
            if lowest < 0 {
                lowest = k as i64;
            }
            if f < self.min_fill * w * (1.0 - 1e-12) {
                continue;
            }
            let rev = (s + self.grid[k] * c) / w;
            if rev > best_rev * (1.0 + 1e-12) {
                best_rev = rev;
                best = k as i64;
            }
        }
        if best < 0 {
            best = lowest;
        }
        if best >= 0 {
            self.kcur[key] = best;
            self.floors[key] = self.grid[best as usize];
        }
    }

    /// Learns one auction of `key` and refreshes its floor: `floor` applied, `price` paid
    /// (read only when `sold`). No allocation.
    pub fn update_one(
        &mut self,
        key: usize,
        floor: f64,
        price: f64,
        sold: bool,
    ) -> Result<(), CoreError> {
        check_row(self.n_keys(), 0, key as i64, floor, price, sold)?;
        self.learn(key, floor, price, sold);
        self.touched[key] = false;
        self.refresh(key);
        Ok(())
    }

    /// Learns rows in order, then refreshes the floors of the keys they touched (as
    /// `FloorOptimizer.update` does with a batch). Every row is checked first: a bad one is
    /// refused, naming it, with the learner unchanged.
    pub fn update(
        &mut self,
        key: &[i64],
        floor: &[f64],
        price: &[f64],
        sold: &[bool],
    ) -> Result<(), CoreError> {
        let n = key.len();
        for (name, len) in [("floor", floor.len()), ("price", price.len()), ("sold", sold.len())] {
            if len != n {
                return Err(CoreError::invalid(name, format!("has {len} entries but key has {n}")));
            }
        }
        for i in 0..n {
            check_row(self.n_keys(), i, key[i], floor[i], price[i], sold[i])?;
        }
        for (((&k, &f), &p), &s) in key.iter().zip(floor).zip(price).zip(sold) {
            self.learn(k as usize, f, p, s);
        }
        for k in 0..self.n_keys() {
            if self.touched[k] {
                self.touched[k] = false;
                self.refresh(k);
            }
        }
        Ok(())
    }
}

fn check_row(
    n_keys: usize,
    i: usize,
    key: i64,
    floor: f64,
    price: f64,
    sold: bool,
) -> Result<(), CoreError> {
    use crate::record::Value;
    let bad = |field, value, msg| Err(CoreError::InvalidValue { field, index: i, value, msg });
    if key < 0 || key as u64 >= n_keys as u64 {
        return bad("key", Value::Int(i128::from(key)), "must be a key of the learner");
    }
    if !(floor.is_finite() && floor >= 0.0) {
        return bad("floor", Value::Float(floor), "must be finite and >= 0");
    }
    if sold && !(price.is_finite() && price >= 0.0) {
        return bad("price", Value::Float(price), "must be finite and >= 0 when sold");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_log_is_close_to_ln() {
        for x in [1e-300, 1e-9, 0.3, 0.7, 1.0, 1.5, 2.0, 1e9] {
            assert!((fast_log(x) - x.ln()).abs() < 1e-8 * x.ln().abs().max(1.0), "{x}");
        }
    }

    #[test]
    fn tiny_explore_never_explores_and_never_overflows() {
        let grid = [0.0, 1.0, 2.0];
        for e in [1e-300, 1e-18, 4e-18, 1e-17] {
            let p = FloorParams { explore: e, ..FloorParams::default() };
            let mut l = FloorLearner::new(&grid, 1, &p).unwrap();
            for _ in 0..1000 {
                assert_eq!(l.lookup(0, true), 0.0);
            }
        }
    }

    #[test]
    fn learns_the_better_floor_and_respects_min_fill() {
        let grid = [0.0, 0.5, 1.0];
        let p = FloorParams { min_weight: 2.0, ..FloorParams::default() };
        let mut l = FloorLearner::new(&grid, 2, &p).unwrap();
        for _ in 0..10 {
            l.update_one(0, 0.5, 0.5, true).unwrap();
            l.update_one(0, 1.0, 1.0, false).unwrap();
            l.update_one(0, 0.0, 0.2, true).unwrap();
        }
        assert_eq!(l.floor(0), 0.5);
        assert_eq!(l.floor(1), 0.0);
        let e = l.update_one(2, 0.5, 0.5, true).unwrap_err();
        assert!(e.to_string().starts_with("key[0]"), "{e}");
        let e = l.update(&[0, 1], &[0.5, f64::NAN], &[0.5, 0.5], &[true, true]).unwrap_err();
        assert!(e.to_string().starts_with("floor[1]"), "{e}");
    }

    #[test]
    fn the_clock_survives_long_runs_of_uninformative_auctions() {
        let grid = [0.0, 1.0];
        let p = FloorParams { half_life: 1.0, min_weight: 1.0, ..FloorParams::default() };
        let mut l = FloorLearner::new(&grid, 1, &p).unwrap();
        for _ in 0..5000 {
            l.update_one(0, 0.3, 0.3, true).unwrap();
        }
        l.update_one(0, 1.0, 1.0, true).unwrap();
        l.update_one(0, 1.0, 1.0, true).unwrap();
        assert_eq!(l.floor(0), 1.0);
        assert!(l.g[0].is_finite());
    }
}
