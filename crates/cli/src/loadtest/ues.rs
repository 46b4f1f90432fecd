//! The UEs of the load test: one thread owns every `Ue`, each with its own
//! UDP socket on loopback (the EESE tells UEs apart by source address, and
//! the protocol has no room for a UE identifier). At most `window` UEs have a
//! message in flight at once; the driver polls only their sockets, so a sweep
//! costs a few hundred non-blocking receives however many UEs there are.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant as StdInstant};

use ciot_e2e::endpoint::{Config, Event, Instant, Sent, Sink, Ue};
use ciot_e2e::kdf::RootKey;

use super::Shared;
use super::faults::{Emit, FaultStats, Faults, Params, STRANGER, Target};
use super::rng::{HOLD, check_payload, payload};
use super::stats::{Effect, Received};

/// Attempts per message before the driver gives up on it (the run fails).
const MAX_ATTEMPTS: u32 = 60;
/// Longest wait before retransmitting.
const MAX_RTO_MS: u64 = 800;
/// New messages started per sweep (a burst larger than the EESE socket's
/// receive buffer would be dropped by the kernel).
const STARTS_PER_SWEEP: usize = 64;
/// A UE whose socket was quiet this long is polled only every
/// `SLOW_POLL`-th sweep until its timer runs out (answers come within a few
/// milliseconds, or not at all).
const QUIET_MS: u64 = 20;
const SLOW_POLL: u64 = 8;
/// Datagrams read from one socket per sweep.
const READS_PER_SWEEP: usize = 16;

/// What the UE driver is given.
pub struct Setup {
    /// One socket per UE, non-blocking, connected to the EESE.
    pub socks: Vec<UdpSocket>,
    /// A socket the EESE has no session for (source of stranger garbage).
    pub stranger: UdpSocket,
    /// The EESE's address.
    pub eese: SocketAddr,
    /// Every UE's root.
    pub roots: Vec<RootKey>,
    /// Messages per UE.
    pub totals: Vec<u32>,
    /// Shared configuration.
    pub cfg: Config,
    /// Seed of the payloads and faults.
    pub seed: u64,
    /// Faults toward the EESE.
    pub params: Params,
    /// UEs with a message in flight at once.
    pub window: usize,
    /// First retransmission timeout.
    pub rto_ms: u64,
    /// Hard deadline of the run.
    pub deadline: Duration,
    /// State shared with the EESE thread.
    pub shared: Arc<Shared>,
    /// Time zero of the run.
    pub start: StdInstant,
}

/// What the UE driver counted.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Messages started (first transmission).
    pub started: u64,
    /// Messages whose echo came back.
    pub echoed: u64,
    /// Echoes of a message already echoed (it was sent more than once).
    pub dup_echoes: u64,
    /// Echoes that were not exactly a payload this UE sent.
    pub miskeyed: u64,
    /// Data messages sent (first transmissions and retransmissions).
    pub data_sent: u64,
    /// Payloads sent again after a timeout.
    pub retransmitted: u64,
    /// Payloads the UE library sent again under a new keyset (TR step 5).
    pub held_retransmitted: u64,
    /// Payloads the driver sent again at once because a new keyset arrived.
    pub resent_on_rekey: u64,
    /// Empty datagrams sent to (re)open the connection.
    pub connects: u64,
    /// Keysets refused by the EESE (authentic key-expired errors).
    pub expiries: u64,
    /// Messages given up after `MAX_ATTEMPTS`.
    pub gave_up: u64,
    /// Send calls that failed.
    pub send_errors: u64,
    /// Socket receive errors.
    pub recv_errors: u64,
    /// Sum and maximum of the echo latencies, in ms.
    pub latency_sum_ms: u64,
    /// Longest echo latency, in ms.
    pub latency_max_ms: u64,
    /// Whether the hard deadline ended the run.
    pub deadline_hit: bool,
}

/// The UE driver's result.
pub struct Report {
    /// Every UE as it ended.
    pub ues: Vec<Ue<HOLD>>,
    /// Rekeys per UE.
    pub rekeys: Vec<u32>,
    /// UEs that did not get every echo.
    pub incomplete: usize,
    /// Counts.
    pub stats: Stats,
    /// The fault layer toward the EESE.
    pub faults: FaultStats,
    /// Injected datagrams received from the EESE's side.
    pub received: Received,
}

