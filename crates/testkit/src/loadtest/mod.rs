//! The load test: one EESE and many UEs in one process over loopback UDP,
//! with a fault layer that drops, duplicates, reorders and injects hostile
//! datagrams (garbage, forged and replayed messages, hellos among them).
//!
//! The pieces: the [`faults`] layer and the [`hostile`] datagrams it
//! injects, the [`payload`]s and [`identity`] of the UEs, the per-payload
//! [`ledger`], and the [`stats`] of what each receiver did.

pub mod faults;
pub mod hostile;
pub mod identity;
pub mod ledger;
pub mod payload;
pub mod stats;

pub use faults::Params;
