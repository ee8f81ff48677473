//! Bid adjustments from the request, in Prebid Server's form:
//! `ext.prebid.bidadjustments.mediatype.{type}.{bidder}.{dealid}` holds a list of
//! `{adjtype, value, currency}` applied in order. `*` is a wildcard at each level; the most
//! specific key wins, in Prebid's order. One invalid rule anywhere drops the whole set.
//!
//! - `multiplier`: price × value (0 <= value < 100);
//! - `cpm`: price − value, the value converted from its currency to the bid's (value >= 0);
//! - `static`: the price becomes value, in its currency (value >= 0).
//!
//! The result is rounded to 4 decimals; a deal bid below 0 becomes 0 (and is refused), an open
//! bid at or below 0 becomes 0.1, as Prebid does.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::rates::Table;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Adjustment {
    pub adjtype: String,
    pub value: f64,
    #[serde(default)]
    pub currency: String,
}

/// `type|bidder|deal` -> adjustments.
#[derive(Debug, Default, Clone)]
pub struct Rules(HashMap<String, Vec<Adjustment>>);

type Tree = HashMap<String, HashMap<String, HashMap<String, Vec<Adjustment>>>>;

fn valid(a: &Adjustment) -> bool {
    let finite = a.value.is_finite() && a.value >= 0.0;
    match a.adjtype.as_str() {
        "multiplier" => finite && a.value < 100.0,
        "cpm" | "static" => finite && !a.currency.is_empty(),
        _ => false,
    }
}

const MEDIA_TYPES: [&str; 6] =
    ["banner", "video-instream", "video-outstream", "audio", "native", "*"];

