//! No derivation and no endpoint path allocates: a counting global allocator
//! sees zero heap calls across every derivation of both profiles and a whole
//! UE ↔ EESE exchange (hello, offer, the UE's use of it, the EESE's
//! snapshot, data both ways), then again after the UE started anew (a new
//! nonce, a new keyset).
//!
//! The allocator's counters are process-wide, so this test runs without the
//! test harness (`harness = false`): one thread, nothing else allocating.

use std::alloc::System;

use ciot_e2e::endpoint::{
    EESE_SNAPSHOT_LEN, Eese, EeseConfig, Instant, RandSource, Received, Ue, UeConfig, UeId,
};
use ciot_e2e::kdf::{
    self, Algorithm, Ck, CkIk, Fc, HkdfKey, Ik, KdfProfile, KeySet, PreparedRoot, Rand, RootBytes,
    RootKey, RootKind, Ts33220Key, UeNonce,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

// The counting allocator is a library's: this package writes no unsafe code.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap calls (allocations, reallocations, frees) while `f` runs.
fn heap_calls_during<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let region = Region::new(GLOBAL);
    let out = std::hint::black_box(f());
    let c = region.change();
    (c.allocations + c.reallocations + c.deallocations, out)
}

/// Runs every derivation of the crate once, dropping every key.
fn derive_everything(profile: KdfProfile) -> u8 {
    let ck_ik = CkIk::new(&Ck::from_bytes([0x11; 16]), &Ik::from_bytes([0x22; 16]));
    let int_key = kdf::int_key(profile, &ck_ik);
    let rand = Rand([0x5a; 16]);
    let mut acc = 0u8;
    for kind in [RootKind::IntKey, RootKind::E2mKeyset, RootKind::E2mKey] {
        let root = RootKey::new(kind, RootBytes::from_bytes(*int_key.key().as_bytes()));
        let prepared = PreparedRoot::new(&root, profile);
        let keyset: KeySet = prepared.keyset(&rand);
        let one_shot = kdf::keyset(profile, &root, &rand);
        acc ^= u8::from(keyset == one_shot);
        acc ^= prepared.control_key().as_bytes()[0];
        for alg in [Algorithm::Nea2, Algorithm::Nia2, Algorithm::Aes128Gcm] {
            acc ^= kdf::alg_key(profile, &keyset, alg, 7, &UeNonce([0x3e; 16])).as_bytes()[0];
        }
        let copy = prepared.clone();
        acc ^= copy.keyset(&Rand([0xa5; 16])).as_bytes()[31];
    }
    acc
}

fn no_derivation_allocates() {
    for profile in [KdfProfile::Ts33220, KdfProfile::HkdfSha256] {
        let (calls, _) = heap_calls_during(|| derive_everything(profile));
        assert_eq!(calls, 0, "{profile:?}: heap calls while deriving");
    }

    let (calls, _) = heap_calls_during(|| {
        let key = [0x42u8; 32];
        let long = [0x0fu8; 300]; // S spans several SHA-256 blocks
        let one = kdf::kdf(&key, Fc::new(0x90).unwrap(), &[b"P0", &long, &[]]);
        let two = kdf::kdf(&key, Fc::extended(0x01), &[&long]);
        let prepared = Ts33220Key::new(&key);
        let again = prepared.derive(Fc::new(0x91).unwrap(), &[&[0x01], &[0x02; 16]]);
        let refused = kdf::kdf(&key, Fc::new(0x10).unwrap(), &[&[0u8; 0x1_0000][..]]);
        let hkdf = HkdfKey::new(&key).expand(&long);
        (one, two, again, refused.is_err(), hkdf)
    });
    assert_eq!(calls, 0, "heap calls in kdf / Ts33220Key / HkdfKey");
}

/// One start of a UE against `eese`, with buffers on the stack: the UE's
/// payload held until its hello is answered by an offer and sent under it,
/// the EESE's snapshot written, then a payload down. Returns the payloads
/// delivered up and down ((1, 1) when it went through).
fn one_start<R: RandSource>(
    eese: &mut Eese<R>,
    root: &RootKey,
    nonce: UeNonce,
    now: Instant,
) -> (usize, usize) {
    let id = UeId::new(b"ue-no-alloc").unwrap();
    let mut ue: Ue<64> = Ue::new(UeConfig::default(), root.clone(), id, nonce);
    let (mut a, mut b) = ([0u8; 256], [0u8; 256]);
    let mut esnap = [0u8; EESE_SNAPSHOT_LEN];
    let (mut up, mut down) = (0, 0);
    ue.send(now, b"up").unwrap();
    for _ in 0..6 {
        while let Ok(Some(t)) = ue.poll_transmit(now, &mut a) {
            if let Ok(Received::Data(_)) = eese.handle_datagram(now, &mut a[..t.len]) {
                up += 1;
            }
        }
        while ue.poll_event().is_some() {}
        while let Some(p) = eese.poll_persist(&mut esnap) {
            eese.persisted(p).unwrap();
        }
        while let Ok(Some(t)) = eese.poll_transmit(now, &mut b) {
            let _ = ue.handle_datagram(now, &mut b[..t.len]);
        }
        while eese.poll_event().is_some() {}
        if up > 0
            && down == 0
            && let Ok(s) = eese.send(now, b"down", &mut b)
            && let Ok(Received::Data(_)) = ue.handle_datagram(now, &mut b[..s.len])
        {
            down += 1;
        }
    }
    (up, down)
}

/// A UE and a one-UE EESE through a whole exchange, then the same for the
/// UE's next start (a reboot: a new nonce, nothing kept).
fn exchange() -> [(usize, usize); 2] {
    let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes([3; 32]));
    let mut n = 0u8;
    let rands = move || {
        n = n.wrapping_add(1);
        Some(Rand([n; 16]))
    };
    let mut eese = Eese::new(EeseConfig::default(), root.clone(), rands);
    let first = one_start(&mut eese, &root, UeNonce([0x11; 16]), Instant(0));
    let again = one_start(&mut eese, &root, UeNonce([0x22; 16]), Instant(5_000));
    [first, again]
}

fn no_endpoint_call_allocates() {
    let (calls, delivered) = heap_calls_during(exchange);
    assert_eq!(
        delivered,
        [(1, 1), (1, 1)],
        "both starts' exchanges went through"
    );
    assert_eq!(calls, 0, "heap calls in the UE or the EESE");
}

fn the_counter_sees_an_allocation() {
    // Without this, a broken counter would make the test above pass vacuously.
    let (calls, v) = heap_calls_during(|| vec![1u8; 64]);
    assert!(calls >= 1);
    drop(v);
}

fn main() {
    the_counter_sees_an_allocation();
    no_derivation_allocates();
    no_endpoint_call_allocates();
    println!("no_alloc: 0 heap calls in every derivation and a whole UE/EESE exchange");
}
