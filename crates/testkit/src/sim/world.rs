//! The simulated world: one EESE table, several UEs, the network between
//! them, their disks, an adversary and a clock, all in one thread and all
//! following from one seed.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

use ciot_e2e::endpoint::{
    EESE_SNAPSHOT_LEN, EeseConfig, EeseTable, Event, Instant, Persist, RandSource, SendOutcome,
    Transmit, UE_SNAPSHOT_LEN, Ue, UeConfig, UeId,
};
use ciot_e2e::kdf::{Rand, RootBytes, RootKey, RootKind};

use super::action::{Action, RandMode};
use super::oracle::Oracle;
use crate::rng::Rng;

pub(crate) use ciot_e2e::endpoint::Datagram;

/// The largest payload a simulated UE takes.
pub(crate) const HOLD: usize = 48;
/// The EESE's address.
pub(crate) const EESE: u16 = 1;
/// Datagrams the network keeps in flight; past it the oldest is lost.
const IN_FLIGHT: usize = 128;
/// Genuine datagrams the adversary remembers for replay.
const HISTORY: usize = 256;
/// More datagrams than this from one endpoint at one instant is a runaway
/// (its payloads wait one at a time; the EESE queues at most 16 per UE).
const RUNAWAY: usize = 64;

/// A datagram on the wire.
#[derive(Clone, Debug)]
pub(crate) struct Packet {
    pub src: u16,
    pub dst: u16,
    pub bytes: Vec<u8>,
}

/// A disk: the last snapshot written and acknowledged, and one whose write
/// is still under way on a slow disk.
#[derive(Default)]
pub(crate) struct Disk {
    pub durable: Option<Vec<u8>>,
    pub pending: Option<(Vec<u8>, Persist)>,
    pub slow: bool,
    /// At the EESE: hellos taken since the session's last snapshot was
    /// polled, and those the snapshot being written covers, while nothing
    /// has gone out since. A crash forgets these: the EESE may take them
    /// again, as nothing they caused went out.
    pub hellos: Vec<Vec<u8>>,
    pub hellos_writing: Vec<Vec<u8>>,
}

impl Disk {
    /// What a restore reads: the newer snapshot if its write may have
    /// completed (`newer`), else the durable one. The write in flight ends
    /// either way.
    pub(crate) fn crash(&mut self, newer: bool) -> Option<Vec<u8>> {
        if let Some((bytes, _)) = self.pending.take()
            && newer
        {
            self.durable = Some(bytes);
        }
        self.durable.clone()
    }
}

pub(crate) struct UeSlot {
    pub id: UeId,
    pub addr: u16,
    pub epoch: u32,
    pub ue: Ue<HOLD>,
    pub disk: Disk,
    pub next_payload: u32,
    /// Datagrams the EESE sent this UE (what is genuine to it).
    pub genuine: HashSet<Vec<u8>>,
}

/// RANDs as the schedule says: fresh, from the EMKS, or broken (repeating).
pub(crate) struct SimRand {
    pub mode: Rc<Cell<RandMode>>,
    pub rng: Rng,
}

impl RandSource for SimRand {
    fn rand(&mut self) -> Option<Rand> {
        match self.mode.get() {
            RandMode::Fresh => {
                let mut r = [0u8; 16];
                self.rng.fill(&mut r);
                Some(Rand(r))
            }
            RandMode::Emks => None,
            RandMode::Repeat => Some(Rand([0x42; 16])),
        }
    }
}

/// What one run counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Steps run (schedule and liveness phase).
    pub steps: u64,
    /// Crashes of either side.
    pub crashes: u64,
    /// Payloads delivered.
    pub delivered: u64,
}

pub(crate) struct World {
    pub ue_cfg: UeConfig,
    pub eese_cfg: EeseConfig,
    pub seed: u64,
    pub rng: Rng,
    pub now: Instant,
    pub ues: Vec<UeSlot>,
    pub eese: EeseTable<UeId, u16, SimRand>,
    pub eese_disks: BTreeMap<UeId, Disk>,
    pub eese_slow: bool,
    pub rand_mode: Rc<Cell<RandMode>>,
    /// Datagrams any UE sent (what is genuine to the EESE).
    pub from_ues: HashSet<Vec<u8>>,
    pub net: Vec<Packet>,
    pub history: Vec<Packet>,
    pub oracle: Oracle,
    pub counts: Counts,
    pub next_addr: u16,
    /// Sessions waiting for a RAND from the EMKS.
    pub rand_wanted: BTreeSet<UeId>,
    /// (UE, payload, time) of every application send, for the liveness check.
    pub sends: Vec<(u8, Vec<u8>, Instant)>,
    /// Octets the EESE, and each UE, put on the wire.
    pub eese_octets: u64,
    pub eese_octets_to: HashMap<u16, u64>,
    pub ue_octets: Vec<u64>,
    /// Print every step and datagram on stderr (`CIOT_E2E_SIM_TRACE=1`).
    pub trace: bool,
    buf: Vec<u8>,
}

