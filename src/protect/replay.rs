//! Replay protection and key-use limits, per keyset and direction.
//!
//! The receiver keeps a [`ReplayWindow`] with the semantics of RFC 8613 7.4:
//! [`ReplayWindow::check`] runs before the message is verified and changes
//! nothing; [`ReplayWindow::accept`] runs only after the MAC or tag verified
//! and records the sequence number. A message up to 63 numbers behind the
//! highest accepted one is accepted once if it has not been seen; anything
//! further behind is [`Error::TooOld`], anything seen is [`Error::Replayed`].
//!
//! The sender keeps a [`SendCounter`]: sequence numbers 0, 1, ... `u32::MAX`,
//! then [`Error::SequenceExhausted`], with [`SendCounter::rekey_soon`] raised
//! at a soft limit so a new keyset can be derived before the space runs out.
//!
//! Both expose their whole state through accessors and rebuild from it, so
//! endpoints can persist them across restarts.

use super::Error;

/// Number of sequence numbers the replay window covers: the highest accepted
/// one and the 63 below it.
pub const WINDOW: u32 = 64;

/// Receiver-side replay window of [`WINDOW`] sequence numbers.
///
/// Bit `i` of the bitmap records that `highest - i` was accepted; bit 0 is
/// the highest accepted sequence number itself.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ReplayWindow {
    highest: Option<u32>,
    bitmap: u64,
}

impl ReplayWindow {
    /// A window that has accepted nothing yet: any sequence number, 0
    /// included, passes [`ReplayWindow::check`].
    #[must_use]
    pub const fn new() -> Self {
        ReplayWindow {
            highest: None,
            bitmap: 0,
        }
    }

    /// Whether `seq` would be accepted now. Changes nothing.
    ///
    /// # Errors
    /// - [`Error::Replayed`] when `seq` was already accepted;
    /// - [`Error::TooOld`] when `seq` is [`WINDOW`] or more behind the highest
    ///   accepted sequence number.
    pub const fn check(&self, seq: u32) -> Result<(), Error> {
        let Some(highest) = self.highest else {
            return Ok(());
        };
        if seq > highest {
            return Ok(());
        }
        let behind = highest - seq;
        if behind >= WINDOW {
            return Err(Error::TooOld {
                seq,
                lowest: highest - (WINDOW - 1),
            });
        }
        if self.bitmap & (1u64 << behind) != 0 {
            return Err(Error::Replayed { seq });
        }
        Ok(())
    }

    /// Records `seq` as received. Call it only after the message's MAC or tag
    /// verified.
    ///
    /// The check of [`ReplayWindow::check`] is repeated here, and the state
    /// only changes when it passes, so the update is all-or-nothing.
    ///
    /// # Errors
    /// As [`ReplayWindow::check`]; the window is then unchanged.
    pub const fn accept(&mut self, seq: u32) -> Result<(), Error> {
        if let Err(e) = self.check(seq) {
            return Err(e);
        }
        match self.highest {
            Some(highest) if seq <= highest => {
                // Inside the window (check passed): mark it.
                self.bitmap |= 1u64 << (highest - seq);
            }
            Some(highest) => {
                let shift = seq - highest;
                self.bitmap = if shift >= WINDOW {
                    1
                } else {
                    (self.bitmap << shift) | 1
                };
                self.highest = Some(seq);
            }
            None => {
                self.highest = Some(seq);
                self.bitmap = 1;
            }
        }
        Ok(())
    }

    /// The highest accepted sequence number, `None` before the first.
    #[must_use]
    pub const fn highest(&self) -> Option<u32> {
        self.highest
    }

    /// The window bitmap: bit `i` set means `highest - i` was accepted.
    #[must_use]
    pub const fn bitmap(&self) -> u64 {
        self.bitmap
    }

    /// The lowest sequence number the window can still accept (0 before the
    /// first message or while fewer than [`WINDOW`] numbers lie below the
    /// highest).
    #[must_use]
    pub const fn lowest(&self) -> u32 {
        match self.highest {
            Some(h) => h.saturating_sub(WINDOW - 1),
            None => 0,
        }
    }

