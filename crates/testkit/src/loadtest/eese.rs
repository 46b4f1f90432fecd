//! The EESE of the load test: one UDP socket on loopback, one thread, one
//! `EeseTable` keyed by UE index. A UE's session is made by its first
//! authentic hello (the identifier it names resolves to its index and root)
//! and the table learns the UE's address from it. Every payload delivered is
//! checked octet for octet against what its UE sent, and echoed. The table
//! runs on [`EeseDriver`]; snapshots go to memory and are acknowledged at
//! once.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant as StdInstant};

use ciot_e2e::driver::{EeseDriver, EeseIo};
use ciot_e2e::endpoint::{
    Datagram, EeseConfig, EeseTable, Event, Instant, Received as Accepted, SendOutcome,
};
use ciot_e2e::kdf::RootKey;
use ciot_e2e::wire::MessageType;

use super::Shared;
use super::faults::{Emit, FaultStats, Faults, Params};
use super::hostile::{STRANGER, Target};
use super::identity;
use super::ledger::{Column, Layout};
use super::payload::check_payload;
use super::stats::{Effect, Received, Unauth, unauthenticated};
use crate::rng::{Rng, SeededRand};

/// What the EESE thread is given.
pub struct Setup<'a> {
    /// Its socket (bound on loopback).
    pub sock: UdpSocket,
    /// Its configuration.
    pub cfg: EeseConfig,
    /// Every UE's root (the EMKS's part, known in advance here).
    pub roots: &'a [RootKey],
    /// Every UE's address, and the stranger's.
    pub addrs: &'a [SocketAddr],
    /// The stranger's address.
    pub stranger: SocketAddr,
    /// Where each payload is counted.
    pub layout: &'a Layout,
    /// Seed of its RANDs, faults and the payloads.
    pub seed: u64,
    /// Faults toward the UEs.
    pub params: Params,
    /// State shared with the UE driver.
    pub shared: &'a Shared,
    /// Time zero of the run.
    pub start: StdInstant,
    /// Stop at this point even if not told to.
    pub deadline: Duration,
}

/// What the EESE thread counted.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Authentic, fresh hellos.
    pub hellos: u64,
    /// Payloads delivered by the protocol.
    pub data: u64,
    /// Echoes sent (sealed at once or queued behind a new keyset).
    pub echoes: u64,
    /// Echoes the session refused to take.
    pub echo_failed: u64,
    /// Payloads that were not exactly one their UE sent.
    pub miskeyed: u64,
    /// Keysets offered (triggers with CONFIRM).
    pub offers: u64,
    /// Keysets taken into use (the UE used the offer).
    pub rekeys: u64,
    /// Keysets that ran out or were refused.
    pub expiries: u64,
    /// Snapshots stored.
    pub persisted: u64,
    /// Socket errors on send.
    pub send_errors: u64,
    /// Socket errors on receive.
    pub recv_errors: u64,
}

/// The EESE thread's result.
pub struct Report {
    /// The sessions as they ended.
    pub table: EeseTable<u32, SocketAddr, SeededRand>,
    /// Endpoint time at the end.
    pub now: Instant,
    /// Counts.
    pub stats: Stats,
    /// The fault layer toward the UEs.
    pub faults: FaultStats,
    /// Injected datagrams received from the UEs' side.
    pub received: Received,
    /// Input it could not authenticate, and what it sent back.
    pub unauth: Unauth,
    /// Per payload: deliveries.
    pub delivered: Column,
    /// Per payload: echoes sent.
    pub echoed: Column,
}

struct Net<'a> {
    sock: &'a UdpSocket,
    addrs: &'a [SocketAddr],
    stranger: SocketAddr,
    errors: u64,
}

impl Emit for Net<'_> {
    fn emit(&mut self, peer: u32, bytes: &[u8]) {
        let to = if peer == STRANGER {
            self.stranger
        } else if let Some(a) = self.addrs.get(peer as usize) {
            *a
        } else {
            return;
        };
        if self.sock.send_to(bytes, to).is_err() {
            self.errors += 1;
        }
    }
}

type Table = EeseTable<u32, SocketAddr, SeededRand>;

