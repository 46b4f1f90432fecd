//! `gen-pcap`: a synthetic, deterministic capture of every message type,
//! some of them malformed, for tests and benchmarks.
//!
//! 64 UEs talk to one EESE. Each UE runs as a series of starts: every start
//! draws a nonce (from the seed's generator), sends hellos from seq 0 under
//! it, and the triggers and key-expired errors sent to the UE are bound to
//! the nonce of its current start, as the EESE binds them to the hello they
//! answer. The keysets' algorithm keys are drawn, not derived: they stand
//! for keys of some start, and the key log holds them (without a nonce
//! word) so that the data messages decrypt.

use std::fs::File;
use std::io::BufWriter;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use ciot_e2e::kdf::{
    AlgKey, KdfProfile, PreparedRoot, Rand, RootBytes, RootKey, RootKind, UeNonce,
};
use ciot_e2e::protect::suite::{SuiteCipher, SuiteKeys};
use ciot_e2e::wire::{
    Cause, ControlAuth, DEFAULT_PORT, Direction, HelloRepr, KeyExpiredRepr, Ksi, Suite,
    TriggerRepr, hello,
};
use ciot_e2e_analyze::dissect::pcap::{PcapNgCaptureWriter, UdpPcapWriter, User0PcapWriter};
use ciot_e2e_analyze::keylog::KeyLogFile;
use ciot_e2e_testkit::rng::Rng;
use clap::Args;

use crate::Failure;

/// Arguments of `ciot-e2e gen-pcap`.
#[derive(Args)]
pub struct GenPcapArgs {
    /// How many messages (one per frame).
    #[arg(long)]
    messages: u64,
    /// Output file. `.pcapng`: pcapng with an Ethernet and a USER0 interface
    /// (every eighth message raw on USER0); otherwise pcap over Ethernet.
    out: PathBuf,
    /// Share of messages to damage (0.0 - 1.0): truncations, bad version,
    /// type, flags, suite, KDF, cause or lifetime, trailing octets, flipped
    /// tag bits, a hello's bad identifier length or padding, a key-expired
    /// seq without NAMED.
    #[arg(long, default_value_t = 0.0)]
    malformed_ratio: f64,
    /// Seed: the same seed gives the same file.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// pcap of link type USER0 (each frame a bare message) instead of Ethernet.
    #[arg(long)]
    user0: bool,
    /// Also write the keysets used to this key log (INSECURE: it decrypts the capture).
    #[arg(long)]
    keylog: Option<PathBuf>,
}

/// Fills `out` with one draw of the test kit's generator per octet (not its
/// `fill`, eight octets a draw), as this command always drew them. (Wire
/// format 3 changed every capture of a seed all the same: the version
/// octet, the hello's nonce, the UE starts.)
fn octets(rng: &mut Rng, out: &mut [u8]) {
    for b in out {
        *b = rng.next_u64() as u8;
    }
}

/// One keyset of the synthetic traffic.
struct Keyset {
    ksi: Ksi,
    counter: u64,
    rand: Rand,
    keys: SuiteKeys,
    cipher: SuiteCipher,
}

/// How many UEs the capture holds (addresses 10.0.0.1 ...).
const UES: usize = 64;

/// The current start of one UE: its nonce and the seq of its next hello.
struct Start {
    nonce: UeNonce,
    next_hello: u32,
}

impl Start {
    /// A new start: a fresh nonce, hellos from seq 0.
    fn new(rng: &mut Rng) -> Self {
        let mut nonce = [0u8; UeNonce::LEN];
        octets(rng, &mut nonce);
        Start {
            nonce: UeNonce::from_bytes(nonce),
            next_hello: 0,
        }
    }
}

enum Sink {
    Ethernet(UdpPcapWriter<BufWriter<File>>),
    User0(User0PcapWriter<BufWriter<File>>),
    Mixed(PcapNgCaptureWriter<BufWriter<File>>),
}

