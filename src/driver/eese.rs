//! The EESE's loop around a session table.

use std::vec::Vec;

use core::hash::Hash;

use crate::endpoint::{
    Datagram, EESE_SNAPSHOT_LEN, EeseTable, Event, Instant, Persist, RandSource, Received, Reject,
    SendError, SendOutcome,
};

/// What an [`EeseDriver`] asks of its embedder: the I/O.
pub trait EeseIo<Id, A, R> {
    /// Why the embedder could not do what was asked. A failed
    /// [`persist`](Self::persist) ends the pass: nothing that depends on the
    /// lost snapshots goes out, and the embedder must stop (or start over
    /// from what its store holds).
    type Error;

    /// Stores these snapshots durably, all or none, and returns only then.
    /// Called once per pass with every snapshot the pass produced (empty
    /// when only [`commit_pending`](Self::commit_pending) asked for it), so a
    /// database makes one transaction of them and of whatever the embedder
    /// adds (an outbox of delivered payloads).
    ///
    /// # Errors
    /// The store failed.
    fn persist(&mut self, snapshots: &[(&Id, &[u8])]) -> Result<(), Self::Error>;

    /// Whether the embedder has something of its own to commit in the next
    /// [`persist`](Self::persist) even when there is no snapshot.
    fn commit_pending(&self) -> bool {
        false
    }

    /// Sends one datagram to `to` (best effort, as UDP is).
    fn transmit(&mut self, to: &A, datagram: &[u8], what: Datagram);

    /// Reports one event. The table is handed over for what an event may
    /// need done at once (a RAND provided, a key logged).
    ///
    /// # Errors
    /// Whatever the embedder makes of it (a key log that cannot be written).
    fn event(
        &mut self,
        table: &mut EeseTable<Id, A, R>,
        now: Instant,
        id: Id,
        event: Event,
    ) -> Result<(), Self::Error>;
}

/// What one [`EeseDriver::drain`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Calls to [`EeseIo::persist`].
    pub commits: u32,
    /// Snapshots written.
    pub snapshots: u32,
    /// Datagrams transmitted.
    pub datagrams: u32,
    /// Octets transmitted.
    pub octets: u64,
    /// Events reported.
    pub events: u32,
}

/// An [`EeseTable`] with the loop that runs it: persist → transmit → events.
pub struct EeseDriver<Id, A, R> {
    table: EeseTable<Id, A, R>,
    out: Vec<u8>,
    snap: Vec<u8>,
    /// The snapshots of this pass, back to back in `bytes`.
    batch: Vec<(Id, Persist, usize)>,
    bytes: Vec<u8>,
}

impl<Id: Hash + Eq + Ord + Clone, A: Hash + Eq + Clone, R: RandSource> EeseDriver<Id, A, R> {
    /// Largest datagram the driver seals or sends.
    pub const MAX_DATAGRAM: usize = 65_536;

    /// A driver around `table`.
    #[must_use]
    pub fn new(table: EeseTable<Id, A, R>) -> Self {
        EeseDriver {
            table,
            out: std::vec![0u8; Self::MAX_DATAGRAM],
            snap: std::vec![0u8; EESE_SNAPSHOT_LEN],
            batch: Vec::new(),
            bytes: Vec::new(),
        }
    }

    /// The table.
    #[must_use]
    pub const fn table(&self) -> &EeseTable<Id, A, R> {
        &self.table
    }

    /// The table, for calls the driver does not wrap (restore, expire,
    /// remove, …). Whatever they produce goes out at the next
    /// [`drain`](Self::drain).
    pub fn table_mut(&mut self) -> &mut EeseTable<Id, A, R> {
        &mut self.table
    }

    /// One datagram in (see [`EeseTable::handle_datagram`]); its effects go
    /// out at the next [`drain`](Self::drain).
    ///
    /// # Errors
    /// Why the datagram was refused; nothing changed then.
    pub fn handle_datagram<F>(
        &mut self,
        now: Instant,
        from: &A,
        datagram: &mut [u8],
        root_of: F,
    ) -> Result<(Id, Received), Reject>
    where
        F: FnOnce(&[u8]) -> Option<(Id, crate::kdf::RootKey)>,
    {
        self.table.handle_datagram(now, from, datagram, root_of)
    }

    /// Fires the table's timers if one is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.table.poll_timeout().is_some_and(|t| t <= now) {
            self.table.handle_timeout(now);
        }
    }

    /// When the table's next timer is due.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.table.poll_timeout()
    }

    /// Seals `payload` for `ue` and transmits it at once when it can go now
    /// (a proven address, a keyset in use whose snapshot is durable);
    /// otherwise the table queues it and a later [`drain`](Self::drain)
    /// sends it.
    ///
    /// # Errors
    /// As [`EeseTable::send`]; nothing is sent then.
    pub fn send<I: EeseIo<Id, A, R>>(
        &mut self,
        now: Instant,
        ue: &Id,
        payload: &[u8],
        io: &mut I,
    ) -> Result<SendOutcome<A>, SendError> {
        let r = self.table.send(now, ue, payload, &mut self.out)?;
        if let SendOutcome::Sent { sealed, to } = &r {
            let what = Datagram::Data {
                ksi: sealed.ksi,
                counter: sealed.counter,
                seq: sealed.seq,
                retransmission: false,
            };
            io.transmit(to, &self.out[..sealed.len], what);
        }
        Ok(r)
    }

    /// Persists, transmits and reports until a pass yields nothing. `now`
    /// is asked again after every write (a write may take a while).
    ///
    /// # Errors
    /// A failed [`EeseIo::persist`] (nothing that depends on it went out)
    /// or a failed [`EeseIo::event`].
    pub fn drain<I: EeseIo<Id, A, R>>(
        &mut self,
        now: impl Fn() -> Instant,
        io: &mut I,
    ) -> Result<Pass, I::Error> {
        let mut pass = Pass::default();
        loop {
            let mut progress = false;
            self.batch.clear();
            self.bytes.clear();
            while let Some((id, p)) = self.table.poll_persist(&mut self.snap) {
                self.bytes.extend_from_slice(&self.snap[..p.len()]);
                self.batch.push((id, p, self.bytes.len()));
            }
            if !self.batch.is_empty() || io.commit_pending() {
                let mut start = 0;
                let views: Vec<(&Id, &[u8])> = self
                    .batch
                    .iter()
                    .map(|(id, _, end)| {
                        let v = (id, &self.bytes[start..*end]);
                        start = *end;
                        v
                    })
                    .collect();
                io.persist(&views)?;
                drop(views);
                pass.commits += 1;
                for (id, p, _) in self.batch.drain(..) {
                    // Only a snapshot the table handed out is reported; a
                    // session removed meanwhile has nothing to hear.
                    let _ = self.table.persisted(&id, p);
                    pass.snapshots += 1;
                }
                progress = true;
            }
            let t = now();
            while let Some((_, to, tx)) = self.table.poll_transmit(t, &mut self.out) {
                io.transmit(&to, &self.out[..tx.len], tx.what);
                pass.datagrams += 1;
                pass.octets += tx.len as u64;
                progress = true;
            }
            while let Some((id, ev)) = self.table.poll_event() {
                io.event(&mut self.table, t, id, ev)?;
                pass.events += 1;
                progress = true;
            }
            if !progress {
                return Ok(pass);
            }
        }
    }
}
