//! The UEs of the load test: one thread owns every `Ue`, each with its own
//! UDP socket on loopback (the EESE finds a UE by the address its hellos
//! come from). This is what happens to one UE: its payload in flight, what
//! it receives, its timers, its retransmissions; [`super::sweep`] decides
//! which UEs to visit. Each UE runs on a [`UeDriver`]. A UE keeps no
//! storage: each draws its start's nonce from the operating system's random
//! source.

use std::convert::Infallible;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant as StdInstant};

use ciot_e2e::driver::{UeDriver, UeIo};
use ciot_e2e::endpoint::{Datagram, Event, Instant, Received as Accepted, SendError, Ue, UeConfig};
use ciot_e2e::kdf::{RootKey, UeNonce};
use ciot_e2e::wire::{MessageType, Suite};

use super::Shared;
use super::faults::{Emit, FaultStats, Faults, Params};
use super::hostile::{STRANGER, Target};
use super::identity;
use super::ledger::{Column, Layout};
use super::payload::{HOLD, check_payload, payload};
use super::stats::{Effect, Received};

/// Attempts per payload before the driver gives up on it (the run fails).
const MAX_ATTEMPTS: u32 = 60;
/// Longest wait before retransmitting.
pub const MAX_RTO_MS: u64 = 800;
/// Datagrams read from one socket per sweep.
const READS_PER_SWEEP: usize = 16;

/// What the UE driver is given.
pub struct Setup<'a> {
    /// One socket per UE, non-blocking, connected to the EESE.
    pub socks: Vec<UdpSocket>,
    /// A socket no UE uses (source of stranger datagrams).
    pub stranger: UdpSocket,
    /// The EESE's address.
    pub eese: SocketAddr,
    /// Every UE's root.
    pub roots: &'a [RootKey],
    /// Payloads per UE, and where each is counted.
    pub layout: &'a Layout,
    /// Every UE's settings.
    pub cfg: UeConfig,
    /// The suite the EESE uses (for forgeries that look current).
    pub suite: Suite,
    /// Seed of the payloads and faults.
    pub seed: u64,
    /// Faults toward the EESE.
    pub params: Params,
    /// UEs with a payload in flight at once.
    pub window: usize,
    /// First retransmission timeout.
    pub rto_ms: u64,
    /// Hard deadline of the run.
    pub deadline: Duration,
    /// State shared with the EESE thread.
    pub shared: &'a Shared,
    /// Time zero of the run.
    pub start: StdInstant,
}

/// What the UE driver counted.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Payloads started (handed to their UE the first time).
    pub started: u64,
    /// Payloads whose echo came back.
    pub echoed: u64,
    /// Echoes of a payload already echoed (it was sent more than once).
    pub dup_echoes: u64,
    /// Echoes that were not exactly a payload this UE sent.
    pub miskeyed: u64,
    /// Data messages sent (first transmissions and retransmissions).
    pub data_sent: u64,
    /// Hellos sent.
    pub hellos: u64,
    /// Payloads handed to the UE again after a timeout.
    pub retransmitted: u64,
    /// Payloads the UE sent again under a new keyset (TR step 5).
    pub held_retransmitted: u64,
    /// Payloads the driver handed again at once because a new keyset came
    /// without an error naming the payload.
    pub resent_on_rekey: u64,
    /// Times a payload waited because the UE still held the previous one.
    pub busy: u64,
    /// Authentic key-expired errors the UEs accepted.
    pub expiries: u64,
    /// Snapshots stored (a UE stores none: always 0; kept for the report's
    /// format).
    pub persisted: u64,
    /// Payloads given up after `MAX_ATTEMPTS`.
    pub gave_up: u64,
    /// Send calls that failed.
    pub send_errors: u64,
    /// Socket receive errors.
    pub recv_errors: u64,
    /// Datagrams that reached the stranger's address (sent to a UE a
    /// replayed hello had moved there).
    pub to_stranger: u64,
    /// Sum of the echo latencies, in ms.
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
    /// Per payload: data messages that carried it.
    pub transmitted: Column,
    /// Per payload: echoes received.
    pub echoes: Column,
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
    /// The UE took the payload (it may have refused: still holding the
    /// previous one).
    handed: bool,
}

