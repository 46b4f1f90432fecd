//! Authentication of control messages (derive trigger, key-expired error, hello).
//!
//! `tag = first 16 octets of HMAC-SHA-256(control key, every octet before the tag)`.
//! The control key comes from the root (`kdf::PreparedRoot::control_key`), so
//! only a holder of the root can make a trigger or an error that verifies.

use subtle::ConstantTimeEq;

use crate::kdf::{ControlKey, Ts33220Key};

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

    /// Checks `tag` against the covered octets in constant time.
    ///
    /// # Errors
    /// [`Error::BadTag`] when it does not match.
    pub fn verify(&self, covered: &[u8], tag: &[u8]) -> Result<(), Error> {
        if bool::from(self.tag(covered).ct_eq(tag)) {
            Ok(())
        } else {
            Err(Error::BadTag)
        }
    }

    /// Decodes a control message and verifies its tag.
    ///
    /// # Errors
    /// Any decoding error; [`Error::WrongType`] for a data message (data is
    /// authenticated by its suite, not here); [`Error::BadTag`].
    pub fn verify_message(&self, bytes: &[u8]) -> Result<(), Error> {
        match peek_type(bytes)? {
            MessageType::DERIVE_TRIGGER => TriggerPacket::new_checked(bytes)?.verify(self),
            MessageType::KEY_EXPIRED => KeyExpiredPacket::new_checked(bytes)?.verify(self),
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

    /// Decodes a derive trigger, verifies its tag, and accepts it only if its
    /// counter is above `last_counter` (the highest the receiver accepted).
    ///
    /// Checks run in that order and nothing is changed by a failure: the
    /// caller stores the returned counter only on success.
    ///
    /// # Errors
    /// Decoding errors, [`Error::BadTag`] for a forged trigger,
    /// [`Error::StaleCounter`] for a replayed or old one.
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

    /// Decodes a hello and verifies its tag. Whether it is fresh (its seq
    /// above the last one seen) is the receiver's to check.
    ///
    /// # Errors
    /// Decoding errors, [`Error::BadTag`] for a forged hello.
    pub fn open_hello<'a>(&self, bytes: &'a [u8]) -> Result<HelloRepr<'a>, Error> {
        let packet = HelloPacket::new_checked(bytes)?;
        packet.verify(self)?;
        HelloRepr::parse(&packet)
    }

    /// Decodes a key-expired error and verifies its tag.
    ///
    /// # Errors
    /// Decoding errors, [`Error::BadTag`] for a forged error.
    pub fn open_key_expired(&self, bytes: &[u8]) -> Result<KeyExpiredRepr, Error> {
        let packet = KeyExpiredPacket::new_checked(bytes)?;
        let repr = KeyExpiredRepr::parse(&packet)?;
        packet.verify(self)?;
        Ok(repr)
    }
}
