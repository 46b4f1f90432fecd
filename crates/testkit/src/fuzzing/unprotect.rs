//! Data protection target: opening arbitrary octets against fixed keysets.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;
use std::vec::Vec;

use ciot_e2e::kdf::{KdfProfile, KeySet, UeNonce};
use ciot_e2e::protect::Error;
use ciot_e2e::protect::replay::{ReplayWindow, WINDOW};
use ciot_e2e::protect::suite::{SuiteCipher, SuiteKeys};
use ciot_e2e::wire::{DataPacket, Direction, Ksi, Suite};

use super::reader::{Reader, Writer};

/// How many fixed ciphers a script chooses from.
const CIPHERS: usize = 6;

/// The fixed ciphers: every suite under two keysets, the first keyset again
/// as trigger counter 2 would install it (a RAND source that repeats a RAND
/// gives the same e2eKEYSET), and again for another start of the UE (its
/// nonce). A message sealed under one must not open under any other.
fn ciphers() -> &'static [SuiteCipher; CIPHERS] {
    static TABLE: OnceLock<[SuiteCipher; CIPHERS]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let c = |suite, fill, profile, counter, nonce: u8| {
            SuiteKeys::derive(
                profile,
                &KeySet::from_bytes([fill; 32]),
                suite,
                counter,
                &UeNonce([nonce; 16]),
            )
            .expect("known suite")
            .cipher()
        };
        [
            c(Suite::NEA2_NIA2, 0x01, KdfProfile::Ts33220, 1, 1),
            c(Suite::AES_128_GCM, 0x01, KdfProfile::Ts33220, 1, 1),
            c(Suite::NEA2_NIA2, 0x02, KdfProfile::HkdfSha256, 1, 1),
            c(Suite::AES_128_GCM, 0x02, KdfProfile::HkdfSha256, 1, 1),
            c(Suite::NEA2_NIA2, 0x01, KdfProfile::Ts33220, 2, 1),
            c(Suite::AES_128_GCM, 0x01, KdfProfile::Ts33220, 1, 2),
        ]
    })
}

/// One step of an `unprotect` script.
#[derive(Clone, Debug)]
pub(crate) enum Op<'a> {
    /// Seal `payload` under cipher `c`; the output is genuine for `c`.
    Seal {
        c: u8,
        ksi: u8,
        downlink: bool,
        seq: u32,
        payload: &'a [u8],
    },
    /// Open the `idx`-th sealed message with cipher `c` (maybe not its own).
    OpenSealed { c: u8, idx: u8 },
    /// Open the `idx`-th sealed message changed by `mutation`.
    OpenMutated { c: u8, idx: u8, mutation: Mutation },
    /// Open octets from the input.
    OpenRaw { c: u8, bytes: &'a [u8] },
    /// Rebuild a window from a state and compare it with the model.
    Restore { highest: Option<u32>, bitmap: u64 },
}

/// A change to a datagram.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mutation {
    pub kind: u8,
    pub pos: u16,
    pub val: u8,
}

impl Mutation {
    pub(crate) fn read(r: &mut Reader<'_>) -> Self {
        Mutation {
            kind: r.u8(),
            pos: r.u16(),
            val: r.u8(),
        }
    }

    pub(crate) fn write(self, w: &mut Writer) {
        w.u8(self.kind).u16(self.pos).u8(self.val);
    }

    /// Applies the change: flip a bit, truncate, append, overwrite, or cut
    /// an octet out.
    pub(crate) fn apply(self, bytes: &mut Vec<u8>) {
        let len = bytes.len().max(1);
        let pos = usize::from(self.pos);
        match self.kind % 5 {
            0 => {
                let bit = pos % (len * 8);
                if let Some(b) = bytes.get_mut(bit / 8) {
                    *b ^= 1 << (bit % 8);
                }
            }
            1 => bytes.truncate(pos % len),
            2 => bytes.push(self.val),
            3 => {
                if let Some(b) = bytes.get_mut(pos % len) {
                    *b = self.val;
                }
            }
            _ => {
                if !bytes.is_empty() {
                    bytes.remove(pos % len);
                }
            }
        }
    }
}

