//! The x86_64 kernels: SSE2 (part of the x86_64 baseline, always used) and AVX2 (used only
//! behind an [`Avx2`] token, which exists only when the CPU has AVX2).
//!
//! The AVX2 kernels are safe `#[target_feature(enable = "avx2")]` functions: inside them the
//! arithmetic intrinsics are safe to call. What stays `unsafe` is entering them (allowed by
//! holding an [`Avx2`] token) and memory access through raw pointers, which lives in the small
//! load / store helpers of this module: each takes a fixed-size chunk or a slice and stays
//! inside it (by its type, a bounds check, or by masking the lanes past its end).

pub(crate) mod avx2_single;
pub(crate) mod avx2_topk;
pub(crate) mod sse2;

use std::arch::x86_64::*;

/// How far ahead (in bids) the long kernels prefetch the prices they are about to read, and
/// the output lines they are about to write. A 100-bid auction is 800 bytes of prices; the
/// hardware prefetcher stops at every 4 KB page and runs only a short way ahead, so without
/// these the first pass waits on memory at every auction. On 10M bids of 100-bid auctions:
/// 22 -> 16.5 ms (same-binary A/B; 128..192 and 64..192 measured within noise of each other).
pub(crate) const PREFETCH_READ: usize = 192;
pub(crate) const PREFETCH_WRITE: usize = 128;

/// Longest segment cleared by the short single-slot kernel (four AVX2 vectors of bids).
pub(crate) const SHORT_MAX: usize = 16;

/// Largest segment (and top-k buffer) handled by the rank-counting top-k kernel.
pub(crate) const RANK_MAX: usize = 16;

/// Longest segment (in whole 4-bid chunks) whose adjusted bids the long top-k kernel keeps in
/// its scratch buffer between its two passes.
pub(crate) const ADJ_BUF: usize = 256;

/// Proof that the CPU supports AVX2: only [`Avx2::detect`] makes one, so a function that holds
/// one may call the AVX2 kernels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// `Some` when the CPU supports AVX2. The standard library runs CPUID once and caches the
    /// answer, so this is one relaxed load after the first call.
    #[inline]
    pub(crate) fn detect() -> Option<Avx2> {
        std::arch::is_x86_feature_detected!("avx2").then_some(Avx2(()))
    }
}

/// The eligibility bound `max(reserve, 5e-324)`: for a valid price x, `x > 0 & x >= reserve`
/// is `x >= max(reserve, smallest positive double)`, one compare instead of two.
#[inline(always)]
pub(crate) fn eligible_floor(reserve: f64) -> f64 {
    crate::clearing::scalar::fmax(reserve, f64::from_bits(1))
}

/// Validity, eligibility and adjusted bid (-inf when not eligible) of four bids: prices `x`
/// and, with `Q`, qualities `qq` (without, the quality is 1). `floor` holds
/// [`eligible_floor`]. The same sets as [`crate::clearing::scalar::adjusted`]: valid is
/// `x >= 0 & x <= MAX` without a quality and `x >= 0 & qq > 0 & x·qq <= MAX` with one (the
/// form of [`crate::record::bid_ok`] that needs no separate finiteness tests); eligible is
/// valid and `x >= floor`.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn classify4<const Q: bool>(
    x: __m256d,
    qq: __m256d,
    floor: __m256d,
) -> (__m256d, __m256d, __m256d) {
    let zero = _mm256_setzero_pd();
    let big = _mm256_set1_pd(f64::MAX);
    // the part of the rule that a price above `floor` (> 0) does not already imply: a finite
    // price, or with a quality a positive quality and a finite product. Eligibility is built
    // from it without validity, so that a pass that needs only the adjusted bids does not
    // compute validity at all
    let mut a = x;
    let rest = if Q {
        a = _mm256_mul_pd(x, qq);
        let q_ok = _mm256_cmp_pd::<_CMP_GT_OQ>(qq, zero);
        _mm256_and_pd(q_ok, _mm256_cmp_pd::<_CMP_LE_OQ>(a, big))
    } else {
        _mm256_cmp_pd::<_CMP_LE_OQ>(x, big)
    };
    let v = _mm256_and_pd(_mm256_cmp_pd::<_CMP_GE_OQ>(x, zero), rest);
    let e = _mm256_and_pd(_mm256_cmp_pd::<_CMP_GE_OQ>(x, floor), rest);
    (v, e, _mm256_blendv_pd(_mm256_set1_pd(f64::NEG_INFINITY), a, e))
}

// ---- memory access: the only unsafe code of the kernels -----------------------------------

