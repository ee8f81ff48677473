//! The batch loops, and the run-time choice between the baseline and the AVX2 kernels.

use super::pricing::price_slots;
use super::scalar::{segment_single, top_k_any, NET_BRANCHLESS_MAX};
#[cfg(target_arch = "x86_64")]
use super::x86::avx2_single::{segment_single_long_avx2, segment_single_short};
#[cfg(target_arch = "x86_64")]
use super::x86::avx2_topk::{top_k_long_avx2, top_k_rank_avx2};
#[cfg(target_arch = "x86_64")]
use super::x86::{TopKFn, RANK_MAX, SHORT_MAX};
use super::{Batch, SinglePrice, SlotPrice};

#[inline(always)]
pub(crate) fn single_into<const Q: bool, const AVX2: bool>(
    batch: &Batch<'_>,
    rule: SinglePrice,
    increment: f64,
    winner: &mut [i64],
    price: &mut [f64],
    min_to_win: &mut [f64],
    loss_reason: &mut [i32],
) -> usize {
    let q_all = batch.quality.unwrap_or(&[]);
    let mut n_bad = 0;
    let outs = winner.iter_mut().zip(price.iter_mut());
    for (a, (off, (w, pr))) in batch.offsets.windows(2).zip(outs).enumerate() {
        // Batch::new checked 0 = offsets[0] <= ... <= offsets[n] = n_bids
        let seg = off[0] as usize..off[1] as usize;
        let q = if Q { &q_all[seg.clone()] } else { &[][..] };
        let p = &batch.prices[seg.clone()];
        let (m, l) = (&mut min_to_win[seg.clone()], &mut loss_reason[seg.clone()]);
        let reserve = batch.reserve_of(a);
        #[cfg(target_arch = "x86_64")]
        let (out, bad) = if AVX2 && p.len() <= SHORT_MAX {
            // SAFETY: AVX2 = true only in `single_into_avx2`, which runs after the CPU was found
            // to support AVX2; the length is within the short kernel's bound (checked here) and
            // the other slices are cut from the same range.
            unsafe { segment_single_short::<Q>(rule, p, q, reserve, increment, m, l) }
        } else if AVX2 {
            // SAFETY: as above; the long kernel takes any length.
            unsafe { segment_single_long_avx2::<Q>(rule, p, q, reserve, increment, m, l) }
        } else {
            segment_single::<Q>(rule, p, q, reserve, increment, m, l)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let (out, bad) = segment_single::<Q>(rule, p, q, reserve, increment, m, l);
        *w = if out.winner >= 0 { seg.start as i64 + out.winner } else { -1 };
        *pr = out.price;
        n_bad += bad;
    }
    n_bad
}

/// The same kernels compiled for AVX2 (wider vectors, blends in one instruction), picked at
/// run time: the baseline x86_64 build only assumes SSE2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn single_into_avx2(
    batch: &Batch<'_>,
    rule: SinglePrice,
    increment: f64,
    winner: &mut [i64],
    price: &mut [f64],
    min_to_win: &mut [f64],
    loss_reason: &mut [i32],
) -> usize {
    if batch.quality.is_some() {
        single_into::<true, true>(batch, rule, increment, winner, price, min_to_win, loss_reason)
    } else {
        single_into::<false, true>(batch, rule, increment, winner, price, min_to_win, loss_reason)
    }
}

#[inline(always)]
pub(crate) fn slots_into<const Q: bool, const AVX2: bool>(
    batch: &Batch<'_>,
    rule: SlotPrice,
    ctrs: &[f64],
    increment: f64,
    winner: &mut [i64],
    price: &mut [f64],
) -> usize {
    let k = ctrs.len();
    let q_all = batch.quality.unwrap_or(&[]);
    let mut buf = vec![(0.0, 0usize); k + 1];
    let mut n_bad = 0;
    let outs = winner.chunks_exact_mut(k).zip(price.chunks_exact_mut(k));
    for (a, (off, (w, pr))) in batch.offsets.windows(2).zip(outs).enumerate() {
        let seg = off[0] as usize..off[1] as usize;
        let p = &batch.prices[seg.clone()];
        let q = if Q { &q_all[seg.clone()] } else { &[][..] };
        let reserve = batch.reserve_of(a);
        #[cfg(target_arch = "x86_64")]
        let (len, bad) = if AVX2 && p.len() <= RANK_MAX && buf.len() <= RANK_MAX {
            // SAFETY: AVX2 = true only in `slots_into_avx2`, which runs after the CPU was found
            // to support AVX2; the lengths are within the rank kernel's bounds (checked here).
            unsafe { top_k_rank_avx2::<Q>(p, q, reserve, &mut buf) }
        } else if AVX2 && p.len() > NET_BRANCHLESS_MAX && (2..=8).contains(&buf.len()) {
            // SAFETY: as above (AVX2 checked by the caller of `slots_into_avx2`); `buf` holds
            // 2..=8 entries (checked here), the length the long kernel is instantiated for.
            // called through an opaque pointer: inlined here, the long kernel made the
            // register allocation of the short-auction loop worse (10-bid VCG 1.7x slower)
            let long: TopKFn = std::hint::black_box(top_k_long_avx2::<Q>);
            unsafe { long(p, q, reserve, &mut buf) }
        } else {
            top_k_any::<Q>(p, q, reserve, &mut buf)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let (len, bad) = top_k_any::<Q>(p, q, reserve, &mut buf);
        n_bad += bad;
        price_slots::<Q>(rule, p, q, reserve, increment, ctrs, &buf[..len], w, pr);
        for x in w.iter_mut().filter(|x| **x >= 0) {
            *x += seg.start as i64;
        }
    }
    n_bad
}

/// [`clear_slots_into`] compiled for AVX2, picked at run time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn slots_into_avx2(
    batch: &Batch<'_>,
    rule: SlotPrice,
    ctrs: &[f64],
    increment: f64,
    winner: &mut [i64],
    price: &mut [f64],
) -> usize {
    if batch.quality.is_some() {
        slots_into::<true, true>(batch, rule, ctrs, increment, winner, price)
    } else {
        slots_into::<false, true>(batch, rule, ctrs, increment, winner, price)
    }
}
