//! The EESE's session table: memory per session and the time to expire
//! 1,000,000 te2e timers. Run: `cargo bench --bench table`.
//!
//! Memory is counted by a counting global allocator around building the
//! table, divided by the number of sessions (the printed "bytes/session").

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ciot_e2e::endpoint::{Config, EeseSession, EeseTable, Event, Instant, TableSink};
use ciot_e2e::kdf::{Rand, RootBytes, RootKey, RootKind};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY-free: delegates to the system allocator and only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

struct Quiet(usize);
impl TableSink<u32> for Quiet {
    fn transmit(&mut self, _: &u32, _: &[u8]) {}
    fn event(&mut self, _: &u32, e: Event<'_>) {
        if let Event::KeysExpired { .. } = e {
            self.0 += 1;
        }
    }
}

fn build(n: u32) -> EeseTable<u32> {
    let cfg = Config {
        trigger_attempts: 0,
        te2e: Duration::from_secs(60),
        ..Config::default()
    };
    let mut t = EeseTable::with_capacity(cfg, n as usize);
    let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes([7; 32]));
    let mut r = || Some(Rand([1; 16]));
    let mut q = Quiet(0);
    for ue in 0..n {
        t.insert(ue, root.clone(), Some(1 + ue % 3600));
        t.rekey(Instant(0), &ue, &mut r, &mut q);
    }
    t
}

fn memory() {
    const N: u32 = 100_000;
    let before = LIVE.load(Ordering::Relaxed);
    let t = build(N);
    let after = LIVE.load(Ordering::Relaxed);
    println!(
        "table memory: {} sessions, {} bytes/session (size_of EeseSession = {} bytes, {} timers queued)",
        N,
        (after - before) / N as usize,
        std::mem::size_of::<EeseSession>(),
        t.queued_timers()
    );
}

fn expire(c: &mut Criterion) {
    memory();
    let mut g = c.benchmark_group("table");
    g.sample_size(10);
    g.bench_function("expire 1M te2e timers", |b| {
        b.iter_batched(
            || build(1_000_000),
            |mut t| {
                let mut q = Quiet(0);
                t.handle_timeout(Instant(u64::MAX / 2), &mut q);
                assert_eq!(q.0, 1_000_000);
                t
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, expire);
criterion_main!(benches);