/// Runs `ciot-e2e gen-pcap`.
pub fn gen_pcap(a: &GenPcapArgs) -> Result<(), Failure> {
    if !(0.0..=1.0).contains(&a.malformed_ratio) {
        return Err(Failure::usage("--malformed-ratio must be between 0 and 1"));
    }
    let fail = |e: std::io::Error| Failure::usage(format!("{}: {e}", a.out.display()));
    let file = BufWriter::with_capacity(1 << 20, File::create(&a.out).map_err(fail)?);
    let mixed = a
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("pcapng"));
    let mut sink = match (mixed, a.user0) {
        (true, _) => Sink::Mixed(PcapNgCaptureWriter::new(file).map_err(fail)?),
        (false, true) => Sink::User0(User0PcapWriter::new(file).map_err(fail)?),
        (false, false) => Sink::Ethernet(UdpPcapWriter::new(file).map_err(fail)?),
    };
    let mut rng = Rng::new(a.seed ^ 0x6369_6f74_6532_6500);
    let mut root = [0u8; 32];
    octets(&mut rng, &mut root);
    let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes(root));
    let auth = ControlAuth::new(&PreparedRoot::new(&root, KdfProfile::Ts33220).control_key());
    // Keysets: both suites, and KSI 3 twice (after a wrap-around) so that a
    // reader of the key log has to try more than one keyset.
    let plan = [
        (1, Suite::AES_128_GCM),
        (2, Suite::NEA2_NIA2),
        (3, Suite::AES_128_GCM),
        (3, Suite::NEA2_NIA2),
        (3, Suite::AES_128_GCM),
    ];
    let keysets: Vec<Keyset> = plan
        .iter()
        .enumerate()
        .map(|(i, &(ksi, suite))| {
            let mut key = || {
                let mut k = [0u8; 16];
                octets(&mut rng, &mut k);
                AlgKey::from_bytes(k)
            };
            let keys = match suite {
                Suite::NEA2_NIA2 => SuiteKeys::Nea2Nia2 {
                    enc: key(),
                    int: key(),
                },
                _ => SuiteKeys::Aes128Gcm(key()),
            };
            let mut rand = [0u8; 16];
            octets(&mut rng, &mut rand);
            let cipher = keys.cipher();
            Keyset {
                ksi: Ksi(ksi),
                counter: i as u64 + 1,
                rand: Rand(rand),
                keys,
                cipher,
            }
        })
        .collect();
    if let Some(path) = &a.keylog {
        let kfail = |e: std::io::Error| Failure::usage(format!("{}: {e}", path.display()));
        let mut log = KeyLogFile::create_insecure(path).map_err(kfail)?;
        for k in &keysets {
            log.append(k.ksi, Some(k.counter), &k.rand, &k.keys)
                .map_err(kfail)?;
        }
    }
    let mut starts: Vec<Start> = (0..UES).map(|_| Start::new(&mut rng)).collect();
    let eese = SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 1), DEFAULT_PORT);
    let mut buf = vec![0u8; 2048];
    let mut payload = [0u8; 256];
    for i in 0..a.messages {
        let ue_n = rng.below(UES as u64) as u16;
        let ue = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1 + ue_n as u8), 49152 + ue_n);
        let ks = &keysets[rng.below(keysets.len() as u64) as usize];
        let kind = rng.below(12);
        let (mut len, uplink) = match kind {
            0 | 1 => {
                let t = TriggerRepr {
                    ksi: ks.ksi,
                    confirm: rng.below(2) == 0,
                    counter: ks.counter,
                    rand: ks.rand.clone(),
                    profile: KdfProfile::Ts33220,
                    suite: ks.keys.suite(),
                    lifetime: 1 + rng.below(86_400) as u32,
                    tag: [0; 16],
                };
                // Bound to the nonce of the UE's start (of its hellos).
                let nonce = &starts[usize::from(ue_n)].nonce;
                (
                    t.emit_signed(&auth.answer(nonce), &mut buf)
                        .map_err(|e| Failure::usage(e.to_string()))?,
                    false,
                )
            }
            2 => {
                let cause = Cause::KNOWN[rng.below(Cause::KNOWN.len() as u64) as usize];
                // Both forms: naming the refused message (NAMED) or not.
                let refused = (rng.below(2) == 0).then(|| rng.next_u64() as u32);
                let k = KeyExpiredRepr {
                    ksi: ks.ksi,
                    cause,
                    counter: ks.counter,
                    refused,
                    tag: [0; 16],
                };
                let nonce = &starts[usize::from(ue_n)].nonce;
                (
                    k.emit_signed(&auth.answer(nonce), &mut buf)
                        .map_err(|e| Failure::usage(e.to_string()))?,
                    false,
                )
            }
            3 => {
                let mut id = [0u8; hello::MAX_ID_LEN];
                let id_len = ue_id(&mut rng, ue_n, &mut id);
                let start = &mut starts[usize::from(ue_n)];
                // Now and then the UE restarted (reboot, lost storage): a
                // new nonce, and its first hello, seq 0, holding nothing.
                if rng.below(8) == 0 {
                    *start = Start::new(&mut rng);
                }
                let fresh = start.next_hello == 0;
                let h = HelloRepr {
                    ksi: if fresh { Ksi(0) } else { ks.ksi },
                    rekey: fresh || rng.below(4) == 0,
                    counter: if fresh { 0 } else { ks.counter },
                    seq: start.next_hello,
                    nonce: start.nonce,
                    id: &id[..id_len],
                    tag: [0; 16],
                };
                start.next_hello = start.next_hello.wrapping_add(1);
                (
                    h.emit_signed(&auth, &mut buf)
                        .map_err(|e| Failure::usage(e.to_string()))?,
                    true,
                )
            }
            _ => {
                let n = rng.below(65) as usize;
                octets(&mut rng, &mut payload[..n]);
                let dir = if rng.below(2) == 0 {
                    Direction::Uplink
                } else {
                    Direction::Downlink
                };
                let seq = (i & 0xffff_ffff) as u32;
                let len = ks
                    .cipher
                    .seal(ks.ksi, dir, seq, &payload[..n], &mut buf)
                    .map_err(|e| Failure::usage(e.to_string()))?;
                (len, dir == Direction::Uplink)
            }
        };
        if a.malformed_ratio > 0.0 && rng.unit() < a.malformed_ratio {
            len = damage(&mut rng, &mut buf, len);
        }
        let time = Duration::from_micros(1_700_000_000_000_000 + i * 1000);
        let (src, dst) = if uplink { (ue, eese) } else { (eese, ue) };
        let msg = &buf[..len];
        match &mut sink {
            Sink::Ethernet(w) => w.write(time, src, dst, msg),
            Sink::User0(w) => w.write(time, msg),
            Sink::Mixed(w) if i % 8 == 7 => w.write_user0(time, msg),
            Sink::Mixed(w) => w.write_udp(time, src, dst, msg),
        }
        .map_err(fail)?;
    }
    match sink {
        Sink::Ethernet(w) => w.into_inner().map(drop),
        Sink::User0(w) => w.into_inner().map(drop),
        Sink::Mixed(w) => w.into_inner().map(drop),
    }
    .map_err(fail)
}

