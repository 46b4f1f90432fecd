//! The EESE of the load test: one UDP socket on loopback, one thread, one
//! `EeseTable` keyed by UE index. A UE's session is made by its first
//! authentic hello (the identifier it names resolves to its index and root)
//! and the table learns the UE's address from it. Every payload delivered is
//! checked octet for octet against what its UE sent, and echoed. Snapshots
//! go to memory and are acknowledged at once.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant as StdInstant};

use ciot_e2e::endpoint::{
    EESE_SNAPSHOT_LEN, EeseConfig, EeseTable, Event, Instant, Received as Accepted, SendOutcome,
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

struct Eese<'a> {
    table: EeseTable<u32, SocketAddr, SeededRand>,
    roots: &'a [RootKey],
    /// Address → peer index (UE index or the stranger).
    dir: HashMap<SocketAddr, u32>,
    faults: Faults,
    net: Net<'a>,
    shared: &'a Shared,
    layout: &'a Layout,
    seed: u64,
    start: StdInstant,
    stats: Stats,
    received: Received,
    unauth: Unauth,
    delivered: Column,
    echoed: Column,
    /// Per UE: the last uplink sequence number delivered (what an attacker
    /// saw go by).
    last_seq: Vec<Option<u32>>,
    /// Per UE: its last snapshot.
    store: Vec<Vec<u8>>,
    out: Vec<u8>,
    check: Vec<u8>,
    rekeyed: bool,
}

