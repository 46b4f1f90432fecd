//! `ciot-e2e eese` with an EMKS: the EESE as a service on the
//! [`EeseTable`](ciot_e2e::endpoint::EeseTable).
//!
//! One thread runs the UDP socket loop and owns the table; everything that
//! may block runs beside it and talks to it through one channel: root and
//! RAND fetches from the EMKS (worker threads), the long-poll for new root
//! generations, the webhook, and the admin interface. So a slow or
//! unreachable EMKS delays only the UEs whose root is not known yet:
//!
//! - a hello from a UE whose root is not cached is dropped and starts a
//!   fetch; the UE repeats its hello with back-off and the next one is taken
//!   once the root has arrived;
//! - failed fetches back off per UE (0.5 s doubling to 10 s); while the EMKS
//!   is unreachable, such hellos are counted under
//!   `rejects_total{reason="emks_unreachable"}` and admin requests for those
//!   UEs are refused with 503; sessions whose root is known keep working;
//! - after a restart the snapshots are loaded but restored lazily, on the
//!   UE's next hello (a restored keyset is retired anyway, so nothing could
//!   be done for the UE before it): restart time is the time to read the
//!   state file;
//! - a hello is answered with an offer (nothing written); the keyset is
//!   taken into use, and its snapshot written, when the UE uses it, and
//!   downlink for the UE waits (`queued`) until that write is durable;
//! - endpoint time is milliseconds since the UNIX epoch, never going back
//!   within the process, so the counter floor of a session made or
//!   restored holds across restarts (see `service::Clock`).

pub mod metrics;
pub mod pg;
mod service;
pub mod state;
pub mod store;
pub mod webhook;

pub use service::{EeseService, RandChoice, ServiceConfig, UNKNOWN_FETCH_RATE};
