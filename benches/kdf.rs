//! Keyset derivation, the EESE's hot path, against its two yardsticks.
//!
//! One run measures, on the same root and the same 22-octet S string
//! (`0x91 || kind || 00 01 || RAND || 00 10`):
//!
//! - `keyset/ours-3gpp`, `keyset/ours-hkdf`: [`PreparedRoot::keyset`] for both
//!   profiles (keyed HMAC state kept, so about two SHA-256 compressions);
//! - `keyset/naive-hmac`: `Hmac::<Sha256>::new_from_slice(root)` + `update(S)`
//!   + `finalize` per derivation (four compressions);
//! - `keyset/two-compressions`: the floor, two bare SHA-256 compressions
//!   (`sha2::block_api::compress256` on two prepared blocks);
//! - `keyset/two-chained-compressions`: the same two, the second block
//!   carrying the first one's digest, as in HMAC.
//!
//! Goal (issue 2): ours ≤ 1.25 × two-compressions, and clearly faster than
//! naive. Run with `cargo bench --bench kdf`; the figures are in
//! `docs/PERFORMANCE.md`. `RUSTFLAGS='--cfg sha2_backend="soft"'` measures
//! the same with sha2's portable compress function, as a CPU without SHA
//! extensions runs it.

use std::hint::black_box;

use ciot_e2e::kdf::{FC_KEYSET, KdfProfile, PreparedRoot, Rand, RootBytes, RootKey, RootKind};
use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const ROOT: [u8; 32] = [
    0x3c, 0x1f, 0x84, 0x5e, 0x92, 0x07, 0xd4, 0x6b, 0xa1, 0x58, 0xe3, 0x2d, 0x70, 0xc9, 0x16, 0xfa,
    0x4b, 0x88, 0x25, 0xd0, 0x6e, 0xb3, 0x0a, 0x97, 0xf1, 0x42, 0x5c, 0xe8, 0x39, 0x7d, 0xa6, 0x13,
];
const RAND: [u8; 16] = [
    0xa5, 0x5a, 0x0f, 0xf0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67,
];

/// The keyset S string, octet for octet what `PreparedRoot::keyset` hashes.
fn keyset_s(kind: RootKind, rand: &[u8; 16]) -> [u8; 22] {
    let mut s = [0u8; 22];
    s[0] = FC_KEYSET;
    s[1] = kind.code();
    s[2..4].copy_from_slice(&[0x00, 0x01]);
    s[4..20].copy_from_slice(rand);
    s[20..22].copy_from_slice(&[0x00, 0x10]);
    s
}

/// One SHA-256 block holding `msg` with its padding, as the inner and outer
/// hashes of HMAC see their last block (`msg` ≤ 55 octets, after one 64-octet
/// key block).
fn padded_block(msg: &[u8]) -> [u8; 64] {
    let mut b = [0u8; 64];
    b[..msg.len()].copy_from_slice(msg);
    b[msg.len()] = 0x80;
    let bits = ((64 + msg.len()) as u64) * 8;
    b[56..].copy_from_slice(&bits.to_be_bytes());
    b
}

fn keyset(c: &mut Criterion) {
    let kind = RootKind::IntKey;
    let root = RootKey::new(kind, RootBytes::from_bytes(ROOT));
    let rand = Rand(RAND);
    let s = keyset_s(kind, &RAND);

    let ours_3gpp = PreparedRoot::new(&root, KdfProfile::Ts33220);
    let ours_hkdf = PreparedRoot::new(&root, KdfProfile::HkdfSha256);

    // The bench is only meaningful if both paths compute the same thing.
    let naive = {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&ROOT).expect("any key length");
        mac.update(&s);
        mac.finalize().into_bytes()
    };
    assert_eq!(ours_3gpp.keyset(&rand).as_bytes(), naive.as_slice());

    let mut g = c.benchmark_group("keyset");
    g.bench_function("ours-3gpp", |b| {
        b.iter(|| black_box(&ours_3gpp).keyset(black_box(&rand)));
    });
    g.bench_function("ours-hkdf", |b| {
        b.iter(|| black_box(&ours_hkdf).keyset(black_box(&rand)));
    });
    g.bench_function("naive-hmac", |b| {
        b.iter(|| {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(black_box(&ROOT))
                .expect("any key length");
            mac.update(black_box(&s));
            mac.finalize().into_bytes()
        });
    });

    // Two compressions: the inner hash's last block (S + padding) and the
    // outer hash's (inner digest + padding), from a keyed chaining value.
    let blocks = [padded_block(&s), padded_block(&[0x5c; 32])];
    let state0: [u32; 8] = [
        0x6a09_e667,
        0xbb67_ae85,
        0x3c6e_f372,
        0xa54f_f53a,
        0x510e_527f,
        0x9b05_688c,
        0x1f83_d9ab,
        0x5be0_cd19,
    ];
    g.bench_function("two-compressions", |b| {
        b.iter(|| {
            let mut state = black_box(state0);
            sha2::block_api::compress256(&mut state, black_box(&blocks));
            state
        });
    });
    // The same two compressions chained as HMAC must chain them: the second
    // block carries the first one's digest, so it cannot start before the
    // first ends. The floor for any HMAC with kept pad states.
    g.bench_function("two-chained-compressions", |b| {
        b.iter(|| {
            let mut inner = black_box(state0);
            sha2::block_api::compress256(&mut inner, core::slice::from_ref(black_box(&blocks[0])));
            let mut second = blocks[1];
            for (o, w) in second.chunks_exact_mut(4).zip(&inner) {
                o.copy_from_slice(&w.to_be_bytes());
            }
            let mut outer = black_box(state0);
            sha2::block_api::compress256(&mut outer, core::slice::from_ref(&second));
            outer
        });
    });
    g.finish();
}

criterion_group!(benches, keyset);
criterion_main!(benches);
