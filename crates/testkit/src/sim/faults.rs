//! The faults the simulator injects beyond the network's: forged datagrams,
//! crashes with restores from what the disks hold, slow disks.

use std::collections::HashSet;

use ciot_e2e::endpoint::{EeseTable, Ue};
use ciot_e2e::wire::{self, MessageType};

use super::action::{Forgery, Source};
use super::world::{EESE, Packet, SimRand, UeSlot, World, root};
use crate::rng::Rng;

impl World {
    pub(crate) fn forge(
        &mut self,
        to_eese: bool,
        i: usize,
        kind: Forgery,
        from: Source,
        seed: u16,
    ) {
        let mut r = Rng::new(u64::from(seed) ^ self.seed.rotate_left(17));
        let bytes = match kind {
            Forgery::Empty => Vec::new(),
            Forgery::Garbage => {
                let mut b = vec![0u8; r.index(121)];
                r.fill(&mut b);
                if !b.is_empty() && r.chance(0.5) {
                    b[0] = wire::VERSION;
                }
                b
            }
            Forgery::Hello => {
                let id = self.ues[i].id;
                let mut tag = [0u8; 16];
                r.fill(&mut tag);
                let mut nonce = [0u8; 16];
                r.fill(&mut nonce);
                if r.chance(0.5) {
                    // The nonce of the UE's own start: only the tag is made up.
                    nonce = *self.ues[i].ue.nonce().as_bytes();
                }
                let h = wire::HelloRepr {
                    ksi: wire::Ksi(r.below(256) as u8),
                    rekey: r.chance(0.5),
                    counter: r.below(1 << 20),
                    seq: r.below(1 << 20) as u32,
                    nonce: ciot_e2e::kdf::UeNonce::from_bytes(nonce),
                    id: id.as_bytes(),
                    tag,
                };
                let mut b = vec![0u8; h.buffer_len()];
                h.emit(&mut wire::HelloPacket::new_unchecked(&mut b[..]));
                b
            }
            Forgery::Data => {
                let mut b = vec![0u8; 9 + r.index(40) + 16];
                r.fill(&mut b);
                b[..5].copy_from_slice(&[
                    wire::VERSION,
                    MessageType::DATA.0,
                    r.below(4) as u8,
                    u8::from(!to_eese),
                    wire::Suite::AES_128_GCM.0,
                ]);
                b
            }
            Forgery::Control => {
                let mut b = vec![0u8; if r.chance(0.5) { 50 } else { 33 }];
                r.fill(&mut b);
                b[0] = wire::VERSION;
                b[1] = if b.len() == 50 { 0x01 } else { 0x02 };
                b[3] = 0;
                if b.len() == 50 {
                    b[28] = 0x01;
                    b[29] = 0x02;
                } else {
                    b[4] = 0x01;
                    b[13..17].fill(0);
                }
                b
            }
            Forgery::Mutation => {
                let Some(p) = self
                    .history
                    .get(r.index(self.history.len().max(1)))
                    .cloned()
                else {
                    return;
                };
                let mut b = p.bytes;
                match r.below(3) {
                    0 if !b.is_empty() => {
                        let at = r.index(b.len());
                        b[at] ^= 1 << r.below(8);
                    }
                    1 => {
                        let n = r.index(b.len() + 1);
                        b.truncate(n);
                    }
                    _ => b.extend_from_slice(&[0, 1, 2]),
                }
                b
            }
        };
        let src = match from {
            Source::Attacker(n) => 60_000 + u16::from(n),
            Source::Ue(_) => self.ues[i].addr,
        };
        let dst = if to_eese { EESE } else { self.ues[i].addr };
        self.deliver(Packet { src, dst, bytes });
    }

    /// UE `i` restarts: whatever its storage holds (nothing, an older
    /// copy), it is a new start with a new nonce.
    pub(crate) fn crash_ue(&mut self, i: usize, old: bool) {
        self.counts.crashes += 1;
        if old {
            self.counts.rollbacks += 1;
        }
        let nonce = self.fresh_nonce(i);
        let slot = &mut self.ues[i];
        let r = root(self.seed, i as u8, slot.epoch);
        slot.ue = Ue::new(self.ue_cfg, r, slot.id, nonce);
    }

    /// A copy of UE `i` (its image cloned to another device) starts at an
    /// address of its own.
    pub(crate) fn clone_ue(&mut self, i: usize) {
        if self.clones.len() >= 2 {
            return;
        }
        self.counts.rollbacks += 1;
        let nonce = self.fresh_nonce(i);
        let addr = self.fresh_addr();
        let (id, epoch) = (self.ues[i].id, self.ues[i].epoch);
        let r = root(self.seed, i as u8, epoch);
        self.clones.push(UeSlot {
            index: i,
            id,
            addr,
            epoch,
            ue: Ue::new(self.ue_cfg, r, id, nonce),
            next_payload: 0,
            genuine: HashSet::new(),
            octets: 0,
        });
    }

    /// The EESE crashes and restores every session from its disk; with
    /// `back` above 0, from the snapshot that many writes before the last.
    pub(crate) fn crash_eese(&mut self, newer: bool, back: usize) {
        self.counts.crashes += 1;
        // A restart takes time: the clock moves on (no timer runs).
        self.now = self.now.after(std::time::Duration::from_millis(5));
        if back > 0 {
            self.counts.rollbacks += 1;
        }
        let mut table = EeseTable::new(
            self.eese_cfg,
            SimRand {
                mode: self.rand_mode.clone(),
                rng: self.rng.fork(),
            },
        );
        for (i, u) in self.ues.iter().enumerate() {
            if let Some(disk) = self.eese_disks.get_mut(&u.id)
                && let Some(bytes) = disk.crash(newer, back)
            {
                // A snapshot of an older root is refused: that session is
                // gone, and the UE's hello makes a new one.
                let _ = table.restore(u.id, root(self.seed, i as u8, u.epoch), &bytes);
            }
        }
        self.eese = table;
        self.rand_wanted.clear();
    }

    /// The EESE's disk becomes slow, or fast again (the waiting writes
    /// complete).
    pub(crate) fn disk(&mut self, slow: bool) {
        self.eese_slow = slow;
        if !slow {
            for (id, d) in &mut self.eese_disks {
                if let Some((bytes, p)) = d.pending.take() {
                    d.acknowledge(bytes);
                    let _ = self.eese.persisted(id, p);
                }
            }
        }
    }
}
