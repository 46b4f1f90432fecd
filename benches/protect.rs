//! Protect and unprotect of data messages, beside the bare RustCrypto calls
//! on the same sizes in the same run. Run: `cargo bench --bench protect`.
//!
//! "ours" is `SuiteCipher::seal_in_place` / `open_in_place` with the keys
//! expanded once (as a session's hot path holds them); "bare" is the
//! algorithm alone with pre-expanded keys: `Aes128Gcm` detached in place, or
//! `Ctr64BE<Aes128>` + `Cmac<Aes128>` over the same octets 128-NIA2 covers.

use std::hint::black_box;

use aes::Aes128;
use aes_gcm::Aes128Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit};
use ciot_e2e::kdf::{KdfProfile, KeySet, UeNonce};
use ciot_e2e::protect::suite::{SuiteCipher, SuiteKeys};
use ciot_e2e::wire::{Direction, Ksi, Suite};
use cmac::{Cmac, Mac};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ctr::cipher::{InnerIvInit, StreamCipher};

const SIZES: [usize; 6] = [16, 32, 64, 256, 1024, 1400];

fn ours(suite: Suite) -> SuiteCipher {
    SuiteKeys::derive(
        KdfProfile::Ts33220,
        &KeySet::from_bytes([0x42; 32]),
        suite,
        1,
        &UeNonce::from_bytes([0x4e; 16]),
    )
    .unwrap()
    .cipher()
}

fn gcm(c: &mut Criterion) {
    let cipher = ours(Suite::AES_128_GCM);
    let bare = Aes128Gcm::new(&[7u8; 16].into());
    let nonce = [0u8; 12];
    let mut g = c.benchmark_group("aes-128-gcm");
    for size in SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        let mut buf = vec![0x5a; cipher.message_len(size)];
        g.bench_with_input(BenchmarkId::new("protect/ours", size), &size, |b, &n| {
            b.iter(|| {
                cipher
                    .seal_in_place(Ksi(1), Direction::Uplink, 7, black_box(&mut buf), n)
                    .unwrap()
            })
        });
        let mut payload = vec![0x5a; size];
        let aad = [0u8; 9];
        g.bench_with_input(BenchmarkId::new("protect/bare", size), &size, |b, _| {
            b.iter(|| {
                bare.encrypt_inout_detached(&nonce.into(), &aad, black_box(&mut payload[..]).into())
                    .unwrap()
            })
        });
        let mut msg = vec![0u8; cipher.message_len(size)];
        cipher
            .seal(Ksi(1), Direction::Uplink, 7, &vec![0x5a; size], &mut msg)
            .unwrap();
        g.bench_with_input(BenchmarkId::new("unprotect/ours", size), &size, |b, _| {
            b.iter_batched_ref(
                || msg.clone(),
                |m| cipher.open_in_place(m).unwrap(),
                BatchSize::SmallInput,
            )
        });
        let mut ct = vec![0x5a; size];
        let tag = bare
            .encrypt_inout_detached(&nonce.into(), &aad, ct.as_mut_slice().into())
            .unwrap();
        g.bench_with_input(BenchmarkId::new("unprotect/bare", size), &size, |b, _| {
            b.iter_batched_ref(
                || ct.clone(),
                |m| {
                    bare.decrypt_inout_detached(&nonce.into(), &aad, m.as_mut_slice().into(), &tag)
                        .unwrap()
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

type Ctr = ctr::Ctr64BE<Aes128>;

fn bare_ctr_cmac(
    aes: &Aes128,
    mac: &Cmac<Aes128>,
    header: &[u8; 9],
    payload: &mut [u8],
) -> [u8; 4] {
    let iv = [0u8; 16];
    let mut ctr = Ctr::from_core(ctr::CtrCore::inner_iv_init(aes.clone(), &iv.into()));
    ctr.apply_keystream(payload);
    let mut m = mac.clone();
    m.update(&[0u8; 8]); // COUNT || BEARER || DIRECTION || 0^26
    m.update(header);
    m.update(payload);
    let t = m.finalize().into_bytes();
    [t[0], t[1], t[2], t[3]]
}

fn nea2_nia2(c: &mut Criterion) {
    let cipher = ours(Suite::NEA2_NIA2);
    let aes = Aes128::new(&[7u8; 16].into());
    let mac = <Cmac<Aes128> as KeyInit>::new(&[8u8; 16].into());
    let header = [0u8; 9];
    let mut g = c.benchmark_group("nea2-nia2");
    for size in SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        let mut buf = vec![0x5a; cipher.message_len(size)];
        g.bench_with_input(BenchmarkId::new("protect/ours", size), &size, |b, &n| {
            b.iter(|| {
                cipher
                    .seal_in_place(Ksi(1), Direction::Uplink, 7, black_box(&mut buf), n)
                    .unwrap()
            })
        });
        let mut payload = vec![0x5a; size];
        g.bench_with_input(BenchmarkId::new("protect/bare", size), &size, |b, _| {
            b.iter(|| bare_ctr_cmac(&aes, &mac, &header, black_box(&mut payload)))
        });
        let mut msg = vec![0u8; cipher.message_len(size)];
        cipher
            .seal(Ksi(1), Direction::Uplink, 7, &vec![0x5a; size], &mut msg)
            .unwrap();
        g.bench_with_input(BenchmarkId::new("unprotect/ours", size), &size, |b, _| {
            b.iter_batched_ref(
                || msg.clone(),
                |m| cipher.open_in_place(m).unwrap(),
                BatchSize::SmallInput,
            )
        });
        // Bare unprotect does the same work as bare protect (MAC, then CTR).
        g.bench_with_input(BenchmarkId::new("unprotect/bare", size), &size, |b, _| {
            b.iter_batched_ref(
                || payload.clone(),
                |m| bare_ctr_cmac(&aes, &mac, &header, m),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, gcm, nea2_nia2);
criterion_main!(benches);
