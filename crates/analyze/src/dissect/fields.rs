//! Every field the dissector can emit and every kind of finding, as tables:
//! what a packet analyzer registers before it sees a message (Wireshark's
//! header fields and expert infos, through `crates/analyze-capi`). The test
//! `tests/fields.rs` dissects every message type, cut, damaged and
//! decrypted, and fails when a field the dissector emits is not here as it
//! is emitted, or when an entry here is never emitted.

use super::model::{FindingKind, Severity};

/// The type of a field's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// An unsigned integer of this many octets (1, 4 or 8).
    Uint(u8),
    /// Octets.
    Bytes,
    /// A generated verdict.
    Bool,
}

/// One field the dissector can emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    /// Filter-style abbreviation (`ciot_e2e.trigger.rand`).
    pub abbrev: &'static str,
    /// Human-readable name (`RAND`).
    pub name: &'static str,
    /// The type of its value.
    pub ty: FieldType,
    /// For a bit field, the mask of its bits within its octet.
    pub mask: Option<u8>,
    /// Whether an integer is best shown in hex (code points, flags).
    pub hex: bool,
    /// Whether the dissector computes it rather than reading it from the
    /// message (the plaintext, the tag's verdict).
    pub generated: bool,
}

const fn uint(abbrev: &'static str, name: &'static str, octets: u8, hex: bool) -> FieldSpec {
    FieldSpec {
        abbrev,
        name,
        ty: FieldType::Uint(octets),
        mask: None,
        hex,
        generated: false,
    }
}

const fn bit(abbrev: &'static str, name: &'static str, mask: u8, hex: bool) -> FieldSpec {
    FieldSpec {
        abbrev,
        name,
        ty: FieldType::Uint(1),
        mask: Some(mask),
        hex,
        generated: false,
    }
}

const fn bytes(abbrev: &'static str, name: &'static str) -> FieldSpec {
    FieldSpec {
        abbrev,
        name,
        ty: FieldType::Bytes,
        mask: None,
        hex: false,
        generated: false,
    }
}

/// Every field of [`Dissection::fields`](super::Dissection::fields), in the
/// order they first appear in a message.
pub const FIELDS: &[FieldSpec] = &[
    uint("ciot_e2e.version", "Version", 1, false),
    uint("ciot_e2e.type", "Type", 1, true),
    uint("ciot_e2e.ksi", "KSI", 1, false),
    uint("ciot_e2e.flags", "Flags", 1, true),
    bit("ciot_e2e.flags.direction", "Direction", 0x01, true),
    bit("ciot_e2e.flags.confirm", "CONFIRM", 0x01, false),
    bit("ciot_e2e.flags.named", "NAMED", 0x01, false),
    bit("ciot_e2e.flags.rekey", "REKEY", 0x01, false),
    bit("ciot_e2e.flags.reserved", "Reserved", 0xfe, true),
    uint("ciot_e2e.trigger.counter", "Trigger counter", 8, false),
    bytes("ciot_e2e.trigger.rand", "RAND"),
    uint("ciot_e2e.trigger.kdf", "KDF profile", 1, true),
    uint("ciot_e2e.trigger.suite", "Suite", 1, true),
    uint("ciot_e2e.trigger.lifetime", "Lifetime", 4, false),
    bytes("ciot_e2e.trigger.tag", "Tag"),
    uint("ciot_e2e.key_expired.cause", "Cause", 1, true),
    uint("ciot_e2e.key_expired.counter", "Counter", 8, false),
    uint("ciot_e2e.key_expired.seq", "Refused seq", 4, false),
    bytes("ciot_e2e.key_expired.tag", "Tag"),
    uint(
        "ciot_e2e.hello.counter",
        "Highest trigger counter",
        8,
        false,
    ),
    uint("ciot_e2e.hello.seq", "Hello seq", 4, false),
    bytes("ciot_e2e.hello.nonce", "UE nonce"),
    uint("ciot_e2e.hello.id_len", "Identifier length", 1, false),
    bytes("ciot_e2e.hello.id", "UE identifier"),
    bytes("ciot_e2e.hello.padding", "Padding"),
    bytes("ciot_e2e.hello.tag", "Tag"),
    uint("ciot_e2e.data.suite", "Suite", 1, true),
    uint("ciot_e2e.data.seq", "Sequence number", 4, false),
    bytes("ciot_e2e.data.payload", "Protected payload"),
    FieldSpec {
        generated: true,
        ..bytes("ciot_e2e.data.plaintext", "Plaintext")
    },
    bytes("ciot_e2e.data.tag", "Tag"),
    FieldSpec {
        abbrev: "ciot_e2e.data.tag_valid",
        name: "Tag valid",
        ty: FieldType::Bool,
        mask: None,
        hex: false,
        generated: true,
    },
    bytes("ciot_e2e.trailing", "Trailing octets"),
    bytes("ciot_e2e.body", "Undissected octets"),
];

/// The index in [`FIELDS`] of the field with this abbreviation.
#[must_use]
pub fn field_index(abbrev: &str) -> Option<usize> {
    FIELDS.iter().position(|f| f.abbrev == abbrev)
}

impl FindingKind {
    /// Every kind, in the order of the enum.
    pub const ALL: [FindingKind; 15] = [
        FindingKind::Truncated,
        FindingKind::UnknownVersion,
        FindingKind::UnknownType,
        FindingKind::ReservedBits,
        FindingKind::UnknownSuite,
        FindingKind::UnknownKdf,
        FindingKind::UnknownCause,
        FindingKind::ZeroLifetime,
        FindingKind::TrailingData,
        FindingKind::BadLength,
        FindingKind::BadTag,
        FindingKind::BadIdLength,
        FindingKind::NonzeroPadding,
        FindingKind::UnnamedSeq,
        FindingKind::NonceReuse,
    ];

    /// The severity of every finding of this kind: each is an error
    /// (the message breaks the format, fails its tag or reuses a nonce).
    #[must_use]
    pub const fn severity(self) -> Severity {
        Severity::Error
    }

    /// A short title for the kind (an analyzer's list of expert infos);
    /// each finding's own message says more.
    #[must_use]
    pub const fn title(self) -> &'static str {
        match self {
            FindingKind::Truncated => "Truncated message",
            FindingKind::UnknownVersion => "Unknown protocol version",
            FindingKind::UnknownType => "Unknown message type",
            FindingKind::ReservedBits => "Reserved flag bits set",
            FindingKind::UnknownSuite => "Unknown suite",
            FindingKind::UnknownKdf => "Unknown KDF profile",
            FindingKind::UnknownCause => "Unknown cause",
            FindingKind::ZeroLifetime => "Zero lifetime",
            FindingKind::TrailingData => "Trailing data",
            FindingKind::BadLength => "Message too long",
            FindingKind::BadTag => "No keyset of the key log verifies the tag",
            FindingKind::BadIdLength => "Identifier length not 1..64",
            FindingKind::NonzeroPadding => "Non-zero padding",
            FindingKind::UnnamedSeq => "Seq without NAMED",
            FindingKind::NonceReuse => "Nonce reuse: other contents under the same keys and seq",
        }
    }
}