/// The root of UE `ue` in root epoch `epoch` of run `seed`.
pub(crate) fn root(seed: u64, ue: u8, epoch: u32) -> RootKey {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&seed.to_be_bytes());
    b[8] = ue;
    b[9..13].copy_from_slice(&epoch.to_be_bytes());
    b[13] = 0xe2;
    RootKey::new(RootKind::IntKey, RootBytes::from_bytes(b))
}

impl World {
    pub(crate) fn new(
        seed: u64,
        n_ues: u8,
        ue_cfg: UeConfig,
        eese_cfg: EeseConfig,
        rand: RandMode,
    ) -> Self {
        let mut rng = Rng::new(seed);
        let rand_mode = Rc::new(Cell::new(rand));
        let eese = EeseTable::new(
            eese_cfg,
            SimRand {
                mode: rand_mode.clone(),
                rng: rng.fork(),
            },
        );
        let mut w = World {
            ue_cfg,
            eese_cfg,
            seed,
            now: Instant(1_000),
            ues: Vec::new(),
            eese,
            eese_disks: BTreeMap::new(),
            eese_slow: false,
            rand_mode,
            from_ues: HashSet::new(),
            net: Vec::new(),
            history: Vec::new(),
            oracle: Oracle::default(),
            counts: Counts::default(),
            next_addr: 100,
            rand_wanted: BTreeSet::new(),
            sends: Vec::new(),
            eese_octets: 0,
            eese_octets_to: HashMap::new(),
            ue_octets: vec![0; usize::from(n_ues.max(1))],
            trace: std::env::var_os("CIOT_E2E_SIM_TRACE").is_some(),
            buf: vec![0u8; 2048],
            rng,
        };
        for i in 0..n_ues.max(1) {
            let id = UeId::new(format!("ue-{i}").as_bytes()).expect("a short identifier");
            let seed = w.rng.next_u64();
            let addr = w.fresh_addr();
            w.ues.push(UeSlot {
                id,
                addr,
                epoch: 0,
                ue: Ue::new(ue_cfg, root(w.seed, i, 0), id, seed),
                disk: Disk::default(),
                next_payload: 0,
                genuine: HashSet::new(),
            });
        }
        w.drain_all();
        w
    }

    pub(crate) fn fresh_addr(&mut self) -> u16 {
        self.next_addr += 1;
        self.next_addr
    }

    pub(crate) fn ue_index(&self, ue: u8) -> usize {
        usize::from(ue) % self.ues.len()
    }

    pub(crate) fn index_of(&self, id: &UeId) -> Option<usize> {
        self.ues.iter().position(|u| u.id == *id)
    }

    /// Runs one step, then lets every endpoint say what it has to say.
    pub(crate) fn step(&mut self, a: Action) {
        self.counts.steps += 1;
        if self.trace {
            eprintln!("[{:>9} ms] step {a}", self.now.0);
        }
        match a {
            Action::UeSend { ue } => self.ue_send(self.ue_index(ue)),
            Action::EeseSend { ue } => self.eese_send(self.ue_index(ue)),
            Action::Deliver { pick } => {
                if !self.net.is_empty() {
                    let p = self.net.remove(usize::from(pick) % self.net.len());
                    self.deliver(p);
                }
            }
            Action::DeliverAll => {
                for p in std::mem::take(&mut self.net) {
                    self.deliver(p);
                }
            }
            Action::Drop { pick } => {
                if !self.net.is_empty() {
                    self.net.remove(usize::from(pick) % self.net.len());
                }
            }
            Action::Duplicate { pick } => {
                if !self.net.is_empty() {
                    let p = self.net[usize::from(pick) % self.net.len()].clone();
                    self.deliver(p);
                }
            }
            Action::Reflect { pick } => {
                if !self.net.is_empty() {
                    let p = self.net[usize::from(pick) % self.net.len()].clone();
                    self.deliver(Packet {
                        src: p.dst,
                        dst: p.src,
                        bytes: p.bytes,
                    });
                }
            }
            Action::Replay { pick, spoof } => {
                if !self.history.is_empty() {
                    let mut p = self.history[usize::from(pick) % self.history.len()].clone();
                    if spoof {
                        p.src = 60_000 + pick % 4;
                    }
                    self.deliver(p);
                }
            }
            Action::Forge {
                to_eese,
                ue,
                kind,
                from,
                seed,
            } => self.forge(to_eese, self.ue_index(ue), kind, from, seed),
            Action::Advance { ms } => {
                self.now = self.now.after(Duration::from_millis(u64::from(ms)));
                self.run_timers();
            }
            Action::Late { ms } => {
                self.now = self.now.after(Duration::from_millis(u64::from(ms)));
            }
            Action::CrashUe { ue, newer } => self.crash_ue(self.ue_index(ue), newer),
            Action::CrashEese { newer } => self.crash_eese(newer),
            Action::Disk { eese, ue, slow } => self.disk(eese, self.ue_index(ue), slow),
            Action::ExpireNow { ue } => {
                let id = self.ues[self.ue_index(ue)].id;
                self.eese.expire_now(self.now, &id);
            }
            Action::ExpireAll => {
                self.eese.expire_all(self.now);
            }
            Action::SetTe2e { ue, secs } => {
                let id = self.ues[self.ue_index(ue)].id;
                self.eese
                    .set_te2e(&id, Some(Duration::from_secs(u64::from(secs.max(1)))));
            }
            Action::ReplaceRoot { ue } => {
                let i = self.ue_index(ue);
                let slot = &mut self.ues[i];
                slot.epoch += 1;
                let r = root(self.seed, i as u8, slot.epoch);
                slot.ue.replace_root(self.now, r.clone());
                let id = slot.id;
                self.eese.replace_root(&id, r);
            }
            Action::ProvideRand { ue } => {
                let id = self.ues[self.ue_index(ue)].id;
                self.provide_rand(&id);
            }
            Action::Rebind { ue } => {
                let i = self.ue_index(ue);
                self.ues[i].addr = self.fresh_addr();
            }
        }
        self.drain_all();
        if self.trace {
            eprintln!("      EESE: {}", self.eese_state());
        }
    }

