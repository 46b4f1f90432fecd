//! The model a dissection fills: fields with their place and value, and
//! findings with their kind and severity.

use std::fmt;
use std::string::String;

use ciot_e2e::wire::{Error, FieldName};

use super::Dissection;

/// What a field's value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// An unsigned integer (big endian on the wire; for a bit field, the
    /// masked bits shifted down).
    Uint(u64),
    /// The field's octets of the message (`offset .. offset + len`).
    Bytes,
    /// The decrypted payload ([`Dissection::plaintext`]); generated, it lies
    /// over the protected payload.
    Plaintext,
    /// A generated verdict (whether the tag holds).
    Bool(bool),
}

/// How a field's value is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// As the number or hex string it is.
    Plain,
    /// A code point: the name this version gives the value, `None` for an
    /// unknown value.
    Code(Option<&'static str>),
    /// A number of seconds.
    Seconds,
    /// Header flags: their hex value.
    Hex,
    /// Octets that are meant to be read as text (a UE identifier): the
    /// text in quotes when every octet is printable (ASCII graphic,
    /// `0x21..=0x7e`: no space, no control octet), else hex.
    Text,
}

/// One field of a dissected message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// Human-readable name (`RAND`).
    pub name: &'static str,
    /// Filter-style abbreviation (`ciot_e2e.trigger.rand`).
    pub abbrev: &'static str,
    /// First octet of the field in the message.
    pub offset: usize,
    /// Octets the field takes (a bit field: the octet that holds it).
    pub len: usize,
    /// For a bit field, the mask of its bits within its octet.
    pub mask: Option<u8>,
    /// Depth in the tree: 0 for top-level fields; a field's children follow
    /// it with depth + 1.
    pub depth: u8,
    /// The raw value.
    pub value: Value,
    /// How the value is displayed.
    pub shown: Shown,
}

impl Field {
    /// The value as an integer, if it is one.
    #[must_use]
    pub const fn uint(&self) -> Option<u64> {
        match self.value {
            Value::Uint(v) => Some(v),
            _ => None,
        }
    }

    /// The field's raw octets: its octets of `message`, or for the
    /// plaintext the decrypted payload of `d`. Empty for a generated verdict.
    #[must_use]
    pub fn raw<'a>(&self, message: &'a [u8], d: &'a Dissection) -> &'a [u8] {
        match self.value {
            Value::Plaintext => &d.plaintext,
            Value::Bool(_) => &[],
            _ => message
                .get(self.offset..self.offset.saturating_add(self.len))
                .unwrap_or(&[]),
        }
    }

    /// The display value (`aes-128-gcm (0x02)`, `3600 s`, hex for octets).
    #[must_use]
    pub fn display<'a>(&'a self, message: &'a [u8], d: &'a Dissection) -> FieldDisplay<'a> {
        FieldDisplay {
            field: self,
            raw: self.raw(message, d),
        }
    }
}

/// A field's display value; see [`Field::display`].
#[derive(Debug)]
pub struct FieldDisplay<'a> {
    field: &'a Field,
    raw: &'a [u8],
}

impl fmt::Display for FieldDisplay<'_> {
    // Written without the formatting machinery's padding and radix paths
    // where it can be (hex digits, ASCII text): a packet analyzer shows
    // every field of every message, and these were most of `dissect`'s time.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.field.value, self.field.shown) {
            (Value::Uint(v), Shown::Code(Some(name))) => {
                f.write_str(name)?;
                f.write_str(" (")?;
                hex_prefixed(f, v)?;
                f.write_str(")")
            }
            (Value::Uint(v), Shown::Code(None)) => {
                f.write_str("unknown (")?;
                hex_prefixed(f, v)?;
                f.write_str(")")
            }
            (Value::Uint(v), Shown::Seconds) => write!(f, "{v} s"),
            (Value::Uint(v), Shown::Hex) => hex_prefixed(f, v),
            (Value::Uint(v), Shown::Plain | Shown::Text) => write!(f, "{v}"),
            (Value::Bool(b), _) => f.write_str(if b { "valid" } else { "invalid" }),
            (Value::Bytes, Shown::Text) if is_text(self.raw) => {
                // ASCII graphic only (`is_text`), so the octets are UTF-8.
                f.write_str("\"")?;
                f.write_str(core::str::from_utf8(self.raw).map_err(|_| fmt::Error)?)?;
                f.write_str("\"")
            }
            (Value::Bytes | Value::Plaintext, _) => {
                let mut buf = [0u8; 128];
                for chunk in self.raw.chunks(buf.len() / 2) {
                    let n = chunk.len() * 2;
                    let (digits, _) = buf.split_at_mut(n);
                    for (pair, b) in digits.chunks_exact_mut(2).zip(chunk) {
                        pair[0] = HEX_DIGITS[usize::from(b >> 4)];
                        pair[1] = HEX_DIGITS[usize::from(b & 0xf)];
                    }
                    f.write_str(core::str::from_utf8(digits).map_err(|_| fmt::Error)?)?;
                }
                Ok(())
            }
        }
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `v` as `{v:#04x}` writes it: `0x` and at least two lowercase digits.
fn hex_prefixed(f: &mut fmt::Formatter<'_>, v: u64) -> fmt::Result {
    let mut buf = [0u8; 18];
    let mut i = buf.len();
    let mut x = v;
    loop {
        i -= 1;
        buf[i] = HEX_DIGITS[(x & 0xf) as usize];
        x >>= 4;
        if x == 0 && buf.len() - i >= 2 {
            break;
        }
    }
    i -= 2;
    buf[i] = b'0';
    buf[i + 1] = b'x';
    f.write_str(core::str::from_utf8(&buf[i..]).map_err(|_| fmt::Error)?)
}

