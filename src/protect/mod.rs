//! Data protection: the 128-NEA2/NIA2 and AES-128-GCM suites, the replay
//! window and key-use limits. Nothing here allocates.
//!
//! Each suite is built with its feature (`suite-aes-gcm`, `suite-nea2-nia2`,
//! both default); a suite that is not built has no keys
//! ([`Error::UnknownSuite`]).

#[cfg(feature = "suite-aes-gcm")]
pub mod aes_gcm;
#[cfg(feature = "suite-nea2-nia2")]
pub mod nea2_nia2;
pub mod replay;
pub mod suite;

use crate::wire::{self, Suite};

/// Why protection or unprotection failed. A failure changes no state.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// BEARER is 5 bits (TS 33.401 B.1.1).
    #[error("BEARER must be 0..=31, got {0}")]
    BadBearer(u8),
    /// DIRECTION is one bit.
    #[error("DIRECTION must be 0 (uplink) or 1 (downlink), got {0}")]
    BadDirection(u8),
    /// LENGTH in bits exceeds the data given.
    #[error("{bits} bits requested but the data holds only {available}")]
    BitsTooLong {
        /// Bits requested.
        bits: usize,
        /// Bits the data holds (8 × its length).
        available: usize,
    },
    /// The data holds more octets than LENGTH needs: it must be exactly
    /// `ceil(bits / 8)` octets.
    #[error(
        "a LENGTH of {bits} bits needs ceil({bits} / 8) = {} octets of data, got {octets}; \
         trim the data or raise the bit length",
        .bits.div_ceil(8)
    )]
    DataLongerThanBits {
        /// Bits requested.
        bits: usize,
        /// Octets given.
        octets: usize,
    },
    /// The MAC or tag does not verify; nothing was decrypted or changed.
    #[error("authentication failed: the MAC or tag does not match")]
    BadTag,
    /// The input exceeds what AES-GCM may process under one nonce (NIST
    /// SP 800-38D 5.2.1.1: plaintext at most 2^36 - 32 octets, AAD at most
    /// 2^61 - 1 octets).
    #[error(
        "AES-GCM takes at most 2^36 - 32 octets of data and 2^61 - 1 of AAD, got {data} and {aad}; \
         split the data into smaller messages"
    )]
    GcmTooLong {
        /// Octets of plaintext or ciphertext given.
        data: usize,
        /// Octets of associated data given.
        aad: usize,
    },
    /// The sequence number was already accepted in this window: a replay or a
    /// duplicate. The message was dropped and nothing changed.
    #[error(
        "sequence number {seq} was already accepted: the message is a replay or a duplicate \
         and was dropped"
    )]
    Replayed {
        /// The rejected sequence number.
        seq: u32,
    },
    /// The sequence number lies left of the replay window, so a replay cannot
    /// be told apart from a late message. The message was dropped.
    #[error(
        "sequence number {seq} is older than the replay window (lowest still acceptable: {lowest}); \
         the message was dropped"
    )]
    TooOld {
        /// The rejected sequence number.
        seq: u32,
        /// The lowest sequence number the window still accepts.
        lowest: u32,
    },
    /// Every sequence number of the keyset has been used; sending again would
    /// repeat a nonce.
    #[error(
        "all 2^32 sequence numbers of this keyset are used; derive a new keyset before sending"
    )]
    SequenceExhausted,
    /// A replay-window state to restore is inconsistent (it would accept a
    /// sequence number that was already received).
    #[error(
        "replay window state is inconsistent: highest {highest:?} with bitmap {bitmap:#018x} \
         (the highest must be marked received and no bit may lie below sequence number 0)"
    )]
    BadReplayState {
        /// The highest accepted sequence number given.
        highest: Option<u32>,
        /// The window bitmap given.
        bitmap: u64,
    },
    /// The data message is malformed.
    #[error("malformed data message: {0}")]
    Wire(#[from] wire::Error),
    /// A suite this version does not define.
    #[error("unknown suite {0}")]
    UnknownSuite(Suite),
    /// The message names another suite than its keyset's.
    #[error("suite mismatch: the keyset uses {expected}, the message says {got}")]
    SuiteMismatch {
        /// The keyset's suite.
        expected: Suite,
        /// The message's suite.
        got: Suite,
    },
    /// The output buffer cannot hold the message.
    #[error("buffer too small: needed {needed} octets, got {got}")]
    BufferTooSmall {
        /// Octets the message takes.
        needed: usize,
        /// Octets the buffer has.
        got: usize,
    },
    /// The payload does not fit one message.
    #[error("payload of {len} octets exceeds the maximum of {max} for this suite")]
    PayloadTooLong {
        /// Octets given.
        len: usize,
        /// The most a message of this suite carries.
        max: usize,
    },
}
