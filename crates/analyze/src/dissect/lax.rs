//! The lax walker: every complete field of any octets, and a finding for
//! each thing that is wrong, where a strict parser would stop at the first.

use std::string::ToString;

use ciot_e2e::kdf::KdfProfile;
use ciot_e2e::wire::{
    self, CONTROL_TAG_LEN, Cause, Direction, Error, FLAG_DOWNLINK, FieldName, HelloRepr,
    MAX_MESSAGE_LEN, MessageType, Suite, data, header, hello, key_expired, trigger,
};

use super::Dissection;
use super::model::{Field, Finding, FindingKind, Severity, Shown, Value};
use crate::keylog::KeyLog;

/// The lax walker over one message.
pub(super) struct Lax<'d, 'b> {
    pub(super) d: &'d mut Dissection,
    pub(super) b: &'b [u8],
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

    // Findings come in the order the wire module's decoding checks what
    // they are about, so the first finding of a message is the error that
    // `Message::parse` (and `ciot-e2e decode`) reports for it; the fields
    // come in wire order. The two orders differ (a hello shorter than 84
    // octets is truncated before its flags are looked at), so a walker
    // below may note a finding before it adds the fields it is about.

    pub(super) fn message(&mut self, keys: Option<&KeyLog>) {
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
            MessageType::DERIVE_TRIGGER => self.trigger(flags),
            MessageType::KEY_EXPIRED => self.key_expired(flags),
            MessageType::DATA => self.data(flags, keys),
            MessageType::HELLO => self.hello(flags),
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

    /// The flags of a control message: bit 0 (CONFIRM, NAMED or REKEY)
    /// and the reserved bits 1–7 as children, and a finding when a
    /// reserved bit is set. Returns bit 0.
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

    /// Too few octets for a message of `len`: the finding (the first check
    /// of every control message, right after the header's type).
    fn at_least(&mut self, len: usize) {
        if self.b.len() < len {
            self.truncated(len);
        }
    }

    /// Octets past the end of a message of `len`: the finding (checked
    /// once the flags and, for a hello, the identifier length are).
    fn trailing_finding(&mut self, len: usize) {
        let got = self.b.len();
        if got > len {
            self.finding(
                Error::TrailingData { expected: len, got },
                Some("ciot_e2e.trailing"),
                len,
            );
        }
    }

    /// Octets past the end of a message of `len`: the field, after the
    /// message's own.
    fn trailing_field(&mut self, len: usize) {
        let got = self.b.len();
        if got > len {
            self.push(
                "Trailing octets",
                "ciot_e2e.trailing",
                len..got,
                None,
                0,
                Value::Bytes,
                Shown::Plain,
            );
        }
    }

    /// Decoding order of `TriggerPacket::new_checked` then `TriggerRepr::parse`:
    /// length, flags, trailing octets, KDF profile, suite, lifetime.
    fn trigger(&mut self, flags: Option<u8>) {
        use trigger::field;
        self.at_least(wire::TriggerRepr::LEN);
        self.bit_flag(flags, "CONFIRM", "ciot_e2e.flags.confirm");
        self.trailing_finding(wire::TriggerRepr::LEN);
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
        self.trailing_field(wire::TriggerRepr::LEN);
    }

    /// Decoding order of `KeyExpiredPacket::new_checked` then
    /// `KeyExpiredRepr::parse`: length, flags, trailing octets, a seq
    /// without NAMED, cause.
    fn key_expired(&mut self, flags: Option<u8>) {
        use key_expired::field;
        self.at_least(wire::KeyExpiredRepr::LEN);
        let named = self.bit_flag(flags, "NAMED", "ciot_e2e.flags.named");
        self.trailing_finding(wire::KeyExpiredRepr::LEN);
        let cause = self.byte(field::CAUSE).map(Cause);
        if let Some(cause) = cause {
            self.uint(
                "Cause",
                "ciot_e2e.key_expired.cause",
                field::CAUSE..field::CAUSE + 1,
                Shown::Code(cause.name()),
            );
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
        if let Some(cause) = cause.filter(|c| !c.is_known()) {
            let e = Error::Malformed {
                field: FieldName::Cause,
                value: u64::from(cause.0),
            };
            self.finding(e, Some("ciot_e2e.key_expired.cause"), field::CAUSE);
        }
        self.bytes("Tag", "ciot_e2e.key_expired.tag", field::TAG);
        self.trailing_field(wire::KeyExpiredRepr::LEN);
    }

    /// Decoding order of `HelloPacket::new_checked`: under 84 octets
    /// truncated (whatever the identifier); flags; identifier length;
    /// under the hello's length truncated; trailing octets; padding.
    fn hello(&mut self, flags: Option<u8>) {
        use hello::field;
        let got = self.b.len();
        self.at_least(HelloRepr::MIN_LEN);
        self.bit_flag(flags, "REKEY", "ciot_e2e.flags.rekey");
        self.uint(
            "Highest trigger counter",
            "ciot_e2e.hello.counter",
            field::COUNTER,
            Shown::Plain,
        );
        self.uint("Hello seq", "ciot_e2e.hello.seq", field::SEQ, Shown::Plain);
        self.bytes("UE nonce", "ciot_e2e.hello.nonce", field::NONCE);
        let Some(id_len) = self.uint(
            "Identifier length",
            "ciot_e2e.hello.id_len",
            field::ID_LEN..field::ID,
            Shown::Plain,
        ) else {
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
            self.rest(field::ID);
            return;
        }
        let len = HelloRepr::len_for(id_len);
        if got >= HelloRepr::MIN_LEN {
            // Under 84 octets the truncation is already noted.
            self.at_least(len);
        }
        self.trailing_finding(len);
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
        self.trailing_field(len);
    }

    /// Decoding order of `DataPacket::new_checked`: under the header
    /// truncated, over the maximum too long, flags, suite, under the
    /// header and the suite's tag truncated; then the tag, with keys.
    fn data(&mut self, flags: Option<u8>, keys: Option<&KeyLog>) {
        use data::field;
        let len = self.b.len();
        self.at_least(data::HEADER_LEN);
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
        if len < data::HEADER_LEN {
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
        for (rank, cipher) in keys.ciphers(ksi, suite).enumerate() {
            tried = true;
            self.d.keyset_rank = Some(rank);
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
        self.d.keyset_rank = None;
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
