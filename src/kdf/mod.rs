//! Key derivation: the TS 33.220 Annex B.2 KDF, the HKDF-SHA-256 profile, and
//! the crate's key hierarchy (`e2e_int_key`, `e2eKEYSET`, control and
//! algorithm keys).
//!
//! ```text
//! CK||IK ──FC 0x90──▶ e2e_int_key ─┐
//!                    e2mKEYSET ────┼─▶ root ──FC 0x91 (kind, RAND)──▶ e2eKEYSET ──FC 0x93 (alg, counter, UE nonce)──▶ AlgKey
//!                    e2m_key ──────┘        └─FC 0x92 (kind)──────────▶ ControlKey
//! ```
//!
//! Nothing here allocates; every key type zeroizes on drop. The full table of
//! derivations is `docs/key-hierarchy.md`.

mod hierarchy;
#[cfg(feature = "kdf-hkdf")]
mod hkdf;
mod keys;
mod ts33220;

pub use hierarchy::{
    Algorithm, FC_ALG_KEY, FC_CONTROL_KEY, FC_INT_KEY, FC_KEYSET, INT_KEY_LABEL, PreparedRoot,
    alg_key, int_key, keyset,
};
#[cfg(feature = "kdf-hkdf")]
pub use hkdf::HkdfKey;
pub use keys::{
    AlgKey, Ck, CkIk, ControlKey, Ik, KeySet, Rand, RootBytes, RootKey, RootKind, UeNonce,
};
pub(crate) use ts33220::sha256;
pub use ts33220::{Fc, MAX_PARAM_LEN, Ts33220Key, kdf};

/// Which KDF every derivation uses (TR 33.863 requirement #2: the KDF can be
/// chosen). The code is carried in the derive trigger.
///
/// `HkdfSha256` is there with the feature `kdf-hkdf` (a default); without it
/// its code `0x02` is an unknown profile, refused like any other.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[repr(u8)]
pub enum KdfProfile {
    /// The 3GPP generic KDF, TS 33.220 Annex B.2 (HMAC-SHA-256 over S).
    #[default]
    Ts33220 = 0x01,
    /// HKDF-SHA-256 (RFC 5869) with S as `info` and no salt.
    #[cfg(feature = "kdf-hkdf")]
    HkdfSha256 = 0x02,
}

impl KdfProfile {
    /// The profile's code on the wire.
    #[must_use]
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The profile for a wire code, `None` when unknown.
    #[must_use]
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0x01 => Some(KdfProfile::Ts33220),
            #[cfg(feature = "kdf-hkdf")]
            0x02 => Some(KdfProfile::HkdfSha256),
            _ => None,
        }
    }

    /// The profile's short name, as the docs and analyzers show it: `3gpp`
    /// or `hkdf`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            KdfProfile::Ts33220 => "3gpp",
            #[cfg(feature = "kdf-hkdf")]
            KdfProfile::HkdfSha256 => "hkdf",
        }
    }
}

/// Why a derivation input was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `0xFF` was given as a one-octet FC; TS 33.220 reserves it as the escape
    /// to the two-octet form `0xFF || FC2`.
    #[error("FC 0xff is reserved for the two-octet form: write ff followed by FC2")]
    ReservedFc,
    /// An FC was neither one octet nor `0xFF` plus one octet.
    #[error("FC must be one octet, or two octets starting with ff; got {len} octets")]
    BadFcLength {
        /// Octets given.
        len: usize,
    },
    /// A parameter does not fit its two-octet length field.
    #[error("parameter P{index} is {len} octets; TS 33.220 allows at most 65535")]
    ParamTooLong {
        /// Which parameter (P0 is 0).
        index: usize,
        /// Its length in octets.
        len: usize,
    },
    /// A key of the wrong size.
    #[error("key must be {expected} octets, got {got}")]
    BadKeyLength {
        /// Octets the key type holds.
        expected: usize,
        /// Octets given.
        got: usize,
    },
    /// A RAND that is not 128 bits.
    #[error("RAND must be 16 octets (128 bits), got {got}")]
    BadRandLength {
        /// Octets given.
        got: usize,
    },
    /// A UE nonce that is not 128 bits.
    #[error("UE nonce must be 16 octets (128 bits), got {got}")]
    BadNonceLength {
        /// Octets given.
        got: usize,
    },
    /// A root-kind code that names no solution.
    #[error("unknown root kind {0:#04x}")]
    UnknownRootKind(u8),
}
