//! The simulated world: one EESE table, several UEs, the network between
//! them, their disks, an adversary and a clock, all in one thread and all
//! following from one seed.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

use ciot_e2e::endpoint::{
    EESE_SNAPSHOT_LEN, EeseConfig, EeseTable, Event, Instant, Persist, RandSource, SendOutcome,
    Transmit, Ue, UeConfig, UeId,
};
use ciot_e2e::kdf::{Rand, RootBytes, RootKey, RootKind, UeNonce};

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

/// The EESE's disk for one session: the last snapshot written and
/// acknowledged, one whose write is still under way on a slow disk, and
/// every snapshot acknowledged before (what a backup or a rolled-back
/// storage could bring back).
#[derive(Default)]
pub(crate) struct Disk {
    pub durable: Option<Vec<u8>>,
    pub pending: Option<(Vec<u8>, Persist)>,
    pub history: Vec<Vec<u8>>,
}

impl Disk {
    /// What a restore reads: the newer snapshot if its write may have
    /// completed (`newer`), else the durable one; with `back` above 0, the
    /// snapshot that many writes before that (the disk then holds it as its
    /// last). The write in flight ends either way.
    pub(crate) fn crash(&mut self, newer: bool, back: usize) -> Option<Vec<u8>> {
        if let Some((bytes, _)) = self.pending.take()
            && newer
        {
            self.acknowledge(bytes);
        }
        if back > 0 && !self.history.is_empty() {
            let keep = self.history.len().saturating_sub(back).max(1);
            self.history.truncate(keep);
            self.durable = self.history.last().cloned();
        }
        self.durable.clone()
    }

    /// A write completed.
    pub(crate) fn acknowledge(&mut self, bytes: Vec<u8>) {
        self.history.push(bytes.clone());
        self.durable = Some(bytes);
    }
}

