//! Wire format v3: zero-copy views and `Repr`s for the derive trigger, the
//! key-expired error, the data message and the hello. `docs/wire-format.md`
//! documents every octet.
//!
//! Each message has a view `…Packet<T: AsRef<[u8]>>` whose getters read fields
//! in place and whose setters (under `AsMut<[u8]>`) write them, and a `Repr`
//! holding the decoded, checked values.
//!
//! Contract: once `new_checked` succeeded, no getter and no `Repr::parse`
//! panics. `Repr::emit` never panics on a buffer of `buffer_len()` octets.
//! Nothing here allocates. Tags are *not* checked by parsing: a decoder
//! without keys sees every field, and [`ControlAuth`] verifies separately.
//!
//! ```
//! use ciot_e2e::kdf::{KdfProfile, PreparedRoot, Rand, RootBytes, RootKey, RootKind, UeNonce};
//! use ciot_e2e::wire::{ControlAuth, Ksi, Message, Suite, TriggerRepr};
//!
//! let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes([7; 32]));
//! let control = ControlAuth::new(&PreparedRoot::new(&root, KdfProfile::Ts33220).control_key());
//! // A trigger answers one start of a UE: the nonce of its hello.
//! let nonce = UeNonce::from_bytes([0x5a; 16]);
//! let auth = control.answer(&nonce);
//! let trigger = TriggerRepr {
//!     ksi: Ksi(1),
//!     confirm: true,
//!     counter: 1,
//!     rand: Rand([0x42; 16]),
//!     profile: KdfProfile::Ts33220,
//!     suite: Suite::AES_128_GCM,
//!     lifetime: 3600,
//!     tag: [0; 16], // computed by emit_signed
//! };
//! let mut buf = [0u8; TriggerRepr::LEN];
//! trigger.emit_signed(&auth, &mut buf)?;
//! match Message::parse(&buf)? {
//!     Message::Trigger(got) => assert_eq!((got.counter, got.rand), (1, Rand([0x42; 16]))),
//!     _ => unreachable!(),
//! }
//! control.verify_message(&buf, &nonce)?;
//! # Ok::<(), ciot_e2e::wire::Error>(())
//! ```

use core::fmt;
use core::ops::Range;

mod auth;
#[cfg(feature = "alloc")]
mod buf;
mod control;
pub mod data;
mod error;
pub mod hello;
pub mod key_expired;
mod message;
pub mod trigger;

pub use auth::{AnswerAuth, ControlAuth, TAG_LEN as CONTROL_TAG_LEN};
pub use data::{DataPacket, DataRepr};
pub use error::{Error, FieldName};
pub use hello::{HelloPacket, HelloRepr};
pub use key_expired::{KeyExpiredPacket, KeyExpiredRepr};
pub use message::Message;
pub use trigger::{TriggerPacket, TriggerRepr};

/// A byte range of a field inside a message.
pub type Field = Range<usize>;

/// The protocol version this crate speaks (`docs/wire-format.md` says what
/// changed from version 1).
pub const VERSION: u8 = 3;

/// The UDP port the crate's tools use unless told otherwise (TR 33.863).
pub const DEFAULT_PORT: u16 = 33863;

/// The largest message: fits one UDP datagram over IPv4 (65535 − 20 − 8).
pub const MAX_MESSAGE_LEN: usize = 65_507;

/// Offsets of the common header, shared by every message.
pub mod header {
    use super::Field;
    /// Protocol version (1 octet).
    pub const VERSION: usize = 0;
    /// Message type (1 octet).
    pub const TYPE: usize = 1;
    /// Key set identifier (1 octet).
    pub const KSI: usize = 2;
    /// Flags (1 octet): bit 0 is the direction of a data message, NAMED of a
    /// key-expired error, REKEY of a hello, CONFIRM of a derive trigger;
    /// every other bit is reserved and zero.
    pub const FLAGS: usize = 3;
    /// The whole header.
    pub const ALL: Field = 0..4;
    /// Length of the common header.
    pub const LEN: usize = ALL.end;
}

/// Flag bit 0 of a data message: its direction.
pub const FLAG_DOWNLINK: u8 = 0x01;

