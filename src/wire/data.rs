//! The data message (both directions): a payload protected by the keyset's
//! suite.
//!
//! ```text
//!  0       1       2       3       4       5       6       7       8
//! +-------+-------+-------+-------+-------+-------+-------+-------+-------+
//! |version| type  |  KSI  | flags | suite |     sequence number (u32 BE)   |
//! +-------+-------+-------+-------+-------+-------+-------+-------+-------+
//! |  protected payload (0 .. 65_507 − 9 − tag octets) ...
//! +-------------------------------------------------------------------+
//! |  MAC / tag: 4 octets (nea2-nia2) or 16 octets (aes-128-gcm)       |
//! +-------------------------------------------------------------------+
//! ```
//! type 0x03; flags bit 0 is the direction (0 uplink, 1 downlink), bits 1–7
//! zero. The nine header octets are what the suite authenticates beside the
//! payload. The suite octet is in clear so that anyone can find the tag.

use super::{
    Direction, Error, FLAG_DOWNLINK, Field, FieldName, Ksi, MAX_MESSAGE_LEN, MessageType, Suite,
    array, header, octet, peek_type,
};

/// Field offsets of the data message.
pub mod field {
    use super::Field;
    /// Suite code.
    pub const SUITE: usize = 4;
    /// Sequence number, u32 big endian.
    pub const SEQ: Field = 5..9;
    /// The authenticated header (the AAD of AES-128-GCM).
    pub const HEADER: Field = 0..9;
    /// Where the payload starts.
    pub const PAYLOAD: usize = HEADER.end;
}

/// Octets of the data header.
pub const HEADER_LEN: usize = field::HEADER.end;

/// A data message viewed in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> DataPacket<T> {
    /// Wraps a buffer without checks; getters may panic unless it holds a
    /// header and the suite's tag. For emitting into a buffer you sized.
    pub const fn new_unchecked(buffer: T) -> Self {
        DataPacket { buffer }
    }

    /// Wraps untrusted octets: checks version, type, flags, suite and length.
    ///
    /// # Errors
    /// [`Error::Truncated`] when shorter than the header and the suite's tag;
    /// [`Error::BadLength`] over [`MAX_MESSAGE_LEN`]; [`Error::UnknownVersion`],
    /// [`Error::UnknownType`], [`Error::WrongType`]; [`Error::Malformed`] for a
    /// reserved flag bit or an unknown suite.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let bytes = buffer.as_ref();
        let got = peek_type(bytes)?;
        if got != MessageType::DATA {
            return Err(Error::WrongType {
                expected: MessageType::DATA,
                got,
            });
        }
        if bytes.len() < HEADER_LEN {
            return Err(Error::Truncated {
                needed: HEADER_LEN,
                got: bytes.len(),
            });
        }
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err(Error::BadLength {
                max: MAX_MESSAGE_LEN,
                got: bytes.len(),
            });
        }
        let flags = bytes[header::FLAGS];
        if flags & !FLAG_DOWNLINK != 0 {
            return Err(Error::Malformed {
                field: FieldName::Flags,
                value: u64::from(flags),
            });
        }
        let suite = Suite(bytes[field::SUITE]);
        if !suite.is_known() {
            return Err(Error::Malformed {
                field: FieldName::Suite,
                value: u64::from(suite.0),
            });
        }
        let needed = HEADER_LEN + suite.tag_len();
        if bytes.len() < needed {
            return Err(Error::Truncated {
                needed,
                got: bytes.len(),
            });
        }
        Ok(DataPacket { buffer })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The message's length in octets.
    pub fn len(&self) -> usize {
        self.buffer.as_ref().len()
    }

    /// Never true for a checked packet (it holds at least a header).
    pub fn is_empty(&self) -> bool {
        self.buffer.as_ref().is_empty()
    }

    /// KSI of the keyset that protects the payload.
    pub fn ksi(&self) -> Ksi {
        Ksi(octet(self.buffer.as_ref(), header::KSI))
    }

    /// Direction (flags bit 0).
    pub fn direction(&self) -> Direction {
        Direction::from_bit(octet(self.buffer.as_ref(), header::FLAGS))
    }

    /// Suite code.
    pub fn suite(&self) -> Suite {
        Suite(octet(self.buffer.as_ref(), field::SUITE))
    }

    /// Sequence number.
    pub fn seq(&self) -> u32 {
        u32::from_be_bytes(array(self.buffer.as_ref(), field::SEQ))
    }

    /// The authenticated header octets.
    pub fn header(&self) -> &[u8] {
        self.buffer.as_ref().get(field::HEADER).unwrap_or(&[])
    }

    fn tag_start(&self) -> usize {
        self.buffer
            .as_ref()
            .len()
            .saturating_sub(self.suite().tag_len())
    }

    /// The protected payload (ciphertext), without the tag.
    pub fn ciphertext(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(field::PAYLOAD..self.tag_start())
            .unwrap_or(&[])
    }

    /// The MAC or tag.
    pub fn tag(&self) -> &[u8] {
        self.buffer.as_ref().get(self.tag_start()..).unwrap_or(&[])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> DataPacket<&'a T> {
    /// The ciphertext, borrowed for as long as the buffer (not the view).
    pub fn ciphertext_ref(&self) -> &'a [u8] {
        let bytes = self.buffer.as_ref();
        let tag_start = bytes
            .len()
            .saturating_sub(Suite(octet(bytes, field::SUITE)).tag_len());
        bytes.get(field::PAYLOAD..tag_start).unwrap_or(&[])
    }

    /// The tag, borrowed for as long as the buffer.
    pub fn tag_ref(&self) -> &'a [u8] {
        let bytes = self.buffer.as_ref();
        let tag_start = bytes
            .len()
            .saturating_sub(Suite(octet(bytes, field::SUITE)).tag_len());
        bytes.get(tag_start..).unwrap_or(&[])
    }
}

