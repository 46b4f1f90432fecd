//! The EESE of the load test: one UDP socket on loopback, one thread, one
//! `EeseTable<SocketAddr>` (one session per UE address, one timer heap). Every
//! payload that verifies is checked against what its UE sent and echoed.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant as StdInstant};

use ciot_e2e::endpoint::{Config, EeseTable, Event, Instant, Reject, TableSink};
use ciot_e2e::kdf::RootKey;

use super::Shared;
use super::faults::{Emit, FaultStats, Faults, Params, STRANGER, Target};
use super::rng::{Rng, SeededRand, check_payload};
use super::stats::{Effect, Received};

/// What the EESE thread is given.
pub struct Setup {
    /// Its socket (bound on loopback).
    pub sock: UdpSocket,
    /// Shared configuration.
    pub cfg: Config,
    /// Every UE's address and root (the EMKS's part, known in advance here).
    pub ues: Vec<(SocketAddr, RootKey)>,
    /// Seed of its RANDs and faults.
    pub seed: u64,
    /// Faults toward the UEs.
    pub params: Params,
    /// State shared with the UE driver.
    pub shared: Arc<Shared>,
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
    /// Empty datagrams (connection (re)opened).
    pub connects: u64,
    /// Payloads delivered by the protocol.
    pub data: u64,
    /// Echoes sent.
    pub echoes: u64,
    /// Echoes the session refused to send.
    pub echo_failed: u64,
    /// Payloads that were not exactly one their UE sent.
    pub miskeyed: u64,
    /// Keysets made.
    pub rekeys: u64,
    /// Keysets that ran out (te2e).
    pub expiries: u64,
    /// Socket errors on send / receive.
    pub send_errors: u64,
    /// Socket errors on receive.
    pub recv_errors: u64,
}

/// The EESE thread's result.
pub struct Report {
    /// The sessions as they ended.
    pub table: EeseTable<SocketAddr>,
    /// Counts.
    pub stats: Stats,
    /// The fault layer toward the UEs.
    pub faults: FaultStats,
    /// Injected datagrams received from the UEs' side.
    pub received: Received,
}

#[derive(Default)]
struct Out {
    datagrams: Vec<(SocketAddr, Vec<u8>)>,
    data: Vec<Vec<u8>>,
    effect: Effect,
    rekeys: u64,
    expiries: u64,
}

impl TableSink<SocketAddr> for Out {
    fn transmit(&mut self, ue: &SocketAddr, d: &[u8]) {
        self.datagrams.push((*ue, d.to_vec()));
    }
    fn event(&mut self, _: &SocketAddr, e: Event<'_>) {
        self.effect.note(&e);
        match e {
            Event::Data { payload, .. } => self.data.push(payload.to_vec()),
            Event::Rekeyed { .. } => self.rekeys += 1,
            Event::KeysExpired { .. } => self.expiries += 1,
            _ => {}
        }
    }
}

struct Net<'a> {
    sock: &'a UdpSocket,
    addrs: &'a [SocketAddr],
    errors: u64,
}

impl Emit for Net<'_> {
    fn emit(&mut self, peer: u32, bytes: &[u8]) {
        let Some(to) = self.addrs.get(peer as usize) else {
            return;
        };
        if self.sock.send_to(bytes, to).is_err() {
            self.errors += 1;
        }
    }
}

struct Eese<'a> {
    table: EeseTable<SocketAddr>,
    dir: HashMap<SocketAddr, u32>,
    rng: SeededRand,
    faults: Faults,
    net: Net<'a>,
    out: Out,
    shared: &'a Shared,
    seed: u64,
    start: StdInstant,
    stats: Stats,
    received: Received,
    scratch: Vec<u8>,
    check: Vec<u8>,
}

