//! The steps of a simulated schedule: what the applications, the network,
//! the adversary, the disks and the clock do. A schedule is a list of these;
//! it is generated from a seed, decoded from fuzzer octets, and shrunk by
//! removing steps (every index is taken modulo what exists, so a shorter
//! schedule still means something).

use std::fmt;

use crate::fuzzing::reader::Reader;
use crate::rng::Rng;

/// Where a forged datagram claims to come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// An attacker's own address (number `n`).
    Attacker(u8),
    /// A UE's address (spoofed).
    Ue(u8),
}

/// What kind of forgery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forgery {
    /// Random octets of random length (up to 120).
    Garbage,
    /// A well-formed hello naming a real UE, with a made-up tag.
    Hello,
    /// A data message under a real KSI with a made-up tag.
    Data,
    /// A well-formed trigger or key-expired error with a made-up tag (to a UE).
    Control,
    /// A message of the peer's, changed: one bit flipped, cut short or
    /// lengthened.
    Mutation,
    /// An empty datagram.
    Empty,
}

/// Where an EESE's RANDs come from for a whole run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RandMode {
    /// A fresh RAND each time.
    Fresh,
    /// None locally: the EESE asks the EMKS ([`Action::ProvideRand`]).
    Emks,
    /// The same RAND every time (a broken source).
    Repeat,
}

/// One step of a schedule. (Each variant's doc says what its fields mean.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Action {
    /// UE `ue`'s application sends a payload.
    UeSend { ue: u8 },
    /// The EESE's application sends a payload to UE `ue`.
    EeseSend { ue: u8 },
    /// The network delivers datagram `pick` in flight (any order).
    Deliver { pick: u16 },
    /// The network delivers everything in flight, in order.
    DeliverAll,
    /// The network loses datagram `pick`.
    Drop { pick: u16 },
    /// The network delivers a copy of datagram `pick` and keeps it.
    Duplicate { pick: u16 },
    /// The adversary sends datagram `pick` back to its sender.
    Reflect { pick: u16 },
    /// The adversary replays genuine datagram `pick` of the history to where
    /// it went, from its source or from an attacker's address.
    Replay { pick: u16, spoof: bool },
    /// The adversary forges a datagram to the EESE (`to_eese`) or to UE `ue`.
    Forge {
        to_eese: bool,
        ue: u8,
        kind: Forgery,
        from: Source,
        seed: u16,
    },
    /// Time passes by `ms` and every timer due runs.
    Advance { ms: u32 },
    /// Time passes by `ms` and no timer runs (they run late).
    Late { ms: u32 },
    /// UE `ue` restarts: power lost, storage lost, or (`old`) its storage
    /// put back to an older copy. A UE reads nothing back: every start is a
    /// new one (counted as a rollback when `old`).
    CrashUe { ue: u8, old: bool },
    /// The EESE crashes and restores every session from its disk: the newer
    /// snapshot when a write was in flight and `newer`; with `back` above 0,
    /// from the snapshot that many writes before the last (a backup, a
    /// storage rollback; counted as a rollback).
    CrashEese { newer: bool, back: u8 },
    /// The EESE's disk becomes slow (writes wait to be acknowledged) or fast
    /// again (the waiting write completes). (`eese` and `ue` are kept for
    /// the schedule's format: a UE has no disk.)
    Disk { eese: bool, ue: u8, slow: bool },
    /// A copy of UE `ue` (same identifier, same root: a cloned device image)
    /// starts at an address of its own, and runs until the liveness phase.
    CloneUe { ue: u8 },
    /// The adversary holds back every datagram of message type `ty` in
    /// flight (1 trigger, 2 key-expired, 3 data, 4 hello).
    Hold { ty: u8 },
    /// The adversary lets everything it held back go on.
    Release,
    /// The adversary drops every datagram of message type `ty` in flight.
    DropType { ty: u8 },
    /// The adversary takes datagram `pick` in flight off the network and
    /// relays it from an address of its own.
    Relay { pick: u16 },
    /// The EESE evicts UE `ue`'s session (a full table, an idle sweep).
    Evict { ue: u8 },
    /// The enterprise expires UE `ue`'s keys now.
    ExpireNow { ue: u8 },
    /// The enterprise expires every UE's keys now.
    ExpireAll,
    /// The enterprise sets UE `ue`'s te2e.
    SetTe2e { ue: u8, secs: u16 },
    /// A new AKA run gives UE `ue` and the EESE a new root.
    ReplaceRoot { ue: u8 },
    /// The EMKS hands the EESE a RAND for UE `ue`.
    ProvideRand { ue: u8 },
    /// UE `ue` shows up from a new address (NAT rebinding).
    Rebind { ue: u8 },
}

impl Action {
    /// Whether the step is the adversary's or a fault (crash, slow disk):
    /// what the liveness phase leaves out.
    #[must_use]
    pub const fn is_crash(&self) -> bool {
        matches!(self, Action::CrashUe { .. } | Action::CrashEese { .. })
    }

