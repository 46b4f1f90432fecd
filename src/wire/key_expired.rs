//! The key-expired error (EESE → UE): the EESE refused a KSI, and possibly
//! names the one message it refused.
//!
//! ```text
//!  0       1       2       3
//! +-------+-------+-------+-------+
//! |version| type  |  KSI  | flags |   type 0x02, KSI = the refused one,
//! +-------+-------+-------+-------+   flags bit 0 = NAMED, bits 1-7 zero
//! | cause |   trigger counter of the refused keyset (u64 BE)
//! +-------+                       +
//! |                       +-------+
//! |                       | seq of the refused message (u32 BE; 0 unless NAMED)
//! +-------+-------+-------+       +
//! |       |  tag (16): HMAC-SHA-256(control key, octets 0..17 ‖ UE nonce)[..16]
//! +-------+                           33 octets in all
//! ```
//!
//! The counter binds the error to one generation of the KSI, so an old error
//! replayed after the KSI wrapped around names a stale generation. NAMED says
//! the EESE authenticated the message `(KSI, counter, seq)`, found it fresh,
//! and did not deliver it: the UE may send that payload again under the next
//! keyset (TR 33.863 §6.5.2.3 step 5). Without NAMED the UE sends nothing
//! again: the message may have been delivered.

use super::auth::TAG_LEN;
use super::{
    AnswerAuth, Cause, Error, Field, FieldName, Ksi, MessageType, array, control, header, octet,
    write_header,
};

/// Flag bit 0 of a key-expired error: the seq field names the refused message.
pub const FLAG_NAMED: u8 = 0x01;

/// Field offsets of the key-expired error.
pub mod field {
    use super::Field;
    /// Cause code.
    pub const CAUSE: usize = 4;
    /// Trigger counter of the refused keyset, u64 big endian.
    pub const COUNTER: Field = 5..13;
    /// Sequence number of the refused message, u32 big endian (flag NAMED).
    pub const SEQ: Field = 13..17;
    /// Authentication tag.
    pub const TAG: Field = 17..33;
}

/// A key-expired error viewed in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyExpiredPacket<T: AsRef<[u8]>> {
    buffer: T,
}

control::signed_view!(
    KeyExpiredPacket,
    "error",
    crate::wire::AnswerAuth<'_>,
    "the control key bound to the nonce of the UE start it answers"
);

impl<T: AsRef<[u8]>> KeyExpiredPacket<T> {
    /// Wraps a buffer without checks; getters may panic if it is shorter than
    /// [`KeyExpiredRepr::LEN`].
    pub const fn new_unchecked(buffer: T) -> Self {
        KeyExpiredPacket { buffer }
    }

