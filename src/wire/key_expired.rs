//! The key-expired error (EESE → UE): the EESE refused a KSI.
//!
//! ```text
//!  0       1       2       3
//! +-------+-------+-------+-------+
//! |version| type  |  KSI  | flags |   type 0x02, KSI = the refused one, flags 0
//! +-------+-------+-------+-------+
//! | cause |   trigger counter of the refused keyset (u64 BE; 0 if none)
//! +-------+                       +
//! |                       +-------+
//! |                       |  tag (16): HMAC-SHA-256(control key, octets 0..13)[..16]
//! +-----------------------+
//! ```                                 29 octets in all
//!
//! The counter binds the error to one generation of the KSI, so an old error
//! replayed after the KSI wrapped around names a stale generation.

use super::auth::TAG_LEN;
use super::{
    Cause, ControlAuth, Error, Field, FieldName, Ksi, MessageType, array, check_control, header,
    write_header,
};

/// Field offsets of the key-expired error.
pub mod field {
    use super::Field;
    /// Cause code.
    pub const CAUSE: usize = 4;
    /// Trigger counter of the refused keyset, u64 big endian.
    pub const COUNTER: Field = 5..13;
    /// Authentication tag.
    pub const TAG: Field = 13..29;
}

/// A key-expired error viewed in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyExpiredPacket<T: AsRef<[u8]>> {
    buffer: T,
}

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
    /// [`Error::UnknownType`], [`Error::WrongType`], [`Error::Malformed`] (flags).
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        check_control(
            buffer.as_ref(),
            MessageType::KEY_EXPIRED,
            KeyExpiredRepr::LEN,
        )?;
        Ok(KeyExpiredPacket { buffer })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The refused KSI.
    pub fn ksi(&self) -> Ksi {
        Ksi(self.buffer.as_ref()[header::KSI])
    }

    /// Cause code (open: may be unknown).
    pub fn cause(&self) -> Cause {
        Cause(self.buffer.as_ref()[field::CAUSE])
    }

    /// Trigger counter of the refused keyset.
    pub fn counter(&self) -> u64 {
        u64::from_be_bytes(array(self.buffer.as_ref(), field::COUNTER))
    }

    /// The authentication tag.
    pub fn tag(&self) -> &[u8] {
        &self.buffer.as_ref()[field::TAG]
    }

    /// The octets the tag covers.
    pub fn covered(&self) -> &[u8] {
        &self.buffer.as_ref()[..field::TAG.start]
    }

    /// Verifies the tag with the control key.
    ///
    /// # Errors
    /// [`Error::BadTag`] when the error was not made with this key.
    pub fn verify(&self, auth: &ControlAuth) -> Result<(), Error> {
        auth.verify(self.covered(), self.tag())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> KeyExpiredPacket<T> {
    /// Writes the header for an error refusing this KSI.
    pub fn set_header(&mut self, ksi: Ksi) {
        write_header(self.buffer.as_mut(), MessageType::KEY_EXPIRED, ksi, 0);
    }

    /// Sets the cause.
    pub fn set_cause(&mut self, cause: Cause) {
        self.buffer.as_mut()[field::CAUSE] = cause.0;
    }

    /// Sets the trigger counter.
    pub fn set_counter(&mut self, counter: u64) {
        self.buffer.as_mut()[field::COUNTER].copy_from_slice(&counter.to_be_bytes());
    }

    /// Sets the tag octets as given.
    pub fn set_tag(&mut self, tag: &[u8; TAG_LEN]) {
        self.buffer.as_mut()[field::TAG].copy_from_slice(tag);
    }

    /// Computes the tag over the octets before it and writes it.
    pub fn sign(&mut self, auth: &ControlAuth) {
        let tag = auth.tag(self.covered());
        self.set_tag(&tag);
    }
}

/// A key-expired error's decoded fields. The tag is carried, not checked: verify it with
/// [`ControlAuth`] (or emit with [`KeyExpiredRepr::emit_signed`] to compute it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct KeyExpiredRepr {
    /// The refused KSI.
    pub ksi: Ksi,
    /// Why it was refused.
    pub cause: Cause,
    /// Trigger counter of the refused keyset (0 when the EESE has none).
    pub counter: u64,
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
            tag: array(packet.buffer.as_ref(), field::TAG),
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
        packet.set_header(self.ksi);
        packet.set_cause(self.cause);
        packet.set_counter(self.counter);
        packet.set_tag(&self.tag);
    }

    /// Emits into `buf` with a tag computed with the control key (the
    /// carried `tag` is ignored); returns the length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] when `buf` is shorter than [`KeyExpiredRepr::LEN`].
    pub fn emit_signed(&self, auth: &ControlAuth, buf: &mut [u8]) -> Result<usize, Error> {
        let got = buf.len();
        let buf = buf.get_mut(..Self::LEN).ok_or(Error::BufferTooSmall {
            needed: Self::LEN,
            got,
        })?;
        let mut packet = KeyExpiredPacket::new_unchecked(buf);
        self.emit(&mut packet);
        packet.sign(auth);
        Ok(Self::LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const UNSIGNED: [u8; 13] = [
        0x01, 0x02, 0x07, 0x00,
        0x01,
        0, 0, 0, 0, 0, 0, 0, 0x05,
    ];

    fn repr() -> KeyExpiredRepr {
        KeyExpiredRepr {
            ksi: Ksi(7),
            cause: Cause::TE2E_EXPIRED,
            counter: 5,
            tag: [0xa5; 16],
        }
    }

    #[test]
    fn construct_writes_every_octet() {
        let mut buf = [0xa5u8; KeyExpiredRepr::LEN];
        repr().emit(&mut KeyExpiredPacket::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..13], &UNSIGNED);
        assert_eq!(&buf[13..], &[0xa5; 16]);
    }

    #[test]
    fn deconstruct_reads_every_field() {
        let mut buf = [0xa5u8; 29];
        buf[..13].copy_from_slice(&UNSIGNED);
        let p = KeyExpiredPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(
            (p.ksi(), p.cause(), p.counter()),
            (Ksi(7), Cause::TE2E_EXPIRED, 5)
        );
        assert_eq!(KeyExpiredRepr::parse(&p), Ok(repr()));
    }

    #[test]
    fn rejects_unknown_cause() {
        let mut buf = [0u8; 29];
        buf[..13].copy_from_slice(&UNSIGNED);
        buf[field::CAUSE] = 0x05;
        let p = KeyExpiredPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(
            KeyExpiredRepr::parse(&p),
            Err(Error::Malformed {
                field: FieldName::Cause,
                value: 5
            })
        );
    }
}
