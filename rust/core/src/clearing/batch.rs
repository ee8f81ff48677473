//! The batch: offsets, prices, quality and reserves, checked once.

use crate::error::CoreError;
use crate::record::check_bid;

/// The reserve (floor) price of each auction in a batch.
#[derive(Debug, Clone, Copy)]
pub enum Reserve<'a> {
    Scalar(f64),
    PerAuction(&'a [f64]),
}

/// A validated, borrowed batch of auctions in segment layout.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub(super) offsets: &'a [i64],
    pub(super) prices: &'a [f64],
    pub(super) quality: Option<&'a [f64]>,
    pub(super) reserve: Reserve<'a>,
}

impl<'a> Batch<'a> {
    /// Checks the structure of a batch (offsets, lengths, reserves). Bid values are checked
    /// separately by [`Batch::first_invalid_bid`], so that `on_invalid="skip"` can clear a batch
    /// that holds bad bids.
    pub fn new(
        offsets: &'a [i64],
        prices: &'a [f64],
        quality: Option<&'a [f64]>,
        reserve: Reserve<'a>,
    ) -> Result<Self, CoreError> {
        if offsets.is_empty() {
            return Err(CoreError::invalid(
                "offsets",
                "must hold n_auctions + 1 entries (at least [0])",
            ));
        }
        if offsets[0] != 0 {
            return Err(CoreError::invalid(
                "offsets",
                format!("offsets[0] = {} but must be 0", offsets[0]),
            ));
        }
        for (a, w) in offsets.windows(2).enumerate() {
            if w[1] < w[0] {
                return Err(CoreError::invalid(
                    "offsets",
                    format!(
                        "offsets[{}] = {} is less than offsets[{a}] = {}: offsets must not decrease",
                        a + 1,
                        w[1],
                        w[0]
                    ),
                ));
            }
        }
        let last = offsets[offsets.len() - 1];
        if last != prices.len() as i64 {
            return Err(CoreError::invalid(
                "offsets",
                format!(
                    "offsets[{}] = {last} but prices has {} bids: the last offset must equal n_bids",
                    offsets.len() - 1,
                    prices.len()
                ),
            ));
        }
        if let Some(q) = quality {
            if q.len() != prices.len() {
                return Err(CoreError::invalid(
                    "quality",
                    format!("has {} entries but prices has {}", q.len(), prices.len()),
                ));
            }
        }
        let n_auctions = offsets.len() - 1;
        match reserve {
            Reserve::Scalar(r) => check_reserve(r, None)?,
            Reserve::PerAuction(rs) => {
                if rs.len() != n_auctions {
                    return Err(CoreError::invalid(
                        "reserve",
                        format!("has {} entries but the batch has {n_auctions} auctions", rs.len()),
                    ));
                }
                for (a, &r) in rs.iter().enumerate() {
                    check_reserve(r, Some(a))?;
                }
            }
        }
        Ok(Batch { offsets, prices, quality, reserve })
    }

    #[inline]
    pub fn n_auctions(&self) -> usize {
        self.offsets.len() - 1
    }

    #[inline]
    pub fn n_bids(&self) -> usize {
        self.prices.len()
    }

