//! The platform backend (feature `platform-aes-gcm`, std builds): `ring`'s
//! AES-128-GCM, BoringSSL's assembly (stitched AES-NI + PCLMULQDQ or VAES
//! on x86-64, the Crypto Extensions on AArch64), with the API, the errors
//! and the guarantees of the portable backend.
//!
//! Two of those guarantees need care here, in safe code:
//! - **A failed open leaves the buffer as it was.** `ring` authenticates
//!   while it decrypts and clears its output when the tag does not match,
//!   but the crate promises that a refused message leaves the caller's
//!   buffer as it was (the endpoints' `handle_datagram`, `open_in_place`;
//!   the analyzer tries every logged keyset of a KSI on the same octets).
//!   So the ciphertext is kept first and put back
//!   on failure: up to 256 octets on the stack (an array of 64 or 256,
//!   cleared for the price of a few stores); up to 2,048 in an array of the
//!   thread (no destructor, nothing to clear); longer ones in a scratch
//!   vector of the thread, which grows to the longest message the thread
//!   opened and is then reused (a first long message on a thread allocates
//!   once).
//! - **Key material is overwritten on drop.** `ring` keeps the expanded key
//!   (the AES schedule and the GHASH table) inside its key type and does not
//!   clear it. [`Gcm`]'s `Drop` writes the expansion of the all-zero key over
//!   it, in place, and hands the place to `black_box` so that the write is
//!   not removed as dead: the secret schedule is gone from that memory.

use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use zeroize::ZeroizeOnDrop;

use super::{NONCE_LEN, TAG_LEN, check_lengths};
use crate::kdf::AlgKey;
use crate::protect::Error;

/// Runs `open` on `buf`, which `kept` holds a copy of; puts the copy back
/// when `open` fails. (`kept` is always a copy of `buf`, of its length.)
#[inline]
fn open_or_put_back(buf: &mut [u8], kept: &[u8], open: impl FnOnce(&mut [u8]) -> bool) -> bool {
    let ok = open(buf);
    if !ok {
        buf.copy_from_slice(kept);
    }
    ok
}

/// [`open_or_put_back`] with the copy in an array of `N` octets on the
/// stack; `None` when `buf` is longer.
#[inline]
fn keeping<const N: usize>(buf: &mut [u8], open: impl FnOnce(&mut [u8]) -> bool) -> Option<bool> {
    let mut kept = [0u8; N];
    let kept = kept.get_mut(..buf.len())?;
    kept.copy_from_slice(buf);
    Some(open_or_put_back(buf, kept, open))
}

/// The longest ciphertext [`keeping_in_array`] keeps.
const ARRAY: usize = 2048;

std::thread_local! {
    /// The ciphertext of a message of up to [`ARRAY`] octets, kept while it
    /// is opened: the thread's own array, set up once, no destructor (so
    /// reaching it is a plain thread-local access), nothing to clear.
    static KEPT: core::cell::RefCell<[u8; ARRAY]> =
        const { core::cell::RefCell::new([0; ARRAY]) };
    /// The same for longer ones: the thread's own vector, grown to the
    /// longest message it opened and reused (no allocation per message).
    static SCRATCH: core::cell::RefCell<std::vec::Vec<u8>> =
        const { core::cell::RefCell::new(std::vec::Vec::new()) };
}

/// [`open_or_put_back`] with the copy in the thread's array; `None` when
/// `buf` is longer or the array is not at hand (an open is already using
/// it).
#[inline]
fn keeping_in_array(buf: &mut [u8], open: impl FnOnce(&mut [u8]) -> bool) -> Option<bool> {
    KEPT.try_with(|a| {
        let mut a = a.try_borrow_mut().ok()?;
        let kept = a.get_mut(..buf.len())?;
        kept.copy_from_slice(buf);
        Some(open_or_put_back(buf, kept, open))
    })
    .ok()
    .flatten()
}

/// [`open_or_put_back`] with the copy in the thread's scratch; `None` when
/// that is not at hand (the thread is ending, or an open is already using
/// it).
#[inline]
fn keeping_in_scratch(buf: &mut [u8], open: impl FnOnce(&mut [u8]) -> bool) -> Option<bool> {
    SCRATCH
        .try_with(|s| {
            let mut kept = s.try_borrow_mut().ok()?;
            kept.clear();
            kept.extend_from_slice(buf);
            Some(open_or_put_back(buf, &kept, open))
        })
        .ok()
        .flatten()
}

