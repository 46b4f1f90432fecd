//! What every control message (derive trigger, key-expired error, hello)
//! shares: the header checks and the tag trailer.
//!
//! A control message ends with a 16-octet tag over every octet before it,
//! `HMAC-SHA-256(control key, covered)[..16]` (see [`super::ControlAuth`]).
//! The views call into here, so the trailer's layout and the checks that
//! guard it are written once.

use super::auth::{Signer, TAG_LEN};
use super::{Error, FieldName, MessageType, header, peek_type};

/// Checks the common header of a control message of type `ty`: version,
/// type, reserved flag bits (those outside `allowed_flags`) zero, and a
/// length of at least `min` octets. The exact length is the caller's.
pub(crate) fn check_header(
    bytes: &[u8],
    ty: MessageType,
    min: usize,
    allowed_flags: u8,
) -> Result<(), Error> {
    let got = peek_type(bytes)?;
    if got != ty {
        return Err(Error::WrongType { expected: ty, got });
    }
    if bytes.len() < min {
        return Err(Error::Truncated {
            needed: min,
            got: bytes.len(),
        });
    }
    let flags = bytes[header::FLAGS];
    if flags & !allowed_flags != 0 {
        return Err(Error::Malformed {
            field: FieldName::Flags,
            value: u64::from(flags),
        });
    }
    Ok(())
}

/// Checks that a fixed-length control message is exactly `len` octets (it
/// holds at least `len` after [`check_header`] with `min = len`).
pub(crate) fn check_exact(bytes: &[u8], len: usize) -> Result<(), Error> {
    if bytes.len() > len {
        return Err(Error::TrailingData {
            expected: len,
            got: bytes.len(),
        });
    }
    Ok(())
}

// The trailer is split off with `split_last_chunk`: a view made without
// checks on a buffer shorter than a tag reads an empty trailer instead of
// panicking, and the checked paths carry no panic branch at all.

/// The octets the tag covers: all but the last [`TAG_LEN`]. The message is
/// longer than a tag (every control message's header checks ensure it).
pub(crate) fn covered(bytes: &[u8]) -> &[u8] {
    bytes.split_last_chunk::<TAG_LEN>().map_or(&[], |(c, _)| c)
}

/// The tag: the last [`TAG_LEN`] octets.
pub(crate) fn tag(bytes: &[u8]) -> &[u8] {
    bytes.split_last_chunk::<TAG_LEN>().map_or(&[], |(_, t)| t)
}

/// The carried tag as an array.
pub(crate) fn tag_array(bytes: &[u8]) -> [u8; TAG_LEN] {
    bytes
        .split_last_chunk::<TAG_LEN>()
        .map_or([0; TAG_LEN], |(_, t)| *t)
}

/// Writes `tag` into the trailer.
pub(crate) fn set_tag(bytes: &mut [u8], tag: &[u8; TAG_LEN]) {
    if let Some((_, t)) = bytes.split_last_chunk_mut::<TAG_LEN>() {
        *t = *tag;
    }
}

/// Computes the tag over the covered octets and writes it.
pub(crate) fn sign(bytes: &mut [u8], auth: &impl Signer) {
    if let Some((covered, t)) = bytes.split_last_chunk_mut::<TAG_LEN>() {
        *t = auth.tag(covered);
    }
}

/// Verifies the trailer in constant time.
pub(crate) fn verify(bytes: &[u8], auth: &impl Signer) -> Result<(), Error> {
    let (covered, tag) = bytes.split_last_chunk::<TAG_LEN>().ok_or(Error::BadTag)?;
    auth.check(covered, tag)
}

/// Emits a control message of `len` octets at the start of `buf` with
/// `write`, then signs it; returns `len`.
pub(crate) fn emit_signed(
    buf: &mut [u8],
    len: usize,
    auth: &impl Signer,
    write: impl FnOnce(&mut [u8]),
) -> Result<usize, Error> {
    let got = buf.len();
    let out = buf
        .get_mut(..len)
        .ok_or(Error::BufferTooSmall { needed: len, got })?;
    write(out);
    sign(out, auth);
    Ok(len)
}

/// The accessors every signed control view has (tag, covered octets,
/// verification), written once: a macro rather than a trait so that they
/// stay inherent methods (no trait to import) of each view.
macro_rules! signed_view {
    ($view:ident, $what:literal, $auth:ty, $key:literal) => {
        impl<T: AsRef<[u8]>> $view<T> {
            /// The authentication tag.
            pub fn tag(&self) -> &[u8] {
                $crate::wire::control::tag(self.buffer.as_ref())
            }

            /// The octets the tag covers.
            pub fn covered(&self) -> &[u8] {
                $crate::wire::control::covered(self.buffer.as_ref())
            }

            #[doc = concat!("Verifies the tag with ", $key, ".")]
            ///
            /// # Errors
            #[doc = concat!("[`Error::BadTag`](crate::wire::Error::BadTag) when the ", $what, " was not made with this key.")]
            pub fn verify(&self, auth: &$auth) -> Result<(), $crate::wire::Error> {
                $crate::wire::control::verify(self.buffer.as_ref(), auth)
            }
        }
    };
}

pub(crate) use signed_view;
