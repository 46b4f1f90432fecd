//! Endpoint target: the fuzzer's octets are a simulator schedule (one EESE
//! table, several UEs, an adversarial network, crashes and restores from any
//! snapshot the persistence contract allows); every invariant of
//! [`crate::sim`] is checked after every step.

use std::string::String;

use super::reader::{Reader, Writer};
use crate::sim::{Action, Forgery, Source};

/// Runs the schedule the octets encode; panics on a broken invariant.
pub fn endpoint(bytes: &[u8]) {
    crate::sim::fuzz(bytes);
}

/// The schedule, one step a line.
pub(crate) fn describe(bytes: &[u8]) -> String {
    let mut r = Reader::new(bytes);
    let mut out = format!("settings of seed {}\n", r.u16());
    let mut n = 0;
    while !r.is_empty() && n < 256 {
        n += 1;
        out.push_str(&format!("{}\n", Action::decode(&mut r)));
    }
    out
}

/// The octets [`endpoint`] reads as `seed` and `actions` (for seeds).
pub(crate) fn encode(seed: u16, actions: &[Action]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u16(seed);
    for a in actions {
        encode_action(a, &mut w);
    }
    w.0
}

fn forgery_code(k: Forgery) -> u8 {
    match k {
        Forgery::Garbage => 0,
        Forgery::Hello => 1,
        Forgery::Data => 2,
        Forgery::Control => 3,
        Forgery::Mutation => 4,
        Forgery::Empty => 5,
    }
}

/// Mirrors [`Action::decode`].
fn encode_action(a: &Action, w: &mut Writer) {
    match *a {
        Action::UeSend { ue } => {
            w.u8(ue).u8(0);
        }
        Action::EeseSend { ue } => {
            w.u8(ue).u8(1);
        }
        Action::Deliver { pick } => {
            w.u8(0).u8(2).u16(pick);
        }
        Action::DeliverAll => {
            w.u8(0).u8(3);
        }
        Action::Drop { pick } => {
            w.u8(0).u8(4).u16(pick);
        }
        Action::Duplicate { pick } => {
            w.u8(0).u8(5).u16(pick);
        }
        Action::Reflect { pick } => {
            w.u8(0).u8(6).u16(pick);
        }
        Action::Replay { pick, spoof } => {
            w.u8(0).u8(7).u16(pick).u8(u8::from(spoof));
        }
        Action::Forge {
            to_eese,
            ue,
            kind,
            from,
            seed,
        } => {
            let (src, attacker) = match from {
                Source::Attacker(n) => (0, n & 3),
                Source::Ue(_) => (0x80, 0),
            };
            w.u8(ue)
                .u8(8)
                .u8(u8::from(to_eese) | (forgery_code(kind) << 1) | src)
                .u8(attacker)
                .u16(seed);
        }
        Action::Advance { ms } => {
            w.u8(0)
                .u8(9)
                .u16(u16::try_from(ms / 10).unwrap_or(u16::MAX));
        }
        Action::Late { ms } => {
            w.u8(0)
                .u8(10)
                .u16(u16::try_from(ms / 10).unwrap_or(u16::MAX));
        }
        Action::CrashUe { ue, old } => {
            w.u8(ue).u8(11).u8(u8::from(old));
        }
        Action::CrashEese { newer, back } => {
            w.u8(0).u8(12).u8(u8::from(newer) | ((back % 8) << 1));
        }
        Action::Disk { eese, ue, slow } => {
            w.u8(ue).u8(13).u8(u8::from(eese) | (u8::from(slow) << 1));
        }
        Action::ExpireNow { ue } => {
            w.u8(ue).u8(14);
        }
        Action::ExpireAll => {
            w.u8(0).u8(15);
        }
        Action::SetTe2e { ue, secs } => {
            w.u8(ue).u8(16).u16(secs);
        }
        Action::ReplaceRoot { ue } => {
            w.u8(ue).u8(17);
        }
        Action::ProvideRand { ue } => {
            w.u8(ue).u8(18);
        }
        Action::Rebind { ue } => {
            w.u8(ue).u8(20);
        }
        Action::CloneUe { ue } => {
            w.u8(ue).u8(21);
        }
        Action::Hold { ty } => {
            w.u8(0).u8(22).u8(ty.wrapping_sub(1) % 4);
        }
        Action::Release => {
            w.u8(0).u8(23);
        }
        Action::DropType { ty } => {
            w.u8(0).u8(24).u8(ty.wrapping_sub(1) % 4);
        }
        Action::Relay { pick } => {
            w.u8(0).u8(25).u16(pick);
        }
        Action::Evict { ue } => {
            w.u8(ue).u8(26);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn encoding_reads_back_as_the_same_schedule() {
        let mut rng = Rng::new(3);
        let actions: Vec<Action> = (0..500).map(|_| Action::generate(&mut rng, true)).collect();
        let bytes = encode(9, &actions);
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u16(), 9);
        for a in &actions {
            let back = Action::decode(&mut r);
            // Times are carried in tens of milliseconds.
            let norm = |a: &Action| match *a {
                Action::Advance { ms } => Action::Advance { ms: ms / 10 * 10 },
                Action::Late { ms } => Action::Late { ms: ms / 10 * 10 },
                Action::Forge {
                    to_eese,
                    ue,
                    kind,
                    from: Source::Attacker(n),
                    seed,
                } => Action::Forge {
                    to_eese,
                    ue,
                    kind,
                    from: Source::Attacker(n & 3),
                    seed,
                },
                other => other,
            };
            assert_eq!(norm(&back), norm(a));
        }
        assert!(r.is_empty());
    }
}