/// AES-128-GCM under one key, expanded once (`ring`).
#[derive(Clone)]
pub struct Gcm {
    /// `None` only if `ring` refused a 16-octet AES-128 key, which it does
    /// not: every call then fails with [`Error::BadTag`] rather than panic.
    key: Option<LessSafeKey>,
}

fn expand(key: &[u8; 16]) -> Option<LessSafeKey> {
    UnboundKey::new(&AES_128_GCM, key)
        .ok()
        .map(LessSafeKey::new)
}

impl Gcm {
    /// Expands `key` for AES-128-GCM.
    #[must_use]
    pub fn new(key: &AlgKey) -> Self {
        Gcm {
            key: expand(key.as_bytes()),
        }
    }

    /// [`Gcm::new`]: `ring` expands the whole key at once (the portable
    /// backend splits it in two for devices).
    pub(crate) fn scheduled(key: &AlgKey) -> Self {
        Gcm::new(key)
    }

    /// Nothing left to do (see [`Gcm::scheduled`]).
    #[allow(clippy::unused_self)]
    pub(crate) fn set_hash_key(&mut self) {}

    /// Encrypts `buf` in place and returns the tag over `aad` and the
    /// ciphertext.
    ///
    /// # Errors
    /// [`Error::GcmTooLong`] when `buf` exceeds 2^36 - 32 octets or `aad`
    /// 2^61 - 1 octets; `buf` is then unchanged.
    pub fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], Error> {
        let mut tag = [0u8; TAG_LEN];
        self.seal_to(nonce, aad, buf, &mut tag)?;
        Ok(tag)
    }

    /// [`Gcm::seal`] with the tag written to `tag` (a message's own tag
    /// field): the tag goes from `ring`'s result to its place in one copy,
    /// not through a returned `Result` whose layout puts it at an odd
    /// offset (copies across it stalled store forwarding: about 5 ns of a
    /// 32-octet message).
    ///
    /// # Errors
    /// As [`Gcm::seal`]; `buf` and `tag` are unchanged then.
    #[inline]
    pub(crate) fn seal_to(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &mut [u8; TAG_LEN],
    ) -> Result<(), Error> {
        check_lengths(aad, buf)?;
        let key = self.key.as_ref().ok_or(Error::BadTag)?;
        let len = buf.len();
        match key.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            buf,
        ) {
            Ok(t) => {
                tag.copy_from_slice(t.as_ref());
                Ok(())
            }
            Err(_) => Err(Error::GcmTooLong {
                data: len,
                aad: aad.len(),
            }),
        }
    }

    /// Verifies `tag` over `aad` and the ciphertext in `buf` and decrypts
    /// `buf` in place. On error `buf` still holds the ciphertext, unchanged.
    ///
    /// # Errors
    /// [`Error::BadTag`] when the tag does not verify; [`Error::GcmTooLong`]
    /// when the lengths exceed those [`Gcm::seal`] accepts.
    #[inline]
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), Error> {
        check_lengths(aad, buf)?;
        let key = self.key.as_ref().ok_or(Error::BadTag)?;
        let open = |buf: &mut [u8]| {
            key.open_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                Tag::from(*tag),
                buf,
                0..,
            )
            .is_ok()
        };
        let n = buf.len();
        let ok = if n <= 64 {
            keeping::<64>(buf, open)
        } else if n <= 256 {
            keeping::<256>(buf, open)
        } else if n <= ARRAY {
            keeping_in_array(buf, open)
        } else {
            keeping_in_scratch(buf, open)
        };
        let ok = ok.unwrap_or_else(|| {
            let kept = std::vec::Vec::from(&*buf);
            open_or_put_back(buf, &kept, open)
        });
        if ok { Ok(()) } else { Err(Error::BadTag) }
    }
}

impl Drop for Gcm {
    fn drop(&mut self) {
        if self.key.is_some() {
            // Overwrites the expanded key in its place (see the module
            // documentation).
            self.key = expand(&[0u8; 16]);
            core::hint::black_box(&mut self.key);
        }
    }
}

// The expanded key is overwritten in `Drop` above; `Gcm` holds nothing else.
impl ZeroizeOnDrop for Gcm {}

impl core::fmt::Debug for Gcm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Gcm(<redacted>)")
    }
}