impl<'a> Op<'a> {
    pub(crate) fn read(r: &mut Reader<'a>) -> Self {
        match r.u8() % 5 {
            0 => Op::Seal {
                c: r.u8(),
                ksi: r.u8(),
                downlink: r.u8() & 1 == 1,
                seq: r.u32(),
                payload: r.bytes16(),
            },
            1 => Op::OpenSealed {
                c: r.u8(),
                idx: r.u8(),
            },
            2 => Op::OpenMutated {
                c: r.u8(),
                idx: r.u8(),
                mutation: Mutation::read(r),
            },
            3 => Op::OpenRaw {
                c: r.u8(),
                bytes: r.bytes16(),
            },
            _ => {
                let has = r.u8() & 1 == 1;
                let h = r.u32();
                let hi = u64::from(r.u32());
                Op::Restore {
                    highest: has.then_some(h),
                    bitmap: (hi << 32) | u64::from(r.u32()),
                }
            }
        }
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        match *self {
            Op::Seal {
                c,
                ksi,
                downlink,
                seq,
                payload,
            } => {
                w.u8(0)
                    .u8(c)
                    .u8(ksi)
                    .u8(u8::from(downlink))
                    .u32(seq)
                    .bytes16(payload);
            }
            Op::OpenSealed { c, idx } => {
                w.u8(1).u8(c).u8(idx);
            }
            Op::OpenMutated { c, idx, mutation } => {
                w.u8(2).u8(c).u8(idx);
                mutation.write(w);
            }
            Op::OpenRaw { c, bytes } => {
                w.u8(3).u8(c).bytes16(bytes);
            }
            Op::Restore { highest, bitmap } => {
                #[allow(clippy::cast_possible_truncation)]
                w.u8(4)
                    .u8(u8::from(highest.is_some()))
                    .u32(highest.unwrap_or(0))
                    .u32((bitmap >> 32) as u32)
                    .u32(bitmap as u32);
            }
        }
    }
}

/// The replay window as the specification states it (RFC 8613 7.4 with a
/// 64-number window): the highest accepted number and the set of accepted
/// numbers.
#[derive(Default, Clone)]
struct WindowModel {
    highest: Option<u32>,
    accepted: BTreeSet<u32>,
}

impl WindowModel {
    fn check(&self, seq: u32) -> Result<(), Error> {
        match self.highest {
            Some(h) if seq <= h && h - seq >= WINDOW => Err(Error::TooOld {
                seq,
                lowest: h - (WINDOW - 1),
            }),
            Some(h) if seq <= h && self.accepted.contains(&seq) => Err(Error::Replayed { seq }),
            _ => Ok(()),
        }
    }

    fn accept(&mut self, seq: u32) {
        self.accepted.insert(seq);
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
    }

    fn from_state(highest: Option<u32>, bitmap: u64) -> Self {
        let mut m = WindowModel {
            highest,
            accepted: BTreeSet::new(),
        };
        if let Some(h) = highest {
            for i in 0..WINDOW.min(h.saturating_add(1)) {
                if (bitmap >> i) & 1 == 1 {
                    m.accepted.insert(h - i);
                }
            }
        }
        m
    }

    /// The window's state must say what the model says.
    fn assert_matches(&self, w: &ReplayWindow) {
        assert_eq!(w.highest(), self.highest, "window highest");
        if let Some(h) = self.highest {
            for i in 0..WINDOW.min(h.saturating_add(1)) {
                let bit = (w.bitmap() >> i) & 1 == 1;
                assert_eq!(
                    bit,
                    self.accepted.contains(&(h - i)),
                    "window bit {i} below {h}"
                );
            }
        }
        assert_eq!(ReplayWindow::restore(w.highest(), w.bitmap()), Ok(*w));
    }
}