    pub(crate) fn provide_rand(&mut self, id: &UeId) {
        let mut r = [0u8; 16];
        self.rng.fill(&mut r);
        self.eese.provide_rand(self.now, id, Rand(r));
        self.rand_wanted.remove(id);
    }

    pub(crate) fn run_timers(&mut self) {
        let now = self.now;
        self.eese.handle_timeout(now);
        for s in &mut self.ues {
            s.ue.handle_timeout(now);
        }
    }

    pub(crate) fn ue_send(&mut self, i: usize) {
        let slot = &mut self.ues[i];
        let payload = format!("u:{i}:{}", slot.next_payload).into_bytes();
        if slot.ue.send(self.now, &payload).is_ok() {
            slot.next_payload += 1;
            self.oracle.sent(&payload);
            self.sends.push((i as u8, payload, self.now));
        }
    }

    pub(crate) fn eese_send(&mut self, i: usize) {
        let id = self.ues[i].id;
        let n = self.ues[i].next_payload;
        self.ues[i].next_payload += 1;
        let payload = format!("d:{i}:{n}").into_bytes();
        let mut out = std::mem::take(&mut self.buf);
        let r = self.eese.send(self.now, &id, &payload, &mut out);
        match r {
            Ok(SendOutcome::Sent { sealed: s, to }) => {
                self.oracle.sent(&payload);
                self.sends.push((i as u8, payload, self.now));
                let d = out[..s.len].to_vec();
                self.eese_transmitted(
                    i,
                    to,
                    Datagram::Data {
                        ksi: s.ksi,
                        counter: s.counter,
                        seq: s.seq,
                        retransmission: false,
                    },
                    d,
                );
            }
            Ok(SendOutcome::Queued) | Err(ciot_e2e::endpoint::SendError::RandPending) => {
                self.oracle.sent(&payload);
                self.sends.push((i as u8, payload, self.now));
            }
            Err(_) => {}
        }
        self.buf = out;
    }

    /// A datagram the EESE transmitted to UE `i` at `dst`.
    fn eese_transmitted(&mut self, i: usize, dst: u16, what: Datagram, bytes: Vec<u8>) {
        let slot = &self.ues[i];
        // What the session sends now may answer the hellos it took: those
        // are acted on, and no crash may let the EESE take them again.
        if let Some(d) = self.eese_disks.get_mut(&slot.id) {
            d.hellos.clear();
            d.hellos_writing.clear();
        }
        match what {
            Datagram::Trigger { .. } => {
                let r = root(self.seed, i as u8, slot.epoch);
                self.oracle
                    .trigger(i as u8, slot.epoch, &r, self.eese_cfg.profile, &bytes);
            }
            Datagram::Data { .. } => self.oracle.data(i as u8, slot.epoch, &bytes),
            _ => {}
        }
        self.ues[i].genuine.insert(bytes.clone());
        self.eese_octets += bytes.len() as u64;
        *self.eese_octets_to.entry(dst).or_default() += bytes.len() as u64;
        self.send(Packet {
            src: EESE,
            dst,
            bytes,
        });
    }

