//! The EESE's loop around a session table.

use std::net::SocketAddr;
use std::vec::Vec;

use core::hash::Hash;

use crate::endpoint::{
    Datagram, EESE_SNAPSHOT_LEN, EeseTable, Event, Instant, OsRand, Persist, RandSource, Received,
    Reject, SendError, SendOutcome,
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

    /// After a [`persist`](Self::persist) that returned `Ok`: the next UE
    /// whose session this embedder must not keep, because its store says
    /// the UE now belongs to someone else (a store shared by several EESE
    /// instances, whose write for the UE matched nothing: another instance
    /// took it over). The driver removes each such session before anything
    /// of the pass goes out, so nothing more is sent for it here.
    fn moved(&mut self) -> Option<Id> {
        None
    }

    /// Sends one datagram of `id`'s session to `to` (best effort, as UDP
    /// is). The table is handed over read-only for what the embedder notes
    /// about the session (its keyset, for a log line or a test's faults).
    fn transmit(
        &mut self,
        table: &EeseTable<Id, A, R>,
        id: &Id,
        to: &A,
        datagram: &[u8],
        what: Datagram,
    );

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
/// Its defaults are the table's: UEs at socket addresses, RANDs from the
/// operating system.
pub struct EeseDriver<Id, A = SocketAddr, R = OsRand> {
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

    /// The table, handed back (the driver's buffers are dropped).
    #[must_use]
    pub fn into_table(self) -> EeseTable<Id, A, R> {
        self.table
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
            io.transmit(&self.table, ue, to, &self.out[..sealed.len], what);
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
                while let Some(id) = io.moved() {
                    self.table.remove(&id);
                }
                for (id, p, _) in self.batch.drain(..) {
                    // Only a snapshot the table handed out is reported; a
                    // session removed meanwhile has nothing to hear.
                    let _ = self.table.persisted(&id, p);
                    pass.snapshots += 1;
                }
                progress = true;
            }
            let t = now();
            while let Some((id, to, tx)) = self.table.poll_transmit(t, &mut self.out) {
                io.transmit(&self.table, &id, &to, &self.out[..tx.len], tx.what);
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

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use super::*;
    use crate::endpoint::{EeseConfig, Ue, UeConfig, UeId};
    use crate::kdf::{Rand, RootBytes, RootKey, RootKind, UeNonce};

    type Rands = fn() -> Option<Rand>;
    type Table = EeseTable<UeId, u8, Rands>;
    type Driver = EeseDriver<UeId, u8, Rands>;

    /// What the driver asked of the embedder, in order.
    #[derive(Debug, PartialEq, Eq)]
    enum Call {
        Persist(usize),
        Transmit(Datagram),
        Event(Event),
    }

    /// An embedder that records every call; its store fails when told to.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<Call>,
        /// Datagrams sent, with their addresses.
        wire: Vec<(u8, Vec<u8>)>,
        fail_persist: bool,
        /// UEs the store says are another's after the next persist.
        moved: Vec<UeId>,
    }

    impl EeseIo<UeId, u8, Rands> for Recorder {
        type Error = &'static str;

        fn persist(&mut self, snapshots: &[(&UeId, &[u8])]) -> Result<(), Self::Error> {
            self.calls.push(Call::Persist(snapshots.len()));
            if self.fail_persist {
                Err("disk full")
            } else {
                Ok(())
            }
        }

        fn moved(&mut self) -> Option<UeId> {
            self.moved.pop()
        }

        fn transmit(&mut self, _: &Table, _: &UeId, to: &u8, datagram: &[u8], what: Datagram) {
            self.calls.push(Call::Transmit(what));
            self.wire.push((*to, datagram.to_vec()));
        }

        fn event(
            &mut self,
            _: &mut Table,
            _: Instant,
            _: UeId,
            event: Event,
        ) -> Result<(), Self::Error> {
            self.calls.push(Call::Event(event));
            Ok(())
        }
    }

    fn root() -> RootKey {
        RootKey::new(RootKind::IntKey, RootBytes::from_bytes([7; 32]))
    }

    fn rand() -> Option<Rand> {
        Some(Rand([9; 16]))
    }

    const UE: u8 = 1;
    const NOW: Instant = Instant::from_millis(1_000_000);

    fn driver() -> Driver {
        EeseDriver::new(EeseTable::new(EeseConfig::default(), rand as Rands))
    }

    fn ue() -> Ue<64> {
        Ue::new(
            UeConfig::default(),
            root(),
            UeId::new(b"ue-1").unwrap(),
            UeNonce::from_bytes([1; 16]),
        )
    }

    /// The UE's next datagram.
    fn from_ue(ue: &mut Ue<64>) -> Vec<u8> {
        let mut out = std::vec![0u8; Ue::<64>::MAX_DATAGRAM];
        let t = ue.poll_transmit(NOW, &mut out).unwrap().unwrap();
        out[..t.len].to_vec()
    }

    fn hand_in(d: &mut Driver, mut datagram: Vec<u8>) {
        d.handle_datagram(NOW, &UE, &mut datagram, |id| {
            Some((UeId::new(id).ok()?, root()))
        })
        .unwrap();
    }

    fn first(calls: &[Call], f: impl Fn(&Call) -> bool) -> usize {
        calls.iter().position(f).unwrap_or(usize::MAX)
    }

    /// A session whose UE has just used the keyset offered to it (its
    /// payload under it was delivered): the keyset is in use, and its
    /// snapshot is yet to be written. The embedder has seen nothing of it.
    fn just_confirmed() -> (Driver, Ue<64>, Recorder) {
        let (mut d, mut ue, mut io) = (driver(), ue(), Recorder::default());
        // The UE holds a payload until a keyset comes; its hello asks.
        ue.send(NOW, b"up").unwrap();
        hand_in(&mut d, from_ue(&mut ue));
        // The offer needs no snapshot: its counter lies above the floor.
        d.drain(|| NOW, &mut io).unwrap();
        let (_, mut trigger) = io.wire.pop().unwrap();
        ue.handle_datagram(NOW, &mut trigger).unwrap();
        let mut data = from_ue(&mut ue);
        let (got, r) = d.handle_datagram(NOW, &UE, &mut data, |_| None).unwrap();
        assert_eq!(got, UeId::new(b"ue-1").unwrap());
        assert!(matches!(r, Received::Data(_)), "{r:?}");
        io.calls.clear();
        (d, ue, io)
    }

    #[test]
    fn downlink_under_a_keyset_just_taken_into_use_waits_for_its_snapshot() {
        let (mut d, mut ue, mut io) = just_confirmed();
        let id = UeId::new(b"ue-1").unwrap();
        // Not durable yet: the payload is queued, nothing is sent.
        let sent = d.send(NOW, &id, b"down", &mut io).unwrap();
        assert_eq!(sent, SendOutcome::Queued);
        assert!(io.calls.is_empty(), "{:?}", io.calls);
        d.drain(|| NOW, &mut io).unwrap();
        let persist = first(&io.calls, |c| matches!(c, Call::Persist(1)));
        let down = first(&io.calls, |c| {
            matches!(c, Call::Transmit(Datagram::Data { .. }))
        });
        let rekeyed = first(&io.calls, |c| {
            matches!(c, Call::Event(Event::Rekeyed { .. }))
        });
        assert!(persist < down && down < rekeyed, "{:?}", io.calls);
        assert!(rekeyed != usize::MAX, "{:?}", io.calls);
        let (to, mut down) = io.wire.pop().unwrap();
        assert_eq!(to, UE);
        match ue.handle_datagram(NOW, &mut down) {
            Ok(Received::Data(got)) => assert_eq!(&down[got.payload], b"down"),
            other => panic!("{other:?}"),
        }
        // Once durable, the next payload goes out at once.
        io.calls.clear();
        let sent = d.send(NOW, &id, b"more", &mut io).unwrap();
        assert!(matches!(sent, SendOutcome::Sent { to: UE, .. }), "{sent:?}");
        assert!(matches!(
            io.calls[..],
            [Call::Transmit(Datagram::Data { .. })]
        ));
    }

    #[test]
    fn a_failed_persist_ends_the_pass_with_nothing_transmitted() {
        let (mut d, _, mut io) = just_confirmed();
        let id = UeId::new(b"ue-1").unwrap();
        assert_eq!(d.send(NOW, &id, b"down", &mut io), Ok(SendOutcome::Queued));
        io.fail_persist = true;
        assert_eq!(d.drain(|| NOW, &mut io), Err("disk full"));
        // Neither the payload nor the event went out.
        assert_eq!(io.calls, [Call::Persist(1)]);
        assert!(io.wire.is_empty());
    }

    #[test]
    fn a_ue_the_store_says_moved_is_removed_before_anything_goes_out() {
        let (mut d, _, mut io) = just_confirmed();
        let id = UeId::new(b"ue-1").unwrap();
        assert_eq!(d.send(NOW, &id, b"down", &mut io), Ok(SendOutcome::Queued));
        io.moved.push(id);
        d.drain(|| NOW, &mut io).unwrap();
        // The snapshot was offered to the store, which refused it for this
        // UE: the session is gone, and neither the payload nor anything
        // else of it went out (the events the UE's datagram caused before
        // are still reported).
        assert_eq!(io.calls.first(), Some(&Call::Persist(1)));
        assert!(
            !io.calls.iter().any(|c| matches!(c, Call::Transmit(_))),
            "{:?}",
            io.calls
        );
        assert!(io.wire.is_empty());
        assert!(!d.table().contains(&id));
        assert!(matches!(
            d.send(NOW, &id, b"again", &mut io),
            Err(SendError::NoSession)
        ));
    }
}
