//! Endpoint cost through the public API, beside the bare algorithm on the
//! same sizes in the same run. Run: `cargo bench --bench endpoint`.
//!
//! - `endpoint/seal/ours/<size>`: `EeseTable::send` of a payload to a UE
//!   with a usable keyset (snapshots are acknowledged as the table asks for
//!   them, once per `COUNTER_RESERVE` messages, as a server does);
//! - `endpoint/open/ours/<size>`: `Ue::handle_datagram` of a fresh downlink
//!   data message (a copy of the next one the EESE sealed);
//! - `endpoint/{seal,open}/bare/<size>`: `aes-gcm` with a pre-expanded key,
//!   detached in place, with the 9-octet header as AAD and the payload
//!   copied into the message buffer first (as `send` must);
//! - `endpoint/{seal,open}/limit/<size>`: the same with the platform's
//!   fastest AES-128-GCM (`ring`, BoringSSL's assembly), the yardstick of
//!   the endpoint's own cost on std builds (`ours` / `limit`, goal ≤ 1.15;
//!   `ours` uses that backend with the crate's default features).
//!
//! The group `endpoint-nea2-nia2` does the same for 128-NEA2/NIA2 against
//! `Ctr64BE<Aes128>` + `Cmac<Aes128>` (pre-expanded) over the octets
//! 128-NIA2 covers.

use std::hint::black_box;
use std::time::Duration;

use aes::Aes128;
use aes_gcm::Aes128Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit};
use ciot_e2e::endpoint::{
    EESE_SNAPSHOT_LEN, Eese, EeseConfig, EeseTable, Instant, Received, SendError, SendOutcome, Ue,
    UeConfig, UeId,
};
use ciot_e2e::kdf::{Rand, RootBytes, RootKey, RootKind, UeNonce};
use ciot_e2e::wire::Suite;
use cmac::{Cmac, Mac};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ctr::cipher::{InnerIvInit, StreamCipher};

const SIZES: [usize; 2] = [32, 1024];
const HEADER: usize = 9;

type Table = EeseTable<u32, u32, fn() -> Option<Rand>>;

fn rands() -> Option<Rand> {
    Some(Rand([0x33; 16]))
}

/// The UE's root, the same on both sides.
fn root() -> RootKey {
    RootKey::new(RootKind::IntKey, RootBytes::from_bytes([7; 32]))
}

/// The nonce of the UE's start (a device draws it from its random source).
fn nonce() -> UeNonce {
    UeNonce::from_bytes([0x4e; 16])
}

/// The EESE's settings: a keyset that neither expires nor reaches its soft
/// limit while measured.
fn eese_config(suite: Suite) -> EeseConfig {
    EeseConfig {
        suite,
        te2e: Duration::from_secs(1 << 30),
        soft_limit: u32::MAX,
        ..EeseConfig::default()
    }
}

/// An EESE table with one UE (and `others` idle ones) and that UE, keyed
/// and talking.
struct Setup {
    table: Table,
    ue: Ue<128>,
    now: Instant,
    snap: Vec<u8>,
}