/// A chunk of four doubles as a vector.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn load(c: &[f64; 4]) -> __m256d {
    // SAFETY: `c` holds 4 doubles, what an unaligned 256-bit load reads.
    unsafe { _mm256_loadu_pd(c.as_ptr()) }
}

/// `s[at..at + 4]` as a vector (panics past the end, like indexing). The hot loops take whole
/// chunks from `as_chunks` instead, where the compiler drops the bounds checks.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn load4(s: &[f64], at: usize) -> __m256d {
    load(s[at..at + 4].try_into().expect("4 doubles"))
}

/// All ones in the 64-bit lanes below `n` (`n` in 0..=4).
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn lanes_below(n: usize) -> __m256i {
    _mm256_cmpgt_epi64(_mm256_set1_epi64x(n as i64), _mm256_setr_epi64x(0, 1, 2, 3))
}

/// All ones in the 32-bit lanes below `n` (`n` in 0..=4).
#[target_feature(enable = "avx2")]
#[inline]
fn lanes_below32(n: usize) -> __m128i {
    _mm_cmpgt_epi32(_mm_set1_epi32(n as i32), _mm_setr_epi32(0, 1, 2, 3))
}

/// The first (up to 4) doubles of `rest` as a vector, the lanes past its end read as 0.0.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn load_tail(rest: &[f64]) -> __m256d {
    // SAFETY: the mask enables only lanes below `rest.len()`, which lie inside `rest`; the CPU
    // neither reads nor faults on masked-out lanes.
    unsafe { _mm256_maskload_pd(rest.as_ptr(), lanes_below(rest.len().min(4))) }
}

/// Writes `v` to a chunk of four doubles.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn store(c: &mut [f64; 4], v: __m256d) {
    // SAFETY: `c` holds 4 doubles, what an unaligned 256-bit store writes.
    unsafe { _mm256_storeu_pd(c.as_mut_ptr(), v) }
}

/// Writes `v` to `s[at..at + 4]` (panics past the end, like indexing).
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn store4(s: &mut [f64], at: usize, v: __m256d) {
    store((&mut s[at..at + 4]).try_into().expect("4 doubles"), v)
}

/// Writes the lanes of `v` that fall inside `rest` (its first up to 4 doubles).
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn store_tail(rest: &mut [f64], v: __m256d) {
    let mask = lanes_below(rest.len().min(4));
    // SAFETY: the mask enables only lanes below `rest.len()`, which lie inside `rest`; the CPU
    // neither writes nor faults on masked-out lanes.
    unsafe { _mm256_maskstore_pd(rest.as_mut_ptr(), mask, v) }
}

/// Writes four `i32` to a chunk of four.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn store_i32(c: &mut [i32; 4], v: __m128i) {
    // SAFETY: `c` holds 4 i32 (16 bytes), what an unaligned 128-bit store writes.
    unsafe { _mm_storeu_si128(c.as_mut_ptr().cast(), v) }
}

/// Writes four `i32` to `s[at..at + 4]` (panics past the end, like indexing).
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn store4_i32(s: &mut [i32], at: usize, v: __m128i) {
    store_i32((&mut s[at..at + 4]).try_into().expect("4 i32"), v)
}

/// Writes the `i32` lanes of `v` that fall inside `rest` (its first up to 4).
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn store_tail_i32(rest: &mut [i32], v: __m128i) {
    let mask = lanes_below32(rest.len().min(4));
    // SAFETY: the mask enables only lanes below `rest.len()`, which lie inside `rest`; the CPU
    // neither writes nor faults on masked-out lanes.
    unsafe { _mm_maskstore_epi32(rest.as_mut_ptr(), mask, v) }
}

/// The four lanes of `v`.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn lanes(v: __m256d) -> [f64; 4] {
    let mut out = [0.0; 4];
    store(&mut out, v);
    out
}

/// Asks for the cache line of `s[at]` ahead of use; `at` may lie past the end of `s`.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn prefetch<T>(s: &[T], at: usize) {
    // a prefetch is a hint that never faults, so any address will do (`_mm_prefetch` is safe);
    // `wrapping_add` forms it without out-of-bounds pointer arithmetic
    _mm_prefetch::<_MM_HINT_T0>(s.as_ptr().wrapping_add(at).cast());
}

/// The sum of the four 64-bit lanes of `v`.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn hsum_epi64(v: __m256i) -> i64 {
    let s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    _mm_cvtsi128_si64(_mm_add_epi64(s, _mm_unpackhi_epi64(s, s)))
}
