//! The hello (UE → EESE): the UE names itself, says which keyset it holds,
//! and asks for a trigger. It opens a UE's contact, and the UE repeats it
//! when it has no usable keyset or hears nothing back.
//!
//! ```text
//!  0       1       2       3
//! +-------+-------+-------+-------+
//! |version| type  |  KSI  | flags |   type 0x04, KSI = the UE's current (0 if none),
//! +-------+-------+-------+-------+   flags bit 0 = REKEY, bits 1-7 zero
//! |   highest trigger counter     |   u64 BE: the highest the UE accepted
//! |   the UE accepted             |
//! +-------------------------------+
//! |         hello seq             |   u32 BE: strictly increasing per UE start
//! +-------------------------------+
//! |         UE nonce (16)         |   drawn by the UE at every start
//! |              ...              |
//! +-------+-----------------------+
//! | idlen |   UE identifier (idlen octets, 1..=64) ...
//! +-------+-------------------------------------------
//! |   zero padding up to the tag, so the hello is max(84, 49 + idlen) octets
//! +---------------------------------------------------
//! |   tag (16): HMAC-SHA-256(control key, every octet before it)[..16]
//! +---------------------------------------------------
//! ```
//!
//! REKEY says the UE holds no keyset it can use (new, restarted, expired):
//! it needs a new one even if its counter equals the EESE's. The nonce names
//! the UE's start (its incarnation): the EESE binds the trigger that answers
//! to it, and the keys of that trigger's keyset. The padding
//! makes a hello at least as long as anything the EESE sends back to it (a
//! key-expired error repeated for a UE that may have missed it, and a
//! derive trigger: 33 + 50 = 83 octets), so answering a hello never
//! amplifies.

use nom::bytes::complete::take;
use nom::multi::length_data;
use nom::number::complete::be_u8;
use nom::{IResult, Parser};

use crate::kdf::UeNonce;

use super::auth::TAG_LEN;
use super::{
    ControlAuth, Error, Field, FieldName, Ksi, MessageType, array, control, header, octet,
};

/// Flag bit 0 of a hello: the UE has no usable keyset and needs a new one.
pub const FLAG_REKEY: u8 = 0x01;

/// The longest UE identifier, in octets.
pub const MAX_ID_LEN: usize = 64;

/// Field offsets of the hello.
pub mod field {
    use super::Field;
    /// Highest trigger counter the UE accepted, u64 big endian.
    pub const COUNTER: Field = 4..12;
    /// Hello sequence number, u32 big endian.
    pub const SEQ: Field = 12..16;
    /// The UE's nonce of this start, 16 octets.
    pub const NONCE: Field = 16..32;
    /// Length of the UE identifier.
    pub const ID_LEN: usize = 32;
    /// Where the UE identifier starts.
    pub const ID: usize = 33;
}

/// The identifier of a checked hello (empty, never seen, where the compiler
/// cannot see the check).
fn id_of(bytes: &[u8]) -> &[u8] {
    let len = usize::from(octet(bytes, field::ID_LEN));
    bytes.get(field::ID..field::ID + len).unwrap_or(&[])
}

/// A hello viewed in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloPacket<T: AsRef<[u8]>> {
    buffer: T,
}

control::signed_view!(
    HelloPacket,
    "hello",
    crate::wire::ControlAuth,
    "the control key"
);

/// The identifier and its padding: `idlen ‖ id ‖ padding` up to the tag.
/// Variable structure, so parsed with nom rather than fixed offsets.
fn id_and_padding(body: &[u8]) -> IResult<&[u8], (&[u8], &[u8])> {
    let (rest, id) = length_data(be_u8).parse(body)?;
    let pad_len = HelloRepr::len_for(id.len()).saturating_sub(field::ID + id.len() + TAG_LEN);
    let (rest, padding) = take(pad_len).parse(rest)?;
    Ok((rest, (id, padding)))
}

impl<T: AsRef<[u8]>> HelloPacket<T> {
    /// Wraps a buffer without checks; getters may panic unless it holds a
    /// well-formed hello. For emitting into a buffer you sized.
    pub const fn new_unchecked(buffer: T) -> Self {
        HelloPacket { buffer }
    }

