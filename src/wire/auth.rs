//! Authentication of control messages (derive trigger, key-expired error, hello).
//!
//! A hello: `tag = first 16 octets of HMAC-SHA-256(control key, every octet
//! before the tag)`. A derive trigger or a key-expired error answers one
//! start of a UE (the nonce of its hello), and its tag is bound to it:
//! `tag = first 16 octets of HMAC-SHA-256(control key, every octet before
//! the tag ‖ UE nonce)`; the nonce is not sent back. The control key comes
//! from the root (`kdf::PreparedRoot::control_key`), so only a holder of the
//! root can make a control message that verifies, and only a message made
//! for this start of the UE verifies at the UE ([`AnswerAuth`]).

use subtle::ConstantTimeEq;

use crate::kdf::{ControlKey, Ts33220Key, UeNonce};

use super::{
    Error, HelloPacket, HelloRepr, KeyExpiredPacket, KeyExpiredRepr, Message, MessageType,
    TriggerPacket, TriggerRepr, peek_type,
};

/// Octets of a control message's tag (HMAC-SHA-256 truncated to 128 bits).
pub const TAG_LEN: usize = 16;

/// The control key, prepared for tagging and verifying (HMAC state kept,
/// zeroized on drop).
#[derive(Clone)]
pub struct ControlAuth {
    mac: Ts33220Key,
}

impl core::fmt::Debug for ControlAuth {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ControlAuth(<redacted>)")
    }
}

impl ControlAuth {
    /// Prepares the control key.
    #[must_use]
    pub fn new(key: &ControlKey) -> Self {
        ControlAuth {
            mac: Ts33220Key::new(key.as_bytes()),
        }
    }

    /// The tag for the covered octets.
    #[must_use]
    pub fn tag(&self, covered: &[u8]) -> [u8; TAG_LEN] {
        let full = self.mac.mac(covered);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    /// The key for the trigger and key-expired errors that answer the UE
    /// start `nonce`: their tags cover the nonce after the message's octets.
    #[must_use]
    pub const fn answer<'a>(&'a self, nonce: &'a UeNonce) -> AnswerAuth<'a> {
        AnswerAuth { auth: self, nonce }
    }

    /// Checks `tag` against the covered octets in constant time.
    ///
    /// # Errors
    /// [`Error::BadTag`] when it does not match.
    pub fn verify(&self, covered: &[u8], tag: &[u8]) -> Result<(), Error> {
        check_tag(&self.tag(covered), tag)
    }

    /// Decodes a control message and verifies its tag: a hello's with the
    /// control key, a trigger's or an error's bound to `nonce` (the UE start
    /// it answers).
    ///
    /// # Errors
    /// Any decoding error; [`Error::WrongType`] for a data message (data is
    /// authenticated by its suite, not here); [`Error::BadTag`].
    pub fn verify_message(&self, bytes: &[u8], nonce: &UeNonce) -> Result<(), Error> {
        let answer = self.answer(nonce);
        match peek_type(bytes)? {
            MessageType::DERIVE_TRIGGER => TriggerPacket::new_checked(bytes)?.verify(&answer),
            MessageType::KEY_EXPIRED => KeyExpiredPacket::new_checked(bytes)?.verify(&answer),
            MessageType::HELLO => HelloPacket::new_checked(bytes)?.verify(self),
            got => {
                // Surface a malformed data message's own error first.
                Message::parse(bytes)?;
                Err(Error::WrongType {
                    expected: MessageType::DERIVE_TRIGGER,
                    got,
                })
            }
        }
    }

    /// Decodes a hello and verifies its tag. Whether it is fresh (its seq
    /// above the last one seen from its nonce) is the receiver's to check.
    ///
    /// # Errors
    /// Decoding errors, [`Error::BadTag`] for a forged hello.
    pub fn open_hello<'a>(&self, bytes: &'a [u8]) -> Result<HelloRepr<'a>, Error> {
        let packet = HelloPacket::new_checked(bytes)?;
        packet.verify(self)?;
        HelloRepr::parse(&packet)
    }
}

