//! The ciot-e2e test kit: what tests, fuzz targets, benchmarks and the
//! command-line tool share to drive the protocol crate from outside.
//!
//! - [`fuzzing`]: the fuzz targets' entry points, their oracles and the seed
//!   corpus (the targets in `fuzz/` are one line each into here).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod fuzzing;