/// A UE (or a copy of one) in the world.
pub(crate) struct UeSlot {
    /// Which UE it is (a copy has the index of the UE it copies).
    pub index: usize,
    pub id: UeId,
    pub addr: u16,
    pub epoch: u32,
    pub ue: Ue<HOLD>,
    pub next_payload: u32,
    /// Datagrams the EESE sent this UE (what is genuine to it).
    pub genuine: HashSet<Vec<u8>>,
    /// Octets it put on the wire.
    pub octets: u64,
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
    /// Restores from storage other than the newest (a UE's older copy or a
    /// clone, the EESE's earlier snapshot).
    pub rollbacks: u64,
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
    /// Copies of UEs (cloned device images), until the liveness phase.
    pub clones: Vec<UeSlot>,
    /// Datagrams the adversary holds back.
    pub held: Vec<Packet>,
    /// Every UE start so far (for fresh nonces).
    pub starts: u64,
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
    /// Octets the EESE put on the wire, in all and to each address.
    pub eese_octets: u64,
    pub eese_octets_to: HashMap<u16, u64>,
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
            clones: Vec::new(),
            held: Vec::new(),
            starts: 0,
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
            trace: std::env::var_os("CIOT_E2E_SIM_TRACE").is_some(),
            buf: vec![0u8; 2048],
            rng,
        };
        for i in 0..n_ues.max(1) {
            let id = UeId::new(format!("ue-{i}").as_bytes()).expect("a short identifier");
            let addr = w.fresh_addr();
            let nonce = w.fresh_nonce(usize::from(i));
            w.ues.push(UeSlot {
                index: usize::from(i),
                id,
                addr,
                epoch: 0,
                ue: Ue::new(ue_cfg, root(w.seed, i, 0), id, nonce),
                next_payload: 0,
                genuine: HashSet::new(),
                octets: 0,
            });
        }
        w.drain_all();
        w
    }

    pub(crate) fn fresh_addr(&mut self) -> u16 {
        self.next_addr += 1;
        self.next_addr
    }

    /// A nonce for a new start of UE `i`, drawn from the world's generator
    /// (a device's random source), and told to the oracle.
    pub(crate) fn fresh_nonce(&mut self, i: usize) -> UeNonce {
        self.starts += 1;
        let mut n = [0u8; 16];
        self.rng.fill(&mut n);
        let nonce = UeNonce::from_bytes(n);
        self.oracle.ue_started(i as u8, nonce);
        nonce
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
            Action::UeSend { ue } => {
                let j = usize::from(ue) % (self.ues.len() + self.clones.len());
                self.ue_send(j);
            }
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
            Action::CrashUe { ue, old } => self.crash_ue(self.ue_index(ue), old),
            Action::CrashEese { newer, back } => self.crash_eese(newer, usize::from(back)),
            Action::Disk { eese, slow, .. } => {
                if eese {
                    self.disk(slow);
                }
            }
            Action::CloneUe { ue } => self.clone_ue(self.ue_index(ue)),
            Action::Hold { ty } => {
                let (held, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.net)
                    .into_iter()
                    .partition(|p| p.bytes.get(1) == Some(&ty));
                self.held.extend(held);
                self.net = kept;
            }
            Action::Release => {
                let held = std::mem::take(&mut self.held);
                self.net.extend(held);
            }
            Action::DropType { ty } => self.net.retain(|p| p.bytes.get(1) != Some(&ty)),
            Action::Relay { pick } => {
                if !self.net.is_empty() {
                    let mut p = self.net.remove(usize::from(pick) % self.net.len());
                    p.src = 61_000 + pick % 4;
                    self.deliver(p);
                }
            }
            Action::Evict { ue } => {
                let id = self.ues[self.ue_index(ue)].id;
                self.eese.remove(&id);
            }
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
                let epoch = slot.epoch;
                let r = root(self.seed, i as u8, epoch);
                slot.ue.replace_root(self.now, r.clone());
                let id = slot.id;
                // A new AKA run reaches the copies too (same SIM, same keys).
                for c in self.clones.iter_mut().filter(|c| c.index == i) {
                    c.epoch = epoch;
                    c.ue.replace_root(self.now, r.clone());
                }
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
        for s in self.ues.iter_mut().chain(self.clones.iter_mut()) {
            s.ue.handle_timeout(now);
        }
    }

    /// The UE (or copy) at position `j` sends a payload.
    pub(crate) fn ue_send(&mut self, j: usize) {
        let now = self.now;
        let copy = j >= self.ues.len();
        let slot = self.slot(j);
        let i = slot.index;
        let payload = if copy {
            format!("u:{i}:c{j}.{}", slot.next_payload).into_bytes()
        } else {
            format!("u:{i}:{}", slot.next_payload).into_bytes()
        };
        if slot.ue.send(now, &payload).is_ok() {
            slot.next_payload += 1;
            self.oracle.sent(&payload);
            if !copy {
                self.sends.push((i as u8, payload, now));
            }
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
        let epoch = self.ues[i].epoch;
        match what {
            Datagram::Trigger { .. } => {
                let r = root(self.seed, i as u8, epoch);
                self.oracle
                    .trigger(i as u8, epoch, &r, self.eese_cfg.profile, &bytes);
            }
            Datagram::Data { .. } => self.oracle.data(i as u8, epoch, &bytes),
            _ => {}
        }
        let id = self.ues[i].id;
        for s in self.ues.iter_mut().chain(self.clones.iter_mut()) {
            if s.index == i {
                s.genuine.insert(bytes.clone());
            }
        }
        self.eese_octets += bytes.len() as u64;
        *self.eese_octets_to.entry(dst).or_default() += bytes.len() as u64;
        if self.eese.peer(&id) != Some(&dst) {
            // Sent to an address the UE has not proven: within what it sent.
            self.oracle.unproven_answer(dst, bytes.len());
        }
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
    ///
    /// The simulator polls the endpoints itself rather than through
    /// `ciot_e2e::driver` on purpose: a slow disk leaves a snapshot written
    /// but not yet acknowledged across steps (the driver acknowledges each
    /// write when it returns), a runaway is reported as a violation after
    /// [`RUNAWAY`] datagrams instead of looping (the driver drains until
    /// nothing is left), and the UEs' and the EESE's passes interleave at one
    /// instant.
    pub(crate) fn drain_all(&mut self) {
        for _ in 0..16 {
            if !self.oracle.violations.is_empty() {
                return;
            }
            let mut progress = false;
            for j in 0..self.ues.len() + self.clones.len() {
                progress |= self.drain_ue(j);
            }
            progress |= self.drain_eese();
            if !progress {
                return;
            }
        }
    }

    /// The UE (`j` below the number of UEs) or copy at position `j`.
    pub(crate) fn slot(&mut self, j: usize) -> &mut UeSlot {
        let n = self.ues.len();
        if j < n {
            &mut self.ues[j]
        } else {
            &mut self.clones[j - n]
        }
    }

    fn drain_ue(&mut self, j: usize) -> bool {
        let mut progress = false;
        let now = self.now;
        let mut out = std::mem::take(&mut self.buf);
        let mut n = 0;
        while let Ok(Some(t)) = self.slot(j).ue.poll_transmit(now, &mut out) {
            progress = true;
            let bytes = out[..t.len].to_vec();
            self.ue_transmitted(j, t, bytes);
            n += 1;
            if n > RUNAWAY {
                let i = self.slot(j).index;
                self.oracle.fail(
                    "I3",
                    format!("UE {i} sent more than {RUNAWAY} datagrams at one instant"),
                );
                break;
            }
        }
        self.buf = out;
        while self.slot(j).ue.poll_event().is_some() {
            progress = true;
        }
        progress
    }

    fn ue_transmitted(&mut self, j: usize, t: Transmit, bytes: Vec<u8>) {
        let slot = self.slot(j);
        let (i, epoch, src) = (slot.index, slot.epoch, slot.addr);
        slot.octets += bytes.len() as u64;
        if let Datagram::Data { .. } = t.what {
            self.oracle.data(i as u8, epoch, &bytes);
        }
        self.from_ues.insert(bytes.clone());
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
            } else {
                disk.acknowledge(bytes);
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

    /// Same KSI and counter on both sides: same keys (for every UE and
    /// copy).
    pub(crate) fn check_keys(&mut self) {
        for j in 0..self.ues.len() + self.clones.len() {
            let i = self.slot(j).index;
            let u = if j < self.ues.len() {
                &self.ues[j]
            } else {
                &self.clones[j - self.ues.len()]
            };
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