fn millis(start: StdInstant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Eese<'_> {
    fn now(&self) -> Instant {
        Instant::from_millis(millis(self.start))
    }

    fn peer(&self, addr: &SocketAddr) -> u32 {
        self.dir.get(addr).copied().unwrap_or(STRANGER)
    }

    fn on_datagram(&mut self, buf: &mut [u8], from: SocketAddr) {
        self.stats.datagrams_in += 1;
        let source = self.peer(&from);
        // Everything a source sends pays for answers to it.
        self.unauth.input(source, buf.len());
        let kind = self.shared.to_eese.take(source, buf);
        let now = self.now();
        // Timers the call would run anyway run first, so what goes out after
        // it is the datagram's doing alone.
        self.timers(now);
        let (roots, n) = (self.roots, self.roots.len() as u32);
        let result = self.table.handle_datagram(now, &from, buf, |id| {
            let ue = identity::parse_id(id, n)?;
            Some((ue, roots.get(ue as usize)?.clone()))
        });
        let mut effect = Effect::of(&result, |(_, r)| r);
        match &result {
            Ok((id, Accepted::Data(d))) => {
                let (id, seq, range) = (*id, d.seq, d.payload.clone());
                if let Some(s) = self.last_seq.get_mut(id as usize) {
                    *s = Some(seq);
                }
                self.echo(now, id, &buf[range]);
            }
            Ok((_, Accepted::Control(MessageType::HELLO))) => self.stats.hellos += 1,
            _ => {}
        }
        self.rekeyed = false;
        let answered = self.drain(Some(from));
        effect.rekeyed = self.rekeyed;
        self.received.count(kind, &effect);
        if let Err(r) = &result
            && unauthenticated(r)
        {
            self.unauth.note(source, buf.len(), answered);
        }
    }

    /// Checks a delivered payload and echoes it.
    fn echo(&mut self, now: Instant, id: u32, payload: &[u8]) {
        self.stats.data += 1;
        let row = match check_payload(self.seed, payload, &mut self.check) {
            Some((ue, k)) if ue == id => self.layout.row(ue, k),
            _ => None,
        };
        let Some(row) = row else {
            self.stats.miskeyed += 1;
            return;
        };
        self.delivered.add(row);
        let mut out = std::mem::take(&mut self.out);
        match self.table.send(now, &id, payload, &mut out) {
            Ok(SendOutcome::Sent { sealed, to }) => {
                self.echoed.add(row);
                self.stats.echoes += 1;
                let peer = self.peer(&to);
                self.transmit(now, id, peer, &out[..sealed.len]);
            }
            Ok(SendOutcome::Queued) => {
                self.echoed.add(row);
                self.stats.echoes += 1;
            }
            Err(_) => self.stats.echo_failed += 1,
        }
        self.out = out;
    }

    /// Sends a datagram of UE `id`'s session to `peer` through the faults.
    fn transmit(&mut self, now: Instant, id: u32, peer: u32, d: &[u8]) {
        let keyset = self.table.status(now, &id).and_then(|s| s.keyset);
        let target = Target {
            ue: id,
            ksi: keyset.map(|k| k.ksi),
            counter: keyset.map_or(0, |k| k.counter),
            suite: self.table.config().suite,
            seq: self.last_seq.get(id as usize).copied().flatten(),
        };
        self.faults.send(
            now.as_millis(),
            peer,
            d,
            &target,
            &self.shared.to_ue,
            &mut self.net,
        );
    }

    /// Persists, transmits and reports until a pass polls nothing (an event
    /// can mean new work); returns the octets sent to `to`.
    fn drain(&mut self, to: Option<SocketAddr>) -> u64 {
        let mut snap = [0u8; EESE_SNAPSHOT_LEN];
        let mut out = std::mem::take(&mut self.out);
        let mut octets = 0u64;
        loop {
            let mut progress = false;
            while let Some((id, p)) = self.table.poll_persist(&mut snap) {
                if let Some(s) = self.store.get_mut(id as usize) {
                    s.clear();
                    s.extend_from_slice(&snap[..p.len()]);
                }
                let _ = self.table.persisted(&id, p);
                self.stats.persisted += 1;
                progress = true;
            }
            let now = self.now();
            while let Some((id, addr, t)) = self.table.poll_transmit(now, &mut out) {
                if Some(addr) == to {
                    octets += t.len as u64;
                }
                let peer = self.peer(&addr);
                self.transmit(now, id, peer, &out[..t.len]);
                progress = true;
            }
            while let Some((_, ev)) = self.table.poll_event() {
                match ev {
                    Event::Offered { .. } => self.stats.offers += 1,
                    Event::Rekeyed { .. } => {
                        self.stats.rekeys += 1;
                        self.rekeyed = true;
                    }
                    Event::KeysExpired { .. } => self.stats.expiries += 1,
                    _ => {}
                }
                progress = true;
            }
            if !progress {
                break;
            }
        }
        self.out = out;
        octets
    }

    fn timers(&mut self, now: Instant) {
        if self.table.poll_timeout().is_some_and(|t| t <= now) {
            self.table.handle_timeout(now);
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
        table: EeseTable::with_capacity(s.cfg, rng, n),
        roots: s.roots,
        dir,
        faults: Faults::new(s.params, s.seed ^ 0x0e5e_0000_0002, true),
        net: Net {
            sock: &s.sock,
            addrs: s.addrs,
            stranger: s.stranger,
            errors: 0,
        },
        shared: s.shared,
        layout: s.layout,
        seed: s.seed,
        start: s.start,
        stats: Stats::default(),
        received: Received::default(),
        unauth: Unauth::default(),
        delivered: Column::new(s.layout),
        echoed: Column::new(s.layout),
        last_seq: vec![None; n],
        store: vec![Vec::new(); n],
        out: vec![0u8; 2048],
        check: Vec::with_capacity(64),
        rekeyed: false,
    };
    let mut buf = vec![0u8; 65_536];
    let _ = s.sock.set_read_timeout(Some(Duration::from_millis(1)));
    while !s.shared.stop.load(Ordering::Acquire) && s.start.elapsed() < s.deadline {
        match s.sock.recv_from(&mut buf) {
            Ok((len, from)) => e.on_datagram(&mut buf[..len], from),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => e.stats.recv_errors += 1,
        }
        let now = e.now();
        e.timers(now);
        e.faults.release(now.as_millis(), &mut e.net);
    }
    // Answer what is still queued, so late injected datagrams are counted.
    let _ = s.sock.set_nonblocking(true);
    for _ in 0..1_000_000 {
        match s.sock.recv_from(&mut buf) {
            Ok((len, from)) => e.on_datagram(&mut buf[..len], from),
            Err(_) => break,
        }
    }
    e.faults.discard();
    e.stats.send_errors = e.net.errors;
    let now = e.now();
    Report {
        table: e.table,
        now,
        stats: e.stats,
        faults: e.faults.stats,
        received: e.received,
        unauth: e.unauth,
        delivered: e.delivered,
        echoed: e.echoed,
    }
}
