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

use ciot_e2e::endpoint::{
    EESE_SNAPSHOT_LEN, Eese, EeseConfig, Instant, RandSource, Received, Ue, UeConfig, UeId,
};
use ciot_e2e::kdf::{
    self, Algorithm, Ck, CkIk, Fc, Ik, KdfProfile, PreparedRoot, Rand, RootBytes, RootKey,
    RootKind, UeNonce,
};
use ciot_e2e::protect::replay::ReplayWindow;
use ciot_e2e::protect::suite::SuiteKeys;
use ciot_e2e::wire::{Direction, Ksi, Message, Suite};

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
            let nonce = UeNonce::from_bytes(black_box([0x3c; 16]));
            for alg in [Algorithm::Nea2, Algorithm::Nia2, Algorithm::Aes128Gcm] {
                acc ^= kdf::alg_key(profile, &keyset, alg, 1, &nonce).as_bytes()[0];
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

/// Wire codecs, both suites, and a whole exchange through the UE and the
/// EESE endpoints: hello, the EESE's snapshot, trigger, data both ways, and
/// a second start of the UE with a new nonce.
fn protocol_everything() -> u8 {
    let mut acc = 0u8;
    let root = kdf::int_key(
        KdfProfile::Ts33220,
        &CkIk::new(
            &Ck::from_bytes(black_box([1; 16])),
            &Ik::from_bytes([2; 16]),
        ),
    );
    let Ok(id) = UeId::new(b"ue-no-std") else {
        return 0;
    };
    // A device's random source (here black-boxed octets: this binary is
    // never run).
    let mut device_rng = || Some(Rand(black_box([0x5e; 16])));
    let Some(nonce) = UeNonce::from_source(&mut device_rng) else {
        return 0;
    };
    let mut ue: Ue<64> = Ue::new(UeConfig::default(), root.clone(), id, nonce);
    let mut eese = Eese::new(EeseConfig::default(), root, || {
        Some(Rand(black_box([7; 16])))
    });
    let now = Instant::from_millis(black_box(0));
    let (mut a, mut b) = ([0u8; 128], [0u8; 128]);
    let mut esnap = [0u8; EESE_SNAPSHOT_LEN];
    let _ = ue.send(now, b"hello");
    for _ in 0..4 {
        while let Ok(Some(t)) = ue.poll_transmit(now, &mut a) {
            if let Ok(m) = Message::parse(&a[..t.len]) {
                acc ^= m.buffer_len() as u8;
            }
            if let Ok(Received::Data(_)) = eese.handle_datagram(now, &mut a[..t.len])
                && let Ok(s) = eese.send(now, b"down", &mut b)
            {
                let _ = ue.handle_datagram(now, &mut b[..s.len]);
            }
        }
        if let Some(p) = eese.poll_persist(&mut esnap) {
            let _ = eese.persisted(p);
        }
        while let Ok(Some(t)) = eese.poll_transmit(now, &mut b) {
            let _ = ue.handle_datagram(now, &mut b[..t.len]);
        }
        while ue.poll_event().is_some() || eese.poll_event().is_some() {
            acc = acc.wrapping_add(1);
        }
    }
    // A restart: a new UE with a new nonce, nothing restored.
    if let Some(nonce) = device_rng.rand().map(|r| UeNonce::from_bytes(r.0)) {
        let mut again: Ue<64> = Ue::new(
            UeConfig::default(),
            kdf::int_key(
                KdfProfile::Ts33220,
                &CkIk::new(&Ck::from_bytes([1; 16]), &Ik::from_bytes([2; 16])),
            ),
            id,
            nonce,
        );
        if let Ok(Some(t)) = again.poll_transmit(now, &mut a) {
            acc ^= t.len as u8;
        }
    }
    let nonce = UeNonce::from_bytes(black_box([0x3c; 16]));
    for suite in [Suite::NEA2_NIA2, Suite::AES_128_GCM] {
        let keyset = kdf::KeySet::from_bytes(black_box([3; 32]));
        if let Ok(keys) = SuiteKeys::derive(KdfProfile::Ts33220, &keyset, suite, 1, &nonce) {
            let c = keys.cipher();
            let mut buf = [0u8; 64];
            if let Ok(n) = c.seal(Ksi(1), Direction::Uplink, 0, b"payload", &mut buf) {
                let mut w = ReplayWindow::new();
                acc ^= c
                    .open_with_window(&mut buf[..n], &mut w)
                    .map_or(0, |o| o.payload.len() as u8);
            }
        }
    }
    acc
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