/// Arbitrary octets against fixed keysets of each suite and their replay
/// windows, driven by a script of seals and opens.
///
/// Oracle:
/// - nothing panics;
/// - `open_with_window` and `open_in_place` accept only octets that `seal`
///   produces under the same cipher (re-sealing what opened gives the input
///   back; a 32-bit NIA2 MAC is forged by chance once in 2^32 tries), and a
///   message this run sealed opens to its payload, KSI, direction and
///   sequence number;
/// - a message this run sealed under one cipher never opens under another,
///   in particular not under the same keyset installed by another trigger
///   counter;
/// - a sealed message the window has not seen always opens (completeness);
/// - on failure the buffer and the window are unchanged, and a replay or an
///   old number is reported as such;
/// - the window always equals a model of the specification, and its state
///   survives `restore`.
pub fn unprotect(bytes: &[u8]) {
    let ciphers = ciphers();
    let mut windows = [ReplayWindow::new(); CIPHERS];
    let mut models: [WindowModel; CIPHERS] = Default::default();
    // Everything sealed: the octets, the cipher, the payload.
    let mut sealed: Vec<(Vec<u8>, usize, Vec<u8>)> = Vec::new();
    let mut genuine: HashMap<(usize, Vec<u8>), Vec<u8>> = HashMap::new();
    let mut r = Reader::new(bytes);
    let mut steps = 0;
    while !r.is_empty() && steps < 256 {
        steps += 1;
        match Op::read(&mut r) {
            Op::Seal {
                c,
                ksi,
                downlink,
                seq,
                payload,
            } => {
                let c = usize::from(c) % CIPHERS;
                let dir = if downlink {
                    Direction::Downlink
                } else {
                    Direction::Uplink
                };
                let cipher = &ciphers[c];
                let len = cipher.message_len(payload.len());
                let mut out = std::vec![0u8; len];
                let sealed_len = cipher.seal(Ksi(ksi), dir, seq, payload, &mut out);
                if len > ciot_e2e::wire::MAX_MESSAGE_LEN {
                    assert!(
                        matches!(sealed_len, Err(Error::PayloadTooLong { .. })),
                        "{sealed_len:?}"
                    );
                    continue;
                }
                assert_eq!(sealed_len, Ok(len));
                // seal_in_place agrees with seal.
                let mut again = std::vec![0u8; len];
                again[ciot_e2e::wire::data::HEADER_LEN..][..payload.len()].copy_from_slice(payload);
                assert_eq!(
                    cipher.seal_in_place(Ksi(ksi), dir, seq, &mut again, payload.len()),
                    Ok(len)
                );
                assert_eq!(again, out);
                if sealed.len() < 256 {
                    sealed.push((out.clone(), c, payload.to_vec()));
                }
                genuine.insert((c, out), payload.to_vec());
            }
            Op::OpenSealed { c, idx } => {
                if let Some(i) = usize::from(idx).checked_rem(sealed.len()) {
                    let msg = sealed[i].0.clone();
                    open(
                        ciphers,
                        &mut windows,
                        &mut models,
                        &genuine,
                        usize::from(c) % CIPHERS,
                        msg,
                    );
                }
            }
            Op::OpenMutated { c, idx, mutation } => {
                if let Some(i) = usize::from(idx).checked_rem(sealed.len()) {
                    let mut msg = sealed[i].0.clone();
                    mutation.apply(&mut msg);
                    open(
                        ciphers,
                        &mut windows,
                        &mut models,
                        &genuine,
                        usize::from(c) % CIPHERS,
                        msg,
                    );
                }
            }
            Op::OpenRaw { c, bytes } => {
                open(
                    ciphers,
                    &mut windows,
                    &mut models,
                    &genuine,
                    usize::from(c) % CIPHERS,
                    bytes.to_vec(),
                );
            }
            Op::Restore { highest, bitmap } => restore(highest, bitmap),
        }
    }
}

pub(crate) fn describe(bytes: &[u8]) -> std::string::String {
    use core::fmt::Write;
    let mut r = Reader::new(bytes);
    let mut out = std::string::String::new();
    let mut steps = 0;
    while !r.is_empty() && steps < 256 {
        steps += 1;
        let _ = writeln!(out, "{:?}", Op::read(&mut r));
    }
    out
}