struct Slot {
    ue: UeDriver<HOLD>,
    next_k: u32,
    total: u32,
    echoed: u32,
    rekeys: u32,
    /// The payload the UE holds: the last one it took.
    held: Option<u32>,
    flight: Option<Flight>,
}

/// What draining a UE's effects found.
#[derive(Default)]
struct Pumped {
    rekeyed: bool,
    data: bool,
}

/// One UE's side of its driver for one drain: the wire through the faults,
/// and the counts.
struct Wire<'x> {
    i: u32,
    now: u64,
    /// What the faults aim their forgeries at (the UE's keyset; a drain
    /// does not change it).
    target: Target,
    /// The payload the UE holds.
    held: Option<u32>,
    layout: &'x Layout,
    shared: &'x Shared,
    faults: &'x mut Faults,
    net: &'x mut Net,
    stats: &'x mut Stats,
    transmitted: &'x mut Column,
    rekeys: &'x mut u32,
    got: Pumped,
}

impl UeIo<HOLD> for Wire<'_> {
    type Error = Infallible;

    fn transmit(&mut self, d: &[u8], what: Datagram) -> Result<(), Infallible> {
        match what {
            Datagram::Hello { .. } => self.stats.hellos += 1,
            Datagram::Data { .. } => {
                self.stats.data_sent += 1;
                self.got.data = true;
                if let Some(row) = self.held.and_then(|k| self.layout.row(self.i, k)) {
                    self.transmitted.add(row);
                }
            }
            _ => {}
        }
        self.faults.send(
            self.now,
            self.i,
            d,
            &self.target,
            &self.shared.to_eese,
            self.net,
        );
        Ok(())
    }

    fn event(&mut self, _: &Ue<HOLD>, ev: Event) -> Result<(), Infallible> {
        match ev {
            Event::Rekeyed { .. } => {
                *self.rekeys += 1;
                self.got.rekeyed = true;
            }
            Event::Retransmitted { .. } => self.stats.held_retransmitted += 1,
            _ => {}
        }
        Ok(())
    }
}

/// Every UE and what the UE thread keeps beside them.
pub(super) struct Driver<'a> {
    slots: Vec<Slot>,
    net: Net,
    faults: Faults,
    layout: &'a Layout,
    suite: Suite,
    seed: u64,
    rto_ms: u64,
    shared: &'a Shared,
    pub(super) stats: Stats,
    received: Received,
    transmitted: Column,
    echoes: Column,
    payload: Vec<u8>,
    check: Vec<u8>,
    buf: Vec<u8>,
}

fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

impl<'a> Driver<'a> {
    /// Runs UE `i`'s timers, transmits (through the faults) and reports
    /// what it has to say, until a pass polls nothing.
    fn pump(&mut self, i: usize, now: u64) -> Pumped {
        let Some(slot) = self.slots.get_mut(i) else {
            return Pumped::default();
        };
        let ue = slot.ue.ue();
        let mut wire = Wire {
            i: index(i),
            now,
            target: Target {
                ue: index(i),
                ksi: ue.status().map(|s| s.ksi),
                counter: ue.last_counter(),
                suite: self.suite,
                seq: None,
            },
            held: slot.held,
            layout: self.layout,
            shared: self.shared,
            faults: &mut self.faults,
            net: &mut self.net,
            stats: &mut self.stats,
            transmitted: &mut self.transmitted,
            rekeys: &mut slot.rekeys,
            got: Pumped::default(),
        };
        let Ok(_) = slot.ue.drain(Instant::from_millis(now), &mut wire);
        wire.got
    }

