//! Endpoint time from the system clock.

use std::time::{Instant as StdInstant, SystemTime, UNIX_EPOCH};

use core::cell::Cell;

use crate::endpoint::Instant;

/// Endpoint time: milliseconds since the UNIX epoch, from the system clock.
///
/// It must survive restarts: an EESE session made or restored issues its
/// first trigger counter at or above `(now_ms + 1) * 1024` (the endpoint's
/// counter floor), so an EESE whose state was lost or rolled back never
/// issues a counter again, even with a RAND source that repeats. Time since
/// the process started would begin at 0 after every restart and give no
/// floor.
///
/// It never goes back within the process: when the system clock steps back,
/// endpoint time goes on from the last value at the rate of the monotonic
/// clock (it neither repeats nor stands still, so timers keep running) until
/// the system clock catches up. A system clock set back *across* a restart
/// weakens only that floor; the counter reserve still keeps the counters of
/// a session restored from its latest snapshot above every one it issued.
#[derive(Debug)]
pub struct SystemClock {
    /// When the clock was made (for log lines).
    started: StdInstant,
    /// The last time handed out that followed the system clock, and when
    /// (monotonic): endpoint time never falls below it plus the monotonic
    /// time since.
    anchor: Cell<(u64, StdInstant)>,
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl SystemClock {
    /// A clock starting now.
    #[must_use]
    pub fn new() -> Self {
        let now = StdInstant::now();
        SystemClock {
            started: now,
            anchor: Cell::new((0, now)),
        }
    }

    /// Milliseconds since the UNIX epoch from the system clock (0 before it).
    fn wall_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Endpoint time now.
    #[must_use]
    pub fn now(&self) -> Instant {
        Instant::from_millis(self.at(Self::wall_ms(), StdInstant::now()))
    }

    /// Endpoint time when the system clock says `wall` ms and the monotonic
    /// clock `mono` (never earlier than at the previous call).
    fn at(&self, wall: u64, mono: StdInstant) -> u64 {
        let (ms, since) = self.anchor.get();
        let elapsed = mono.saturating_duration_since(since).as_millis();
        let flowed = ms.saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX));
        if wall >= flowed {
            self.anchor.set((wall, mono));
            wall
        } else {
            flowed
        }
    }

    /// Seconds since the clock was made, for transcripts.
    #[must_use]
    pub fn secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The monotonic instant at which endpoint time reaches `t` (now if it
    /// has): for a caller that sleeps until the endpoint's next timer.
    #[must_use]
    pub fn deadline(&self, t: Instant) -> StdInstant {
        let now = self.now();
        StdInstant::now()
            + core::time::Duration::from_millis(t.as_millis().saturating_sub(now.as_millis()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    #[test]
    fn the_clock_follows_the_system_clock_and_never_goes_back_when_it_steps_back() {
        let c = SystemClock::new();
        let t0 = StdInstant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Milliseconds since the UNIX epoch, as the system clock says.
        let epoch = 1_750_000_000_000;
        assert_eq!(c.at(epoch, at(0)), epoch);
        assert_eq!(c.at(epoch + 10, at(10)), epoch + 10);
        // The system clock steps back an hour: time goes on from where it
        // was, at the monotonic clock's rate (timers keep running).
        assert_eq!(c.at(epoch + 10 - 3_600_000, at(20)), epoch + 20);
        assert_eq!(c.at(epoch + 30 - 3_600_000, at(40)), epoch + 40);
        // Many calls within a millisecond do not hold it back.
        for _ in 0..5 {
            assert_eq!(c.at(epoch, at(40)), epoch + 40);
        }
        assert_eq!(c.at(epoch, at(100)), epoch + 100);
        // A step forward is followed (timers only run early), and the
        // system clock is followed again once it is ahead.
        assert_eq!(c.at(epoch + 5_000, at(110)), epoch + 5_000);
        assert_eq!(c.at(epoch + 5_001, at(111)), epoch + 5_001);
    }

    #[test]
    fn the_clock_is_time_since_the_unix_epoch_so_it_survives_a_restart() {
        // A restarted process's first reading is not below the last one of
        // the process before it (the counter floor depends on it).
        let before = SystemClock::new().now();
        let after = SystemClock::new().now();
        assert!(after >= before);
        // 2020-01-01 in ms: far above anything "time since start" gives.
        assert!(before.as_millis() > 1_577_836_800_000, "{before:?}");
    }
}
