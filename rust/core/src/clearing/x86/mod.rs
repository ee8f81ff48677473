//! The x86_64 kernels: SSE2 (baseline) and AVX2 (picked at run time).

pub(crate) mod avx2_single;
pub(crate) mod avx2_topk;
pub(crate) mod sse2;

/// How far ahead (in bids) the long single-slot kernel prefetches the prices it is about to
/// read, and the output lines it is about to write. A 100-bid auction is 800 bytes of prices;
/// the hardware prefetcher stops at every 4 KB page and runs only a short way ahead, so without
/// these the first pass waits on memory at every auction. On 10M bids of 100-bid auctions:
/// 22 -> 16.5 ms (same-binary A/B; 128..192 and 64..192 measured within noise of each other).
pub(crate) const PREFETCH_READ: usize = 192;
pub(crate) const PREFETCH_WRITE: usize = 128;

/// Longest segment cleared by [`segment_single_short_avx2`] (four AVX2 vectors of bids).
pub(crate) const SHORT_MAX: usize = 16;

/// Lane masks of a partial last chunk: 4 lanes read from offset `4 - rem` have the first `rem`
/// lanes all ones.
pub(crate) const TAIL_MASK64: [i64; 8] = [-1, -1, -1, -1, 0, 0, 0, 0];
pub(crate) const TAIL_MASK32: [i32; 8] = [-1, -1, -1, -1, 0, 0, 0, 0];

/// Largest segment (and top-k buffer) handled by [`top_k_rank_avx2`].
pub(crate) const RANK_MAX: usize = 16;

/// Longest segment (in whole 4-bid chunks) whose adjusted bids [`top_k_long_net_avx2`] keeps
/// on the stack between its two passes.
pub(crate) const ADJ_BUF: usize = 256;

/// A top-k kernel: `(prices, quality, reserve, buf) -> (filled, n_invalid)`.
#[cfg(target_arch = "x86_64")]
pub(crate) type TopKFn = unsafe fn(&[f64], &[f64], f64, &mut [(f64, usize)]) -> (usize, usize);