/// Writes a data message's header: the common header, the suite and the
/// sequence number. On an array, so nothing here can go out of bounds.
pub(crate) fn write_header(
    header: &mut [u8; HEADER_LEN],
    ksi: Ksi,
    direction: Direction,
    suite: Suite,
    seq: u32,
) {
    let flags = match direction {
        Direction::Downlink => FLAG_DOWNLINK,
        Direction::Uplink => 0,
    };
    let [s0, s1, s2, s3] = seq.to_be_bytes();
    *header = [
        super::VERSION,
        MessageType::DATA.0,
        ksi.0,
        flags,
        suite.0,
        s0,
        s1,
        s2,
        s3,
    ];
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> DataPacket<T> {
    /// Writes the common header, the suite and the sequence number.
    ///
    /// # Panics
    /// When the buffer is shorter than [`HEADER_LEN`] (a view made with
    /// [`DataPacket::new_unchecked`] on a buffer too short to emit into).
    pub fn set_header(&mut self, ksi: Ksi, direction: Direction, suite: Suite, seq: u32) {
        let header = self
            .buffer
            .as_mut()
            .first_chunk_mut::<HEADER_LEN>()
            .expect("a data message's buffer holds its header");
        write_header(header, ksi, direction, suite, seq);
    }

    /// The header, the payload and the tag at once: the header to
    /// authenticate, the payload to transform in place, the tag to write.
    pub fn split_mut(&mut self) -> (&[u8], &mut [u8], &mut [u8]) {
        let tag_start = self.tag_start();
        let bytes = self.buffer.as_mut();
        let (head, rest) = bytes.split_at_mut(field::PAYLOAD);
        let (payload, tag) = rest.split_at_mut(tag_start - field::PAYLOAD);
        (head, payload, tag)
    }
}

/// A data message's decoded fields, borrowing payload and tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRepr<'a> {
    /// KSI of the protecting keyset.
    pub ksi: Ksi,
    /// Direction.
    pub direction: Direction,
    /// Suite.
    pub suite: Suite,
    /// Sequence number.
    pub seq: u32,
    /// Protected payload.
    pub ciphertext: &'a [u8],
    /// MAC or tag; `suite.tag_len()` octets.
    pub tag: &'a [u8],
}