    /// Rebuilds a window from [`ReplayWindow::highest`] and
    /// [`ReplayWindow::bitmap`].
    ///
    /// # Errors
    /// [`Error::BadReplayState`] when the pair could not have come from a
    /// window: a bitmap without a highest, a highest not marked in bit 0, or
    /// bits for sequence numbers below 0.
    pub const fn restore(highest: Option<u32>, bitmap: u64) -> Result<Self, Error> {
        let consistent = match highest {
            None => bitmap == 0,
            Some(h) => bitmap & 1 == 1 && (h >= WINDOW - 1 || bitmap >> (h + 1) == 0),
        };
        if consistent {
            Ok(ReplayWindow { highest, bitmap })
        } else {
            Err(Error::BadReplayState { highest, bitmap })
        }
    }
}

/// Default soft limit of [`SendCounter`]: half the sequence-number space.
pub const DEFAULT_SOFT_LIMIT: u32 = 1 << 31;

/// Sender-side sequence numbers for one keyset and direction.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SendCounter {
    /// The next sequence number to hand out; `None` once all are used.
    next: Option<u32>,
    soft_limit: u32,
}

impl Default for SendCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl SendCounter {
    /// A counter starting at 0 with [`DEFAULT_SOFT_LIMIT`].
    #[must_use]
    pub const fn new() -> Self {
        Self::with_soft_limit(DEFAULT_SOFT_LIMIT)
    }

    /// A counter starting at 0 that asks for a rekey once `soft_limit`
    /// sequence numbers have been used.
    #[must_use]
    pub const fn with_soft_limit(soft_limit: u32) -> Self {
        SendCounter {
            next: Some(0),
            soft_limit,
        }
    }

    /// Hands out the next sequence number.
    ///
    /// # Errors
    /// [`Error::SequenceExhausted`] once `u32::MAX` has been handed out; the
    /// keyset must then be replaced.
    pub const fn next(&mut self) -> Result<u32, Error> {
        match self.next {
            Some(seq) => {
                self.next = seq.checked_add(1);
                Ok(seq)
            }
            None => Err(Error::SequenceExhausted),
        }
    }

    /// True once `soft_limit` sequence numbers have been used (the next one
    /// is at or past the limit) or all are used: time to derive a new keyset.
    #[must_use]
    pub const fn rekey_soon(&self) -> bool {
        match self.next {
            Some(n) => n >= self.soft_limit,
            None => true,
        }
    }

    /// The sequence number [`SendCounter::next`] will return, `None` when
    /// exhausted.
    #[must_use]
    pub const fn peek(&self) -> Option<u32> {
        self.next
    }

    /// The soft limit.
    #[must_use]
    pub const fn soft_limit(&self) -> u32 {
        self.soft_limit
    }

    /// Rebuilds a counter from [`SendCounter::peek`] and
    /// [`SendCounter::soft_limit`]. Any pair is valid.
    #[must_use]
    pub const fn restore(next: Option<u32>, soft_limit: u32) -> Self {
        SendCounter { next, soft_limit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_message_with_seq_zero_is_accepted() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check(0), Ok(()));
        assert_eq!(w.accept(0), Ok(()));
        assert_eq!(w.highest(), Some(0));
        assert_eq!(w.accept(0), Err(Error::Replayed { seq: 0 }));
    }

    #[test]
    fn check_does_not_change_state() {
        let mut w = ReplayWindow::new();
        w.accept(10).unwrap();
        let before = w;
        let _ = w.check(11);
        let _ = w.check(10);
        let _ = w.check(3);
        assert_eq!(w, before);
    }

    #[test]
    fn failed_accept_does_not_change_state() {
        let mut w = ReplayWindow::new();
        w.accept(100).unwrap();
        let before = w;
        assert_eq!(w.accept(100), Err(Error::Replayed { seq: 100 }));
        assert_eq!(
            w.accept(36),
            Err(Error::TooOld {
                seq: 36,
                lowest: 37
            })
        );
        assert_eq!(w, before);
    }

    #[test]
    fn late_message_inside_window_is_accepted_once() {
        let mut w = ReplayWindow::new();
        w.accept(100).unwrap();
        assert_eq!(w.accept(37), Ok(()), "63 behind is the window's edge");
        assert_eq!(w.accept(37), Err(Error::Replayed { seq: 37 }));
        assert_eq!(w.accept(99), Ok(()));
        assert_eq!(w.highest(), Some(100));
    }

