//! Drivers: the loop every front end runs around an endpoint, written once.
//!
//! An endpoint is sans-IO: it hands out effects in the order they must
//! happen (persist, then transmit, then events; `docs/SECURITY.md` §4). A
//! driver owns that loop and the buffers it needs, and calls the embedder
//! back for the I/O itself:
//!
//! - [`EeseDriver`] wraps an [`EeseTable`](crate::endpoint::EeseTable): every
//!   snapshot a pass produced goes to [`EeseIo::persist`] in one call (one
//!   write, however many UEs it concerns), is reported persisted only after
//!   that call returned, and only then does anything that depends on it go
//!   to [`EeseIo::transmit`];
//! - [`UeDriver`] wraps a [`Ue`](crate::endpoint::Ue) (a UE stores nothing, so
//!   it only transmits and reports);
//! - [`SystemClock`] is endpoint time from the system clock: milliseconds
//!   since the UNIX epoch, never going back within a process.
//!
//! The service (`ciot-e2e eese --emks`), the CLI's `eese`, `ue` and `demo`,
//! and the load test run on these. Sockets, files and databases stay the
//! embedder's: the drivers do no I/O of their own.

mod clock;
mod eese;
mod ue;

pub use clock::SystemClock;
pub use eese::{EeseDriver, EeseIo, Pass};
pub use ue::{UeDriver, UeIo};