    #[inline]
    pub fn offsets(&self) -> &'a [i64] {
        self.offsets
    }

    #[inline]
    pub fn prices(&self) -> &'a [f64] {
        self.prices
    }

    #[inline]
    pub fn quality(&self) -> Option<&'a [f64]> {
        self.quality
    }

    #[inline]
    pub fn reserve_of(&self, a: usize) -> f64 {
        match self.reserve {
            Reserve::Scalar(r) => r,
            Reserve::PerAuction(rs) => rs[a],
        }
    }

    /// The bid range of auction `a`.
    #[inline]
    pub fn segment(&self, a: usize) -> std::ops::Range<usize> {
        self.offsets[a] as usize..self.offsets[a + 1] as usize
    }

    /// Where auction `a`'s bids end (`offsets[a + 1]`), for a kernel that walks the auctions
    /// in order and knows where they begin (`start`, the end of auction `a - 1`). The offset is
    /// read exactly once and checked again: [`Batch::new`] checked the offsets, but a caller
    /// that shares the arrays with other code (a Python caller can) may change them while a
    /// kernel runs, and the kernel must then refuse the batch, never index past its slices.
    /// After the last auction the kernel calls [`Batch::check_end`].
    #[inline(always)]
    pub(super) fn segment_end(&self, a: usize, start: usize) -> Result<usize, CoreError> {
        // SAFETY: a volatile read of a valid, aligned i64 (an element of the slice), so that
        // the compiler loads the offset exactly once: the value checked is the value used.
        let end = unsafe { std::ptr::read_volatile(&self.offsets[a + 1]) };
        // a negative offset is above every length as u64
        let e = end as u64;
        if e < start as u64 || e > self.prices.len() as u64 {
            return Err(self.changed(a, start, end));
        }
        Ok(e as usize)
    }

    /// Checks that the auctions a kernel walked ended at the last bid (`end`), so that no bid
    /// was left without an output.
    #[inline]
    pub(super) fn check_end(&self, end: usize) -> Result<(), CoreError> {
        let a = self.n_auctions();
        match a {
            _ if end == self.prices.len() => Ok(()),
            0 => Ok(()),
            _ => Err(self.changed(a - 1, self.offsets[a - 1].max(0) as usize, end as i64)),
        }
    }

    #[cold]
    fn changed(&self, a: usize, start: usize, end: i64) -> CoreError {
        CoreError::invalid(
            "offsets",
            format!(
                "offsets[{}] = {end} after offsets[{a}] = {start} (with {} bids): the offsets \
                 changed while the batch was being cleared; do not modify a batch's arrays \
                 during a clearing call",
                a + 1,
                self.prices.len()
            ),
        )
    }

    /// The first bid that fails the bid rule of [`crate::record`] ([`check_bid`]: NaN,
    /// infinite or negative price, non-positive or non-finite quality, an adjusted bid that
    /// overflows), as the error `on_invalid="raise"` reports: the lowest bad bid index (the
    /// price is named when both fields are bad).
    pub fn first_invalid_bid(&self) -> Option<CoreError> {
        let q = self.quality;
        self.prices.iter().enumerate().find_map(|(i, &p)| {
            let qi = q.map_or(1.0, |q| q[i]);
            check_bid(p, qi).err().map(|b| b.at(i))
        })
    }
}

fn check_reserve(r: f64, index: Option<usize>) -> Result<(), CoreError> {
    if r.is_finite() && r >= 0.0 {
        return Ok(());
    }
    let at = index.map(|a| format!("[{a}]")).unwrap_or_default();
    Err(CoreError::invalid("reserve", format!("reserve{at} = {r}: must be finite and >= 0")))
}

/// Checks an increment (finite, >= 0).
pub fn check_increment(increment: f64) -> Result<(), CoreError> {
    if increment.is_finite() && increment >= 0.0 {
        Ok(())
    } else {
        Err(CoreError::invalid(
            "increment",
            format!("increment = {increment}: must be finite and >= 0"),
        ))
    }
}

/// Checks position-auction slot factors: non-empty, finite, > 0, non-increasing.
pub fn check_slot_ctrs(ctrs: &[f64]) -> Result<(), CoreError> {
    if ctrs.is_empty() {
        return Err(CoreError::invalid("slot_ctrs", "must hold at least one slot"));
    }
    for (s, &c) in ctrs.iter().enumerate() {
        if !(c.is_finite() && c > 0.0) {
            return Err(CoreError::invalid(
                "slot_ctrs",
                format!("slot_ctrs[{s}] = {c}: must be finite and > 0"),
            ));
        }
        if s > 0 && c > ctrs[s - 1] {
            return Err(CoreError::invalid(
                "slot_ctrs",
                format!(
                    "slot_ctrs[{s}] = {c} > slot_ctrs[{}] = {}: must be non-increasing",
                    s - 1,
                    ctrs[s - 1]
                ),
            ));
        }
    }
    Ok(())
}
