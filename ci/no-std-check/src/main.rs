//! Calls every key derivation, the wire codecs, the data-protection suites
//! and the UE/EESE endpoint core of `ciot-e2e` from a `#![no_std]` binary
//! that has no global allocator. It is never run: it only has to link.
//!
//! If anything on these paths needs `alloc`, the build fails with "no global
//! memory allocator found but one is required". The entry point is exported
//! so the linker keeps every derivation instead of discarding it.

#![no_std]
#![no_main]

use core::hint::black_box;
use core::panic::PanicInfo;

use ciot_e2e::endpoint::{Config, EeseSession, Event, Instant, Sent, Sink, Ue};
use ciot_e2e::protect::replay::ReplayWindow;
use ciot_e2e::protect::suite::SuiteKeys;
use ciot_e2e::wire::{Direction, Ksi, Message, Suite};
use ciot_e2e::kdf::{
    self, Algorithm, Ck, CkIk, Fc, Ik, KdfProfile, PreparedRoot, Rand, RootBytes, RootKey, RootKind,
};

/// Every derivation, for both profiles and every root kind; returns a
/// checksum so nothing is optimized away.
fn derive_everything() -> u8 {
    let mut acc = 0u8;
    for profile in [KdfProfile::Ts33220, KdfProfile::HkdfSha256] {
        let ck_ik = CkIk::new(
            &Ck::from_bytes(black_box([0x11; 16])),
            &Ik::from_bytes([0x22; 16]),
        );
        let int_key = kdf::int_key(profile, &ck_ik);
        let rand = Rand(black_box([0x5a; 16]));
        for kind in [RootKind::IntKey, RootKind::E2mKeyset, RootKind::E2mKey] {
            let root = RootKey::new(kind, RootBytes::from_bytes(*int_key.key().as_bytes()));
            let prepared = PreparedRoot::new(&root, profile);
            let keyset = prepared.keyset(&rand);
            acc ^= kdf::keyset(profile, &root, &rand).as_bytes()[0];
            acc ^= prepared.control_key().as_bytes()[0];
            for alg in [Algorithm::Nea2, Algorithm::Nia2, Algorithm::Aes128Gcm] {
                acc ^= kdf::alg_key(profile, &keyset, alg).as_bytes()[0];
            }
        }
    }
    let key = black_box([0x42u8; 32]);
    for fc in [Fc::new(0x90).ok(), Some(Fc::extended(0x01))]
        .into_iter()
        .flatten()
    {
        if let Ok(out) = kdf::kdf(&key, fc, &[b"CIoT End-to-end", &[0x01]]) {
            acc ^= out[0];
        }
    }
    acc
}

/// A sink that keeps the last datagram on the stack.
struct Last {
    buf: [u8; 128],
    len: usize,
    events: u8,
}

impl Sink for Last {
    fn transmit(&mut self, d: &[u8]) {
        if let Some(slot) = self.buf.get_mut(..d.len()) {
            slot.copy_from_slice(d);
            self.len = d.len();
        }
    }
    fn event(&mut self, _: Event<'_>) {
        self.events = self.events.wrapping_add(1);
    }
}

/// Wire codecs, both suites and one rekey plus a data message through the
/// UE and EESE endpoints.
fn protocol_everything() -> u8 {
    let mut acc = 0u8;
    let root = kdf::int_key(
        KdfProfile::Ts33220,
        &CkIk::new(&Ck::from_bytes(black_box([1; 16])), &Ik::from_bytes([2; 16])),
    );
    let cfg = Config::default();
    let mut eese = EeseSession::new(root.clone());
    let mut ue: Ue<64> = Ue::with_config(root, &cfg);
    let mut rng = || Some(Rand(black_box([7; 16])));
    let mut to_ue = Last { buf: [0; 128], len: 0, events: 0 };
    let mut to_eese = Last { buf: [0; 128], len: 0, events: 0 };
    let mut scratch = [0u8; 128];
    let now = Instant::from_millis(black_box(0));
    eese.rekey(now, &cfg, &mut rng, &mut to_ue);
    let mut d = to_ue.buf;
    ue.handle_datagram(now, &cfg, &mut d[..to_ue.len], &mut scratch, &mut to_eese);
    if let Ok(Sent::Now { .. }) = ue.send(b"hello", &mut scratch, &mut to_eese) {
        let mut d = to_eese.buf;
        eese.handle_datagram(now, &cfg, &mut d[..to_eese.len], &mut rng, &mut to_ue);
    }
    if let Ok(m) = Message::parse(&to_eese.buf[..to_eese.len]) {
        acc ^= m.buffer_len() as u8;
    }
    for suite in [Suite::NEA2_NIA2, Suite::AES_128_GCM] {
        let keyset = kdf::KeySet::from_bytes(black_box([3; 32]));
        if let Ok(keys) = SuiteKeys::derive(KdfProfile::Ts33220, &keyset, suite) {
            let c = keys.cipher();
            let mut buf = [0u8; 64];
            if let Ok(n) = c.seal(Ksi(1), Direction::Uplink, 0, b"payload", &mut buf) {
                let mut w = ReplayWindow::new();
                acc ^= c.open_with_window(&mut buf[..n], &mut w).map_or(0, |o| o.payload.len() as u8);
            }
        }
    }
    acc ^ to_ue.events ^ to_eese.events
}

/// The exported entry point (`_start` is where the linker starts by default),
/// so the linker keeps every derivation.
#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    black_box(derive_everything());
    black_box(protocol_everything());
    loop {
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(_: &PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
