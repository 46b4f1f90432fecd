//! Heap-backed conveniences over the zero-copy codecs (feature `alloc`): emit
//! into any [`bytes::BufMut`], or get an owned [`bytes::Bytes`].

use bytes::{BufMut, Bytes, BytesMut};

use super::{AnswerAuth, Error, KeyExpiredRepr, Message, TriggerRepr};

impl Message<'_> {
    /// Appends the canonical encoding to `buf` (see [`Message::emit_into`]).
    ///
    /// # Errors
    /// As [`Message::emit_into`].
    pub fn put(&self, buf: &mut impl BufMut) -> Result<(), Error> {
        let mut tmp = BytesMut::zeroed(self.buffer_len());
        self.emit_into(&mut tmp)?;
        buf.put_slice(&tmp);
        Ok(())
    }

    /// The canonical encoding as owned bytes.
    ///
    /// # Errors
    /// As [`Message::emit_into`].
    pub fn to_bytes(&self) -> Result<Bytes, Error> {
        let mut out = BytesMut::zeroed(self.buffer_len());
        self.emit_into(&mut out)?;
        Ok(out.freeze())
    }
}

impl TriggerRepr {
    /// The trigger, signed for the UE start `auth` is bound to, as owned
    /// bytes.
    #[must_use]
    pub fn to_signed_bytes(&self, auth: &AnswerAuth<'_>) -> Bytes {
        let mut out = [0u8; TriggerRepr::LEN];
        // The buffer is exactly the length emit_signed needs.
        let _ = self.emit_signed(auth, &mut out);
        Bytes::copy_from_slice(&out)
    }
}

impl KeyExpiredRepr {
    /// The error, signed for the UE start `auth` is bound to, as owned
    /// bytes.
    #[must_use]
    pub fn to_signed_bytes(&self, auth: &AnswerAuth<'_>) -> Bytes {
        let mut out = [0u8; KeyExpiredRepr::LEN];
        // The buffer is exactly the length emit_signed needs.
        let _ = self.emit_signed(auth, &mut out);
        Bytes::copy_from_slice(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kdf::{KdfProfile, PreparedRoot, Rand, RootBytes, RootKey, RootKind, UeNonce};
    use crate::wire::{Cause, ControlAuth, Ksi, Suite};

    #[test]
    fn owned_bytes_equal_the_zero_copy_encoding() {
        let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes([4; 32]));
        let control =
            ControlAuth::new(&PreparedRoot::new(&root, KdfProfile::Ts33220).control_key());
        let nonce = UeNonce([6; 16]);
        let auth = control.answer(&nonce);
        let t = TriggerRepr {
            ksi: Ksi(3),
            confirm: false,
            counter: 9,
            rand: Rand([1; 16]),
            profile: KdfProfile::HkdfSha256,
            suite: Suite::NEA2_NIA2,
            lifetime: 60,
            tag: [0; 16],
        };
        let owned = t.to_signed_bytes(&auth);
        let mut fixed = [0u8; TriggerRepr::LEN];
        t.emit_signed(&auth, &mut fixed).unwrap();
        assert_eq!(&owned[..], &fixed);
        let parsed = Message::parse(&owned).unwrap();
        assert_eq!(parsed.to_bytes().unwrap(), owned);
        let mut v = alloc::vec::Vec::new();
        parsed.put(&mut v).unwrap();
        assert_eq!(&v[..], &owned[..]);
        let k = KeyExpiredRepr {
            ksi: Ksi(3),
            cause: Cause::UNKNOWN_KSI,
            counter: 9,
            refused: Some(4),
            tag: [0; 16],
        };
        assert_eq!(
            auth.open_key_expired(&k.to_signed_bytes(&auth))
                .map(|r| r.cause),
            Ok(Cause::UNKNOWN_KSI)
        );
    }
}
