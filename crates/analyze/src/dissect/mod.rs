//! Lax dissection for packet analyzers: every field of any octets, with its
//! position, raw value and display value, plus findings for what is wrong.
//!
//! Unlike [`ciot_e2e::wire::Message::parse`], which rejects a message at the
//! first error, [`Dissection::run`] shows as much as it can: every complete
//! field before a truncation, the header of a message of unknown type, the
//! fields around a reserved bit or an unknown code point. It never panics
//! on any input and allocates only for its own output (field and finding
//! vectors, reused by `run`, and finding messages).
//!
//! Field abbreviations are filter-style (`ciot_e2e.trigger.rand`) and the
//! same as the Wireshark dissector's (`dissector/ciot_e2e.lua`), so the two
//! can be compared field by field.
//!
//! With a [`KeyLog`] a data message is also decrypted:
//! its payload is copied, opened in place under each keyset the key log holds
//! for its KSI until the tag verifies, and the plaintext and the tag's
//! verdict are added as generated fields.
//!
//! ```
//! use ciot_e2e_analyze::dissect::Dissection;
//!
//! // A derive trigger cut after 20 octets: the header and the counter are
//! // shown, RAND is not complete, and one finding says why.
//! let mut bytes = [0u8; 20];
//! bytes[..4].copy_from_slice(&[0x02, 0x01, 0x07, 0x00]);
//! let d = Dissection::of(&bytes, None);
//! assert_eq!(d.field("ciot_e2e.ksi").map(|f| f.uint()), Some(Some(7)));
//! assert!(d.field("ciot_e2e.trigger.counter").is_some());
//! assert!(d.field("ciot_e2e.trigger.rand").is_none());
//! assert_eq!(d.findings()[0].message, "truncated: needed 50 octets, got 20");
//! ```

use std::fmt;
use std::string::{String, ToString};
use std::vec::Vec;

use crate::keylog::KeyLog;
use ciot_e2e::kdf::KdfProfile;
use ciot_e2e::wire::{
    self, CONTROL_TAG_LEN, Cause, Direction, Error, FLAG_DOWNLINK, FieldName, HelloRepr,
    MAX_MESSAGE_LEN, MessageType, Suite, data, header, hello, key_expired, trigger,
};