impl<'a> DataRepr<'a> {
    /// Decodes a checked packet (every check is in `new_checked`).
    ///
    /// # Errors
    /// None today; the `Result` keeps parse's signature uniform.
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &DataPacket<&'a T>) -> Result<Self, Error> {
        Ok(DataRepr {
            ksi: packet.ksi(),
            direction: packet.direction(),
            suite: packet.suite(),
            seq: packet.seq(),
            ciphertext: packet.ciphertext_ref(),
            tag: packet.tag_ref(),
        })
    }

    /// Octets [`DataRepr::emit`] writes.
    #[must_use]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.ciphertext.len() + self.tag.len()
    }

    /// Writes the message into a packet of exactly [`DataRepr::buffer_len`]
    /// octets whose tag length matches the suite.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut DataPacket<T>) {
        packet.set_header(self.ksi, self.direction, self.suite, self.seq);
        let (_, payload, tag) = packet.split_mut();
        payload.copy_from_slice(self.ciphertext);
        tag.copy_from_slice(self.tag);
    }

    /// Checks the Repr and emits it at the start of `buf`; returns the length.
    ///
    /// # Errors
    /// [`Error::Malformed`] for an unknown suite or a tag of the wrong length,
    /// [`Error::BadLength`] over [`MAX_MESSAGE_LEN`], [`Error::BufferTooSmall`].
    pub fn emit_into(&self, buf: &mut [u8]) -> Result<usize, Error> {
        if !self.suite.is_known() {
            return Err(Error::Malformed {
                field: FieldName::Suite,
                value: u64::from(self.suite.0),
            });
        }
        if self.tag.len() != self.suite.tag_len() {
            return Err(Error::Malformed {
                field: FieldName::TagLength,
                value: self.tag.len() as u64,
            });
        }
        let len = self.buffer_len();
        if len > MAX_MESSAGE_LEN {
            return Err(Error::BadLength {
                max: MAX_MESSAGE_LEN,
                got: len,
            });
        }
        let got = buf.len();
        let out = buf
            .get_mut(..len)
            .ok_or(Error::BufferTooSmall { needed: len, got })?;
        self.emit(&mut DataPacket::new_unchecked(out));
        Ok(len)
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for DataRepr<'a> {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let suite: Suite = u.arbitrary()?;
        let max = MAX_MESSAGE_LEN - HEADER_LEN - suite.tag_len();
        let len = u.int_in_range(0..=max.min(u.len()))?;
        Ok(DataRepr {
            ksi: u.arbitrary()?,
            direction: u.arbitrary()?,
            suite,
            seq: u.arbitrary()?,
            ciphertext: u.bytes(len)?,
            tag: u.bytes(suite.tag_len())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    const MSG: [u8; 16] = [
        0x03, 0x03, 0x02, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00,
        0xde, 0xad, 0xbe,
        0x11, 0x22, 0x33, 0x44,
    ];

    #[test]
    fn deconstruct_finds_every_field_without_keys() {
        let p = DataPacket::new_checked(&MSG[..]).unwrap();
        assert_eq!(p.ksi(), Ksi(2));
        assert_eq!(p.direction(), Direction::Downlink);
        assert_eq!(p.suite(), Suite::NEA2_NIA2);
        assert_eq!(p.seq(), 256);
        assert_eq!(p.ciphertext(), &[0xde, 0xad, 0xbe]);
        assert_eq!(p.tag(), &[0x11, 0x22, 0x33, 0x44]);
    }

    #[test]
    fn construct_writes_every_octet() {
        let r = DataRepr::parse(&DataPacket::new_checked(&MSG[..]).unwrap()).unwrap();
        let mut buf = [0xa5u8; 16];
        assert_eq!(r.emit_into(&mut buf), Ok(16));
        assert_eq!(buf, MSG);
    }

    #[test]
    fn empty_payload_is_valid() {
        let p = DataPacket::new_checked(&MSG[..9 + 4]);
        assert_eq!(p.map(|p| p.ciphertext().len()), Ok(0));
    }

    #[test]
    fn rejects_reserved_flag_bits_and_unknown_suite() {
        let mut m = MSG;
        m[3] = 0x02;
        assert_eq!(
            DataPacket::new_checked(&m[..]),
            Err(Error::Malformed {
                field: FieldName::Flags,
                value: 2
            })
        );
        let mut m = MSG;
        m[4] = 0x7f;
        assert_eq!(
            DataPacket::new_checked(&m[..]),
            Err(Error::Malformed {
                field: FieldName::Suite,
                value: 0x7f
            })
        );
    }

    #[test]
    fn rejects_message_shorter_than_suite_tag() {
        let mut m = [0u8; 9 + 15];
        m[..9].copy_from_slice(&[0x03, 0x03, 0, 0, 0x02, 0, 0, 0, 0]);
        assert_eq!(
            DataPacket::new_checked(&m[..]),
            Err(Error::Truncated {
                needed: 25,
                got: 24
            })
        );
    }

    #[test]
    fn emit_into_rejects_wrong_tag_length_and_small_buffer() {
        let r = DataRepr {
            ksi: Ksi(0),
            direction: Direction::Uplink,
            suite: Suite::AES_128_GCM,
            seq: 0,
            ciphertext: &[1, 2],
            tag: &[0; 4],
        };
        let mut buf = [0u8; 64];
        assert_eq!(
            r.emit_into(&mut buf),
            Err(Error::Malformed {
                field: FieldName::TagLength,
                value: 4
            })
        );
        let r = DataRepr { tag: &[0; 16], ..r };
        assert_eq!(
            r.emit_into(&mut buf[..26]),
            Err(Error::BufferTooSmall {
                needed: 27,
                got: 26
            })
        );
    }
}