impl Setup {
    fn new(suite: Suite) -> Self {
        let (root, cfg) = (root(), eese_config(suite));
        let table: Table = EeseTable::new(cfg, rands);
        let id = UeId::new(b"bench-ue").unwrap();
        let ue: Ue<128> = Ue::new(UeConfig::default(), root.clone(), id, nonce());
        let now = Instant(1_000);
        let mut s = Setup {
            table,
            ue,
            now,
            snap: vec![0; EESE_SNAPSHOT_LEN],
        };
        // The UE says hello; the EESE answers with an offer.
        let mut buf = [0u8; 256];
        let t = s.ue.poll_transmit(now, &mut buf).unwrap().expect("hello");
        let mut hello = buf[..t.len].to_vec();
        let (_, r) = s
            .table
            .handle_datagram(now, &1, &mut hello, |_| Some((0, root.clone())))
            .expect("hello accepted");
        assert!(matches!(r, Received::Control(_)));
        s.settle_eese();
        let (_, _, t) = s.table.poll_transmit(now, &mut buf).expect("trigger");
        let mut trigger = buf[..t.len].to_vec();
        s.ue.handle_datagram(now, &mut trigger)
            .expect("trigger accepted");
        // The UE uses the offer (one uplink message under it, after a
        // confirming hello if it sends one): the EESE takes it into use.
        s.ue.send(now, b"up").unwrap();
        let mut delivered = 0;
        while let Some(t) = s.ue.poll_transmit(now, &mut buf).unwrap() {
            let mut d = buf[..t.len].to_vec();
            let (_, r) = s
                .table
                .handle_datagram(now, &1, &mut d, |_| Some((0, root.clone())))
                .expect("the UE's use of the offer accepted");
            delivered += usize::from(matches!(r, Received::Data(_)));
        }
        assert_eq!(delivered, 1, "uplink delivered");
        while s.ue.poll_event().is_some() {}
        s.settle_eese();
        while s.table.poll_transmit(now, &mut buf).is_some() {}
        s
    }

    fn settle_eese(&mut self) {
        settle(&mut self.table, &mut self.snap);
    }

    fn seal(&mut self, payload: &[u8], out: &mut [u8]) -> usize {
        seal(&mut self.table, &mut self.snap, self.now, payload, out)
    }
}

fn settle(table: &mut Table, snap: &mut [u8]) {
    while let Some((id, p)) = table.poll_persist(snap) {
        table.persisted(&id, p).unwrap();
    }
}

/// EESE `send`, acknowledging a snapshot when the table asks for one.
fn seal(table: &mut Table, snap: &mut [u8], now: Instant, payload: &[u8], out: &mut [u8]) -> usize {
    match table.send(now, &0, payload, out) {
        Ok(SendOutcome::Sent { sealed, .. }) => sealed.len,
        Ok(SendOutcome::Queued) => {
            // The counter reservation ran out: persist, then the queued
            // payload goes out by `poll_transmit`.
            settle(table, snap);
            table.poll_transmit(now, out).expect("queued").2.len
        }
        Err(e) => panic!("send: {e}"),
    }
}

/// The one-UE `Eese`, keyed with `ue` talking to it.
fn single(suite: Suite) -> Eese<fn() -> Option<Rand>> {
    let (root, cfg) = (root(), eese_config(suite));
    let mut eese = Eese::new(cfg, root.clone(), rands as fn() -> Option<Rand>);
    let mut ue: Ue<128> = Ue::new(
        UeConfig::default(),
        root,
        UeId::new(b"bench-ue").unwrap(),
        nonce(),
    );
    let now = Instant(1_000);
    let (mut a, mut b) = ([0u8; 512], [0u8; 512]);
    let mut snap = [0u8; EESE_SNAPSHOT_LEN];
    let mut delivered = 0;
    ue.send(now, b"up").unwrap();
    for _ in 0..4 {
        while let Some(t) = ue.poll_transmit(now, &mut a).unwrap() {
            if let Ok(Received::Data(_)) = eese.handle_datagram(now, &mut a[..t.len]) {
                delivered += 1;
            }
        }
        while ue.poll_event().is_some() {}
        while let Some(p) = eese.poll_persist(&mut snap) {
            eese.persisted(p).unwrap();
        }
        while let Some(t) = eese.poll_transmit(now, &mut b).unwrap() {
            let _ = ue.handle_datagram(now, &mut b[..t.len]);
        }
        while eese.poll_event().is_some() {}
    }
    assert_eq!(delivered, 1, "uplink delivered");
    eese
}

