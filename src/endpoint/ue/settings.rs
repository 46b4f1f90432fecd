//! A UE's configuration as the UE keeps it: intervals in whole
//! milliseconds, which is all the timers use, in 8 octets each instead of a
//! `Duration`'s 16 (the UE state is a device's RAM).

use core::time::Duration;

use crate::kdf::KdfProfile;

use super::super::config::UeConfig;
use super::super::time::millis;

/// An interval that is off: `Option::None` of a [`UeConfig`] field.
const OFF: u64 = u64::MAX;

/// [`UeConfig`], compact. Intervals saturate at `u64::MAX` milliseconds,
/// which the timers treat as never, as they did the `Duration`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    pub profile: KdfProfile,
    pub grace_ms: u64,
    probe_after_ms: u64,
    keepalive_ms: u64,
    pub hello_backoff_ms: u64,
    pub hello_backoff_max_ms: u64,
}

fn optional(ms: u64) -> Option<u64> {
    (ms != OFF).then_some(ms)
}

impl Settings {
    pub(crate) fn new(cfg: &UeConfig) -> Self {
        Settings {
            profile: cfg.profile,
            grace_ms: millis(cfg.grace),
            probe_after_ms: cfg.probe_after.map_or(OFF, millis),
            keepalive_ms: cfg.keepalive.map_or(OFF, millis),
            hello_backoff_ms: millis(cfg.hello_backoff),
            hello_backoff_max_ms: millis(cfg.hello_backoff_max),
        }
    }

    /// The configuration these settings were made from, to the millisecond.
    pub(crate) fn config(&self) -> UeConfig {
        UeConfig {
            profile: self.profile,
            grace: Duration::from_millis(self.grace_ms),
            probe_after: self.probe_after().map(Duration::from_millis),
            keepalive: self.keepalive().map(Duration::from_millis),
            hello_backoff: Duration::from_millis(self.hello_backoff_ms),
            hello_backoff_max: Duration::from_millis(self.hello_backoff_max_ms),
        }
    }

    /// After an uplink message, how long to wait for the EESE before a hello.
    pub(crate) fn probe_after(&self) -> Option<u64> {
        optional(self.probe_after_ms)
    }

    /// After how long without anything authentic a hello goes out.
    pub(crate) fn keepalive(&self) -> Option<u64> {
        optional(self.keepalive_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_give_back_the_configuration_to_the_millisecond() {
        let d = UeConfig::default();
        assert_eq!(Settings::new(&d).config(), d);
        let off = UeConfig {
            probe_after: None,
            keepalive: None,
            grace: Duration::from_micros(1500),
            ..d
        };
        let back = Settings::new(&off).config();
        assert_eq!((back.probe_after, back.keepalive), (None, None));
        assert_eq!(back.grace, Duration::from_millis(1));
    }
}