    pub(crate) fn send(&mut self, p: Packet) {
        if self.trace {
            eprintln!(
                "    {} → {}: {}",
                p.src,
                p.dst,
                crate::describe::datagram(&p.bytes)
            );
        }
        if self.history.len() >= HISTORY {
            self.history.remove(0);
        }
        self.history.push(p.clone());
        if self.net.len() >= IN_FLIGHT {
            self.net.remove(0);
        }
        self.net.push(p);
    }

    /// Every endpoint: persist (to its disk), transmit (to the network),
    /// report; until none has anything more to say.
    pub(crate) fn drain_all(&mut self) {
        for _ in 0..16 {
            if !self.oracle.violations.is_empty() {
                return;
            }
            let mut progress = false;
            for i in 0..self.ues.len() {
                progress |= self.drain_ue(i);
            }
            progress |= self.drain_eese();
            if !progress {
                return;
            }
        }
    }

    fn drain_ue(&mut self, i: usize) -> bool {
        let mut progress = false;
        let mut snap = [0u8; UE_SNAPSHOT_LEN];
        let now = self.now;
        let slot = &mut self.ues[i];
        if slot.disk.pending.is_none()
            && let Some(p) = slot.ue.poll_persist(&mut snap)
        {
            progress = true;
            let bytes = snap[..p.len()].to_vec();
            if slot.disk.slow {
                slot.disk.pending = Some((bytes, p));
            } else {
                slot.disk.durable = Some(bytes);
                let _ = slot.ue.persisted(p);
            }
        }
        let mut out = std::mem::take(&mut self.buf);
        let mut n = 0;
        while let Ok(Some(t)) = self.ues[i].ue.poll_transmit(now, &mut out) {
            progress = true;
            let bytes = out[..t.len].to_vec();
            self.ue_transmitted(i, t, bytes);
            n += 1;
            if n > RUNAWAY {
                self.oracle.fail(
                    "I3",
                    format!("UE {i} sent more than {RUNAWAY} datagrams at one instant"),
                );
                break;
            }
        }
        self.buf = out;
        while self.ues[i].ue.poll_event().is_some() {
            progress = true;
        }
        progress
    }

    fn ue_transmitted(&mut self, i: usize, t: Transmit, bytes: Vec<u8>) {
        let slot = &self.ues[i];
        if let Datagram::Data { .. } = t.what {
            self.oracle.data(i as u8, slot.epoch, &bytes);
        }
        self.from_ues.insert(bytes.clone());
        self.ue_octets[i] += bytes.len() as u64;
        let src = slot.addr;
        self.send(Packet {
            src,
            dst: EESE,
            bytes,
        });
    }

    fn drain_eese(&mut self) -> bool {
        let mut progress = false;
        let mut snap = [0u8; EESE_SNAPSHOT_LEN];
        while let Some((id, p)) = self.eese.poll_persist(&mut snap) {
            progress = true;
            let bytes = snap[..p.len()].to_vec();
            let disk = self.eese_disks.entry(id).or_default();
            if self.eese_slow {
                disk.pending = Some((bytes, p));
                disk.hellos_writing = std::mem::take(&mut disk.hellos);
            } else {
                disk.hellos.clear();
                disk.durable = Some(bytes);
                let _ = self.eese.persisted(&id, p);
            }
        }
        let mut out = std::mem::take(&mut self.buf);
        let mut n = 0;
        while let Some((id, to, t)) = self.eese.poll_transmit(self.now, &mut out) {
            progress = true;
            if let Some(i) = self.index_of(&id) {
                let bytes = out[..t.len].to_vec();
                self.eese_transmitted(i, to, t.what, bytes);
            }
            n += 1;
            if n > RUNAWAY * self.ues.len() {
                self.oracle.fail(
                    "I3",
                    format!("the EESE sent more than {RUNAWAY} datagrams per UE at one instant"),
                );
                break;
            }
        }
        self.buf = out;
        // An event may mean new work (a keyset a queued payload started
        // wants its snapshot): drain until a pass polls nothing at all.
        while let Some((id, ev)) = self.eese.poll_event() {
            progress = true;
            if ev == Event::RandNeeded {
                self.rand_wanted.insert(id);
            }
        }
        progress
    }

    /// Same KSI and counter on both sides: same keys.
    pub(crate) fn check_keys(&mut self) {
        for i in 0..self.ues.len() {
            let u = &self.ues[i];
            let (Some(a), Some(b)) = (
                u.ue.status(),
                self.eese.status(self.now, &u.id).and_then(|s| s.keyset),
            ) else {
                continue;
            };
            if (a.ksi, a.counter) == (b.ksi, b.counter)
                && u.ue.current_keys().map(|k| k.1) != self.eese.current_keys(&u.id).map(|k| k.1)
            {
                self.oracle.fail(
                    "keys",
                    format!(
                        "UE {i}: KSI {} counter {}: UE and EESE hold different keys",
                        a.ksi, a.counter
                    ),
                );
            }
        }
    }
}