impl Rules {
    /// The rules of a request's `ext`; none when absent or when any rule is invalid.
    pub fn from_ext(ext: Option<&Value>) -> Rules {
        let Some(v) = ext.and_then(|e| e.pointer("/prebid/bidadjustments/mediatype")) else {
            return Rules::default();
        };
        let Ok(tree) = serde_json::from_value::<Tree>(v.clone()) else {
            return Rules::default();
        };
        let mut out = HashMap::new();
        for (mt, bidders) in tree {
            if !MEDIA_TYPES.contains(&mt.as_str()) {
                return Rules::default();
            }
            for (bidder, deals) in bidders {
                for (deal, adjs) in deals {
                    if !adjs.iter().all(valid) {
                        return Rules::default();
                    }
                    out.insert(format!("{mt}|{bidder}|{deal}"), adjs);
                }
            }
        }
        Rules(out)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The most specific adjustments for a bid, in Prebid's lookup order.
    pub fn get(&self, media: &str, bidder: &str, deal: Option<&str>) -> Option<&[Adjustment]> {
        let keys: Vec<String> = match deal.filter(|d| !d.is_empty()) {
            Some(d) => vec![
                format!("{media}|{bidder}|{d}"),
                format!("{media}|{bidder}|*"),
                format!("{media}|*|{d}"),
                format!("*|{bidder}|{d}"),
                format!("{media}|*|*"),
                format!("*|{bidder}|*"),
                format!("*|*|{d}"),
                "*|*|*".to_string(),
            ],
            None => vec![
                format!("{media}|{bidder}|*"),
                format!("{media}|*|*"),
                format!("*|{bidder}|*"),
                "*|*|*".to_string(),
            ],
        };
        keys.iter().find_map(|k| self.0.get(k).map(Vec::as_slice))
    }

    /// The adjusted price, in `currency` (the bid's).
    pub fn apply(
        &self,
        media: &str,
        bidder: &str,
        deal: Option<&str>,
        price: f64,
        currency: &str,
        rates: &Table,
    ) -> f64 {
        let Some(adjs) = self.get(media, bidder, deal) else { return price };
        let mut p = price;
        for a in adjs {
            match a.adjtype.as_str() {
                "multiplier" => p *= a.value,
                "cpm" => match rates.rate(&a.currency, currency) {
                    Some(r) => p -= a.value * r,
                    None => return price,
                },
                _ => match rates.rate(&a.currency, currency) {
                    Some(r) => p = a.value * r,
                    None => return price,
                },
            }
        }
        let p = (p * 10_000.0).round() / 10_000.0;
        let deal = deal.is_some_and(|d| !d.is_empty());
        if deal && p < 0.0 {
            0.0
        } else if !deal && p <= 0.0 {
            0.1
        } else {
            p
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rates() -> Table {
        serde_json::from_value::<HashMap<String, HashMap<String, f64>>>(
            json!({"EUR": {"USD": 2.5}}),
        )
        .map(Table::from_map)
        .unwrap()
    }

    #[test]
    fn prebids_cpm_vector() {
        let ext = json!({"prebid": {"bidadjustments": {"mediatype": {"banner": {"bidderA": {
            "dealId": [{"adjtype": "cpm", "value": 1.0, "currency": "EUR"}],
            "*": [{"adjtype": "multiplier", "value": 2.0}]
        }}}}}});
        let r = Rules::from_ext(Some(&ext));
        assert_eq!(r.apply("banner", "bidderA", Some("dealId"), 10.0, "USD", &rates()), 7.5);
        // no deal: the bidder's wildcard rule
        assert_eq!(r.apply("banner", "bidderA", None, 10.0, "USD", &rates()), 20.0);
    }

    #[test]
    fn rounding_to_four_decimals() {
        let ext = json!({"prebid": {"bidadjustments": {"mediatype": {"*": {"*": {
            "*": [{"adjtype": "cpm", "value": 1.0, "currency": "EUR"}]
        }}}}}});
        let r = Rules::from_ext(Some(&ext));
        assert_eq!(r.apply("video-instream", "x", None, 10.58687, "USD", &rates()), 8.0869);
    }

    #[test]
    fn one_invalid_rule_drops_the_set() {
        let ext = json!({"prebid": {"bidadjustments": {"mediatype": {
            "banner": {"bidderA": {"*": [{"adjtype": "multiplier", "value": 2.0}]}},
            "native": {"*": {"*": [{"adjtype": "cpm", "value": -1.0, "currency": "EUR"}]}}
        }}}});
        assert!(Rules::from_ext(Some(&ext)).is_empty());
        let ext = json!({"prebid": {"bidadjustments": {"mediatype": {
            "banner": {"bidderA": {"*": [{"adjtype": "multiplier", "value": 100.0}]}}
        }}}});
        assert!(Rules::from_ext(Some(&ext)).is_empty());
    }

    #[test]
    fn static_sets_the_price_in_its_currency_and_video_kinds_are_apart() {
        let ext = json!({"prebid": {"bidadjustments": {"mediatype": {
            "video-outstream": {"*": {"*": [{"adjtype": "static", "value": 2.0, "currency": "EUR"}]}},
            "video-instream": {"*": {"*": [{"adjtype": "multiplier", "value": 0.5}]}}
        }}}});
        let r = Rules::from_ext(Some(&ext));
        assert_eq!(r.apply("video-outstream", "b", None, 10.0, "USD", &rates()), 5.0);
        assert_eq!(r.apply("video-instream", "b", None, 10.0, "USD", &rates()), 5.0);
        assert_eq!(r.apply("banner", "b", None, 10.0, "USD", &rates()), 10.0);
        // an open-market bid adjusted to nothing becomes 0.1, a deal bid 0
        let ext = json!({"prebid": {"bidadjustments": {"mediatype": {"*": {"*": {"*": [
            {"adjtype": "cpm", "value": 50.0, "currency": "USD"}]}}}}}});
        let r = Rules::from_ext(Some(&ext));
        assert_eq!(r.apply("banner", "b", None, 10.0, "USD", &rates()), 0.1);
        assert_eq!(r.apply("banner", "b", Some("d"), 10.0, "USD", &rates()), 0.0);
        // an unknown adjtype or media type drops the set
        for bad in [
            json!({"banner": {"*": {"*": [{"adjtype": "percent", "value": 1.0}]}}}),
            json!({"display": {"*": {"*": [{"adjtype": "multiplier", "value": 1.0}]}}}),
            json!({"banner": {"*": {"*": [{"adjtype": "static", "value": 1.0}]}}}),
        ] {
            let ext = json!({"prebid": {"bidadjustments": {"mediatype": bad}}});
            assert!(Rules::from_ext(Some(&ext)).is_empty(), "{ext}");
        }
    }

    #[test]
    fn lookup_order_with_a_deal() {
        let ext = json!({"prebid": {"bidadjustments": {"mediatype": {
            "banner": {"*": {"d": [{"adjtype": "multiplier", "value": 3.0}]}},
            "*": {"bidderA": {"d": [{"adjtype": "multiplier", "value": 5.0}]}}
        }}}});
        let r = Rules::from_ext(Some(&ext));
        // banner|*|d comes before *|bidderA|d
        assert_eq!(r.apply("banner", "bidderA", Some("d"), 1.0, "USD", &rates()), 3.0);
        assert_eq!(r.apply("native", "bidderA", Some("d"), 1.0, "USD", &rates()), 5.0);
    }
}