    /// Wraps untrusted octets: checks version, type, flags, the identifier's
    /// length (1..=64), the padding (zero) and the exact length.
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::TrailingData`], [`Error::UnknownVersion`],
    /// [`Error::UnknownType`], [`Error::WrongType`], [`Error::Malformed`]
    /// (flags, identifier length, padding).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let bytes = buffer.as_ref();
        control::check_header(bytes, MessageType::HELLO, HelloRepr::MIN_LEN, FLAG_REKEY)?;
        let id_len = usize::from(bytes[field::ID_LEN]);
        if !(1..=MAX_ID_LEN).contains(&id_len) {
            return Err(Error::Malformed {
                field: FieldName::IdLength,
                value: id_len as u64,
            });
        }
        let len = HelloRepr::len_for(id_len);
        if bytes.len() < len {
            return Err(Error::Truncated {
                needed: len,
                got: bytes.len(),
            });
        }
        control::check_exact(bytes, len)?;
        let body = &bytes[field::ID_LEN..len - TAG_LEN];
        // The lengths were checked above, so the parse consumes the body exactly.
        let (_, (_, padding)) = id_and_padding(body).map_err(|_| Error::Truncated {
            needed: len,
            got: bytes.len(),
        })?;
        // OR-folded first (the compiler vectorizes it); the offending
        // octet is looked for only when there is one.
        if padding.iter().fold(0u8, |acc, &b| acc | b) != 0
            && let Some(&nonzero) = padding.iter().find(|&&b| b != 0)
        {
            return Err(Error::Malformed {
                field: FieldName::Padding,
                value: u64::from(nonzero),
            });
        }
        Ok(HelloPacket { buffer })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The UE's current KSI (0 when it holds none).
    pub fn ksi(&self) -> Ksi {
        Ksi(octet(self.buffer.as_ref(), header::KSI))
    }

    /// Whether the UE needs a new keyset (flag REKEY).
    pub fn rekey(&self) -> bool {
        octet(self.buffer.as_ref(), header::FLAGS) & FLAG_REKEY != 0
    }

    /// The highest trigger counter the UE accepted.
    pub fn counter(&self) -> u64 {
        u64::from_be_bytes(array(self.buffer.as_ref(), field::COUNTER))
    }

    /// The hello sequence number.
    pub fn seq(&self) -> u32 {
        u32::from_be_bytes(array(self.buffer.as_ref(), field::SEQ))
    }

    /// The UE's nonce of this start.
    pub fn nonce(&self) -> UeNonce {
        UeNonce(array(self.buffer.as_ref(), field::NONCE))
    }

    /// The UE identifier.
    pub fn id(&self) -> &[u8] {
        id_of(self.buffer.as_ref())
    }

    /// Byte range of the identifier.
    pub fn id_field(&self) -> Field {
        field::ID..field::ID + usize::from(octet(self.buffer.as_ref(), field::ID_LEN))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> HelloPacket<&'a T> {
    /// The UE identifier, borrowed for as long as the buffer.
    pub fn id_ref(&self) -> &'a [u8] {
        id_of(self.buffer.as_ref())
    }
}

/// A hello's decoded fields, borrowing the identifier. The tag is carried,
/// not checked: verify it with [`ControlAuth`] (or emit with
/// [`HelloRepr::emit_signed`] to compute it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloRepr<'a> {
    /// The UE's current KSI (0 when it holds none).
    pub ksi: Ksi,
    /// The UE needs a new keyset.
    pub rekey: bool,
    /// The highest trigger counter the UE accepted.
    pub counter: u64,
    /// Hello sequence number.
    pub seq: u32,
    /// The UE's nonce of this start.
    pub nonce: UeNonce,
    /// UE identifier, 1..=64 octets.
    pub id: &'a [u8],
    /// Authentication tag as carried.
    pub tag: [u8; TAG_LEN],
}

impl<'a> HelloRepr<'a> {
    /// The shortest hello: what it is padded to, at least the longest
    /// answer (a key-expired error and a derive trigger, 83 octets).
    pub const MIN_LEN: usize = 84;
    /// The longest hello (a 64-octet identifier).
    pub const MAX_LEN: usize = field::ID + MAX_ID_LEN + TAG_LEN;

    /// Octets of a hello whose identifier is `id_len` octets.
    #[must_use]
    pub const fn len_for(id_len: usize) -> usize {
        let natural = field::ID + id_len + TAG_LEN;
        if natural < Self::MIN_LEN {
            Self::MIN_LEN
        } else {
            natural
        }
    }

    /// Decodes a checked packet (every check is in `new_checked`).
    ///
    /// # Errors
    /// None today; the `Result` keeps parse's signature uniform.
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &HelloPacket<&'a T>) -> Result<Self, Error> {
        Ok(HelloRepr {
            ksi: packet.ksi(),
            rekey: packet.rekey(),
            counter: packet.counter(),
            seq: packet.seq(),
            nonce: packet.nonce(),
            id: packet.id_ref(),
            tag: control::tag_array(packet.buffer.as_ref()),
        })
    }

    /// Octets [`HelloRepr::emit`] writes.
    #[must_use]
    pub const fn buffer_len(&self) -> usize {
        Self::len_for(self.id.len())
    }

    /// Writes every field, padding and the carried tag into a packet of
    /// exactly [`HelloRepr::buffer_len`] octets whose identifier is 1..=64
    /// octets (see [`HelloRepr::emit_signed`], which checks).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut HelloPacket<T>) {
        let flags = if self.rekey { FLAG_REKEY } else { 0 };
        let bytes = packet.buffer.as_mut();
        // Written through chunks and checked splits: nothing here can index
        // out of bounds, whatever the buffer (a short one is left short).
        let Some((head, rest)) = bytes.split_first_chunk_mut::<{ field::ID }>() else {
            return;
        };
        let [c0, c1, c2, c3, c4, c5, c6, c7] = self.counter.to_be_bytes();
        let [s0, s1, s2, s3] = self.seq.to_be_bytes();
        // The identifier is at most 64 octets, so its length fits one octet.
        let id_len = self.id.len() as u8;
        let n = self.nonce.0;
        *head = [
            super::VERSION,
            MessageType::HELLO.0,
            self.ksi.0,
            flags,
            c0,
            c1,
            c2,
            c3,
            c4,
            c5,
            c6,
            c7,
            s0,
            s1,
            s2,
            s3,
            n[0],
            n[1],
            n[2],
            n[3],
            n[4],
            n[5],
            n[6],
            n[7],
            n[8],
            n[9],
            n[10],
            n[11],
            n[12],
            n[13],
            n[14],
            n[15],
            id_len,
        ];
        let Some((id, trailer)) = rest.split_at_mut_checked(self.id.len()) else {
            return;
        };
        id.copy_from_slice(self.id);
        if let Some((padding, tag)) = trailer.split_last_chunk_mut::<TAG_LEN>() {
            padding.fill(0);
            *tag = self.tag;
        }
    }

    /// Emits into `buf` with a tag computed with the control key (the carried
    /// `tag` is ignored); returns the length.
    ///
    /// # Errors
    /// [`Error::Malformed`] for an identifier that is empty or longer than
    /// 64 octets; [`Error::BufferTooSmall`].
    pub fn emit_signed(&self, auth: &ControlAuth, buf: &mut [u8]) -> Result<usize, Error> {
        if !(1..=MAX_ID_LEN).contains(&self.id.len()) {
            return Err(Error::Malformed {
                field: FieldName::IdLength,
                value: self.id.len() as u64,
            });
        }
        control::emit_signed(buf, self.buffer_len(), auth, |out| {
            self.emit(&mut HelloPacket::new_unchecked(out));
        })
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for HelloRepr<'a> {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let n = u.int_in_range(1..=MAX_ID_LEN)?;
        Ok(HelloRepr {
            ksi: u.arbitrary()?,
            rekey: u.arbitrary()?,
            counter: u.arbitrary()?,
            seq: u.arbitrary()?,
            nonce: u.arbitrary()?,
            id: u.bytes(n)?,
            tag: u.arbitrary()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kdf::{KdfProfile, PreparedRoot, RootBytes, RootKey, RootKind};

    fn auth() -> ControlAuth {
        let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes([0x11; 32]));
        ControlAuth::new(&PreparedRoot::new(&root, KdfProfile::Ts33220).control_key())
    }

    fn repr(id: &[u8]) -> HelloRepr<'_> {
        HelloRepr {
            ksi: Ksi(3),
            rekey: true,
            counter: 9,
            seq: 0x0102_0304,
            nonce: UeNonce([0x5a; 16]),
            id,
            tag: [0xa5; 16],
        }
    }

    #[rustfmt::skip]
    const UNSIGNED_UE7: [u8; 68] = [
        0x03, 0x04, 0x03, 0x01,
        0, 0, 0, 0, 0, 0, 0, 0x09,
        0x01, 0x02, 0x03, 0x04,
        0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
        0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
        0x03, b'u', b'e', b'7',
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn construct_writes_every_octet_and_pads_to_84() {
        let mut buf = [0xa5u8; 84];
        repr(b"ue7").emit(&mut HelloPacket::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..68], &UNSIGNED_UE7);
        assert_eq!(&buf[68..], &[0xa5; 16], "emit writes the carried tag");
    }

    #[test]
    fn deconstruct_reads_every_field() {
        let mut buf = [0xa5u8; 84];
        buf[..68].copy_from_slice(&UNSIGNED_UE7);
        let p = HelloPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(
            (p.ksi(), p.rekey(), p.counter(), p.seq(), p.nonce(), p.id()),
            (
                Ksi(3),
                true,
                9,
                0x0102_0304,
                UeNonce([0x5a; 16]),
                &b"ue7"[..]
            )
        );
        assert_eq!(HelloRepr::parse(&p).unwrap(), repr(b"ue7"));
    }

    #[test]
    fn length_follows_the_identifier_past_35_octets() {
        assert_eq!(HelloRepr::len_for(1), 84);
        assert_eq!(HelloRepr::len_for(35), 84);
        assert_eq!(HelloRepr::len_for(36), 85);
        assert_eq!(HelloRepr::len_for(64), HelloRepr::MAX_LEN);
        assert_eq!(HelloRepr::MAX_LEN, 113);
        let id = [0x42u8; 64];
        let mut buf = [0u8; 113];
        assert_eq!(repr(&id).emit_signed(&auth(), &mut buf), Ok(113));
        let p = HelloPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(p.id(), &id[..]);
        assert_eq!(p.verify(&auth()), Ok(()));
    }

    #[test]
    fn hello_is_never_shorter_than_the_longest_answer() {
        const {
            assert!(
                HelloRepr::MIN_LEN
                    >= crate::wire::TriggerRepr::LEN + crate::wire::KeyExpiredRepr::LEN
            )
        };
    }

    #[test]
    fn rejects_bad_identifier_lengths_padding_and_lengths() {
        let mut buf = [0u8; 84];
        repr(b"ue7").emit_signed(&auth(), &mut buf).unwrap();
        let mut b = buf;
        b[field::ID_LEN] = 0;
        assert_eq!(
            HelloPacket::new_checked(&b[..]),
            Err(Error::Malformed {
                field: FieldName::IdLength,
                value: 0
            })
        );
        let mut b = buf;
        b[field::ID_LEN] = 65;
        assert_eq!(
            HelloPacket::new_checked(&b[..]),
            Err(Error::Malformed {
                field: FieldName::IdLength,
                value: 65
            })
        );
        let mut b = buf;
        b[50] = 7;
        assert_eq!(
            HelloPacket::new_checked(&b[..]),
            Err(Error::Malformed {
                field: FieldName::Padding,
                value: 7
            })
        );
        assert_eq!(
            HelloPacket::new_checked(&buf[..83]),
            Err(Error::Truncated {
                needed: 84,
                got: 83
            })
        );
        let mut long = [0u8; 85];
        long[..84].copy_from_slice(&buf);
        assert_eq!(
            HelloPacket::new_checked(&long[..]),
            Err(Error::TrailingData {
                expected: 84,
                got: 85
            })
        );
        // A 60-octet identifier needs 109 octets.
        let mut b = [0u8; 109];
        repr(&[1; 60]).emit_signed(&auth(), &mut b).unwrap();
        assert_eq!(
            HelloPacket::new_checked(&b[..108]),
            Err(Error::Truncated {
                needed: 109,
                got: 108
            })
        );
        assert_eq!(
            repr(&[]).emit_signed(&auth(), &mut [0u8; 113]),
            Err(Error::Malformed {
                field: FieldName::IdLength,
                value: 0
            })
        );
    }

    #[test]
    fn signed_hello_verifies_and_any_bit_flip_does_not() {
        let a = auth();
        let mut buf = [0u8; 84];
        repr(b"ue7").emit_signed(&a, &mut buf).unwrap();
        assert_eq!(
            HelloPacket::new_checked(&buf[..]).unwrap().verify(&a),
            Ok(())
        );
        for bit in 0..84 * 8 {
            let mut forged = buf;
            forged[bit / 8] ^= 1 << (bit % 8);
            let ok = HelloPacket::new_checked(&forged[..]).map(|p| p.verify(&a));
            assert!(!matches!(ok, Ok(Ok(()))), "bit {bit} flip still verified");
        }
    }
}