    /// Wraps untrusted octets: checks version, type, flags and exact length.
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::TrailingData`], [`Error::UnknownVersion`],
    /// [`Error::UnknownType`], [`Error::WrongType`], [`Error::Malformed`]
    /// (a reserved flag bit, or a seq without NAMED).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let bytes = buffer.as_ref();
        control::check_header(
            bytes,
            MessageType::KEY_EXPIRED,
            KeyExpiredRepr::LEN,
            FLAG_NAMED,
        )?;
        control::check_exact(bytes, KeyExpiredRepr::LEN)?;
        let packet = KeyExpiredPacket { buffer };
        if !packet.named() && packet.seq() != 0 {
            // One encoding per message: an unnamed error carries seq 0.
            return Err(Error::Malformed {
                field: FieldName::Seq,
                value: u64::from(packet.seq()),
            });
        }
        Ok(packet)
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The refused KSI.
    pub fn ksi(&self) -> Ksi {
        Ksi(octet(self.buffer.as_ref(), header::KSI))
    }

    /// Whether the error names the refused message (flag NAMED).
    pub fn named(&self) -> bool {
        octet(self.buffer.as_ref(), header::FLAGS) & FLAG_NAMED != 0
    }

    /// Cause code (open: may be unknown).
    pub fn cause(&self) -> Cause {
        Cause(octet(self.buffer.as_ref(), field::CAUSE))
    }

    /// Trigger counter of the refused keyset.
    pub fn counter(&self) -> u64 {
        u64::from_be_bytes(array(self.buffer.as_ref(), field::COUNTER))
    }

    /// The seq field (the refused message's sequence number when NAMED).
    pub fn seq(&self) -> u32 {
        u32::from_be_bytes(array(self.buffer.as_ref(), field::SEQ))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> KeyExpiredPacket<T> {
    /// Writes the header for an error refusing this KSI.
    pub fn set_header(&mut self, ksi: Ksi, named: bool) {
        let flags = if named { FLAG_NAMED } else { 0 };
        write_header(self.buffer.as_mut(), MessageType::KEY_EXPIRED, ksi, flags);
    }

    /// Sets the cause.
    pub fn set_cause(&mut self, cause: Cause) {
        self.buffer.as_mut()[field::CAUSE] = cause.0;
    }

    /// Sets the trigger counter.
    pub fn set_counter(&mut self, counter: u64) {
        self.buffer.as_mut()[field::COUNTER].copy_from_slice(&counter.to_be_bytes());
    }

    /// Sets the seq field.
    pub fn set_seq(&mut self, seq: u32) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&seq.to_be_bytes());
    }

    /// Sets the tag octets as given.
    pub fn set_tag(&mut self, tag: &[u8; TAG_LEN]) {
        control::set_tag(self.buffer.as_mut(), tag);
    }

    /// Computes the tag over the octets before it and writes it.
    pub fn sign(&mut self, auth: &AnswerAuth<'_>) {
        control::sign(self.buffer.as_mut(), auth);
    }
}

/// A key-expired error's decoded fields. The tag is carried, not checked: verify it with
/// [`AnswerAuth`] (or emit with [`KeyExpiredRepr::emit_signed`] to compute it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct KeyExpiredRepr {
    /// The refused KSI.
    pub ksi: Ksi,
    /// Why it was refused.
    pub cause: Cause,
    /// Trigger counter of the refused keyset.
    pub counter: u64,
    /// The refused message's sequence number, when the EESE names it: it
    /// authenticated the message, found it fresh and did not deliver it.
    pub refused: Option<u32>,
    /// Authentication tag as carried.
    pub tag: [u8; TAG_LEN],
}

impl KeyExpiredRepr {
    /// Octets of an encoded key-expired error.
    pub const LEN: usize = field::TAG.end;

    /// Decodes and checks every field (not the tag).
    ///
    /// # Errors
    /// [`Error::Malformed`] for an unknown cause.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &KeyExpiredPacket<T>) -> Result<Self, Error> {
        let cause = packet.cause();
        if !cause.is_known() {
            return Err(Error::Malformed {
                field: FieldName::Cause,
                value: u64::from(cause.0),
            });
        }
        Ok(KeyExpiredRepr {
            ksi: packet.ksi(),
            cause,
            counter: packet.counter(),
            refused: packet.named().then(|| packet.seq()),
            tag: control::tag_array(packet.buffer.as_ref()),
        })
    }

    /// Octets [`KeyExpiredRepr::emit`] writes.
    #[must_use]
    pub const fn buffer_len(&self) -> usize {
        Self::LEN
    }

    /// Writes every field, the carried tag included (see [`KeyExpiredRepr::emit_signed`]
    /// to compute the tag instead).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut KeyExpiredPacket<T>) {
        packet.set_header(self.ksi, self.refused.is_some());
        packet.set_cause(self.cause);
        packet.set_counter(self.counter);
        packet.set_seq(self.refused.unwrap_or(0));
        packet.set_tag(&self.tag);
    }

    /// Emits into `buf` with a tag computed with the control key (the
    /// carried `tag` is ignored); returns the length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] when `buf` is shorter than [`KeyExpiredRepr::LEN`].
    pub fn emit_signed(&self, auth: &AnswerAuth<'_>, buf: &mut [u8]) -> Result<usize, Error> {
        control::emit_signed(buf, Self::LEN, auth, |out| {
            self.emit(&mut KeyExpiredPacket::new_unchecked(out));
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const UNSIGNED: [u8; 17] = [
        0x03, 0x02, 0x07, 0x01,
        0x01,
        0, 0, 0, 0, 0, 0, 0, 0x05,
        0, 0, 0x01, 0x02,
    ];

    fn repr() -> KeyExpiredRepr {
        KeyExpiredRepr {
            ksi: Ksi(7),
            cause: Cause::TE2E_EXPIRED,
            counter: 5,
            refused: Some(0x0102),
            tag: [0xa5; 16],
        }
    }

    #[test]
    fn construct_writes_every_octet() {
        let mut buf = [0xa5u8; KeyExpiredRepr::LEN];
        repr().emit(&mut KeyExpiredPacket::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..17], &UNSIGNED);
        assert_eq!(&buf[17..], &[0xa5; 16]);
    }

    #[test]
    fn deconstruct_reads_every_field() {
        let mut buf = [0xa5u8; 33];
        buf[..17].copy_from_slice(&UNSIGNED);
        let p = KeyExpiredPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(
            (p.ksi(), p.cause(), p.counter(), p.named(), p.seq()),
            (Ksi(7), Cause::TE2E_EXPIRED, 5, true, 0x0102)
        );
        assert_eq!(KeyExpiredRepr::parse(&p), Ok(repr()));
    }

    #[test]
    fn unnamed_error_carries_seq_zero_and_no_other() {
        let unnamed = KeyExpiredRepr {
            refused: None,
            ..repr()
        };
        let mut buf = [0xa5u8; 33];
        unnamed.emit(&mut KeyExpiredPacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf[3], 0);
        assert_eq!(&buf[13..17], &[0; 4]);
        let p = KeyExpiredPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(KeyExpiredRepr::parse(&p), Ok(unnamed));
        buf[16] = 1;
        assert_eq!(
            KeyExpiredPacket::new_checked(&buf[..]),
            Err(Error::Malformed {
                field: FieldName::Seq,
                value: 1
            })
        );
    }

    #[test]
    fn rejects_unknown_cause_and_reserved_flags() {
        let mut buf = [0u8; 33];
        buf[..17].copy_from_slice(&UNSIGNED);
        buf[field::CAUSE] = 0x06;
        let p = KeyExpiredPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(
            KeyExpiredRepr::parse(&p),
            Err(Error::Malformed {
                field: FieldName::Cause,
                value: 6
            })
        );
        buf[header::FLAGS] = 0x03;
        assert_eq!(
            KeyExpiredPacket::new_checked(&buf[..]),
            Err(Error::Malformed {
                field: FieldName::Flags,
                value: 3
            })
        );
    }

    #[test]
    fn signed_error_verifies_only_for_the_ue_start_it_answers() {
        use crate::kdf::{KdfProfile, PreparedRoot, RootBytes, RootKey, RootKind, UeNonce};
        use crate::wire::ControlAuth;
        let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes([0x11; 32]));
        let c = ControlAuth::new(&PreparedRoot::new(&root, KdfProfile::Ts33220).control_key());
        let (mine, other) = (UeNonce([1; 16]), UeNonce([2; 16]));
        let mut buf = [0u8; 33];
        repr().emit_signed(&c.answer(&mine), &mut buf).unwrap();
        let p = KeyExpiredPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(p.verify(&c.answer(&mine)), Ok(()));
        assert_eq!(p.verify(&c.answer(&other)), Err(Error::BadTag));
        for bit in 0..33 * 8 {
            let mut forged = buf;
            forged[bit / 8] ^= 1 << (bit % 8);
            let ok = KeyExpiredPacket::new_checked(&forged[..]).map(|p| p.verify(&c.answer(&mine)));
            assert!(!matches!(ok, Ok(Ok(()))), "bit {bit} flip still verified");
        }
    }
}
