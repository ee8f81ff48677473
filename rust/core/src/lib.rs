//! # rtbcore-core
//!
//! The engine of rtbcore, free of Python so that it can be tested with `cargo test` and loom,
//! benchmarked with criterion, and embedded in a Rust exchange server.
//!
//! - [`clearing`]: vectorized auction clearing over segment-layout batches (first price,
//!   second price with quality scores / reserves / increment, GSP and VCG for position auctions).
//! - [`record`]: the 48-byte bid record shared by the queue, the ring and the engine.
//! - [`queue`]: the bounded lock-free MPMC bid queue.
//! - [`ring`]: the memory-mapped bid ring for zero-copy streaming between processes, with replay.
//! - [`engine`]: the CPU-pinned worker pool that turns a bid stream into cleared auctions.
//!
//! ```
//! use rtbcore_core::clearing::{clear_second_price, Batch};
//! let offsets = [0i64, 3];
//! let prices = [1.0, 3.0, 2.0];
//! let batch = Batch::new(&offsets, &prices, None, rtbcore_core::clearing::Reserve::Scalar(0.5)).unwrap();
//! let r = clear_second_price(&batch, 0.01);
//! assert_eq!(r.winner, vec![1]);
//! assert!((r.price[0] - 2.01).abs() < 1e-12);
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

pub mod clearing;
pub mod engine;
pub mod error;
pub mod floors;
pub mod queue;
pub mod record;
pub mod ring;

pub use error::CoreError;
