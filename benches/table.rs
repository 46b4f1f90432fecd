//! The EESE's session table: memory per session and the time to expire
//! 1,000,000 te2e timers. Run: `cargo bench --bench table`.
//!
//! Memory is what the global allocator holds after building the table and
//! draining its effects (every snapshot acknowledged, every trigger sent),
//! divided by the number of sessions (the printed "bytes/session").

use std::alloc::System;
use std::time::Duration;

use ciot_e2e::endpoint::{EESE_SNAPSHOT_LEN, EeseConfig, EeseTable, Event, Instant};
use ciot_e2e::kdf::{Rand, RootBytes, RootKey, RootKind};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

type Table = EeseTable<u32, u32, fn() -> Option<Rand>>;

fn rands() -> Option<Rand> {
    Some(Rand([1; 16]))
}

/// `n` sessions, each with a keyset (te2e staggered over an hour), its
/// snapshot acknowledged and its trigger sent.
fn build(n: u32) -> Table {
    let cfg = EeseConfig {
        trigger_attempts: 0,
        te2e: Duration::from_secs(60),
        ..EeseConfig::default()
    };
    let mut t: Table = EeseTable::with_capacity(cfg, rands, n as usize);
    let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes([7; 32]));
    for ue in 0..n {
        t.insert(
            ue,
            root.clone(),
            Some(Duration::from_secs(u64::from(1 + ue % 3600))),
        );
        t.rekey(Instant(0), &ue);
    }
    let mut snap = [0u8; EESE_SNAPSHOT_LEN];
    while let Some((id, p)) = t.poll_persist(&mut snap) {
        let _ = t.persisted(&id, p);
    }
    while t.poll_event().is_some() {}
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