/// Whether octets read as text: non-empty, every one ASCII graphic
/// (`0x21..=0x7e`, as `docs/wire-format.md` defines printable; a space
/// would make two identifiers that differ in trailing blanks look alike).
fn is_text(raw: &[u8]) -> bool {
    !raw.is_empty() && raw.iter().all(u8::is_ascii_graphic)
}

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing, nothing wrong (for example: decrypted).
    Note,
    /// The message breaks the format.
    Error,
}

impl Severity {
    /// `note` or `error`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Error => "error",
        }
    }
}

/// What kind of problem a finding reports; each has an expert-info field
/// `ciot_e2e.expert.<name>` in the Wireshark dissector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FindingKind {
    /// Fewer octets than the message needs.
    Truncated,
    /// The version octet is not the one this crate speaks (3).
    UnknownVersion,
    /// The type octet names no message.
    UnknownType,
    /// A reserved flag bit is set.
    ReservedBits,
    /// An unknown suite code.
    UnknownSuite,
    /// An unknown KDF profile code.
    UnknownKdf,
    /// An unknown cause code.
    UnknownCause,
    /// A zero lifetime.
    ZeroLifetime,
    /// Octets after a fixed-length control message.
    TrailingData,
    /// A data message over the maximum length.
    BadLength,
    /// Keys for the KSI were in the key log but none verifies the tag.
    BadTag,
    /// A hello's identifier length is not 1..=64.
    BadIdLength,
    /// A hello's padding holds a non-zero octet.
    NonzeroPadding,
    /// A key-expired error carries a seq without the NAMED flag.
    UnnamedSeq,
    /// Two data messages of a capture under the same keys, direction and
    /// sequence number with different contents: a nonce used twice
    /// ([`NonceLedger`](super::NonceLedger), needs a key log).
    NonceReuse,
}

impl FindingKind {
    /// The kind's name (`truncated`, `unknown_type` …).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            FindingKind::Truncated => "truncated",
            FindingKind::UnknownVersion => "unknown_version",
            FindingKind::UnknownType => "unknown_type",
            FindingKind::ReservedBits => "reserved_bits",
            FindingKind::UnknownSuite => "unknown_suite",
            FindingKind::UnknownKdf => "unknown_kdf",
            FindingKind::UnknownCause => "unknown_cause",
            FindingKind::ZeroLifetime => "zero_lifetime",
            FindingKind::TrailingData => "trailing_data",
            FindingKind::BadLength => "bad_length",
            FindingKind::BadTag => "bad_tag",
            FindingKind::BadIdLength => "bad_id_length",
            FindingKind::NonzeroPadding => "nonzero_padding",
            FindingKind::UnnamedSeq => "unnamed_seq",
            FindingKind::NonceReuse => "nonce-reuse",
        }
    }

    pub(super) fn of(error: &Error) -> FindingKind {
        match error {
            Error::Truncated { .. } => FindingKind::Truncated,
            Error::UnknownVersion(_) => FindingKind::UnknownVersion,
            Error::UnknownType(_) | Error::WrongType { .. } => FindingKind::UnknownType,
            Error::Malformed {
                field: FieldName::Flags,
                ..
            } => FindingKind::ReservedBits,
            Error::Malformed {
                field: FieldName::Suite | FieldName::TagLength,
                ..
            } => FindingKind::UnknownSuite,
            Error::Malformed {
                field: FieldName::KdfProfile,
                ..
            } => FindingKind::UnknownKdf,
            Error::Malformed {
                field: FieldName::Cause,
                ..
            } => FindingKind::UnknownCause,
            Error::Malformed {
                field: FieldName::Lifetime,
                ..
            } => FindingKind::ZeroLifetime,
            Error::Malformed {
                field: FieldName::IdLength,
                ..
            } => FindingKind::BadIdLength,
            Error::Malformed {
                field: FieldName::Padding,
                ..
            } => FindingKind::NonzeroPadding,
            Error::Malformed {
                field: FieldName::Seq,
                ..
            } => FindingKind::UnnamedSeq,
            Error::TrailingData { .. } => FindingKind::TrailingData,
            Error::BadLength { .. } => FindingKind::BadLength,
            _ => FindingKind::BadTag,
        }
    }
}

/// Something wrong (or noteworthy) about a dissected message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// What kind.
    pub kind: FindingKind,
    /// The field it is about, `None` for the message as a whole.
    pub abbrev: Option<&'static str>,
    /// Where the problem is (for a truncation: the end of the octets).
    pub offset: usize,
    /// A sentence; for format errors the [`ciot_e2e::wire::Error`]'s `Display`.
    pub message: String,
}

/// The abbreviation of the protocol itself (Wireshark's protocol filter).
pub const PROTOCOL: &str = "ciot_e2e";

#[cfg(test)]
mod display_tests {
    use super::*;

    struct Hex(u64);

    impl fmt::Display for Hex {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            hex_prefixed(f, self.0)
        }
    }

    #[test]
    fn hex_without_the_formatting_machinery_is_what_it_replaced() {
        let mut v = 0u64;
        let mut values = std::vec![
            0,
            1,
            0xf,
            0x10,
            0xff,
            0x100,
            0xfff,
            u64::from(u32::MAX),
            u64::MAX
        ];
        for _ in 0..2_000 {
            v = v
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            values.push(v >> (v % 64));
        }
        for v in values {
            assert_eq!(Hex(v).to_string(), std::format!("{v:#04x}"));
        }
    }
}
