//! The UE thread's loop: at most `window` UEs have a payload in flight at
//! once, started round robin so every UE's payloads spread over the whole
//! run (and over several keysets); each sweep polls only their sockets, so
//! it costs a few hundred non-blocking receives however many UEs there are.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant as StdInstant};

use super::ue::{Driver, Report, Setup};

/// New payloads started per sweep (a burst larger than the EESE socket's
/// receive buffer would be dropped by the kernel).
const STARTS_PER_SWEEP: usize = 64;
/// A UE whose socket was quiet this long is polled only every
/// `SLOW_POLL`-th sweep until its timer runs out (answers come within a few
/// milliseconds, or not at all).
const QUIET_MS: u64 = 20;
const SLOW_POLL: u64 = 8;
/// Progress lines this often, in ms.
const PROGRESS_MS: u64 = 2_000;

fn millis(start: StdInstant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The UE thread after its run: drain the sockets, then take the report.
pub struct Finished<'a>(Driver<'a>);

/// Runs every UE until each got all its echoes or the deadline passed, then
/// tells the EESE thread to stop. Progress lines go to `progress`.
pub fn run<'a>(s: Setup<'a>, progress: &mut dyn FnMut(&str)) -> Finished<'a> {
    let (start, deadline, window) = (s.start, s.deadline, s.window);
    let (shared, total) = (s.shared, s.layout.rows() as u64);
    let mut d = Driver::new(s);
    let n = d.len();
    let mut active: Vec<usize> = Vec::with_capacity(window);
    let mut cursor = 0usize;
    let mut next_progress = PROGRESS_MS;
    let mut sweep = 0u64;
    loop {
        let now = millis(start);
        if start.elapsed() >= deadline {
            d.stats.deadline_hit = true;
            break;
        }
        d.release(now);
        let mut scanned = 0;
        let mut started = 0;
        while active.len() < window
            && scanned < n
            && started < STARTS_PER_SWEEP
            && d.stats.started < total
        {
            let i = cursor;
            cursor = (cursor + 1) % n;
            scanned += 1;
            if d.can_start(i) {
                d.start(i, now);
                active.push(i);
                started += 1;
            }
        }
        let mut any = false;
        let mut j = 0;
        sweep += 1;
        while let Some(&i) = active.get(j) {
            let quiet = d
                .active_at(i)
                .is_some_and(|at| now.saturating_sub(at) > QUIET_MS);
            if !quiet || (sweep + i as u64) % SLOW_POLL == 0 {
                any |= d.poll(i, now);
            }
            if d.settle(i, now) {
                j += 1;
            } else {
                active.swap_remove(j);
            }
        }
        if active.is_empty() && d.stats.started >= total {
            break;
        }
        if now >= next_progress {
            next_progress += PROGRESS_MS;
            progress(&format!(
                "[{:6.1}s] echoed {}/{total}, in flight {}, retransmitted {}, UE rekeys {}",
                now as f64 / 1000.0,
                d.stats.echoed,
                active.len(),
                d.stats.retransmitted,
                d.rekeys(),
            ));
        }
        if !any {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    shared.stop.store(true, Ordering::Release);
    Finished(d)
}

impl Finished<'_> {
    /// Reads what is still queued for every UE (after the EESE stopped), so
    /// that late injected datagrams are counted too.
    pub fn drain(&mut self, start: StdInstant) {
        let d = &mut self.0;
        let now = millis(start);
        for i in 0..d.len() {
            for _ in 0..8 {
                if !d.poll(i, now) {
                    break;
                }
            }
        }
        d.finish();
    }

    /// The counts and the UEs as they ended.
    #[must_use]
    pub fn report(self) -> Report {
        self.0.report()
    }
}
