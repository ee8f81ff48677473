//! Currency conversion rates from a JSON file in Prebid Server's format
//! (`{"conversions": {"USD": {"EUR": 0.92}}}`: one USD buys 0.92 EUR), re-read when the file's
//! modification time changes. A file that fails to parse keeps the previous rates in force.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use serde::Deserialize;

#[derive(Deserialize)]
struct RatesFile {
    conversions: HashMap<String, HashMap<String, f64>>,
}

/// Rates as loaded: `from -> to -> rate`.
#[derive(Debug, Default)]
pub struct Table(HashMap<String, HashMap<String, f64>>);

impl Table {
    pub fn from_map(m: HashMap<String, HashMap<String, f64>>) -> Table {
        Table(m)
    }

    /// How many `to` one `from` buys: direct, inverse, or through one common currency.
    pub fn rate(&self, from: &str, to: &str) -> Option<f64> {
        if from == to {
            return Some(1.0);
        }
        let direct = |a: &str, b: &str| -> Option<f64> {
            if let Some(r) = self.0.get(a).and_then(|m| m.get(b)) {
                return Some(*r);
            }
            self.0.get(b).and_then(|m| m.get(a)).map(|r| 1.0 / r)
        };
        if let Some(r) = direct(from, to) {
            return Some(r);
        }
        for (base, m) in &self.0 {
            let via_from = m.get(from).map(|r| 1.0 / r).or_else(|| direct(from, base));
            let via_to = m.get(to).copied().or_else(|| direct(base, to));
            if let (Some(a), Some(b)) = (via_from, via_to) {
                return Some(a * b);
            }
        }
        None
    }
}

pub struct Rates {
    path: Option<PathBuf>,
    state: Mutex<(Option<SystemTime>, Arc<Table>)>,
}

impl Rates {
    pub fn new(path: Option<PathBuf>) -> Rates {
        let r = Rates { path, state: Mutex::new((None, Arc::new(Table::default()))) };
        r.current();
        r
    }

    fn load(path: &PathBuf) -> Result<Table, String> {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let f: RatesFile =
            serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for (from, m) in &f.conversions {
            for (to, r) in m {
                if !(r.is_finite() && *r > 0.0) {
                    return Err(format!("{}: conversions.{from}.{to} must be > 0", path.display()));
                }
            }
        }
        Ok(Table(f.conversions))
    }

    /// The rates in force, re-read first if the file changed.
    pub fn current(&self) -> Arc<Table> {
        let Some(path) = &self.path else { return self.state.lock().1.clone() };
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let mut st = self.state.lock();
        if mtime.is_some() && mtime != st.0 {
            if let Ok(t) = Rates::load(path) {
                *st = (mtime, Arc::new(t));
            }
        }
        st.1.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_inverse_and_through_a_base() {
        let t = Table(
            [("USD".to_string(), [("EUR".to_string(), 0.5), ("GBP".to_string(), 0.25)].into())]
                .into(),
        );
        assert_eq!(t.rate("USD", "EUR"), Some(0.5));
        assert_eq!(t.rate("EUR", "USD"), Some(2.0));
        assert_eq!(t.rate("EUR", "GBP"), Some(0.5));
        assert_eq!(t.rate("USD", "JPY"), None);
    }
}