/// The control key bound to one UE start (its nonce): what tags the derive
/// triggers and key-expired errors that answer it. Made by
/// [`ControlAuth::answer`].
#[derive(Clone, Copy)]
pub struct AnswerAuth<'a> {
    auth: &'a ControlAuth,
    nonce: &'a UeNonce,
}

impl core::fmt::Debug for AnswerAuth<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AnswerAuth")
            .field("nonce", self.nonce)
            .finish_non_exhaustive()
    }
}

impl AnswerAuth<'_> {
    /// The nonce the tags are bound to.
    #[must_use]
    pub const fn nonce(&self) -> &UeNonce {
        self.nonce
    }

    /// The tag for the covered octets: HMAC over them and the nonce.
    #[must_use]
    pub fn tag(&self, covered: &[u8]) -> [u8; TAG_LEN] {
        let full = self.auth.mac.mac2(covered, self.nonce.as_bytes());
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    /// Checks `tag` against the covered octets (and the nonce) in constant
    /// time.
    ///
    /// # Errors
    /// [`Error::BadTag`] when it does not match.
    pub fn verify(&self, covered: &[u8], tag: &[u8]) -> Result<(), Error> {
        check_tag(&self.tag(covered), tag)
    }

    /// Decodes a derive trigger, verifies its tag, and accepts it only if its
    /// counter is above `last_counter` (the highest the receiver accepted).
    ///
    /// Checks run in that order and nothing is changed by a failure: the
    /// caller stores the returned counter only on success.
    ///
    /// # Errors
    /// Decoding errors, [`Error::BadTag`] for a forged trigger or one made
    /// for another start of the UE, [`Error::StaleCounter`] for a replayed
    /// or old one.
    pub fn open_trigger(&self, bytes: &[u8], last_counter: u64) -> Result<TriggerRepr, Error> {
        let packet = TriggerPacket::new_checked(bytes)?;
        let repr = TriggerRepr::parse(&packet)?;
        packet.verify(self)?;
        if repr.counter <= last_counter {
            return Err(Error::StaleCounter {
                counter: repr.counter,
                last: last_counter,
            });
        }
        Ok(repr)
    }

    /// Decodes a key-expired error and verifies its tag.
    ///
    /// # Errors
    /// Decoding errors, [`Error::BadTag`] for a forged error or one made for
    /// another start of the UE.
    pub fn open_key_expired(&self, bytes: &[u8]) -> Result<KeyExpiredRepr, Error> {
        let packet = KeyExpiredPacket::new_checked(bytes)?;
        let repr = KeyExpiredRepr::parse(&packet)?;
        packet.verify(self)?;
        Ok(repr)
    }
}

/// `expected` against a received `tag`, in constant time.
#[inline]
fn check_tag(expected: &[u8; TAG_LEN], tag: &[u8]) -> Result<(), Error> {
    if bool::from(expected.ct_eq(tag)) {
        Ok(())
    } else {
        Err(Error::BadTag)
    }
}

/// What signs a control message: the control key (a hello) or the control
/// key bound to a UE start (a trigger, an error).
pub(crate) trait Signer {
    fn tag(&self, covered: &[u8]) -> [u8; TAG_LEN];

    fn check(&self, covered: &[u8], tag: &[u8]) -> Result<(), Error> {
        check_tag(&self.tag(covered), tag)
    }
}

impl Signer for ControlAuth {
    fn tag(&self, covered: &[u8]) -> [u8; TAG_LEN] {
        ControlAuth::tag(self, covered)
    }
}

impl Signer for AnswerAuth<'_> {
    fn tag(&self, covered: &[u8]) -> [u8; TAG_LEN] {
        AnswerAuth::tag(self, covered)
    }
}
