//! Decoding any message: dispatch on the type octet.

use super::{
    DataPacket, DataRepr, Error, HelloPacket, HelloRepr, KeyExpiredPacket, KeyExpiredRepr,
    MessageType, TriggerPacket, TriggerRepr, peek_type,
};

/// Any message of wire format v3, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// A derive trigger.
    Trigger(TriggerRepr),
    /// A key-expired error.
    KeyExpired(KeyExpiredRepr),
    /// A data message (payload and tag borrowed from the input).
    Data(DataRepr<'a>),
    /// A hello (the identifier borrowed from the input).
    Hello(HelloRepr<'a>),
}

impl<'a> Message<'a> {
    /// Decodes one message from untrusted octets. Never panics, never
    /// allocates, never copies the payload. Does not check tags.
    ///
    /// # Errors
    /// Every [`Error`] a view's `new_checked` or a `Repr::parse` returns.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        match peek_type(bytes)? {
            MessageType::DERIVE_TRIGGER => {
                TriggerRepr::parse(&TriggerPacket::new_checked(bytes)?).map(Message::Trigger)
            }
            MessageType::KEY_EXPIRED => {
                KeyExpiredRepr::parse(&KeyExpiredPacket::new_checked(bytes)?)
                    .map(Message::KeyExpired)
            }
            MessageType::HELLO => {
                HelloRepr::parse(&HelloPacket::new_checked(bytes)?).map(Message::Hello)
            }
            _ => DataRepr::parse(&DataPacket::new_checked(bytes)?).map(Message::Data),
        }
    }

    /// The message's type.
    #[must_use]
    pub const fn message_type(&self) -> MessageType {
        match self {
            Message::Trigger(_) => MessageType::DERIVE_TRIGGER,
            Message::KeyExpired(_) => MessageType::KEY_EXPIRED,
            Message::Data(_) => MessageType::DATA,
            Message::Hello(_) => MessageType::HELLO,
        }
    }

    /// Octets the message takes on the wire.
    #[must_use]
    pub const fn buffer_len(&self) -> usize {
        match self {
            Message::Trigger(r) => r.buffer_len(),
            Message::KeyExpired(r) => r.buffer_len(),
            Message::Data(r) => r.buffer_len(),
            Message::Hello(r) => r.buffer_len(),
        }
    }

    /// Re-encodes the message at the start of `buf`, tags as carried; the
    /// canonical form, so `parse` then `emit_into` gives the same octets.
    /// Returns the length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`]; for data, whatever [`DataRepr::emit_into`] returns.
    pub fn emit_into(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let len = self.buffer_len();
        let got = buf.len();
        if let Message::Hello(r) = self
            && !(1..=super::hello::MAX_ID_LEN).contains(&r.id.len())
        {
            return Err(Error::Malformed {
                field: super::FieldName::IdLength,
                value: r.id.len() as u64,
            });
        }
        if let Message::Data(r) = self {
            return r.emit_into(buf);
        }
        let out = buf
            .get_mut(..len)
            .ok_or(Error::BufferTooSmall { needed: len, got })?;
        match self {
            Message::Trigger(r) => r.emit(&mut TriggerPacket::new_unchecked(out)),
            Message::KeyExpired(r) => r.emit(&mut KeyExpiredPacket::new_unchecked(out)),
            Message::Hello(r) => r.emit(&mut HelloPacket::new_unchecked(out)),
            Message::Data(_) => {}
        }
        Ok(len)
    }
}