fn single_seal(eese: &mut Eese<fn() -> Option<Rand>>, payload: &[u8], out: &mut [u8]) -> usize {
    loop {
        match eese.send(Instant(1_000), payload, out) {
            Ok(s) => return s.len,
            Err(SendError::EffectsPending) => {
                let mut snap = [0u8; EESE_SNAPSHOT_LEN];
                while let Some(p) = eese.poll_persist(&mut snap) {
                    eese.persisted(p).unwrap();
                }
                let mut scratch = [0u8; 2048];
                while eese
                    .poll_transmit(Instant(1_000), &mut scratch)
                    .unwrap()
                    .is_some()
                {}
            }
            Err(e) => panic!("send: {e}"),
        }
    }
}

fn endpoint(c: &mut Criterion, group: &str, suite: Suite, bare: &Bare, limit: Option<&Limit>) {
    let mut g = c.benchmark_group(group);
    for size in SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        let payload = vec![0x5a; size];
        let mut s = Setup::new(suite);
        let mut out = vec![0u8; size + 64];
        g.bench_with_input(BenchmarkId::new("seal/ours", size), &size, |b, _| {
            b.iter(|| s.seal(black_box(&payload), &mut out))
        });
        let mut one = single(suite);
        g.bench_with_input(BenchmarkId::new("seal/single", size), &size, |b, _| {
            b.iter(|| single_seal(&mut one, black_box(&payload), &mut out))
        });
        let len = HEADER + size + suite.tag_len();
        let mut msg = vec![0u8; len];
        g.bench_with_input(BenchmarkId::new("seal/bare", size), &size, |b, _| {
            b.iter(|| bare.seal(black_box(&payload), &mut msg))
        });
        if let Some(limit) = limit {
            g.bench_with_input(BenchmarkId::new("seal/limit", size), &size, |b, _| {
                b.iter(|| limit.seal(black_box(&payload), &mut msg))
            });
        }
        let Setup {
            mut table,
            mut ue,
            now,
            mut snap,
        } = Setup::new(suite);
        g.bench_with_input(BenchmarkId::new("open/ours", size), &size, |b, _| {
            b.iter_batched_ref(
                || {
                    let n = seal(&mut table, &mut snap, now, &payload, &mut out);
                    out[..n].to_vec()
                },
                |m| match ue.handle_datagram(now, m) {
                    Ok(Received::Data(d)) => d.payload.len(),
                    other => panic!("open: {other:?}"),
                },
                BatchSize::SmallInput,
            )
        });
        let n = bare.seal(&payload, &mut msg);
        assert_eq!(n, len);
        g.bench_with_input(BenchmarkId::new("open/bare", size), &size, |b, _| {
            b.iter_batched_ref(|| msg.clone(), |m| bare.open(m), BatchSize::SmallInput)
        });
        if let Some(limit) = limit {
            let n = limit.seal(&payload, &mut msg);
            assert_eq!(n, len);
            g.bench_with_input(BenchmarkId::new("open/limit", size), &size, |b, _| {
                b.iter_batched_ref(|| msg.clone(), |m| limit.open(m), BatchSize::SmallInput)
            });
        }
    }
    g.finish();
}

/// The algorithms alone, keys expanded once.
// One value per run: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Bare {
    Gcm(Aes128Gcm),
    Nea2Nia2(Aes128, Cmac<Aes128>),
}

type Ctr = ctr::Ctr64BE<Aes128>;

impl Bare {
    fn seal(&self, payload: &[u8], msg: &mut [u8]) -> usize {
        let n = payload.len();
        let (head, rest) = msg.split_at_mut(HEADER);
        let (body, tag) = rest.split_at_mut(n);
        body.copy_from_slice(payload);
        match self {
            Bare::Gcm(aead) => {
                let t = aead
                    .encrypt_inout_detached(&[0u8; 12].into(), head, body.into())
                    .unwrap();
                tag.copy_from_slice(&t);
            }
            Bare::Nea2Nia2(aes, mac) => {
                let mut ctr =
                    Ctr::from_core(ctr::CtrCore::inner_iv_init(aes.clone(), &[0u8; 16].into()));
                ctr.apply_keystream(body);
                tag.copy_from_slice(&cmac(mac, head, body));
            }
        }
        HEADER + n + tag.len()
    }

