//! The derive trigger (EESE → UE): RAND and parameters of a new keyset.
//!
//! ```text
//!  0       1       2       3
//! +-------+-------+-------+-------+
//! |version| type  |  KSI  | flags |   type 0x01, KSI = the new keyset's,
//! +-------+-------+-------+-------+   flags bit 0 = CONFIRM, bits 1-7 zero
//! +-------+-------+-------+-------+
//! |        trigger counter        |   u64 big endian, strictly increasing
//! |                               |
//! +-------------------------------+
//! |             RAND              |   128 bits
//! |              ...              |
//! +-------+-------+---------------+
//! |  KDF  | suite |   lifetime    |   lifetime te2e in seconds, u32 BE, ≥ 1
//! +-------+-------+  (cont.)      +
//! |               |               |
//! +---------------+               +
//! |   tag (16): HMAC-SHA-256(control key, octets 0..34 ‖ UE nonce)[..16]
//! +-------------------------------+   50 octets in all
//! ```
//!
//! CONFIRM says the EESE has not yet seen the UE use the keyset, and sends
//! nothing under it until it does: a UE with no payload to send confirms it
//! with a hello that names it. The trigger of a keyset in use (repeated in
//! answer to a hello, or to input the EESE could not authenticate) has no
//! CONFIRM.
//!
//! The tag covers the nonce of the UE start the trigger answers (from its
//! hello; not sent back), so a trigger made for one start of a UE never
//! verifies at another: a UE that lost or rolled back its storage cannot be
//! made to install a keyset it, or an earlier copy of it, used.

use crate::kdf::{KdfProfile, Rand};

use super::auth::TAG_LEN;
use super::{
    AnswerAuth, Error, Field, FieldName, Ksi, MessageType, Suite, array, control, header, octet,
    write_header,
};

/// Flag bit 0 of a derive trigger: the EESE waits for the UE to use (or name
/// in a hello) the keyset before it sends anything under it.
pub const FLAG_CONFIRM: u8 = 0x01;

/// Field offsets of the derive trigger.
pub mod field {
    use super::Field;
    /// Trigger counter, u64 big endian.
    pub const COUNTER: Field = 4..12;
    /// RAND, 16 octets.
    pub const RAND: Field = 12..28;
    /// KDF profile code.
    pub const KDF: usize = 28;
    /// Suite code.
    pub const SUITE: usize = 29;
    /// Lifetime te2e in seconds, u32 big endian.
    pub const LIFETIME: Field = 30..34;
    /// Authentication tag.
    pub const TAG: Field = 34..50;
}

/// A derive trigger viewed in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriggerPacket<T: AsRef<[u8]>> {
    buffer: T,
}

control::signed_view!(
    TriggerPacket,
    "trigger",
    crate::wire::AnswerAuth<'_>,
    "the control key bound to the nonce of the UE start it answers"
);

impl<T: AsRef<[u8]>> TriggerPacket<T> {
    /// Wraps a buffer without checks; getters may panic if it is shorter than
    /// [`TriggerRepr::LEN`]. For emitting into a buffer you sized.
    pub const fn new_unchecked(buffer: T) -> Self {
        TriggerPacket { buffer }
    }