/// The EESE's side of the driver: the store, the wire through the faults,
/// and the counts of what went by.
struct Io<'a> {
    /// Address → peer index (UE index or the stranger).
    dir: HashMap<SocketAddr, u32>,
    faults: Faults,
    net: Net<'a>,
    shared: &'a Shared,
    start: StdInstant,
    stats: Stats,
    /// Per UE: the last uplink sequence number delivered (what an attacker
    /// saw go by).
    last_seq: Vec<Option<u32>>,
    /// Per UE: its last snapshot.
    store: Vec<Vec<u8>>,
    /// A keyset was taken into use since this was cleared.
    rekeyed: bool,
    /// Octets a drain transmitted to this address (the source of the
    /// datagram it answers).
    answer_to: Option<SocketAddr>,
    answered: u64,
}

fn millis(start: StdInstant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Io<'_> {
    fn now(&self) -> Instant {
        Instant::from_millis(millis(self.start))
    }

    fn peer(&self, addr: &SocketAddr) -> u32 {
        self.dir.get(addr).copied().unwrap_or(STRANGER)
    }
}

impl EeseIo<u32, SocketAddr, SeededRand> for Io<'_> {
    type Error = Infallible;

    fn persist(&mut self, snapshots: &[(&u32, &[u8])]) -> Result<(), Infallible> {
        for (id, snap) in snapshots {
            if let Some(s) = self.store.get_mut(**id as usize) {
                s.clear();
                s.extend_from_slice(snap);
            }
            self.stats.persisted += 1;
        }
        Ok(())
    }

    /// Sends a datagram of UE `id`'s session through the faults, which aim
    /// their forgeries at its keyset.
    fn transmit(&mut self, table: &Table, id: &u32, to: &SocketAddr, d: &[u8], _: Datagram) {
        if Some(*to) == self.answer_to {
            self.answered += d.len() as u64;
        }
        let now = self.now();
        let keyset = table.status(now, id).and_then(|s| s.keyset);
        let target = Target {
            ue: *id,
            ksi: keyset.map(|k| k.ksi),
            counter: keyset.map_or(0, |k| k.counter),
            suite: table.config().suite,
            seq: self.last_seq.get(*id as usize).copied().flatten(),
        };
        let peer = self.peer(to);
        self.faults.send(
            now.as_millis(),
            peer,
            d,
            &target,
            &self.shared.to_ue,
            &mut self.net,
        );
    }

    fn event(&mut self, _: &mut Table, _: Instant, _: u32, ev: Event) -> Result<(), Infallible> {
        match ev {
            Event::Offered { .. } => self.stats.offers += 1,
            Event::Rekeyed { .. } => {
                self.stats.rekeys += 1;
                self.rekeyed = true;
            }
            Event::KeysExpired { .. } => self.stats.expiries += 1,
            _ => {}
        }
        Ok(())
    }
}

struct Eese<'a> {
    driver: EeseDriver<u32, SocketAddr, SeededRand>,
    io: Io<'a>,
    roots: &'a [RootKey],
    layout: &'a Layout,
    seed: u64,
    received: Received,
    unauth: Unauth,
    delivered: Column,
    echoed: Column,
    check: Vec<u8>,
}