fn open(
    ciphers: &[SuiteCipher; CIPHERS],
    windows: &mut [ReplayWindow; CIPHERS],
    models: &mut [WindowModel; CIPHERS],
    genuine: &HashMap<(usize, Vec<u8>), Vec<u8>>,
    c: usize,
    msg: Vec<u8>,
) {
    let cipher = &ciphers[c];
    let mut key = (c, msg);
    // Which other cipher sealed these octets in this run, if one did.
    let foreign = (0..CIPHERS).filter(|&o| o != c).find(|&o| {
        key.0 = o;
        genuine.contains_key(&key)
    });
    key.0 = c;
    let expected = genuine.get(&key);
    let msg = key.1;

    // Without a window.
    let mut buf = msg.clone();
    match cipher.open_in_place(&mut buf) {
        Ok(o) => {
            if let (Some(other), None) = (foreign, expected) {
                panic!("cipher {c} opened a message cipher {other} sealed: {msg:02x?}");
            }
            assert_sealed(cipher, c, &msg, &buf, &o, expected);
            let p = DataPacket::new_checked(&msg[..]).expect("opened message parses");
            assert_eq!(
                (o.ksi, o.direction, o.seq),
                (p.ksi(), p.direction(), p.seq())
            );
        }
        Err(e) => {
            assert!(
                expected.is_none(),
                "cipher {c} refused its own message ({e}): {msg:02x?}"
            );
            assert_eq!(buf, msg, "failed open changed the buffer ({e})");
        }
    }

    // With the window.
    let before = windows[c];
    let mut buf = msg.clone();
    let seq = DataPacket::new_checked(&msg[..]).ok().map(|p| p.seq());
    match cipher.open_with_window(&mut buf, &mut windows[c]) {
        Ok(o) => {
            assert_sealed(cipher, c, &msg, &buf, &o, expected);
            assert_eq!(
                models[c].check(o.seq),
                Ok(()),
                "window accepted what the model refuses"
            );
            models[c].accept(o.seq);
            assert_eq!(windows[c].check(o.seq), Err(Error::Replayed { seq: o.seq }));
        }
        Err(e) => {
            assert_eq!(buf, msg, "failed open changed the buffer ({e})");
            assert_eq!(windows[c], before, "failed open changed the window ({e})");
            if let (Some(_), Some(seq)) = (expected, seq) {
                let model = models[c].check(seq);
                assert!(
                    model.is_err(),
                    "genuine message with fresh seq {seq} refused: {e}"
                );
                assert_eq!(Err(e), model, "window and model disagree on seq {seq}");
            }
        }
    }
    models[c].assert_matches(&windows[c]);
}

/// What opened must be exactly what `seal` makes of the opened payload:
/// sealing is deterministic, so anything else is a forgery. (The keysets are
/// fixed, so a message sealed in an earlier run, which the fuzzer may have
/// learned, is genuine too: hence this test rather than the run's record.)
/// A message this run sealed must give its payload back.
fn assert_sealed(
    cipher: &SuiteCipher,
    c: usize,
    msg: &[u8],
    opened: &[u8],
    o: &ciot_e2e::protect::suite::Opened,
    expected: Option<&Vec<u8>>,
) {
    let plain = &opened[o.payload.clone()];
    let mut again = std::vec![0u8; msg.len()];
    assert_eq!(
        cipher.seal(o.ksi, o.direction, o.seq, plain, &mut again),
        Ok(msg.len())
    );
    assert_eq!(
        again, msg,
        "cipher {c} opened octets that seal does not produce"
    );
    if let Some(payload) = expected {
        assert_eq!(plain, &payload[..], "cipher {c} opened to another payload");
    }
}

fn restore(highest: Option<u32>, bitmap: u64) {
    let consistent = match highest {
        None => bitmap == 0,
        // Bit i stands for highest - i: none may lie below 0.
        Some(h) => bitmap & 1 == 1 && (0..64).all(|i| (bitmap >> i) & 1 == 0 || u64::from(h) >= i),
    };
    match ReplayWindow::restore(highest, bitmap) {
        Ok(w) => {
            assert!(consistent, "restore accepted {highest:?} {bitmap:#x}");
            assert_eq!((w.highest(), w.bitmap()), (highest, bitmap));
            let model = WindowModel::from_state(highest, bitmap);
            model.assert_matches(&w);
            if let Some(h) = highest {
                for seq in [
                    0,
                    h.saturating_sub(WINDOW),
                    h.saturating_sub(WINDOW - 1),
                    h.saturating_sub(1),
                    h,
                    h.saturating_add(1),
                ] {
                    assert_eq!(w.check(seq), model.check(seq), "restored window, seq {seq}");
                }
            }
        }
        Err(e) => {
            assert!(!consistent, "restore refused a consistent state: {e}");
            assert_eq!(e, Error::BadReplayState { highest, bitmap });
        }
    }
}
