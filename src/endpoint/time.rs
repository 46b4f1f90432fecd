//! The endpoints' one notion of time: an [`Instant`] in milliseconds the
//! caller supplies; spans are [`core::time::Duration`].

use core::time::Duration;

/// A point in time: milliseconds since an epoch the caller chooses. For
/// snapshots that outlive a reboot (they carry te2e deadlines), use a clock
/// that does too; a clock that goes backwards only delays timers.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Instant(pub u64);

impl Instant {
    /// The instant that never comes (a timer that is not set).
    pub const NEVER: Instant = Instant(u64::MAX);

    /// `ms` milliseconds after the epoch.
    #[must_use]
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms)
    }

    /// Milliseconds since the epoch.
    #[must_use]
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// This instant plus `d` (saturating at [`Instant::NEVER`]).
    #[must_use]
    pub fn after(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(millis(d)))
    }

    /// This instant plus `ms` milliseconds (saturating at [`Instant::NEVER`]).
    pub(crate) const fn after_ms(self, ms: u64) -> Instant {
        Instant(self.0.saturating_add(ms))
    }

    /// How long from `self` until `later` (zero when `later` is not later).
    #[must_use]
    pub fn until(self, later: Instant) -> Duration {
        Duration::from_millis(later.0.saturating_sub(self.0))
    }
}

/// A span in whole milliseconds, saturating. (As `as_millis` saturated to
/// 64 bits, without its 128-bit arithmetic, which a 32-bit device pays for
/// in code.)
// Not inlined: an endpoint converts several intervals at construction, and
// one copy of this is smaller on a device than one per call site.
#[inline(never)]
pub(crate) fn millis(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(d.subsec_millis()))
}

/// Whole seconds of a span, at least 1, saturating at `u32::MAX` (the
/// lifetime field of a trigger).
pub(crate) fn lifetime_secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX).max(1)
}

/// A small deterministic generator for back-off jitter, seeded by the
/// caller (SplitMix64's output function: one multiply-xorshift chain per
/// draw, which is all jitter needs; the endpoint has no other randomness).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) const fn new(seed: u64) -> Self {
        Jitter(seed)
    }

    /// `ms` milliseconds scaled by a factor in [0.75, 1.25).
    pub(crate) fn spread(&mut self, ms: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // ms * (3/4 + (z mod 2^10) / 2^11), in integers.
        let frac = z & 0x3ff;
        ms / 4 * 3 + ms.saturating_mul(frac) / 2048
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_quarter_either_side() {
        let mut j = Jitter::new(7);
        for _ in 0..1000 {
            let s = j.spread(4000);
            assert!((3000..5000).contains(&s), "{s}");
        }
    }

    #[test]
    fn millis_is_as_millis_saturated() {
        for d in [
            Duration::ZERO,
            Duration::from_nanos(999_999),
            Duration::from_millis(1),
            Duration::new(1, 999_999_999),
            Duration::from_secs(u64::MAX / 1000),
            Duration::new(u64::MAX / 1000, 807_000_000),
            Duration::new(u64::MAX / 1000, 808_000_000),
            Duration::MAX,
        ] {
            let want = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            assert_eq!(millis(d), want, "{d:?}");
        }
    }

    #[test]
    fn instants_saturate() {
        assert_eq!(Instant(5).after(Duration::MAX), Instant::NEVER);
        assert_eq!(Instant(9).until(Instant(5)), Duration::ZERO);
        assert_eq!(lifetime_secs(Duration::from_millis(10)), 1);
        assert_eq!(lifetime_secs(Duration::MAX), u32::MAX);
    }
}
