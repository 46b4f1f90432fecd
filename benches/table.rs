//! The EESE's session table: memory per session and the time to expire
//! 1,000,000 te2e timers. Run: `cargo bench --bench table`.
//!
//! Memory is what the global allocator holds after building the table and
//! draining its effects (every snapshot acknowledged, every trigger sent),
//! divided by the number of sessions (the printed "bytes/session").
//!
//! A keyset comes into use as a UE takes it: each session is built by a
//! hello of its UE's start (REKEY), the offer that answers it, and the
//! UE's hello naming the offered keyset, from the same address.

use std::alloc::System;
use std::time::Duration;

use ciot_e2e::endpoint::{EESE_SNAPSHOT_LEN, EeseConfig, EeseTable, Event, Instant, KeysetState};
use ciot_e2e::kdf::{KdfProfile, PreparedRoot, Rand, RootBytes, RootKey, RootKind, UeNonce};
use ciot_e2e::wire::{ControlAuth, HelloRepr, Ksi, TriggerPacket};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

type Table = EeseTable<u32, u32, fn() -> Option<Rand>>;

fn rands() -> Option<Rand> {
    Some(Rand([1; 16]))
}

/// A hello of UE `ue`'s start: its identifier is its number.
fn hello(
    auth: &ControlAuth,
    ue: u32,
    seq: u32,
    held: Option<(Ksi, u64)>,
    out: &mut [u8; HelloRepr::MIN_LEN],
) {
    let id = ue.to_be_bytes();
    let mut nonce = [0x4e; 16];
    nonce[..4].copy_from_slice(&id);
    let (ksi, counter) = held.unwrap_or((Ksi(0), 0));
    HelloRepr {
        ksi,
        rekey: held.is_none(),
        counter,
        seq,
        nonce: UeNonce::from_bytes(nonce),
        id: &id,
        tag: [0; 16],
    }
    .emit_signed(auth, out)
    .expect("a 4-octet identifier fits the shortest hello");
}

/// `n` sessions, each with a keyset in use (te2e staggered over an hour),
/// its snapshot acknowledged and its trigger sent.
fn build(n: u32) -> Table {
    let cfg = EeseConfig {
        trigger_attempts: 0,
        te2e: Duration::from_secs(60),
        ..EeseConfig::default()
    };
    let mut t: Table = EeseTable::with_capacity(cfg, rands, n as usize);
    let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes([7; 32]));
    let auth = ControlAuth::new(&PreparedRoot::new(&root, KdfProfile::Ts33220).control_key());
    let now = Instant(0);
    let (mut h, mut out, mut snap) = (
        [0u8; HelloRepr::MIN_LEN],
        [0u8; 256],
        [0u8; EESE_SNAPSHOT_LEN],
    );
    for ue in 0..n {
        t.insert(
            ue,
            root.clone(),
            Some(Duration::from_secs(u64::from(1 + ue % 3600))),
        );
        // The UE's first hello; the offer answers it.
        hello(&auth, ue, 0, None, &mut h);
        t.handle_datagram(now, &ue, &mut h, |_| Some((ue, root.clone())))
            .expect("an authentic hello");
        let (_, to, tx) = t.poll_transmit(now, &mut out).expect("the offer");
        assert_eq!(to, ue);
        let offer = TriggerPacket::new_checked(&out[..tx.len]).expect("a trigger");
        let held = Some((offer.ksi(), offer.counter()));
        // The UE names the offered keyset from the same address: in use.
        hello(&auth, ue, 1, held, &mut h);
        t.handle_datagram(now, &ue, &mut h, |_| Some((ue, root.clone())))
            .expect("the hello naming the offer");
        while let Some((id, p)) = t.poll_persist(&mut snap) {
            let _ = t.persisted(&id, p);
        }
        while t.poll_transmit(now, &mut out).is_some() {}
    }
    while t.poll_event().is_some() {}
    // The bench is only meaningful if every session has a te2e to expire.
    for ue in [0, n / 2, n - 1] {
        let status = t.status(now, &ue).expect("a session");
        assert!(
            matches!(
                status.keyset.map(|k| k.state),
                Some(KeysetState::Valid { .. })
            ),
            "UE {ue}: {status:?}"
        );
    }
    t
}

fn memory() {
    for n in [100_000u32, 1_000_000] {
        let region = Region::new(GLOBAL);
        let t = build(n);
        let held =
            region.change().bytes_allocated as isize - region.change().bytes_deallocated as isize;
        println!(
            "table memory: {n} sessions, {} bytes/session, {} MiB in all ({} timers queued)",
            held / n as isize,
            held / (1 << 20),
            t.queued_timers()
        );
    }
}

fn expire(c: &mut Criterion) {
    memory();
    let mut g = c.benchmark_group("table");
    g.sample_size(10);
    g.bench_function("expire 1M te2e timers", |b| {
        b.iter_batched(
            || build(1_000_000),
            |mut t| {
                t.handle_timeout(Instant(u64::MAX / 2));
                let mut expired = 0;
                while let Some((_, e)) = t.poll_event() {
                    if let Event::KeysExpired { .. } = e {
                        expired += 1;
                    }
                }
                assert!(expired > 0);
                t
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, expire);
criterion_main!(benches);
