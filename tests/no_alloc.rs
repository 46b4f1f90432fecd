//! No derivation path allocates: a counting global allocator sees zero heap
//! calls across every derivation of both profiles.
//!
//! The count is per thread, so the test harness's own allocations on other
//! threads do not disturb it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ciot_e2e::kdf::{
    self, Algorithm, Ck, CkIk, Fc, HkdfKey, Ik, KdfProfile, KeySet, PreparedRoot, Rand, RootBytes,
    RootKey, RootKind, Ts33220Key,
};

thread_local! {
    static HEAP_CALLS: Cell<usize> = const { Cell::new(0) };
}

fn note_heap_call() {
    // `try_with`: the allocator may run while the thread's locals are torn down.
    let _ = HEAP_CALLS.try_with(|n| n.set(n.get() + 1));
}

struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_heap_call();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_heap_call();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_heap_call();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_heap_call();
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Heap calls made by this thread while `f` runs.
fn heap_calls_during<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = HEAP_CALLS.with(Cell::get);
    let out = std::hint::black_box(f());
    (HEAP_CALLS.with(Cell::get) - before, out)
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
            acc ^= kdf::alg_key(profile, &keyset, alg, 7).as_bytes()[0];
        }
        let copy = prepared.clone();
        acc ^= copy.keyset(&Rand([0xa5; 16])).as_bytes()[31];
    }
    acc
}

#[test]
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

#[test]
fn the_counter_sees_an_allocation() {
    // Without this, a broken counter would make the test above pass vacuously.
    let (calls, v) = heap_calls_during(|| vec![1u8; 64]);
    assert!(calls >= 1);
    drop(v);
}