    /// Hands the payload in flight for UE `i` to the UE (again). A payload
    /// the UE still holds waits for a keyset: the UE's hellos ask for one.
    fn hand(&mut self, i: usize, now: u64) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        let Some(f) = slot.flight.as_mut() else {
            return;
        };
        f.active_at = now;
        if slot.ue.ue().holding() && slot.held == Some(f.k) {
            return;
        }
        payload(self.seed, index(i), f.k, &mut self.payload);
        match slot
            .ue
            .ue_mut()
            .send(Instant::from_millis(now), &self.payload)
        {
            Ok(_) => {
                f.handed = true;
                slot.held = Some(f.k);
            }
            Err(SendError::Busy) => {
                // The previous payload has not gone out yet; this one
                // follows it (see the sweep).
                f.handed = false;
                self.stats.busy += 1;
            }
            Err(_) => self.stats.send_errors += 1,
        }
        self.pump(i, now);
    }

    /// Starts the next payload of UE `i`.
    pub(super) fn start(&mut self, i: usize, now: u64) {
        let rto = self.rto_ms;
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        let k = slot.next_k;
        slot.next_k += 1;
        slot.flight = Some(Flight {
            k,
            first_sent: now,
            active_at: now,
            deadline: now + rto,
            attempts: 1,
            handed: false,
        });
        self.stats.started += 1;
        self.hand(i, now);
    }

    fn on_timeout(&mut self, i: usize, now: u64) {
        let rto = self.rto_ms;
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        let waiting = slot.ue.ue().holding();
        let Some(f) = slot.flight.as_mut() else {
            return;
        };
        if f.attempts >= MAX_ATTEMPTS {
            self.stats.gave_up += 1;
            slot.flight = None;
            return;
        }
        f.attempts += 1;
        f.deadline = now + (rto << (f.attempts - 1).min(4)).min(MAX_RTO_MS);
        if !(waiting && slot.held == Some(f.k)) {
            self.stats.retransmitted += 1;
        }
        self.hand(i, now);
    }

    fn on_datagram(&mut self, i: usize, n: usize, now: u64) {
        let Some(bytes) = self.buf.get_mut(..n) else {
            return;
        };
        let kind = self.shared.to_ue.take(index(i), bytes);
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        let r = slot.ue.handle_datagram(Instant::from_millis(now), bytes);
        if let Some(f) = slot.flight.as_mut() {
            f.active_at = now;
        }
        let mut effect = Effect::of(&r, |r| r);
        let mut echo = None;
        match &r {
            Ok(Accepted::Data(d)) => echo = Some(d.payload.clone()),
            Ok(Accepted::Control(MessageType::KEY_EXPIRED)) if kind.is_none() => {
                self.stats.expiries += 1;
            }
            _ => {}
        }
        if let Some(range) = echo {
            let echo = self.buf.get(range).unwrap_or_default().to_vec();
            self.on_echo(i, &echo, now);
        }
        let pumped = self.pump(i, now);
        effect.rekeyed = pumped.rekeyed;
        self.received.count(kind, &effect);
        // A new keyset came, and the UE did not send the payload in flight
        // under it (no key-expired error named it, or the error was lost):
        // hand it over again now rather than wait for the timer.
        let Some(slot) = self.slots.get(i) else {
            return;
        };
        let resend = slot.flight.as_ref().is_some_and(|f| f.handed)
            && !slot.ue.ue().holding()
            && pumped.rekeyed
            && !pumped.data;
        if resend {
            self.stats.resent_on_rekey += 1;
            self.hand(i, now);
        }
    }

    fn on_echo(&mut self, i: usize, echo: &[u8], now: u64) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        let row = match check_payload(self.seed, echo, &mut self.check) {
            Some((ue, k)) if ue == index(i) && k < slot.next_k => {
                self.layout.row(ue, k).map(|row| (row, k))
            }
            _ => None,
        };
        let Some((row, k)) = row else {
            self.stats.miskeyed += 1;
            return;
        };
        self.echoes.add(row);
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

    /// Reads what arrived for UE `i` and runs its timers; true if anything
    /// arrived.
    pub(super) fn poll(&mut self, i: usize, now: u64) -> bool {
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
        if self.slots.get(i).is_some_and(|s| {
            s.ue.ue()
                .poll_timeout()
                .is_some_and(|t| t.as_millis() <= now)
        }) {
            // The drain runs the timers first.
            self.pump(i, now);
        }
        any
    }

    /// Reads what reached the stranger's address (it answers nothing).
    fn poll_stranger(&mut self) {
        while self.net.stranger.recv(&mut self.buf).is_ok() {
            self.stats.to_stranger += 1;
        }
    }

    /// The UE thread's setup: every UE, its socket and its fault layer.
    pub(super) fn new(s: Setup<'a>) -> Self {
        let slots = s
            .roots
            .iter()
            .enumerate()
            .map(|(i, root)| {
                let id = index(i);
                Slot {
                    ue: UeDriver::new(Ue::new(
                        s.cfg,
                        root.clone(),
                        identity::id(id),
                        UeNonce::random().unwrap_or_else(|_| {
                            // No OS randomness: a run of the test still
                            // needs distinct starts; the seed and index give
                            // them (a test harness, never a device).
                            let mut n = [0u8; 16];
                            n[..8].copy_from_slice(&s.seed.to_be_bytes());
                            n[8..12].copy_from_slice(&id.to_be_bytes());
                            UeNonce::from_bytes(n)
                        }),
                    )),
                    next_k: 0,
                    total: s.layout.total(id),
                    echoed: 0,
                    rekeys: 0,
                    held: None,
                    flight: None,
                }
            })
            .collect();
        Driver {
            slots,
            net: Net {
                socks: s.socks,
                stranger: s.stranger,
                eese: s.eese,
                errors: 0,
            },
            faults: Faults::new(s.params, s.seed ^ 0x0a0e_0000_0001, false),
            layout: s.layout,
            suite: s.suite,
            seed: s.seed,
            rto_ms: s.rto_ms,
            shared: s.shared,
            stats: Stats::default(),
            received: Received::default(),
            transmitted: Column::new(s.layout),
            echoes: Column::new(s.layout),
            payload: Vec::with_capacity(64),
            check: Vec::with_capacity(64),
            buf: vec![0u8; 65_536],
        }
    }

    /// UEs driven.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether UE `i` is idle and has payloads left to send.
    pub(super) fn can_start(&self, i: usize) -> bool {
        self.slots
            .get(i)
            .is_some_and(|s| s.flight.is_none() && s.next_k < s.total)
    }

    /// When UE `i`'s payload in flight last saw traffic, if it has one.
    pub(super) fn active_at(&self, i: usize) -> Option<u64> {
        self.slots.get(i)?.flight.as_ref().map(|f| f.active_at)
    }

    /// After UE `i` was polled: hands over a payload that waited for the
    /// previous one, retransmits on timeout. False once the UE has no
    /// payload in flight.
    pub(super) fn settle(&mut self, i: usize, now: u64) -> bool {
        let waits = self
            .slots
            .get(i)
            .is_some_and(|s| s.flight.as_ref().is_some_and(|f| !f.handed) && !s.ue.ue().holding());
        if waits {
            self.hand(i, now);
        }
        match self.slots.get(i).and_then(|s| s.flight.as_ref()) {
            None => false,
            Some(f) if f.deadline <= now => {
                self.on_timeout(i, now);
                true
            }
            Some(_) => true,
        }
    }

    /// Sends the delayed datagrams that are due, and reads what reached the
    /// stranger.
    pub(super) fn release(&mut self, now: u64) {
        self.faults.release(now, &mut self.net);
        self.poll_stranger();
    }

    /// Rekeys at all UEs so far.
    pub(super) fn rekeys(&self) -> u64 {
        self.slots.iter().map(|s| u64::from(s.rekeys)).sum()
    }

    /// The deadline passed; the fault layer is done.
    pub(super) fn finish(&mut self) {
        self.poll_stranger();
        self.faults.discard();
    }

    /// The counts and the UEs as they ended.
    pub(super) fn report(self) -> Report {
        let mut d = self;
        d.stats.send_errors += d.net.errors;
        Report {
            incomplete: d.slots.iter().filter(|s| s.echoed < s.total).count(),
            rekeys: d.slots.iter().map(|s| s.rekeys).collect(),
            ues: d.slots.into_iter().map(|s| s.ue.into_ue()).collect(),
            stats: d.stats,
            faults: d.faults.stats,
            received: d.received,
            transmitted: d.transmitted,
            echoes: d.echoes,
        }
    }
}