    /// A step drawn with the weights a hostile day has: mostly traffic and
    /// time, often loss and reordering, sometimes forgery, replay, crashes.
    /// With `storage_faults`, storage is not what the endpoints last wrote
    /// either: UEs restart from older copies or are cloned, and the EESE
    /// restores from any earlier snapshot.
    pub fn generate(rng: &mut Rng, storage_faults: bool) -> Self {
        let ue = rng.below(8) as u8;
        let pick = rng.below(1 << 16) as u16;
        if rng.chance(0.06) {
            // The adversary that works on one kind of message, relays, and
            // evictions.
            return match rng.below(10) {
                0..3 => Action::Hold {
                    ty: rng.range(1, 4) as u8,
                },
                3..5 => Action::Release,
                5..7 => Action::DropType {
                    ty: rng.range(1, 4) as u8,
                },
                7..9 => Action::Relay { pick },
                _ => Action::Evict { ue },
            };
        }
        if storage_faults && rng.chance(0.02) {
            return if rng.chance(0.3) {
                Action::CloneUe { ue }
            } else if rng.chance(0.5) {
                Action::CrashUe { ue, old: true }
            } else {
                Action::CrashEese {
                    newer: rng.chance(0.5),
                    back: rng.range(1, 6) as u8,
                }
            };
        }
        match rng.below(1000) {
            0..150 => Action::UeSend { ue },
            150..260 => Action::EeseSend { ue },
            260..460 => Action::Deliver { pick },
            460..560 => Action::DeliverAll,
            560..620 => Action::Drop { pick },
            620..650 => Action::Duplicate { pick },
            650..665 => Action::Reflect { pick },
            665..700 => Action::Replay {
                pick,
                spoof: rng.chance(0.3),
            },
            700..760 => Action::Forge {
                to_eese: rng.chance(0.6),
                ue,
                kind: match rng.below(6) {
                    0 => Forgery::Garbage,
                    1 => Forgery::Hello,
                    2 => Forgery::Data,
                    3 => Forgery::Control,
                    4 => Forgery::Mutation,
                    _ => Forgery::Empty,
                },
                from: if rng.chance(0.5) {
                    Source::Attacker(rng.below(4) as u8)
                } else {
                    Source::Ue(ue)
                },
                seed: rng.below(1 << 16) as u16,
            },
            760..880 => Action::Advance {
                ms: match rng.below(10) {
                    0..6 => rng.range(10, 900) as u32,
                    6..9 => rng.range(1_000, 20_000) as u32,
                    _ => rng.range(30_000, 400_000) as u32,
                },
            },
            880..900 => Action::Late {
                ms: rng.range(100, 60_000) as u32,
            },
            900..915 => Action::CrashUe { ue, old: false },
            915..925 => Action::CrashEese {
                newer: rng.chance(0.5),
                back: 0,
            },
            925..945 => Action::Disk {
                eese: rng.chance(0.4),
                ue,
                slow: rng.chance(0.5),
            },
            945..955 => Action::ExpireNow { ue },
            955..958 => Action::ExpireAll,
            958..965 => Action::SetTe2e {
                ue,
                secs: rng.range(5, 600) as u16,
            },
            965..970 => Action::ReplaceRoot { ue },
            970..990 => Action::ProvideRand { ue },
            _ => Action::Rebind { ue },
        }
    }

    /// A step decoded from fuzzer octets (total: every input is a schedule).
    pub(crate) fn decode(r: &mut Reader<'_>) -> Self {
        let ue = r.u8();
        match r.u8() % 29 {
            0 => Action::UeSend { ue },
            1 => Action::EeseSend { ue },
            2 => Action::Deliver { pick: r.u16() },
            3 => Action::DeliverAll,
            4 => Action::Drop { pick: r.u16() },
            5 => Action::Duplicate { pick: r.u16() },
            6 => Action::Reflect { pick: r.u16() },
            7 => Action::Replay {
                pick: r.u16(),
                spoof: r.u8() & 1 == 1,
            },
            8 => {
                let b = r.u8();
                let attacker = r.u8() & 3;
                Action::Forge {
                    to_eese: b & 1 == 1,
                    ue,
                    kind: match ((b >> 1) & 0x07) % 6 {
                        0 => Forgery::Garbage,
                        1 => Forgery::Hello,
                        2 => Forgery::Data,
                        3 => Forgery::Control,
                        4 => Forgery::Mutation,
                        _ => Forgery::Empty,
                    },
                    from: if b & 0x80 == 0 {
                        Source::Attacker(attacker)
                    } else {
                        Source::Ue(ue)
                    },
                    seed: r.u16(),
                }
            }
            9 => Action::Advance {
                ms: u32::from(r.u16()) * 10,
            },
            10 => Action::Late {
                ms: u32::from(r.u16()) * 10,
            },
            11 => Action::CrashUe {
                ue,
                old: r.u8() & 1 == 1,
            },
            12 => {
                let b = r.u8();
                Action::CrashEese {
                    newer: b & 1 == 1,
                    back: (b >> 1) % 8,
                }
            }
            13 => {
                let b = r.u8();
                Action::Disk {
                    eese: b & 1 == 1,
                    ue,
                    slow: b & 2 == 2,
                }
            }
            14 => Action::ExpireNow { ue },
            15 => Action::ExpireAll,
            16 => Action::SetTe2e {
                ue,
                secs: r.u16().max(1),
            },
            17 => Action::ReplaceRoot { ue },
            18 | 19 => Action::ProvideRand { ue },
            20 => Action::Rebind { ue },
            21 => Action::CloneUe { ue },
            22 => Action::Hold { ty: r.u8() % 4 + 1 },
            23 => Action::Release,
            24 => Action::DropType { ty: r.u8() % 4 + 1 },
            25 => Action::Relay { pick: r.u16() },
            26 => Action::Evict { ue },
            _ => Action::Advance {
                ms: u32::from(r.u8()) * 1000,
            },
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