/// A UE identifier into `id`; returns its length. Mostly short text
/// (`ue-7`), sometimes text long enough to make the hello longer than 84
/// octets, sometimes octets that are not text.
fn ue_id(rng: &mut Rng, ue_n: u16, id: &mut [u8; hello::MAX_ID_LEN]) -> usize {
    match rng.below(8) {
        0 => {
            let n = 1 + rng.below(16) as usize;
            octets(rng, &mut id[..n]);
            n
        }
        1 => {
            let n = 31 + rng.below(34) as usize;
            for (j, b) in id[..n].iter_mut().enumerate() {
                *b = b'a' + ((usize::from(ue_n) + j) % 26) as u8;
            }
            n
        }
        _ => {
            let text = format!("ue-{ue_n}");
            id[..text.len()].copy_from_slice(text.as_bytes());
            text.len()
        }
    }
}

/// Damages a valid message in `buf[..len]`; returns its new length.
fn damage(rng: &mut Rng, buf: &mut [u8], len: usize) -> usize {
    let ty = buf[1];
    match rng.below(8) {
        0 => rng.below(len as u64) as usize, // truncated, possibly to nothing
        1 => {
            // 1 and 2: the versions before this one.
            buf[0] = [0, 1, 2, 0xff][rng.below(4) as usize];
            len
        }
        2 => {
            buf[1] = [0, 5, 0x7f][rng.below(3) as usize];
            len
        }
        3 => {
            buf[3] |= 0x02 << rng.below(7);
            len
        }
        4 if ty == 3 => {
            buf[4] = [0, 3, 0xee][rng.below(3) as usize];
            len
        }
        4 if ty == 1 => {
            buf[29] = 9;
            len
        }
        4 if ty == 4 => {
            // An identifier length out of 1..=64, or one that does not
            // match the hello's length.
            buf[hello::field::ID_LEN] = [0, 65, 0xff, 40][rng.below(4) as usize];
            len
        }
        4 => {
            buf[4] = 0x42; // unknown cause
            len
        }
        5 if ty != 3 => {
            let extra = 1 + rng.below(8) as usize;
            octets(rng, &mut buf[len..len + extra]);
            len + extra
        }
        6 if ty == 1 => {
            if rng.below(2) == 0 {
                buf[28] = 7; // unknown KDF profile
            } else {
                buf[30..34].fill(0); // zero lifetime
            }
            len
        }
        6 if ty == 2 => {
            // A seq without NAMED.
            buf[3] &= !1;
            buf[16] |= 1 + (rng.next_u64() as u8) % 0x7f;
            len
        }
        6 if ty == 4 && len - hello::field::ID - usize::from(buf[hello::field::ID_LEN]) > 16 => {
            // A non-zero padding octet.
            let pad_start = hello::field::ID + usize::from(buf[hello::field::ID_LEN]);
            let pad_len = len - 16 - pad_start;
            buf[pad_start + rng.below(pad_len as u64) as usize] = 1 + (rng.next_u64() as u8) % 0xfe;
            len
        }
        _ => {
            // A flipped tag bit: only a key holder can tell.
            let at = len - 1 - rng.below(4) as usize;
            buf[at] ^= 1 << rng.below(8);
            len
        }
    }
}
