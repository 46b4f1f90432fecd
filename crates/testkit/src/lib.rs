//! The ciot-e2e test kit: what tests, fuzz targets, benchmarks and the
//! command-line tool share to drive the protocol crate from outside.
//!
//! - [`fuzzing`]: the fuzz targets' entry points, their oracles and the seed
//!   corpus (the targets in `fuzz/` are one line each into here);
//! - [`sim`]: the deterministic simulator of an EESE and its UEs over an
//!   adversarial network with crashes, and its invariants;
//! - [`loadtest`]: one EESE and many UEs over loopback UDP with a fault
//!   layer and hostile input, every echo checked (`ciot-e2e loadtest`);
//! - [`rng`]: the one deterministic generator everything seeded uses;
//! - [`postgres`]: a throwaway PostgreSQL cluster for the tests of a shared
//!   EESE state.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod describe;
pub mod fuzzing;
pub mod loadtest;
pub mod pair;
pub mod postgres;
pub mod rng;
pub mod sim;