    fn open(&self, msg: &mut [u8]) -> usize {
        let (head, rest) = msg.split_at_mut(HEADER);
        match self {
            Bare::Gcm(aead) => {
                let (body, tag) = rest.split_at_mut(rest.len() - 16);
                let tag: &[u8; 16] = (&*tag).try_into().unwrap();
                aead.decrypt_inout_detached(&[0u8; 12].into(), head, body.into(), tag.into())
                    .unwrap();
                body.len()
            }
            Bare::Nea2Nia2(aes, mac) => {
                let (body, tag) = rest.split_at_mut(rest.len() - 4);
                assert_eq!(&cmac(mac, head, body)[..], &tag[..]);
                let mut ctr =
                    Ctr::from_core(ctr::CtrCore::inner_iv_init(aes.clone(), &[0u8; 16].into()));
                ctr.apply_keystream(body);
                body.len()
            }
        }
    }
}

/// The platform's AES-128-GCM alone (`ring`), key expanded once, the
/// header as AAD, detached in place, the payload copied in first.
struct Limit(ring::aead::LessSafeKey);

impl Limit {
    fn new(key: [u8; 16]) -> Self {
        let k = ring::aead::UnboundKey::new(&ring::aead::AES_128_GCM, &key).unwrap();
        Limit(ring::aead::LessSafeKey::new(k))
    }

    fn seal(&self, payload: &[u8], msg: &mut [u8]) -> usize {
        let n = payload.len();
        let (head, rest) = msg.split_at_mut(HEADER);
        let (body, tag) = rest.split_at_mut(n);
        body.copy_from_slice(payload);
        let t = self
            .0
            .seal_in_place_separate_tag(
                ring::aead::Nonce::assume_unique_for_key([0u8; 12]),
                ring::aead::Aad::from(&*head),
                body,
            )
            .unwrap();
        tag.copy_from_slice(t.as_ref());
        HEADER + n + 16
    }

    fn open(&self, msg: &mut [u8]) -> usize {
        let (head, rest) = msg.split_at_mut(HEADER);
        let (body, tag) = rest.split_at_mut(rest.len() - 16);
        let tag: [u8; 16] = (&*tag).try_into().unwrap();
        self.0
            .open_in_place_separate_tag(
                ring::aead::Nonce::assume_unique_for_key([0u8; 12]),
                ring::aead::Aad::from(&*head),
                ring::aead::Tag::from(tag),
                body,
                0..,
            )
            .unwrap()
            .len()
    }
}

fn cmac(mac: &Cmac<Aes128>, head: &[u8], body: &[u8]) -> [u8; 4] {
    let mut m = mac.clone();
    m.update(&[0u8; 8]); // COUNT || BEARER || DIRECTION || 0^26
    m.update(head);
    m.update(body);
    let t = m.finalize().into_bytes();
    [t[0], t[1], t[2], t[3]]
}

fn gcm(c: &mut Criterion) {
    let bare = Bare::Gcm(Aes128Gcm::new(&[7u8; 16].into()));
    let limit = Limit::new([7u8; 16]);
    endpoint(c, "endpoint", Suite::AES_128_GCM, &bare, Some(&limit));
}

fn nea2_nia2(c: &mut Criterion) {
    let bare = Bare::Nea2Nia2(
        Aes128::new(&[7u8; 16].into()),
        <Cmac<Aes128> as KeyInit>::new(&[8u8; 16].into()),
    );
    endpoint(c, "endpoint-nea2-nia2", Suite::NEA2_NIA2, &bare, None);
}

criterion_group!(benches, gcm, nea2_nia2);
criterion_main!(benches);