    /// Wraps untrusted octets: checks version, type, flags and exact length.
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::TrailingData`], [`Error::UnknownVersion`],
    /// [`Error::UnknownType`], [`Error::WrongType`], [`Error::Malformed`] (flags).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let bytes = buffer.as_ref();
        control::check_header(
            bytes,
            MessageType::DERIVE_TRIGGER,
            TriggerRepr::LEN,
            FLAG_CONFIRM,
        )?;
        control::check_exact(bytes, TriggerRepr::LEN)?;
        Ok(TriggerPacket { buffer })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// KSI of the new keyset.
    pub fn ksi(&self) -> Ksi {
        Ksi(octet(self.buffer.as_ref(), header::KSI))
    }

    /// Whether the EESE waits for the UE to use the keyset (flag CONFIRM).
    pub fn confirm(&self) -> bool {
        octet(self.buffer.as_ref(), header::FLAGS) & FLAG_CONFIRM != 0
    }

    /// Trigger counter.
    pub fn counter(&self) -> u64 {
        u64::from_be_bytes(array(self.buffer.as_ref(), field::COUNTER))
    }

    /// RAND.
    pub fn rand(&self) -> Rand {
        Rand(array(self.buffer.as_ref(), field::RAND))
    }

    /// KDF profile code (open: may be unknown).
    pub fn kdf_code(&self) -> u8 {
        octet(self.buffer.as_ref(), field::KDF)
    }

    /// Suite code (open: may be unknown).
    pub fn suite(&self) -> Suite {
        Suite(octet(self.buffer.as_ref(), field::SUITE))
    }

    /// Lifetime te2e in seconds.
    pub fn lifetime(&self) -> u32 {
        u32::from_be_bytes(array(self.buffer.as_ref(), field::LIFETIME))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TriggerPacket<T> {
    /// Writes the header for a trigger with this KSI and flag CONFIRM.
    pub fn set_header(&mut self, ksi: Ksi, confirm: bool) {
        let flags = if confirm { FLAG_CONFIRM } else { 0 };
        write_header(
            self.buffer.as_mut(),
            MessageType::DERIVE_TRIGGER,
            ksi,
            flags,
        );
    }

    /// Sets the trigger counter.
    pub fn set_counter(&mut self, counter: u64) {
        self.buffer.as_mut()[field::COUNTER].copy_from_slice(&counter.to_be_bytes());
    }

    /// Sets RAND.
    pub fn set_rand(&mut self, rand: &Rand) {
        self.buffer.as_mut()[field::RAND].copy_from_slice(&rand.0);
    }

    /// Sets the KDF profile code.
    pub fn set_kdf_code(&mut self, code: u8) {
        self.buffer.as_mut()[field::KDF] = code;
    }

    /// Sets the suite code.
    pub fn set_suite(&mut self, suite: Suite) {
        self.buffer.as_mut()[field::SUITE] = suite.0;
    }

    /// Sets the lifetime te2e in seconds.
    pub fn set_lifetime(&mut self, secs: u32) {
        self.buffer.as_mut()[field::LIFETIME].copy_from_slice(&secs.to_be_bytes());
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

/// A derive trigger's decoded fields. The tag is carried, not checked: verify it with
/// [`AnswerAuth`] (or emit with [`TriggerRepr::emit_signed`] to compute it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct TriggerRepr {
    /// KSI of the new keyset.
    pub ksi: Ksi,
    /// The EESE waits for the UE to use the keyset before it sends under it.
    pub confirm: bool,
    /// Trigger counter: the UE accepts only a higher one than it last accepted.
    pub counter: u64,
    /// RAND of the new keyset.
    pub rand: Rand,
    /// KDF profile of the new keyset.
    pub profile: KdfProfile,
    /// Suite the new keyset protects data with.
    pub suite: Suite,
    /// Lifetime te2e in seconds (≥ 1), so the UE can plan.
    pub lifetime: u32,
    /// Authentication tag as carried.
    pub tag: [u8; TAG_LEN],
}

impl TriggerRepr {
    /// Octets of an encoded trigger.
    pub const LEN: usize = field::TAG.end;

    /// Decodes and checks every field (not the tag).
    ///
    /// # Errors
    /// [`Error::Malformed`] for an unknown KDF profile or suite, or a zero
    /// lifetime.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &TriggerPacket<T>) -> Result<Self, Error> {
        let kdf = packet.kdf_code();
        let profile = KdfProfile::from_code(kdf).ok_or(Error::Malformed {
            field: FieldName::KdfProfile,
            value: u64::from(kdf),
        })?;
        let suite = packet.suite();
        if !suite.is_known() {
            return Err(Error::Malformed {
                field: FieldName::Suite,
                value: u64::from(suite.0),
            });
        }
        let lifetime = packet.lifetime();
        if lifetime == 0 {
            return Err(Error::Malformed {
                field: FieldName::Lifetime,
                value: 0,
            });
        }
        Ok(TriggerRepr {
            ksi: packet.ksi(),
            confirm: packet.confirm(),
            counter: packet.counter(),
            rand: packet.rand(),
            profile,
            suite,
            lifetime,
            tag: control::tag_array(packet.buffer.as_ref()),
        })
    }

    /// Octets [`TriggerRepr::emit`] writes.
    #[must_use]
    pub const fn buffer_len(&self) -> usize {
        Self::LEN
    }

    /// Writes every field, the carried tag included (see [`TriggerRepr::emit_signed`]
    /// to compute the tag instead).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut TriggerPacket<T>) {
        packet.set_header(self.ksi, self.confirm);
        packet.set_counter(self.counter);
        packet.set_rand(&self.rand);
        packet.set_kdf_code(self.profile.code());
        packet.set_suite(self.suite);
        packet.set_lifetime(self.lifetime);
        packet.set_tag(&self.tag);
    }

    /// Emits into `buf` with a tag computed with the control key (the
    /// carried `tag` is ignored); returns the length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] when `buf` is shorter than [`TriggerRepr::LEN`].
    pub fn emit_signed(&self, auth: &AnswerAuth<'_>, buf: &mut [u8]) -> Result<usize, Error> {
        control::emit_signed(buf, Self::LEN, auth, |out| {
            self.emit(&mut TriggerPacket::new_unchecked(out));
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kdf::{KdfProfile, PreparedRoot, RootBytes, RootKey, RootKind};

    use crate::kdf::UeNonce;
    use crate::wire::ControlAuth;

    const NONCE: UeNonce = UeNonce([0x5a; 16]);

    fn control() -> ControlAuth {
        let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes([0x11; 32]));
        ControlAuth::new(&PreparedRoot::new(&root, KdfProfile::Ts33220).control_key())
    }

    fn repr() -> TriggerRepr {
        TriggerRepr {
            ksi: Ksi(1),
            confirm: true,
            counter: 1,
            rand: Rand([0x42; 16]),
            profile: KdfProfile::Ts33220,
            suite: Suite::AES_128_GCM,
            lifetime: 3600,
            tag: [0xa5; 16],
        }
    }

    #[rustfmt::skip]
    const UNSIGNED: [u8; 34] = [
        0x03, 0x01, 0x01, 0x01,
        0, 0, 0, 0, 0, 0, 0, 0x01,
        0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
        0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
        0x01, 0x02, 0x00, 0x00, 0x0e, 0x10,
    ];

    #[test]
    fn construct_writes_every_octet() {
        let mut buf = [0xa5u8; TriggerRepr::LEN];
        repr().emit(&mut TriggerPacket::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..34], &UNSIGNED);
        assert_eq!(&buf[34..], &[0xa5; 16], "emit writes the carried tag");
    }

    #[test]
    fn deconstruct_reads_every_field() {
        let mut buf = [0xa5u8; 50];
        buf[..34].copy_from_slice(&UNSIGNED);
        let p = TriggerPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(p.ksi(), Ksi(1));
        assert_eq!(p.counter(), 1);
        assert_eq!(p.rand(), Rand([0x42; 16]));
        assert_eq!(p.kdf_code(), 1);
        assert_eq!(p.suite(), Suite::AES_128_GCM);
        assert_eq!(p.lifetime(), 3600);
        assert_eq!(TriggerRepr::parse(&p).unwrap(), repr());
    }

    #[test]
    fn signed_trigger_verifies_and_any_bit_flip_does_not() {
        let c = control();
        let a = c.answer(&NONCE);
        let mut buf = [0u8; 50];
        repr().emit_signed(&a, &mut buf).unwrap();
        assert_eq!(
            TriggerPacket::new_checked(&buf[..]).unwrap().verify(&a),
            Ok(())
        );
        for bit in 0..50 * 8 {
            let mut forged = buf;
            forged[bit / 8] ^= 1 << (bit % 8);
            let ok = TriggerPacket::new_checked(&forged[..]).map(|p| p.verify(&a));
            assert!(!matches!(ok, Ok(Ok(()))), "bit {bit} flip still verified");
        }
        // Made for another start of the UE: its tag does not verify.
        for bit in 0..128 {
            let mut other = NONCE;
            other.0[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                TriggerPacket::new_checked(&buf[..])
                    .unwrap()
                    .verify(&c.answer(&other)),
                Err(Error::BadTag),
                "nonce bit {bit}"
            );
        }
    }

    #[test]
    fn rejects_unknown_kdf_suite_and_zero_lifetime() {
        let mut buf = [0u8; 50];
        buf[..34].copy_from_slice(&UNSIGNED);
        let mut b = buf;
        b[field::KDF] = 9;
        let p = TriggerPacket::new_checked(&b[..]).unwrap();
        assert_eq!(
            TriggerRepr::parse(&p),
            Err(Error::Malformed {
                field: FieldName::KdfProfile,
                value: 9
            })
        );
        let mut b = buf;
        b[field::SUITE] = 0;
        let p = TriggerPacket::new_checked(&b[..]).unwrap();
        assert_eq!(
            TriggerRepr::parse(&p),
            Err(Error::Malformed {
                field: FieldName::Suite,
                value: 0
            })
        );
        let mut b = buf;
        b[field::LIFETIME].copy_from_slice(&[0; 4]);
        let p = TriggerPacket::new_checked(&b[..]).unwrap();
        assert_eq!(
            TriggerRepr::parse(&p),
            Err(Error::Malformed {
                field: FieldName::Lifetime,
                value: 0
            })
        );
    }

    #[test]
    fn emit_signed_rejects_short_buffer() {
        let mut buf = [0u8; 49];
        assert_eq!(
            repr().emit_signed(&control().answer(&NONCE), &mut buf),
            Err(Error::BufferTooSmall {
                needed: 50,
                got: 49
            })
        );
    }
}
