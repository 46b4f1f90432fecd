//! Key types: fixed-size, zeroized on drop, compared in constant time, and
//! never printed by `Debug`.

use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::Error;

macro_rules! secret_bytes {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name([u8; $len]);

        // By hand rather than derived: the slice form clears the key with a
        // few wide stores behind an optimization barrier, where the derived
        // array form issues one volatile store per octet.
        impl Zeroize for $name {
            fn zeroize(&mut self) {
                self.0.as_mut_slice().zeroize();
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                self.zeroize();
            }
        }

        impl ZeroizeOnDrop for $name {}

        impl $name {
            /// Length in octets.
            pub const LEN: usize = $len;

            /// Wraps the octets of a key.
            #[must_use]
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                $name(bytes)
            }

            /// Copies a key out of a slice.
            ///
            /// # Errors
            /// [`Error::BadKeyLength`] when the slice is not exactly
            #[doc = concat!(stringify!($len), " octets long.")]
            pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
                <[u8; $len]>::try_from(bytes)
                    .map($name)
                    .map_err(|_| Error::BadKeyLength { expected: $len, got: bytes.len() })
            }

            /// The key's octets. Handle with care: copies are not zeroized.
            #[must_use]
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl ConstantTimeEq for $name {
            fn ct_eq(&self, other: &Self) -> subtle::Choice {
                self.0.ct_eq(&other.0)
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.ct_eq(other).into()
            }
        }

        impl Eq for $name {}

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

secret_bytes!(
    /// The cipher key CK of an AKA run (128 bits).
    Ck, 16
);
secret_bytes!(
    /// The integrity key IK of an AKA run (128 bits).
    Ik, 16
);
secret_bytes!(
    /// `CK || IK`, the KDF key from which `e2e_int_key` is derived.
    CkIk, 32
);
secret_bytes!(
    /// The 256-bit root from which keysets are derived; its [`RootKind`] lives
    /// beside it in [`RootKey`].
    RootBytes, 32
);
secret_bytes!(
    /// `e2eKEYSET = KDF(root, RAND)`: 256 bits from which the algorithm keys
    /// are derived.
    KeySet, 32
);
secret_bytes!(
    /// A 128-bit key bound to one algorithm (128-NEA2, 128-NIA2 or AES-128-GCM).
    AlgKey, 16
);
secret_bytes!(
    /// The 256-bit key that authenticates control messages (derive trigger,
    /// key-expired error). Derived from the root, so it outlives keysets.
    ControlKey, 32
);

impl CkIk {
    /// `CK || IK` in that order (TS 33.401 A.2 uses the same concatenation).
    #[must_use]
    pub fn new(ck: &Ck, ik: &Ik) -> Self {
        let mut out = [0u8; 32];
        out[..16].copy_from_slice(ck.as_bytes());
        out[16..].copy_from_slice(ik.as_bytes());
        let key = CkIk(out);
        out.zeroize();
        key
    }
}

/// Which solution's root a keyset is derived from.
///
/// The kind is an input of every derivation from the root, so equal root
/// octets of two kinds never give the same keyset or control key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[repr(u8)]
pub enum RootKind {
    /// Solution #5: `e2e_int_key = KDF(CK||IK, "CIoT End-to-end")`, held by the EESE.
    IntKey = 0x01,
    /// Solution #1: `e2mKEYSET`, held by the HSE.
    E2mKeyset = 0x02,
    /// Solution #2: `e2m_key`, held by the EMSE.
    E2mKey = 0x03,
}

impl RootKind {
    /// The octet this kind contributes to the S strings.
    #[must_use]
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The kind for an S-string octet.
    ///
    /// # Errors
    /// [`Error::UnknownRootKind`] for any other value.
    pub const fn from_code(code: u8) -> Result<Self, Error> {
        match code {
            0x01 => Ok(RootKind::IntKey),
            0x02 => Ok(RootKind::E2mKeyset),
            0x03 => Ok(RootKind::E2mKey),
            other => Err(Error::UnknownRootKind(other)),
        }
    }

    /// The kind's short name, as the docs spell it (`int-key`, `e2m-keyset`,
    /// `e2m-key`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            RootKind::IntKey => "int-key",
            RootKind::E2mKeyset => "e2m-keyset",
            RootKind::E2mKey => "e2m-key",
        }
    }

    /// The kind whose short name is `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [RootKind::IntKey, RootKind::E2mKeyset, RootKind::E2mKey]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

/// A root key together with its kind.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RootKey {
    kind: RootKind,
    key: RootBytes,
}

impl RootKey {
    /// A root of the given kind.
    #[must_use]
    pub const fn new(kind: RootKind, key: RootBytes) -> Self {
        RootKey { kind, key }
    }

    /// Which solution this root belongs to.
    #[must_use]
    pub const fn kind(&self) -> RootKind {
        self.kind
    }

    /// The root's octets.
    #[must_use]
    pub const fn key(&self) -> &RootBytes {
        &self.key
    }
}

/// The 128-bit RAND that selects a keyset.
///
/// It travels in clear in the derive trigger, so `Debug` prints it; like the
/// keys it is still zeroized on drop and compared in constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Rand(pub [u8; 16]);

impl ConstantTimeEq for Rand {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

impl PartialEq for Rand {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for Rand {}

impl Rand {
    /// Length in octets (128 bits).
    pub const LEN: usize = 16;

    /// Copies a RAND out of a slice.
    ///
    /// # Errors
    /// [`Error::BadRandLength`] unless the slice is 16 octets.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        <[u8; 16]>::try_from(bytes)
            .map(Rand)
            .map_err(|_| Error::BadRandLength { got: bytes.len() })
    }
}

impl fmt::Debug for Rand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Rand(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// The 128-bit nonce a UE draws from its own random source every time it
/// starts (a new UE, a reboot, a restore of anything, a clone): its
/// *incarnation*. The hello carries it; the derive trigger and the
/// key-expired error answering it are bound to it; and it is P3 of every
/// algorithm key (`docs/key-hierarchy.md`). So every key a UE seals under
/// mixes randomness the UE drew since it last started, and no storage
/// history, replay or EESE answer can bring it back to keys it, or an
/// earlier copy of it, used.
///
/// Public (it travels in clear in the hello), so `Debug` prints it. It is
/// never stored: a UE that starts again draws a new one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct UeNonce(pub [u8; 16]);

impl UeNonce {
    /// Length in octets (128 bits).
    pub const LEN: usize = 16;

    /// Wraps 16 octets from the UE's random source.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        UeNonce(bytes)
    }

    /// Copies a nonce out of a slice.
    ///
    /// # Errors
    /// [`Error::BadNonceLength`] unless the slice is 16 octets.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        <[u8; 16]>::try_from(bytes)
            .map(UeNonce)
            .map_err(|_| Error::BadNonceLength { got: bytes.len() })
    }

    /// The nonce's octets.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Debug for UeNonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UeNonce(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}