macro_rules! code_point {
    ($(#[$doc:meta])* $name:ident { $($(#[$cdoc:meta])* $const:ident = $value:expr, $label:expr;)* }) => {
        $(#[$doc])*
        ///
        /// Open: any octet can be held, so an analyzer can show unknown values;
        /// `Debug` prints the name or the hex value.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u8);

        impl $name {
            $($(#[$cdoc])* pub const $const: $name = $name($value);)*

            /// Every value this version defines.
            pub const KNOWN: &'static [$name] = &[$($name::$const),*];

            /// The value's name, `None` when this version does not define it.
            #[must_use]
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($label),)*
                    _ => None,
                }
            }

            /// Whether this version defines the value.
            #[must_use]
            pub const fn is_known(self) -> bool {
                self.name().is_some()
            }

            /// The value whose name is `name`.
            #[must_use]
            pub fn from_name(name: &str) -> Option<Self> {
                Self::KNOWN.iter().copied().find(|v| v.name() == Some(name))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({:#04x})", stringify!($name), self.0),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }

        #[cfg(feature = "arbitrary")]
        impl<'a> arbitrary::Arbitrary<'a> for $name {
            fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
                u.choose(Self::KNOWN).copied()
            }
        }
    };
}

code_point!(
    /// The message type (header octet 1).
    MessageType {
        /// Derive trigger, EESE → UE: RAND and parameters of a new keyset.
        DERIVE_TRIGGER = 0x01, "derive-trigger";
        /// Key-expired error, EESE → UE: the KSI was refused.
        KEY_EXPIRED = 0x02, "key-expired";
        /// Protected data, both directions.
        DATA = 0x03, "data";
        /// Hello, UE → EESE: names the UE and asks for a trigger.
        HELLO = 0x04, "hello";
    }
);

code_point!(
    /// A data-protection suite: which algorithms protect data messages under a
    /// keyset.
    Suite {
        /// 128-NEA2 (AES-128-CTR) + 128-NIA2 (AES-128-CMAC, 32-bit MAC).
        NEA2_NIA2 = 0x01, "nea2-nia2";
        /// AES-128-GCM with a 16-octet tag.
        AES_128_GCM = 0x02, "aes-128-gcm";
    }
);

code_point!(
    /// Why the EESE refused a KSI (key-expired error).
    Cause {
        /// Timer te2e ran out (TR 33.863 §6.5.2.3 step 2).
        TE2E_EXPIRED = 0x01, "te2e-expired";
        /// The enterprise expired the keys at once (§6.5.2.4).
        EXPIRED_BY_ENTERPRISE = 0x02, "expired-by-enterprise";
        /// The EESE has no keyset with this KSI.
        UNKNOWN_KSI = 0x03, "unknown-ksi";
        /// A new AKA run replaced the root; all keysets of the old root are gone.
        ROOT_REPLACED = 0x04, "root-replaced";
        /// A newer keyset replaced it (its trigger was sent and not yet
        /// confirmed); the trigger follows.
        REPLACED = 0x05, "replaced";
    }
);

impl Suite {
    /// Octets of the MAC or tag that ends a data message; 0 when unknown.
    #[must_use]
    pub const fn tag_len(self) -> usize {
        match self {
            Suite::NEA2_NIA2 => 4,
            Suite::AES_128_GCM => 16,
            _ => 0,
        }
    }
}

/// Key set identifier: names which keyset (which RAND generation) a message
/// belongs to. Every value is valid; it advances by one per rekey and wraps.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Ksi(pub u8);

impl Ksi {
    /// The KSI after this one (wrapping).
    #[must_use]
    pub const fn next(self) -> Ksi {
        Ksi(self.0.wrapping_add(1))
    }
}

impl fmt::Display for Ksi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Direction of a data message.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Direction {
    /// UE → EESE (DIRECTION bit 0, as in TS 33.401).
    Uplink,
    /// EESE → UE (DIRECTION bit 1).
    Downlink,
}

impl Direction {
    /// The DIRECTION bit: 0 uplink, 1 downlink.
    #[must_use]
    pub const fn bit(self) -> u8 {
        match self {
            Direction::Uplink => 0,
            Direction::Downlink => 1,
        }
    }

    /// The direction for a bit (only the lowest bit counts).
    #[must_use]
    pub const fn from_bit(bit: u8) -> Direction {
        if bit & 1 == 0 {
            Direction::Uplink
        } else {
            Direction::Downlink
        }
    }

    /// The other direction.
    #[must_use]
    pub const fn reverse(self) -> Direction {
        match self {
            Direction::Uplink => Direction::Downlink,
            Direction::Downlink => Direction::Uplink,
        }
    }

    /// `uplink` or `downlink`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Direction::Uplink => "uplink",
            Direction::Downlink => "downlink",
        }
    }
}

/// Checks the version and type octets that every message starts with.
///
/// # Errors
/// [`Error::Truncated`] under two octets, [`Error::UnknownVersion`],
/// [`Error::UnknownType`].
#[inline]
pub fn peek_type(bytes: &[u8]) -> Result<MessageType, Error> {
    let version = *bytes.first().ok_or(Error::Truncated {
        needed: header::LEN,
        got: 0,
    })?;
    if version != VERSION {
        return Err(Error::UnknownVersion(version));
    }
    let ty = MessageType(*bytes.get(header::TYPE).ok_or(Error::Truncated {
        needed: header::LEN,
        got: bytes.len(),
    })?);
    if !ty.is_known() {
        return Err(Error::UnknownType(ty.0));
    }
    Ok(ty)
}

/// Reads the octet at `at` of a checked view (0, never seen, where the
/// compiler cannot see the check: no panic path).
fn octet(bytes: &[u8], at: usize) -> u8 {
    bytes.get(at).copied().unwrap_or(0)
}

/// Reads the octets of a field that a checked view holds. Zeros (never
/// seen: `new_checked` ensured the field is there) rather than a panic path
/// where the compiler cannot see the check.
fn array<const N: usize>(bytes: &[u8], field: Field) -> [u8; N] {
    bytes
        .get(field)
        .and_then(|f| f.try_into().ok())
        .unwrap_or([0; N])
}

/// Writes the common header.
fn write_header(bytes: &mut [u8], ty: MessageType, ksi: Ksi, flags: u8) {
    bytes[header::VERSION] = VERSION;
    bytes[header::TYPE] = ty.0;
    bytes[header::KSI] = ksi.0;
    bytes[header::FLAGS] = flags;
}