#[derive(Default)]
struct Out {
    datagrams: Vec<Vec<u8>>,
    data: Vec<Vec<u8>>,
    effect: Effect,
    rekeys: u32,
    expiries: u64,
    retransmitted: u64,
}

impl Sink for Out {
    fn transmit(&mut self, d: &[u8]) {
        self.datagrams.push(d.to_vec());
    }
    fn event(&mut self, e: Event<'_>) {
        self.effect.note(&e);
        match e {
            Event::Data { payload, .. } => self.data.push(payload.to_vec()),
            Event::Rekeyed { .. } => self.rekeys += 1,
            Event::KeysExpired { .. } => self.expiries += 1,
            Event::Retransmitted { .. } => self.retransmitted += 1,
            _ => {}
        }
    }
}

struct Net {
    socks: Vec<UdpSocket>,
    stranger: UdpSocket,
    eese: SocketAddr,
    errors: u64,
}

impl Emit for Net {
    fn emit(&mut self, peer: u32, bytes: &[u8]) {
        let r = if peer == STRANGER {
            self.stranger.send_to(bytes, self.eese)
        } else if let Some(s) = self.socks.get(peer as usize) {
            s.send(bytes)
        } else {
            return;
        };
        if r.is_err() {
            self.errors += 1;
        }
    }
}

struct Flight {
    k: u32,
    first_sent: u64,
    /// Last send or receive for this UE.
    active_at: u64,
    deadline: u64,
    attempts: u32,
}

struct Slot {
    ue: Ue<HOLD>,
    next_k: u32,
    total: u32,
    echoed: u32,
    rekeys: u32,
    flight: Option<Flight>,
}

struct Driver {
    slots: Vec<Slot>,
    net: Net,
    faults: Faults,
    out: Out,
    cfg: Config,
    seed: u64,
    rto_ms: u64,
    shared: Arc<Shared>,
    stats: Stats,
    received: Received,
    scratch: Vec<u8>,
    payload: Vec<u8>,
    check: Vec<u8>,
    buf: Vec<u8>,
}

impl Driver {
    fn target(&self, i: usize) -> Target {
        let ue = self.slots.get(i).map(|s| &s.ue);
        Target {
            ksi: ue.and_then(Ue::current).map(|c| c.0),
            counter: ue.map_or(0, Ue::last_counter),
            suite: self.cfg.suite,
        }
    }

    /// Sends what the UE said, through the faults.
    fn flush(&mut self, i: usize, now: u64) {
        let target = self.target(i);
        let peer = u32::try_from(i).unwrap_or(u32::MAX);
        for d in std::mem::take(&mut self.out.datagrams) {
            self.faults
                .send(now, peer, &d, &target, &self.shared.to_eese, &mut self.net);
        }
    }

