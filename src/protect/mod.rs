//! Data protection: the 128-NEA2/NIA2 and AES-128-GCM suites, the replay
//! window and key-use limits. Nothing here allocates.

pub mod aes_gcm;
pub mod nea2_nia2;
pub mod replay;

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
    /// The MAC or tag does not verify; nothing was decrypted or changed.
    #[error("authentication failed: the MAC or tag does not match")]
    BadTag,
}
