//! What the driver asks of the service: the state file, the socket, the
//! events (log lines, metrics, RANDs, the key log).

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ciot_e2e::driver::{EeseIo, SystemClock};
use ciot_e2e::endpoint::{Datagram, EeseTable, Event, Instant, UeId};
use tokio::net::UdpSocket;

use super::{CaptureHook, KeyLogHook, Pool, ServiceRand};
use crate::ServiceError;
use crate::eese::metrics::{Metrics, inc};
use crate::eese::state::Uplink;
use crate::eese::store::State;

/// The service's side of the driver.
pub(super) struct Io {
    pub(super) sock: UdpSocket,
    pub(super) clock: Rc<SystemClock>,
    pub(super) state: State,
    /// UEs another instance took over, for the driver to remove.
    pub(super) moved: Vec<UeId>,
    /// The same, for the service's bookkeeping after the pass.
    pub(super) moved_log: Vec<UeId>,
    pub(super) capture: Option<CaptureHook>,
    /// The socket's own address (for the capture).
    pub(super) local: SocketAddr,
    pub(super) metrics: Arc<Metrics>,
    pub(super) keylog: Option<KeyLogHook>,
    pub(super) verbose: bool,
    pub(super) pool: Pool,
    pub(super) rand_waiting: Vec<UeId>,
    pub(super) uplinks: Vec<Uplink>,
    pub(super) webhook_wake: Arc<tokio::sync::Notify>,
}

impl Io {
    pub(super) fn log(&self, line: std::fmt::Arguments<'_>) {
        if self.verbose {
            println!("[{:8.3}s] {line}", self.clock.secs());
        }
    }
}

impl EeseIo<UeId, SocketAddr, ServiceRand> for Io {
    type Error = ServiceError;

    fn persist(&mut self, snapshots: &[(&UeId, &[u8])]) -> Result<(), ServiceError> {
        // Snapshots and delivered uplink in one transaction: a payload
        // counts as delivered only once it is durable in the outbox.
        let moved = self
            .state
            .commit(snapshots.iter().copied(), &self.uplinks)?;
        self.moved_log.extend_from_slice(&moved);
        self.moved.extend(moved);
        inc(&self.metrics.state_commits);
        self.metrics
            .snapshots_written
            .fetch_add(snapshots.len() as u64, Ordering::Relaxed);
        if !self.uplinks.is_empty() {
            self.metrics
                .delivered
                .fetch_add(self.uplinks.len() as u64, Ordering::Relaxed);
            self.uplinks.clear();
            self.webhook_wake.notify_one();
        }
        Ok(())
    }

    fn commit_pending(&self) -> bool {
        !self.uplinks.is_empty()
    }

    fn moved(&mut self) -> Option<UeId> {
        self.moved.pop()
    }

    fn transmit(
        &mut self,
        _table: &EeseTable<UeId, SocketAddr, ServiceRand>,
        _id: &UeId,
        to: &SocketAddr,
        datagram: &[u8],
        what: Datagram,
    ) {
        if let Some(c) = &mut self.capture {
            c(self.local, *to, datagram);
        }
        // Non-blocking: a full socket buffer loses the datagram, as the
        // network may; every endpoint repeats what matters.
        if self.sock.try_send_to(datagram, *to).is_ok() {
            inc(&self.metrics.datagrams_out);
        }
        match what {
            Datagram::Trigger { .. } => inc(&self.metrics.triggers_sent),
            Datagram::KeyExpired { .. } => inc(&self.metrics.errors_sent),
            Datagram::Data { .. } => inc(&self.metrics.payloads_sent),
            Datagram::Hello { .. } => {}
        }
    }

    fn event(
        &mut self,
        table: &mut EeseTable<UeId, SocketAddr, ServiceRand>,
        now: Instant,
        id: UeId,
        ev: Event,
    ) -> Result<(), ServiceError> {
        match ev {
            Event::Offered { ksi, counter } => {
                // Its trigger goes out with CONFIRM; nothing is written or
                // sealed under it until the UE uses it.
                inc(&self.metrics.offers);
                self.log(format_args!(
                    "{id}: offered keyset KSI {ksi} (trigger counter {counter})"
                ));
            }
            Event::Rekeyed { ksi, counter } => {
                // The UE used the offer: it is the keyset in use (its
                // snapshot is being written; downlink waits for it).
                inc(&self.metrics.rekeys);
                if let Some(hook) = &mut self.keylog
                    && let Some((rand, keys)) = table.current_keys(&id)
                {
                    hook(&id, ksi, counter, rand, keys);
                }
                self.log(format_args!(
                    "{id}: now using keyset KSI {ksi} (trigger counter {counter})"
                ));
            }
            Event::RandNeeded => {
                let rand = self.pool.borrow_mut().pop_front();
                match rand {
                    Some(rand) => table.provide_rand(now, &id, rand),
                    None => self.rand_waiting.push(id),
                }
            }
            Event::KeysExpired { ksi, cause } => {
                self.log(format_args!("{id}: keyset KSI {ksi} expired ({cause})"));
            }
            _ => {}
        }
        Ok(())
    }
}