    /// Sends the payload in flight for UE `i` (again): under the keyset in
    /// use, or, without a usable one, held and the connection reopened.
    fn transmit(&mut self, i: usize, now: u64) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        let Some(f) = &slot.flight else {
            return;
        };
        payload(
            self.seed,
            u32::try_from(i).unwrap_or(u32::MAX),
            f.k,
            &mut self.payload,
        );
        if let Some(f) = slot.flight.as_mut() {
            f.active_at = now;
        }
        match slot
            .ue
            .send(&self.payload, &mut self.scratch, &mut self.out)
        {
            Ok(Sent::Now { .. }) => self.stats.data_sent += 1,
            Ok(Sent::Held) => {
                // No usable keyset: (re)open the connection; the EESE answers
                // with a trigger and the UE sends the held payload.
                self.stats.connects += 1;
                self.out.datagrams.push(Vec::new());
            }
            Err(_) => self.stats.send_errors += 1,
        }
        self.flush(i, now);
    }

    fn start(&mut self, i: usize, now: u64) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        let k = slot.next_k;
        slot.next_k += 1;
        if let Some(s) = self.shared.sent.get(i) {
            s.store(slot.next_k, Ordering::Release);
        }
        slot.flight = Some(Flight {
            k,
            first_sent: now,
            active_at: now,
            deadline: now + self.rto_ms,
            attempts: 1,
        });
        self.stats.started += 1;
        self.transmit(i, now);
    }

    fn on_timeout(&mut self, i: usize, now: u64) {
        let rto = self.rto_ms;
        let Some(f) = self.slots.get_mut(i).and_then(|s| s.flight.as_mut()) else {
            return;
        };
        if f.attempts >= MAX_ATTEMPTS {
            self.stats.gave_up += 1;
            if let Some(s) = self.slots.get_mut(i) {
                s.flight = None;
            }
            return;
        }
        f.attempts += 1;
        f.deadline = now + (rto << (f.attempts - 1).min(4)).min(MAX_RTO_MS);
        self.stats.retransmitted += 1;
        self.transmit(i, now);
    }

    fn on_datagram(&mut self, i: usize, n: usize, now: u64) {
        let peer = u32::try_from(i).unwrap_or(u32::MAX);
        let Some(bytes) = self.buf.get_mut(..n) else {
            return;
        };
        let kind = self.shared.to_ue.take(peer, bytes);
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        self.out.effect = Effect::default();
        slot.ue.handle_datagram(
            Instant::from_millis(now),
            &self.cfg,
            bytes,
            &mut self.scratch,
            &mut self.out,
        );
        let rekeyed = std::mem::take(&mut self.out.rekeys);
        slot.rekeys += rekeyed;
        if let Some(f) = slot.flight.as_mut() {
            f.active_at = now;
        }
        self.received.count(kind, &self.out.effect);
        self.stats.expiries += std::mem::take(&mut self.out.expiries);
        let held = std::mem::take(&mut self.out.retransmitted);
        self.stats.held_retransmitted += held;
        self.stats.data_sent += held;
        for echo in std::mem::take(&mut self.out.data) {
            self.on_echo(i, &echo, now);
        }
        self.flush(i, now);
        // A new keyset arrived but the UE did not resend the payload in
        // flight (no key-expired error named the keyset it went out under, or
        // the error was lost): send it under the new keyset now rather than
        // wait for the timer.
        let in_flight = self.slots.get(i).is_some_and(|s| s.flight.is_some());
        if rekeyed > 0 && held == 0 && in_flight {
            self.stats.resent_on_rekey += 1;
            self.transmit(i, now);
        }
    }

    fn on_echo(&mut self, i: usize, echo: &[u8], now: u64) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        match check_payload(self.seed, echo, &mut self.check) {
            Some((ue, k)) if ue as usize == i && k < slot.next_k => {
                match slot.flight.take_if(|f| f.k == k) {
                    Some(f) => {
                        slot.echoed += 1;
                        self.stats.echoed += 1;
                        let latency = now.saturating_sub(f.first_sent);
                        self.stats.latency_sum_ms += latency;
                        self.stats.latency_max_ms = self.stats.latency_max_ms.max(latency);
                    }
                    None => self.stats.dup_echoes += 1,
                }
            }
            _ => self.stats.miskeyed += 1,
        }
    }

    /// Reads what arrived for UE `i`; true if anything did.
    fn poll(&mut self, i: usize, now: u64) -> bool {
        let mut any = false;
        for _ in 0..READS_PER_SWEEP {
            let Some(sock) = self.net.socks.get(i) else {
                break;
            };
            match sock.recv(&mut self.buf) {
                Ok(n) => {
                    any = true;
                    self.on_datagram(i, n, now);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    // e.g. an ICMP error queued on the connected socket.
                    self.stats.recv_errors += 1;
                    break;
                }
            }
        }
        if let Some(slot) = self.slots.get_mut(i)
            && slot.ue.poll_timeout().is_some_and(|t| t.as_millis() <= now)
        {
            slot.ue.handle_timeout(Instant::from_millis(now));
        }
        any
    }
}