impl Eese<'_> {
    fn on_datagram(&mut self, buf: &mut [u8], from: SocketAddr) {
        self.io.stats.datagrams_in += 1;
        let source = self.io.peer(&from);
        // Everything a source sends pays for answers to it.
        self.unauth.input(source, buf.len());
        let kind = self.io.shared.to_eese.take(source, buf);
        let now = self.io.now();
        // Timers the call would run anyway run first, so what goes out after
        // it is the datagram's doing alone.
        self.timers(now);
        let (roots, n) = (self.roots, self.roots.len() as u32);
        let result = self.driver.handle_datagram(now, &from, buf, |id| {
            let ue = identity::parse_id(id, n)?;
            Some((ue, roots.get(ue as usize)?.clone()))
        });
        let mut effect = Effect::of(&result, |(_, r)| r);
        match &result {
            Ok((id, Accepted::Data(d))) => {
                let (id, seq, range) = (*id, d.seq, d.payload.clone());
                if let Some(s) = self.io.last_seq.get_mut(id as usize) {
                    *s = Some(seq);
                }
                self.echo(now, id, &buf[range]);
            }
            Ok((_, Accepted::Control(MessageType::HELLO))) => self.io.stats.hellos += 1,
            _ => {}
        }
        self.io.rekeyed = false;
        let answered = self.drain(Some(from));
        effect.rekeyed = self.io.rekeyed;
        self.received.count(kind, &effect);
        if let Err(r) = &result
            && unauthenticated(r)
        {
            self.unauth.note(source, buf.len(), answered);
        }
    }

    /// Checks a delivered payload and echoes it.
    fn echo(&mut self, now: Instant, id: u32, payload: &[u8]) {
        self.io.stats.data += 1;
        let row = match check_payload(self.seed, payload, &mut self.check) {
            Some((ue, k)) if ue == id => self.layout.row(ue, k),
            _ => None,
        };
        let Some(row) = row else {
            self.io.stats.miskeyed += 1;
            return;
        };
        self.delivered.add(row);
        // Sealed and sent at once, or queued behind a new keyset.
        match self.driver.send(now, &id, payload, &mut self.io) {
            Ok(SendOutcome::Sent { .. } | SendOutcome::Queued) => {
                self.echoed.add(row);
                self.io.stats.echoes += 1;
            }
            Err(_) => self.io.stats.echo_failed += 1,
        }
    }

    /// Persists, transmits and reports until a pass polls nothing (an event
    /// can mean new work); returns the octets sent to `to`.
    fn drain(&mut self, to: Option<SocketAddr>) -> u64 {
        self.io.answer_to = to;
        self.io.answered = 0;
        let start = self.io.start;
        let Ok(_) = self
            .driver
            .drain(|| Instant::from_millis(millis(start)), &mut self.io);
        self.io.answer_to = None;
        self.io.answered
    }

    fn timers(&mut self, now: Instant) {
        if self.driver.poll_timeout().is_some_and(|t| t <= now) {
            self.driver.handle_timeout(now);
            self.drain(None);
        }
    }
}

/// Runs the EESE until the UE driver says stop (or the deadline passes), then
/// answers what is still queued and returns.
pub fn run(s: Setup<'_>) -> Report {
    let n = s.roots.len();
    let mut dir: HashMap<SocketAddr, u32> = s
        .addrs
        .iter()
        .enumerate()
        .map(|(i, a)| (*a, u32::try_from(i).unwrap_or(STRANGER)))
        .collect();
    dir.insert(s.stranger, STRANGER);
    let rng = SeededRand(Rng::new(s.seed ^ 0x0e5e_0000_0003));
    let mut e = Eese {
        driver: EeseDriver::new(EeseTable::with_capacity(s.cfg, rng, n)),
        io: Io {
            dir,
            faults: Faults::new(s.params, s.seed ^ 0x0e5e_0000_0002, true),
            net: Net {
                sock: &s.sock,
                addrs: s.addrs,
                stranger: s.stranger,
                errors: 0,
            },
            shared: s.shared,
            start: s.start,
            stats: Stats::default(),
            last_seq: vec![None; n],
            store: vec![Vec::new(); n],
            rekeyed: false,
            answer_to: None,
            answered: 0,
        },
        roots: s.roots,
        layout: s.layout,
        seed: s.seed,
        received: Received::default(),
        unauth: Unauth::default(),
        delivered: Column::new(s.layout),
        echoed: Column::new(s.layout),
        check: Vec::with_capacity(64),
    };
    let mut buf = vec![0u8; 65_536];
    let _ = s.sock.set_read_timeout(Some(Duration::from_millis(1)));
    while !s.shared.stop.load(Ordering::Acquire) && s.start.elapsed() < s.deadline {
        match s.sock.recv_from(&mut buf) {
            Ok((len, from)) => e.on_datagram(&mut buf[..len], from),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => e.io.stats.recv_errors += 1,
        }
        let now = e.io.now();
        e.timers(now);
        e.io.faults.release(now.as_millis(), &mut e.io.net);
    }
    // Answer what is still queued, so late injected datagrams are counted.
    let _ = s.sock.set_nonblocking(true);
    for _ in 0..1_000_000 {
        match s.sock.recv_from(&mut buf) {
            Ok((len, from)) => e.on_datagram(&mut buf[..len], from),
            Err(_) => break,
        }
    }
    e.io.faults.discard();
    e.io.stats.send_errors = e.io.net.errors;
    let now = e.io.now();
    Report {
        table: e.driver.into_table(),
        now,
        stats: e.io.stats,
        faults: e.io.faults.stats,
        received: e.received,
        unauth: e.unauth,
        delivered: e.delivered,
        echoed: e.echoed,
    }
}
