//! The wire layer's one error type.

use core::fmt;

use super::MessageType;

/// A field named in a [`Error::Malformed`] error.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum FieldName {
    /// Header flags: a reserved bit is set.
    Flags,
    /// Derive trigger: KDF profile code.
    KdfProfile,
    /// Data-protection suite code.
    Suite,
    /// Derive trigger: key lifetime te2e.
    Lifetime,
    /// Key-expired error: cause code.
    Cause,
    /// Data message: MAC/tag length does not match the suite.
    TagLength,
    /// Key-expired error: a sequence number without the NAMED flag.
    Seq,
    /// Hello: the UE identifier's length is not 1..=64.
    IdLength,
    /// Hello: a padding octet is not zero.
    Padding,
}

impl FieldName {
    /// The field's name as the docs and the dissector spell it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            FieldName::Flags => "flags",
            FieldName::KdfProfile => "kdf profile",
            FieldName::Suite => "suite",
            FieldName::Lifetime => "lifetime",
            FieldName::Cause => "cause",
            FieldName::TagLength => "tag length",
            FieldName::Seq => "seq",
            FieldName::IdLength => "identifier length",
            FieldName::Padding => "padding",
        }
    }
}

impl fmt::Display for FieldName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why bytes were not accepted as a message, or a buffer was too small.
///
/// [`Error::Truncated`] means "not enough octets (yet)"; every other variant
/// means the octets that are there are wrong.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Fewer octets than the message needs.
    #[error("truncated: needed {needed} octets, got {got}")]
    Truncated {
        /// Octets the message needs (at least).
        needed: usize,
        /// Octets there were.
        got: usize,
    },
    /// The version octet is not one this crate speaks.
    #[error("unknown protocol version {0} (this crate speaks version {v})", v = super::VERSION)]
    UnknownVersion(u8),
    /// The type octet names no message of this version.
    #[error("unknown message type {0:#04x}")]
    UnknownType(u8),
    /// A view of one message type was given another.
    #[error("expected a {expected} message, got {got}")]
    WrongType {
        /// The type the view decodes.
        expected: MessageType,
        /// The type in the header.
        got: MessageType,
    },
    /// A field holds a value this version does not allow.
    #[error("malformed {field}: value {value:#x} is not allowed")]
    Malformed {
        /// Which field.
        field: FieldName,
        /// The value found.
        value: u64,
    },
    /// A fixed-length message has octets after its end.
    #[error("trailing data: message is {expected} octets, got {got}")]
    TrailingData {
        /// The message's length.
        expected: usize,
        /// Octets there were.
        got: usize,
    },
    /// A message longer than [`super::MAX_MESSAGE_LEN`].
    #[error("bad length: {got} octets exceeds the maximum of {max}")]
    BadLength {
        /// The maximum.
        max: usize,
        /// Octets there were.
        got: usize,
    },
    /// The authentication tag does not verify under the key given.
    #[error("bad tag: the message is not authentic under this key")]
    BadTag,
    /// An authentic derive trigger whose counter is not above the last one
    /// accepted: a replay or an old trigger.
    #[error("stale trigger: counter {counter} is not above the last accepted {last}")]
    StaleCounter {
        /// The trigger's counter.
        counter: u64,
        /// The highest counter accepted before.
        last: u64,
    },
    /// An output buffer is too small for the message.
    #[error("buffer too small: needed {needed} octets, got {got}")]
    BufferTooSmall {
        /// Octets the message takes.
        needed: usize,
        /// Octets the buffer has.
        got: usize,
    },
}