pub mod pcap;
pub mod udp;

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
    /// text in quotes when every octet is printable ASCII, else hex.
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
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.field.value, self.field.shown) {
            (Value::Uint(v), Shown::Code(Some(name))) => write!(f, "{name} ({v:#04x})"),
            (Value::Uint(v), Shown::Code(None)) => write!(f, "unknown ({v:#04x})"),
            (Value::Uint(v), Shown::Seconds) => write!(f, "{v} s"),
            (Value::Uint(v), Shown::Hex) => write!(f, "{v:#04x}"),
            (Value::Uint(v), Shown::Plain | Shown::Text) => write!(f, "{v}"),
            (Value::Bool(b), _) => f.write_str(if b { "valid" } else { "invalid" }),
            (Value::Bytes, Shown::Text) if is_text(self.raw) => {
                f.write_str("\"")?;
                for &b in self.raw {
                    write!(f, "{}", char::from(b))?;
                }
                f.write_str("\"")
            }
            (Value::Bytes | Value::Plaintext, _) => {
                for b in self.raw {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// Whether octets read as text: non-empty, every one printable ASCII
/// (space included).
fn is_text(raw: &[u8]) -> bool {
    !raw.is_empty() && raw.iter().all(|b| (0x20..=0x7e).contains(b))
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
    /// The version octet is not the one this crate speaks (2).
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
        }
    }

    fn of(error: &Error) -> FindingKind {
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
    /// A sentence; for format errors the [`wire::Error`]'s `Display`.
    pub message: String,
}

/// The abbreviation of the protocol itself (Wireshark's protocol filter).
pub const PROTOCOL: &str = "ciot_e2e";

/// The dissection of one message: fields in wire order (a tree by depth)
/// and findings. Reuse one with [`Dissection::run`] to avoid allocating per
/// message.
#[derive(Clone, Debug, Default)]
pub struct Dissection {
    fields: Vec<Field>,
    findings: Vec<Finding>,
    plaintext: Vec<u8>,
    decrypted: bool,
    tag_valid: Option<bool>,
    message_type: Option<MessageType>,
    len: usize,
}

impl Dissection {
    /// An empty dissection, to be filled by [`Dissection::run`].
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Dissects `bytes`, decrypting a data message with `keys` if given.
    #[must_use]
    pub fn of(bytes: &[u8], keys: Option<&KeyLog>) -> Self {
        let mut d = Self::new();
        d.run(bytes, keys);
        d
    }

    /// Dissects `bytes` into `self`, replacing what it held (its buffers are
    /// reused). Never panics.
    pub fn run(&mut self, bytes: &[u8], keys: Option<&KeyLog>) {
        self.fields.clear();
        self.findings.clear();
        self.plaintext.clear();
        self.decrypted = false;
        self.tag_valid = None;
        self.message_type = None;
        self.len = bytes.len();
        Lax { d: self, b: bytes }.message(keys);
    }

    /// The fields, in wire order; children follow their parent.
    #[must_use]
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The first field with this abbreviation.
    #[must_use]
    pub fn field(&self, abbrev: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.abbrev == abbrev)
    }

    /// The findings, in the order they were found.
    #[must_use]
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Whether any finding is an error.
    #[must_use]
    pub fn is_malformed(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// The message type from the header: `None` when there was no type
    /// octet or the version is unknown (the type may still be unknown).
    #[must_use]
    pub const fn message_type(&self) -> Option<MessageType> {
        self.message_type
    }

    /// Octets dissected.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the message was empty.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The decrypted payload, when a keyset of the key log verified the tag.
    #[must_use]
    pub fn plaintext(&self) -> Option<&[u8]> {
        self.decrypted.then_some(self.plaintext.as_slice())
    }

    /// Whether the data tag holds: `None` without keys for the message's
    /// KSI and suite, `Some(false)` when no keyset verified it.
    #[must_use]
    pub const fn tag_valid(&self) -> Option<bool> {
        self.tag_valid
    }
}

/// The lax walker over one message.
struct Lax<'d, 'b> {
    d: &'d mut Dissection,
    b: &'b [u8],
}

impl Lax<'_, '_> {
    fn get(&self, range: core::ops::Range<usize>) -> Option<&[u8]> {
        self.b.get(range)
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.b.get(at).copied()
    }

    /// Adds a field if its octets are all there; returns its value.
    fn uint(
        &mut self,
        name: &'static str,
        abbrev: &'static str,
        range: core::ops::Range<usize>,
        shown: Shown,
    ) -> Option<u64> {
        let raw = self.get(range.clone())?;
        let v = raw.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        self.push(name, abbrev, range, None, 0, Value::Uint(v), shown);
        Some(v)
    }

    fn bytes(
        &mut self,
        name: &'static str,
        abbrev: &'static str,
        range: core::ops::Range<usize>,
    ) -> bool {
        if self.get(range.clone()).is_none() {
            return false;
        }
        self.push(name, abbrev, range, None, 0, Value::Bytes, Shown::Plain);
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        name: &'static str,
        abbrev: &'static str,
        range: core::ops::Range<usize>,
        mask: Option<u8>,
        depth: u8,
        value: Value,
        shown: Shown,
    ) {
        self.d.fields.push(Field {
            name,
            abbrev,
            offset: range.start,
            len: range.end.saturating_sub(range.start),
            mask,
            depth,
            value,
            shown,
        });
    }

    fn finding(&mut self, error: Error, abbrev: Option<&'static str>, offset: usize) {
        self.d.findings.push(Finding {
            severity: Severity::Error,
            kind: FindingKind::of(&error),
            abbrev,
            offset,
            message: error.to_string(),
        });
    }

    fn truncated(&mut self, needed: usize) {
        let got = self.b.len();
        self.finding(Error::Truncated { needed, got }, None, got);
    }

    /// Whatever follows the last field that could be dissected.
    fn rest(&mut self, from: usize) {
        if self.b.len() > from {
            self.push(
                "Undissected octets",
                "ciot_e2e.body",
                from..self.b.len(),
                None,
                0,
                Value::Bytes,
                Shown::Plain,
            );
        }
    }

    fn message(&mut self, keys: Option<&KeyLog>) {
        let Some(version) = self.uint("Version", "ciot_e2e.version", 0..1, Shown::Plain) else {
            self.truncated(header::LEN);
            return;
        };
        if version != u64::from(wire::VERSION) {
            // Another version may lay out everything after octet 0 differently.
            self.finding(
                Error::UnknownVersion(version as u8),
                Some("ciot_e2e.version"),
                0,
            );
            self.rest(1);
            return;
        }
        let Some(ty) = self.byte(header::TYPE).map(MessageType) else {
            self.truncated(header::LEN);
            return;
        };
        self.d.message_type = Some(ty);
        self.uint("Type", "ciot_e2e.type", 1..2, Shown::Code(ty.name()));
        self.uint("KSI", "ciot_e2e.ksi", 2..3, Shown::Plain);
        let flags = self.byte(header::FLAGS);
        if let Some(flags) = flags {
            self.push(
                "Flags",
                "ciot_e2e.flags",
                3..4,
                None,
                0,
                Value::Uint(u64::from(flags)),
                Shown::Hex,
            );
        }
        match ty {
            MessageType::DERIVE_TRIGGER => {
                self.control_flags(flags);
                self.trigger();
            }
            MessageType::KEY_EXPIRED => {
                let named = self.bit_flag(flags, "NAMED", "ciot_e2e.flags.named");
                self.key_expired(named);
            }
            MessageType::DATA => self.data(flags, keys),
            MessageType::HELLO => {
                self.bit_flag(flags, "REKEY", "ciot_e2e.flags.rekey");
                self.hello();
            }
            _ => {
                self.finding(
                    Error::UnknownType(ty.0),
                    Some("ciot_e2e.type"),
                    header::TYPE,
                );
                if flags.is_none() {
                    self.truncated(header::LEN);
                }
                self.rest(header::LEN);
            }
        }
    }

    fn control_flags(&mut self, flags: Option<u8>) {
        let Some(flags) = flags else { return };
        self.push(
            "Reserved",
            "ciot_e2e.flags.reserved",
            3..4,
            Some(0xff),
            1,
            Value::Uint(u64::from(flags)),
            Shown::Hex,
        );
        if flags != 0 {
            let e = Error::Malformed {
                field: FieldName::Flags,
                value: u64::from(flags),
            };
            self.finding(e, Some("ciot_e2e.flags"), header::FLAGS);
        }
    }

    /// The flags of a control message whose bit 0 means something: that
    /// bit and the reserved bits 1–7 as children. Returns bit 0.
    fn bit_flag(&mut self, flags: Option<u8>, name: &'static str, abbrev: &'static str) -> bool {
        let Some(flags) = flags else { return false };
        let bit = flags & 0x01;
        self.push(
            name,
            abbrev,
            3..4,
            Some(0x01),
            1,
            Value::Uint(u64::from(bit)),
            Shown::Plain,
        );
        let reserved = u64::from(flags >> 1);
        self.push(
            "Reserved",
            "ciot_e2e.flags.reserved",
            3..4,
            Some(0xfe),
            1,
            Value::Uint(reserved),
            Shown::Hex,
        );
        if reserved != 0 {
            let e = Error::Malformed {
                field: FieldName::Flags,
                value: u64::from(flags),
            };
            self.finding(e, Some("ciot_e2e.flags"), header::FLAGS);
        }
        bit == 1
    }

    fn fixed_length(&mut self, len: usize) {
        let got = self.b.len();
        if got < len {
            self.truncated(len);
        } else if got > len {
            self.push(
                "Trailing octets",
                "ciot_e2e.trailing",
                len..got,
                None,
                0,
                Value::Bytes,
                Shown::Plain,
            );
            self.finding(
                Error::TrailingData { expected: len, got },
                Some("ciot_e2e.trailing"),
                len,
            );
        }
    }

    fn trigger(&mut self) {
        use trigger::field;
        self.uint(
            "Trigger counter",
            "ciot_e2e.trigger.counter",
            field::COUNTER,
            Shown::Plain,
        );
        self.bytes("RAND", "ciot_e2e.trigger.rand", field::RAND);
        if let Some(kdf) = self.byte(field::KDF) {
            let name = KdfProfile::from_code(kdf).map(KdfProfile::name);
            self.uint(
                "KDF profile",
                "ciot_e2e.trigger.kdf",
                field::KDF..field::KDF + 1,
                Shown::Code(name),
            );
            if name.is_none() {
                let e = Error::Malformed {
                    field: FieldName::KdfProfile,
                    value: u64::from(kdf),
                };
                self.finding(e, Some("ciot_e2e.trigger.kdf"), field::KDF);
            }
        }
        if let Some(suite) = self.byte(field::SUITE).map(Suite) {
            self.uint(
                "Suite",
                "ciot_e2e.trigger.suite",
                field::SUITE..field::SUITE + 1,
                Shown::Code(suite.name()),
            );
            if !suite.is_known() {
                let e = Error::Malformed {
                    field: FieldName::Suite,
                    value: u64::from(suite.0),
                };
                self.finding(e, Some("ciot_e2e.trigger.suite"), field::SUITE);
            }
        }
        if self.uint(
            "Lifetime",
            "ciot_e2e.trigger.lifetime",
            field::LIFETIME,
            Shown::Seconds,
        ) == Some(0)
        {
            let e = Error::Malformed {
                field: FieldName::Lifetime,
                value: 0,
            };
            self.finding(e, Some("ciot_e2e.trigger.lifetime"), field::LIFETIME.start);
        }
        self.bytes("Tag", "ciot_e2e.trigger.tag", field::TAG);
        self.fixed_length(wire::TriggerRepr::LEN);
    }

    fn key_expired(&mut self, named: bool) {
        use key_expired::field;
        if let Some(cause) = self.byte(field::CAUSE).map(Cause) {
            self.uint(
                "Cause",
                "ciot_e2e.key_expired.cause",
                field::CAUSE..field::CAUSE + 1,
                Shown::Code(cause.name()),
            );
            if !cause.is_known() {
                let e = Error::Malformed {
                    field: FieldName::Cause,
                    value: u64::from(cause.0),
                };
                self.finding(e, Some("ciot_e2e.key_expired.cause"), field::CAUSE);
            }
        }
        self.uint(
            "Counter",
            "ciot_e2e.key_expired.counter",
            field::COUNTER,
            Shown::Plain,
        );
        let seq = self.uint(
            "Refused seq",
            "ciot_e2e.key_expired.seq",
            field::SEQ,
            Shown::Plain,
        );
        if let (false, Some(seq @ 1..)) = (named, seq) {
            // One encoding per message: an unnamed error carries seq 0.
            let e = Error::Malformed {
                field: FieldName::Seq,
                value: seq,
            };
            self.finding(e, Some("ciot_e2e.key_expired.seq"), field::SEQ.start);
        }
        self.bytes("Tag", "ciot_e2e.key_expired.tag", field::TAG);
        self.fixed_length(wire::KeyExpiredRepr::LEN);
    }

    fn hello(&mut self) {
        use hello::field;
        self.uint(
            "Highest trigger counter",
            "ciot_e2e.hello.counter",
            field::COUNTER,
            Shown::Plain,
        );
        self.uint("Hello seq", "ciot_e2e.hello.seq", field::SEQ, Shown::Plain);
        let Some(id_len) = self.uint(
            "Identifier length",
            "ciot_e2e.hello.id_len",
            field::ID_LEN..field::ID,
            Shown::Plain,
        ) else {
            self.truncated(HelloRepr::MIN_LEN);
            return;
        };
        let id_len = id_len as usize;
        if !(1..=hello::MAX_ID_LEN).contains(&id_len) {
            // Where the identifier ends, and so the padding and the tag, is
            // unknown: what follows is shown undissected.
            let e = Error::Malformed {
                field: FieldName::IdLength,
                value: id_len as u64,
            };
            self.finding(e, Some("ciot_e2e.hello.id_len"), field::ID_LEN);
            if self.b.len() < HelloRepr::MIN_LEN {
                // No hello is shorter, whatever its identifier.
                self.truncated(HelloRepr::MIN_LEN);
            }
            self.rest(field::ID);
            return;
        }
        let len = HelloRepr::len_for(id_len);
        let id_end = field::ID + id_len;
        let tag_start = len - CONTROL_TAG_LEN;
        if self.get(field::ID..id_end).is_some() {
            self.push(
                "UE identifier",
                "ciot_e2e.hello.id",
                field::ID..id_end,
                None,
                0,
                Value::Bytes,
                Shown::Text,
            );
        }
        if tag_start > id_end
            && let Some(padding) = self.get(id_end..tag_start)
        {
            let nonzero = padding
                .iter()
                .position(|&b| b != 0)
                .map(|i| (i, padding[i]));
            self.bytes("Padding", "ciot_e2e.hello.padding", id_end..tag_start);
            if let Some((i, value)) = nonzero {
                let e = Error::Malformed {
                    field: FieldName::Padding,
                    value: u64::from(value),
                };
                self.finding(e, Some("ciot_e2e.hello.padding"), id_end + i);
            }
        }
        self.bytes("Tag", "ciot_e2e.hello.tag", tag_start..len);
        self.fixed_length(len);
    }

    fn data(&mut self, flags: Option<u8>, keys: Option<&KeyLog>) {
        use data::field;
        if let Some(flags) = flags {
            let dir = Direction::from_bit(flags);
            let bit = u64::from(flags & FLAG_DOWNLINK);
            self.push(
                "Direction",
                "ciot_e2e.flags.direction",
                3..4,
                Some(FLAG_DOWNLINK),
                1,
                Value::Uint(bit),
                Shown::Code(Some(dir.name())),
            );
            let reserved = u64::from(flags >> 1);
            self.push(
                "Reserved",
                "ciot_e2e.flags.reserved",
                3..4,
                Some(!FLAG_DOWNLINK),
                1,
                Value::Uint(reserved),
                Shown::Hex,
            );
            if reserved != 0 {
                let e = Error::Malformed {
                    field: FieldName::Flags,
                    value: u64::from(flags),
                };
                self.finding(e, Some("ciot_e2e.flags"), header::FLAGS);
            }
        }
        let suite = self.byte(field::SUITE).map(Suite);
        if let Some(suite) = suite {
            self.uint(
                "Suite",
                "ciot_e2e.data.suite",
                field::SUITE..field::SUITE + 1,
                Shown::Code(suite.name()),
            );
            if !suite.is_known() {
                let e = Error::Malformed {
                    field: FieldName::Suite,
                    value: u64::from(suite.0),
                };
                self.finding(e, Some("ciot_e2e.data.suite"), field::SUITE);
            }
        }
        self.uint(
            "Sequence number",
            "ciot_e2e.data.seq",
            field::SEQ,
            Shown::Plain,
        );
        let len = self.b.len();
        if len < data::HEADER_LEN {
            self.truncated(data::HEADER_LEN);
            return;
        }
        let Some(suite) = suite.filter(|s| s.is_known()) else {
            // Without the suite the tag cannot be told from the payload.
            self.rest(field::PAYLOAD);
            return;
        };
        let tag_start = match len.checked_sub(suite.tag_len()) {
            Some(t) if t >= field::PAYLOAD => t,
            _ => {
                self.truncated(data::HEADER_LEN + suite.tag_len());
                self.rest(field::PAYLOAD);
                return;
            }
        };
        if len > MAX_MESSAGE_LEN {
            self.finding(
                Error::BadLength {
                    max: MAX_MESSAGE_LEN,
                    got: len,
                },
                None,
                MAX_MESSAGE_LEN,
            );
        }
        self.bytes(
            "Protected payload",
            "ciot_e2e.data.payload",
            field::PAYLOAD..tag_start,
        );
        if let (true, Some(keys)) = (self.d.findings.is_empty(), keys) {
            self.decrypt(keys, tag_start);
        }
        self.bytes("Tag", "ciot_e2e.data.tag", tag_start..len);
        if let Some(valid) = self.d.tag_valid {
            self.push(
                "Tag valid",
                "ciot_e2e.data.tag_valid",
                tag_start..len,
                None,
                1,
                Value::Bool(valid),
                Shown::Plain,
            );
        }
    }

    /// Opens a copy of the message under each candidate keyset.
    fn decrypt(&mut self, keys: &KeyLog, tag_start: usize) {
        let Some(ksi) = self.byte(header::KSI).map(wire::Ksi) else {
            return;
        };
        let Some(suite) = self.byte(data::field::SUITE).map(Suite) else {
            return;
        };
        let mut tried = false;
        for cipher in keys.ciphers(ksi, suite) {
            tried = true;
            self.d.plaintext.clear();
            self.d.plaintext.extend_from_slice(self.b);
            if let Ok(opened) = cipher.open_in_place(&mut self.d.plaintext) {
                let range = opened.payload;
                self.d.plaintext.truncate(range.end);
                self.d.plaintext.drain(..range.start);
                self.d.decrypted = true;
                self.d.tag_valid = Some(true);
                let plain = data::field::PAYLOAD..tag_start;
                self.push(
                    "Plaintext",
                    "ciot_e2e.data.plaintext",
                    plain,
                    None,
                    1,
                    Value::Plaintext,
                    Shown::Plain,
                );
                return;
            }
        }
        self.d.plaintext.clear();
        if tried {
            self.d.tag_valid = Some(false);
            self.d.findings.push(Finding {
                severity: Severity::Error,
                kind: FindingKind::BadTag,
                abbrev: Some("ciot_e2e.data.tag"),
                offset: tag_start,
                message: std::format!(
                    "bad tag: no keyset of the key log for KSI {ksi} verifies the message"
                ),
            });
        }
    }
}