    #[test]
    fn sixty_four_behind_is_too_old() {
        let mut w = ReplayWindow::new();
        w.accept(64).unwrap();
        assert_eq!(w.check(1), Ok(()));
        assert_eq!(w.check(0), Err(Error::TooOld { seq: 0, lowest: 1 }));
    }

    #[test]
    fn jump_forward_shifts_the_window() {
        let mut w = ReplayWindow::new();
        w.accept(5).unwrap();
        w.accept(6).unwrap();
        w.accept(70).unwrap(); // 6 is now 64 behind
        assert_eq!(w.check(6), Err(Error::TooOld { seq: 6, lowest: 7 }));
        assert_eq!(w.check(7), Ok(()));
        w.accept(1_000_000).unwrap();
        assert_eq!(w.bitmap(), 1);
        assert_eq!(w.check(999_937), Ok(()));
        assert_eq!(
            w.check(999_936),
            Err(Error::TooOld {
                seq: 999_936,
                lowest: 999_937
            })
        );
    }

    #[test]
    fn shifted_bits_keep_marking_old_numbers() {
        let mut w = ReplayWindow::new();
        w.accept(10).unwrap();
        w.accept(12).unwrap();
        assert_eq!(w.bitmap(), 0b101);
        assert_eq!(w.check(10), Err(Error::Replayed { seq: 10 }));
        assert_eq!(w.check(11), Ok(()));
    }

    #[test]
    fn top_of_the_sequence_space_is_usable() {
        let mut w = ReplayWindow::new();
        w.accept(u32::MAX).unwrap();
        assert_eq!(w.accept(u32::MAX), Err(Error::Replayed { seq: u32::MAX }));
        assert_eq!(w.lowest(), u32::MAX - 63);
    }

    #[test]
    fn restore_round_trips_and_rejects_inconsistent_state() {
        let mut w = ReplayWindow::new();
        w.accept(3).unwrap();
        w.accept(1).unwrap();
        assert_eq!(ReplayWindow::restore(w.highest(), w.bitmap()), Ok(w));
        assert_eq!(ReplayWindow::restore(None, 0), Ok(ReplayWindow::new()));
        assert!(ReplayWindow::restore(None, 1).is_err());
        assert!(
            ReplayWindow::restore(Some(5), 0b10).is_err(),
            "highest not marked"
        );
        assert!(
            ReplayWindow::restore(Some(3), 0b1_0001).is_err(),
            "bit below seq 0"
        );
        assert!(ReplayWindow::restore(Some(3), 0b1001).is_ok());
        assert!(ReplayWindow::restore(Some(63), u64::MAX).is_ok());
        assert!(ReplayWindow::restore(Some(62), u64::MAX).is_err());
    }

    #[test]
    fn send_counter_starts_at_zero_and_counts_up() {
        let mut c = SendCounter::new();
        assert_eq!(c.next(), Ok(0));
        assert_eq!(c.next(), Ok(1));
        assert_eq!(c.peek(), Some(2));
        assert!(!c.rekey_soon());
    }

    #[test]
    fn send_counter_refuses_past_u32_max() {
        let mut c = SendCounter::restore(Some(u32::MAX - 1), DEFAULT_SOFT_LIMIT);
        assert_eq!(c.next(), Ok(u32::MAX - 1));
        assert_eq!(c.next(), Ok(u32::MAX));
        assert_eq!(c.next(), Err(Error::SequenceExhausted));
        assert_eq!(c.next(), Err(Error::SequenceExhausted));
        assert_eq!(c.peek(), None);
        assert!(c.rekey_soon());
    }

    #[test]
    fn rekey_soon_rises_at_the_soft_limit() {
        let mut c = SendCounter::with_soft_limit(3);
        for _ in 0..3 {
            assert!(!c.rekey_soon());
            c.next().unwrap();
        }
        assert!(c.rekey_soon());
        assert!(SendCounter::restore(Some(DEFAULT_SOFT_LIMIT), DEFAULT_SOFT_LIMIT).rekey_soon());
        assert!(
            !SendCounter::restore(Some(DEFAULT_SOFT_LIMIT - 1), DEFAULT_SOFT_LIMIT).rekey_soon()
        );
    }
}
