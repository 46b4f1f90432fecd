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
//! Field abbreviations are filter-style (`ciot_e2e.trigger.rand`). Every
//! field the dissector can emit is in [`FIELDS`] and every kind of finding
//! in [`FindingKind::ALL`], which the Wireshark plugin (`dissector/plugin/`,
//! through `crates/analyze-capi`) registers: it shows what this module
//! dissects, so the two cannot disagree. The Lua dissector
//! (`dissector/ciot_e2e.lua`, decode only) uses the same abbreviations, so
//! it can be compared field by field.
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
//! bytes[..4].copy_from_slice(&[0x03, 0x01, 0x07, 0x00]);
//! let d = Dissection::of(&bytes, None);
//! assert_eq!(d.field("ciot_e2e.ksi").map(|f| f.uint()), Some(Some(7)));
//! assert!(d.field("ciot_e2e.trigger.counter").is_some());
//! assert!(d.field("ciot_e2e.trigger.rand").is_none());
//! assert_eq!(d.findings()[0].message, "truncated: needed 50 octets, got 20");
//! ```

use std::vec::Vec;

use crate::keylog::KeyLog;
use ciot_e2e::wire::MessageType;

mod fields;
mod lax;
mod model;
mod nonce;
pub mod pcap;
pub mod udp;

pub use fields::{FIELDS, FieldSpec, FieldType, field_index};
pub use model::{Field, FieldDisplay, Finding, FindingKind, PROTOCOL, Severity, Shown, Value};
pub use nonce::NonceLedger;

/// The dissection of one message: fields in wire order (a tree by depth)
/// and findings in the order the wire module checks what they are about,
/// so the first finding is the error `Message::parse` reports. Reuse one
/// with [`Dissection::run`] to avoid allocating per message.
#[derive(Clone, Debug, Default)]
pub struct Dissection {
    fields: Vec<Field>,
    findings: Vec<Finding>,
    plaintext: Vec<u8>,
    decrypted: bool,
    tag_valid: Option<bool>,
    /// Which of the key log's candidates for the KSI and suite verified.
    keyset_rank: Option<usize>,
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
        self.keyset_rank = None;
        self.message_type = None;
        self.len = bytes.len();
        lax::Lax { d: self, b: bytes }.message(keys);
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

    /// The findings, in the order the wire module's decoding checks what
    /// they are about (`docs/wire-format.md`, "Decoding order"): the first
    /// is the error [`ciot_e2e::wire::Message::parse`] returns for the
    /// message, the others are what a strict decoder would not get to.
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

    /// Which keyset of the key log verified a data message: its rank among
    /// [`KeyLog::candidates`] for the message's KSI and suite (`None`
    /// unless [`Dissection::tag_valid`] is `Some(true)`).
    #[must_use]
    pub const fn keyset_rank(&self) -> Option<usize> {
        self.keyset_rank
    }
}