fn millis(start: StdInstant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The UE driver after its run: drain the sockets, then take the report.
pub struct Finished(Driver);

/// Runs every UE until each got all its echoes or the deadline passed, then
/// tells the EESE thread to stop.
pub fn run(s: Setup) -> Finished {
    let n = s.socks.len();
    let slots = s
        .roots
        .into_iter()
        .zip(&s.totals)
        .map(|(root, &total)| Slot {
            ue: Ue::with_config(root, &s.cfg),
            next_k: 0,
            total,
            echoed: 0,
            rekeys: 0,
            flight: None,
        })
        .collect();
    let mut d = Driver {
        slots,
        net: Net {
            socks: s.socks,
            stranger: s.stranger,
            eese: s.eese,
            errors: 0,
        },
        faults: Faults::new(s.params, s.seed ^ 0x0a0e_0000_0001, false),
        out: Out::default(),
        cfg: s.cfg,
        seed: s.seed,
        rto_ms: s.rto_ms,
        shared: s.shared,
        stats: Stats::default(),
        received: Received::default(),
        scratch: vec![0u8; 2048],
        payload: Vec::with_capacity(64),
        check: Vec::with_capacity(64),
        buf: vec![0u8; 65_536],
    };
    let total: u64 = s.totals.iter().map(|&t| u64::from(t)).sum();
    let mut active: Vec<usize> = Vec::with_capacity(s.window);
    let mut cursor = 0usize;
    let mut next_progress = 2_000;
    let mut sweep = 0u64;
    loop {
        let now = millis(s.start);
        if s.start.elapsed() >= s.deadline {
            d.stats.deadline_hit = true;
            break;
        }
        d.faults.release(now, &mut d.net);
        // Start the next message of the next UEs, round robin, so that every
        // UE's messages spread over the whole run (and over several keysets).
        let mut scanned = 0;
        let mut started = 0;
        while active.len() < s.window
            && scanned < n
            && started < STARTS_PER_SWEEP
            && d.stats.started < total
        {
            let i = cursor;
            cursor = (cursor + 1) % n;
            scanned += 1;
            if d.slots
                .get(i)
                .is_some_and(|s| s.flight.is_none() && s.next_k < s.total)
            {
                d.start(i, now);
                active.push(i);
                started += 1;
            }
        }
        let mut any = false;
        let mut j = 0;
        sweep += 1;
        while let Some(&i) = active.get(j) {
            let quiet = d
                .slots
                .get(i)
                .and_then(|s| s.flight.as_ref())
                .is_some_and(|f| now.saturating_sub(f.active_at) > QUIET_MS);
            if !quiet || (sweep + i as u64) % SLOW_POLL == 0 {
                any |= d.poll(i, now);
            }
            let deadline = d
                .slots
                .get(i)
                .and_then(|s| s.flight.as_ref())
                .map(|f| f.deadline);
            match deadline {
                None => {
                    active.swap_remove(j);
                    continue;
                }
                Some(t) if t <= now => d.on_timeout(i, now),
                Some(_) => {}
            }
            j += 1;
        }
        if active.is_empty() && d.stats.started >= total {
            break;
        }
        if now >= next_progress {
            next_progress += 2_000;
            println!(
                "[{:6.1}s] echoed {}/{total}, in flight {}, retransmitted {}, UE rekeys {}",
                now as f64 / 1000.0,
                d.stats.echoed,
                active.len(),
                d.stats.retransmitted,
                d.slots.iter().map(|s| u64::from(s.rekeys)).sum::<u64>(),
            );
        }
        if !any {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    d.shared.stop.store(true, Ordering::Release);
    Finished(d)
}

impl Finished {
    /// Reads what is still queued for every UE (after the EESE stopped), so
    /// that late injected datagrams are counted too.
    pub fn drain(&mut self, start: StdInstant) {
        let d = &mut self.0;
        let now = millis(start);
        for i in 0..d.slots.len() {
            for _ in 0..8 {
                if !d.poll(i, now) {
                    break;
                }
            }
        }
        d.faults.discard();
    }

    /// The counts and the UEs as they ended.
    pub fn report(self) -> Report {
        let mut d = self.0;
        d.stats.send_errors += d.net.errors;
        Report {
            incomplete: d.slots.iter().filter(|s| s.echoed < s.total).count(),
            rekeys: d.slots.iter().map(|s| s.rekeys).collect(),
            ues: d.slots.into_iter().map(|s| s.ue).collect(),
            stats: d.stats,
            faults: d.faults.stats,
            received: d.received,
        }
    }
}