fn millis(start: StdInstant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Eese<'_> {
    fn now(&self) -> Instant {
        Instant::from_millis(millis(self.start))
    }

    fn on_datagram(&mut self, buf: &mut [u8], from: SocketAddr) {
        self.stats.datagrams_in += 1;
        let Some(&idx) = self.dir.get(&from) else {
            // No session for this address: the front end drops it.
            let kind = self.shared.to_eese.take(STRANGER, buf);
            let effect = Effect {
                rejected: Some(Reject::NoSession),
                ..Effect::default()
            };
            self.received.count(kind, &effect);
            return;
        };
        let kind = self.shared.to_eese.take(idx, buf);
        let now = self.now();
        self.out.effect = Effect::default();
        if buf.is_empty() {
            self.stats.connects += 1;
            self.table
                .on_connect(now, &from, &mut self.rng, &mut self.out);
        } else {
            self.table
                .handle_datagram(now, &from, buf, &mut self.rng, &mut self.out);
        }
        self.received.count(kind, &self.out.effect);
        let sent = self
            .shared
            .sent
            .get(idx as usize)
            .map_or(0, |s| s.load(Ordering::Acquire));
        for payload in std::mem::take(&mut self.out.data) {
            self.stats.data += 1;
            match check_payload(self.seed, &payload, &mut self.check) {
                Some((ue, k)) if ue == idx && k < sent => {
                    let r = self.table.send(
                        now,
                        &from,
                        &payload,
                        &mut self.scratch,
                        &mut self.rng,
                        &mut self.out,
                    );
                    if matches!(r, Some(Ok(_))) {
                        self.stats.echoes += 1;
                    } else {
                        self.stats.echo_failed += 1;
                    }
                }
                _ => self.stats.miskeyed += 1,
            }
        }
        self.flush();
    }

    fn flush(&mut self) {
        let now = millis(self.start);
        self.stats.rekeys += std::mem::take(&mut self.out.rekeys);
        self.stats.expiries += std::mem::take(&mut self.out.expiries);
        for (to, d) in std::mem::take(&mut self.out.datagrams) {
            let Some(&idx) = self.dir.get(&to) else {
                continue;
            };
            let current = self.table.get(&to).and_then(|s| s.current());
            let target = Target {
                ksi: current.map(|c| c.0),
                counter: current.map_or(0, |c| c.1),
                suite: self.table.config().suite,
            };
            self.faults
                .send(now, idx, &d, &target, &self.shared.to_ue, &mut self.net);
        }
    }

    fn timers(&mut self) {
        let now = self.now();
        if self.table.poll_timeout().is_some_and(|t| t <= now) {
            self.table.handle_timeout(now, &mut self.out);
            self.flush();
        }
        self.faults.release(now.as_millis(), &mut self.net);
    }
}

/// Runs the EESE until the UE driver says stop (or the deadline passes), then
/// answers what is still queued and returns.
pub fn run(s: Setup) -> Report {
    let addrs: Vec<SocketAddr> = s.ues.iter().map(|(a, _)| *a).collect();
    let mut table = EeseTable::with_capacity(s.cfg, s.ues.len());
    let mut dir = HashMap::with_capacity(s.ues.len());
    for (i, (addr, root)) in s.ues.into_iter().enumerate() {
        table.insert(addr, root, None);
        dir.insert(addr, u32::try_from(i).unwrap_or(u32::MAX));
    }
    let mut e = Eese {
        table,
        dir,
        rng: SeededRand(Rng::new(s.seed ^ 0x0e5e_0000_0003)),
        faults: Faults::new(s.params, s.seed ^ 0x0e5e_0000_0002, true),
        net: Net {
            sock: &s.sock,
            addrs: &addrs,
            errors: 0,
        },
        out: Out::default(),
        shared: &s.shared,
        seed: s.seed,
        start: s.start,
        stats: Stats::default(),
        received: Received::default(),
        scratch: vec![0u8; 2048],
        check: Vec::with_capacity(64),
    };
    let mut buf = vec![0u8; 65_536];
    let _ = s.sock.set_read_timeout(Some(Duration::from_millis(1)));
    while !s.shared.stop.load(Ordering::Acquire) && s.start.elapsed() < s.deadline {
        match s.sock.recv_from(&mut buf) {
            Ok((n, from)) => e.on_datagram(&mut buf[..n], from),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => e.stats.recv_errors += 1,
        }
        e.timers();
    }
    // Answer what is still queued, so late injected datagrams are counted.
    let _ = s.sock.set_nonblocking(true);
    for _ in 0..1_000_000 {
        match s.sock.recv_from(&mut buf) {
            Ok((n, from)) => e.on_datagram(&mut buf[..n], from),
            Err(_) => break,
        }
    }
    e.faults.discard();
    e.stats.send_errors = e.net.errors;
    Report {
        table: e.table,
        stats: e.stats,
        faults: e.faults.stats,
        received: e.received,
    }
}
