//! The batch loops, written once, and the one place that picks the instruction set they run
//! with.
//!
//! A batch operation is a [`Kernel`]: a loop over the auctions, generic over an instruction
//! set ([`Isa`]). [`run`] asks the CPU which one to use (the answer is cached after the first
//! call) and runs the loop compiled for it: for AVX2 inside a `#[target_feature(enable =
//! "avx2")]` function, so that the whole loop and every helper inlined into it are compiled
//! for AVX2 (wider vectors, one-instruction blends), while the baseline x86_64 build assumes
//! only SSE2. Adding an instruction set means one token type, its kernels and one arm here.

use super::pricing::price_slots;
use super::scalar::{segment_single, top_k_any};
#[cfg(target_arch = "x86_64")]
use super::x86::{Avx2, ADJ_BUF};
use super::{Batch, SinglePrice, SlotPrice};
use crate::error::CoreError;

/// An instruction set the batch loops can run with.
pub(crate) trait Isa: Copy {
    /// The AVX2 kernels, when this instruction set has them. A constant for each type, so the
    /// branches on it fold away.
    #[cfg(target_arch = "x86_64")]
    fn avx2(self) -> Option<Avx2>;
}

/// The portable kernels (on x86_64 these use SSE2, part of the baseline).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Baseline;

impl Isa for Baseline {
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn avx2(self) -> Option<Avx2> {
        None
    }
}

#[cfg(target_arch = "x86_64")]
impl Isa for Avx2 {
    #[inline(always)]
    fn avx2(self) -> Option<Avx2> {
        Some(self)
    }
}

/// A batch operation: its loop over the auctions, for any instruction set.
pub(crate) trait Kernel {
    type Output;
    /// Runs the operation with the kernels of `isa`. Implementations are `#[inline(always)]`,
    /// so that they are compiled into the instruction set's wrapper in [`run`].
    fn run<I: Isa>(self, isa: I) -> Self::Output;
}

/// Runs `kernel` with the best instruction set this CPU has.
pub(crate) fn run<K: Kernel>(kernel: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    if let Some(avx2) = Avx2::detect() {
        // SAFETY: an `Avx2` exists only when the CPU supports AVX2, the wrapper's one feature.
        return unsafe { run_avx2(kernel, avx2) };
    }
    kernel.run(Baseline)
}

/// `kernel` compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn run_avx2<K: Kernel>(kernel: K, avx2: Avx2) -> K::Output {
    kernel.run(avx2)
}

/// Implements [`Kernel`] for batch loops that have an `each::<Q, I>` monomorphised on whether
/// the batch has qualities, so the per-bid loop never branches on it.
macro_rules! kernel_by_quality {
    ($($op:ident),*) => {$(
        impl Kernel for $op<'_, '_> {
            type Output = Result<usize, CoreError>;

            #[inline(always)]
            fn run<I: Isa>(self, isa: I) -> Self::Output {
                if self.batch.quality.is_some() {
                    self.each::<true, I>(isa)
                } else {
                    self.each::<false, I>(isa)
                }
            }
        }
    )*};
}

kernel_by_quality!(Single, Slots);

/// Single-slot clearing of every auction of a batch into the caller's outputs (`winner`,
/// `price`: one per auction; `min_to_win`, `loss_reason`: one per bid). Returns the number of
/// invalid bids.
pub(crate) struct Single<'b, 'o> {
    pub batch: &'b Batch<'b>,
    pub rule: SinglePrice,
    pub increment: f64,
    pub winner: &'o mut [i64],
    pub price: &'o mut [f64],
    pub min_to_win: &'o mut [f64],
    pub loss_reason: &'o mut [i32],
}

impl Single<'_, '_> {
    #[inline(always)]
    fn each<const Q: bool, I: Isa>(self, isa: I) -> Result<usize, CoreError> {
        let Single { batch, rule, increment, winner, price, min_to_win, loss_reason } = self;
        let q_all = batch.quality.unwrap_or(&[]);
        let (mut n_bad, mut start) = (0, 0);
        for (a, (w, pr)) in winner.iter_mut().zip(price.iter_mut()).enumerate() {
            let end = batch.segment_end(a, start)?;
            let seg = start..end;
            start = end;
            let p = &batch.prices[seg.clone()];
            let q = if Q { &q_all[seg.clone()] } else { &[][..] };
            let (m, l) = (&mut min_to_win[seg.clone()], &mut loss_reason[seg.clone()]);
            let reserve = batch.reserve_of(a);
            #[cfg(target_arch = "x86_64")]
            let (out, bad) = match isa.avx2() {
                Some(avx2) => avx2.segment_single::<Q>(rule, p, q, reserve, increment, m, l),
                None => segment_single::<Q>(rule, p, q, reserve, increment, m, l),
            };
            #[cfg(not(target_arch = "x86_64"))]
            let (out, bad) = segment_single::<Q>(rule, p, q, reserve, increment, m, l);
            *w = if out.winner >= 0 { seg.start as i64 + out.winner } else { -1 };
            *pr = out.price;
            n_bad += bad;
        }
        batch.check_end(start)?;
        Ok(n_bad)
    }
}

/// Position-auction clearing of every auction of a batch into the caller's row-major
/// `[n_auctions, k]` outputs. Returns the number of invalid bids.
pub(crate) struct Slots<'b, 'o> {
    pub batch: &'b Batch<'b>,
    pub rule: SlotPrice,
    pub ctrs: &'b [f64],
    pub increment: f64,
    pub winner: &'o mut [i64],
    pub price: &'o mut [f64],
}

impl Slots<'_, '_> {
    #[inline(always)]
    fn each<const Q: bool, I: Isa>(self, isa: I) -> Result<usize, CoreError> {
        let Slots { batch, rule, ctrs, increment, winner, price } = self;
        let k = ctrs.len();
        let q_all = batch.quality.unwrap_or(&[]);
        let mut buf = vec![(0.0, 0usize); k + 1];
        // the long AVX2 top-k kernel's buffer, reused from auction to auction
        #[cfg(target_arch = "x86_64")]
        let mut scratch = Box::new([0.0; ADJ_BUF]);
        let (mut n_bad, mut start) = (0, 0);
        let outs = winner.chunks_exact_mut(k).zip(price.chunks_exact_mut(k));
        for (a, (w, pr)) in outs.enumerate() {
            let end = batch.segment_end(a, start)?;
            let seg = start..end;
            start = end;
            let p = &batch.prices[seg.clone()];
            let q = if Q { &q_all[seg.clone()] } else { &[][..] };
            let reserve = batch.reserve_of(a);
            #[cfg(target_arch = "x86_64")]
            let (len, bad) = match isa.avx2() {
                Some(avx2) => avx2.top_k::<Q>(p, q, reserve, &mut buf, &mut scratch),
                None => top_k_any::<Q>(p, q, reserve, &mut buf),
            };
            #[cfg(not(target_arch = "x86_64"))]
            let (len, bad) = top_k_any::<Q>(p, q, reserve, &mut buf);
            n_bad += bad;
            price_slots::<Q>(rule, p, q, reserve, increment, ctrs, &buf[..len], w, pr);
            for x in w.iter_mut().filter(|x| **x >= 0) {
                *x += seg.start as i64;
            }
        }
        batch.check_end(start)?;
        Ok(n_bad)
    }
}
