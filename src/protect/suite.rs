//! A keyset's suite: its algorithm keys, and protecting and unprotecting data
//! messages in place.
//!
//! How the data message feeds each suite (wire format v1, `docs/wire-format.md`):
//!
//! | suite | input | from the data message |
//! |---|---|---|
//! | nea2-nia2 | COUNT (32 bits) | sequence number |
//! | | BEARER (5 bits) | KSI mod 32 |
//! | | DIRECTION (1 bit) | flags bit 0 (0 uplink, 1 downlink) |
//! | | 128-NEA2 plaintext | the payload, 8 × its length bits |
//! | | 128-NIA2 MESSAGE | header (octets 0–8) ‖ ciphertext: encrypt, then MAC |
//! | aes-128-gcm | nonce (96 bits) | `00 00 00 ‖ DIRECTION ‖ 00 00 00 00 ‖ seq (u32 BE)` |
//! | | AAD | header (octets 0–8) |
//!
//! Each keyset has its own keys and each direction its own sequence numbers,
//! so no (key, COUNT/nonce, DIRECTION) repeats while a sender never reuses a
//! sequence number ([`super::replay::SendCounter`]).

use core::ops::Range;

use crate::kdf::{AlgKey, Algorithm, KdfProfile, KeySet, UeNonce, alg_key};
use crate::wire::{DataPacket, Direction, Ksi, MAX_MESSAGE_LEN, Suite, data};

use super::Error;
#[cfg(feature = "suite-aes-gcm")]
use super::aes_gcm::{self, Gcm};
#[cfg(feature = "suite-nea2-nia2")]
use super::nea2_nia2::{MAC_LEN, Nea2, Nia2};
use super::replay::ReplayWindow;

/// The algorithm keys of one keyset for its suite: the compact form a
/// session stores (zeroized on drop). [`SuiteKeys::cipher`] expands them.
///
/// Each variant is there with its suite's feature (`suite-nea2-nia2`,
/// `suite-aes-gcm`; both default).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SuiteKeys {
    /// 128-NEA2 and 128-NIA2 keys.
    #[cfg(feature = "suite-nea2-nia2")]
    Nea2Nia2 {
        /// 128-NEA2 key.
        enc: AlgKey,
        /// 128-NIA2 key.
        int: AlgKey,
    },
    /// AES-128-GCM key.
    #[cfg(feature = "suite-aes-gcm")]
    Aes128Gcm(AlgKey),
}

impl SuiteKeys {
    /// Derives the suite's keys from the keyset trigger `counter` installed
    /// for the UE incarnation `nonce` (algorithm-, counter- and nonce-bound,
    /// see `docs/key-hierarchy.md`).
    ///
    /// # Errors
    /// [`Error::UnknownSuite`] for a suite this version does not define, or
    /// whose feature is not built.
    pub fn derive(
        profile: KdfProfile,
        keyset: &KeySet,
        suite: Suite,
        counter: u64,
        nonce: &UeNonce,
    ) -> Result<Self, Error> {
        match suite {
            #[cfg(feature = "suite-nea2-nia2")]
            Suite::NEA2_NIA2 => Ok(SuiteKeys::Nea2Nia2 {
                enc: alg_key(profile, keyset, Algorithm::Nea2, counter, nonce),
                int: alg_key(profile, keyset, Algorithm::Nia2, counter, nonce),
            }),
            #[cfg(feature = "suite-aes-gcm")]
            Suite::AES_128_GCM => Ok(SuiteKeys::Aes128Gcm(alg_key(
                profile,
                keyset,
                Algorithm::Aes128Gcm,
                counter,
                nonce,
            ))),
            other => Err(Error::UnknownSuite(other)),
        }
    }

    /// The suite these keys are for.
    #[must_use]
    pub const fn suite(&self) -> Suite {
        // On the place, so that a build without any suite (no variant)
        // still matches exhaustively.
        match *self {
            #[cfg(feature = "suite-nea2-nia2")]
            SuiteKeys::Nea2Nia2 { .. } => Suite::NEA2_NIA2,
            #[cfg(feature = "suite-aes-gcm")]
            SuiteKeys::Aes128Gcm(_) => Suite::AES_128_GCM,
        }
    }

    /// Expands the keys into ready ciphers (AES key schedules, GHASH key).
    #[must_use]
    pub fn cipher(&self) -> SuiteCipher {
        let mut cipher = SuiteCipher::unfinished(self);
        cipher.finish();
        cipher
    }
}

/// What [`SuiteCipher::open_in_place`] found in an authentic data message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// KSI of the message.
    pub ksi: Ksi,
    /// Its direction.
    pub direction: Direction,
    /// Its sequence number.
    pub seq: u32,
    /// Where the decrypted payload lies in the buffer.
    pub payload: Range<usize>,
}

/// A keyset's suite with its keys expanded: protects and unprotects data
/// messages in place, without allocating.
#[derive(Clone)]
// Built on the stack for one message (or held by one session); boxing the
// larger variant would put an allocation on the hot path.
#[allow(clippy::large_enum_variant)]
pub enum SuiteCipher {
    /// 128-NEA2 + 128-NIA2.
    #[cfg(feature = "suite-nea2-nia2")]
    Nea2Nia2 {
        /// Encryption.
        enc: Nea2,
        /// Integrity.
        int: Nia2,
    },
    /// AES-128-GCM.
    #[cfg(feature = "suite-aes-gcm")]
    Aes128Gcm(Gcm),
}

impl core::fmt::Debug for SuiteCipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SuiteCipher({})", self.suite())
    }
}

/// BEARER for a KSI: its five low bits.
#[cfg(feature = "suite-nea2-nia2")]
const fn bearer(ksi: Ksi) -> u8 {
    ksi.0 & 0x1f
}

impl SuiteCipher {
    /// [`SuiteKeys::cipher`] in two steps, for a caller that builds the
    /// ciphers in its own place (on a device, the stack): the key schedules,
    /// then [`SuiteCipher::finish`].
    pub(crate) fn unfinished(keys: &SuiteKeys) -> Self {
        match *keys {
            #[cfg(feature = "suite-nea2-nia2")]
            SuiteKeys::Nea2Nia2 { ref enc, ref int } => SuiteCipher::Nea2Nia2 {
                enc: Nea2::new(enc),
                int: Nia2::new(int),
            },
            #[cfg(feature = "suite-aes-gcm")]
            SuiteKeys::Aes128Gcm(ref k) => SuiteCipher::Aes128Gcm(Gcm::scheduled(k)),
        }
    }

    /// The second step of [`SuiteCipher::unfinished`]: the GHASH key.
    pub(crate) fn finish(&mut self) {
        match *self {
            #[cfg(feature = "suite-nea2-nia2")]
            SuiteCipher::Nea2Nia2 { .. } => {}
            #[cfg(feature = "suite-aes-gcm")]
            SuiteCipher::Aes128Gcm(ref mut g) => g.set_hash_key(),
        }
    }

    /// The suite.
    #[must_use]
    pub const fn suite(&self) -> Suite {
        match *self {
            #[cfg(feature = "suite-nea2-nia2")]
            SuiteCipher::Nea2Nia2 { .. } => Suite::NEA2_NIA2,
            #[cfg(feature = "suite-aes-gcm")]
            SuiteCipher::Aes128Gcm(_) => Suite::AES_128_GCM,
        }
    }

    /// Octets a data message with `payload_len` octets of payload takes.
    #[must_use]
    pub const fn message_len(&self, payload_len: usize) -> usize {
        data::HEADER_LEN + payload_len + self.suite().tag_len()
    }

    /// Protects a payload that already lies at `buf[9..9 + payload_len]`:
    /// writes the header, encrypts in place and appends the MAC/tag. Returns
    /// the message length. No copy of the payload is made.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] when `buf` cannot hold the message;
    /// [`Error::PayloadTooLong`] when the message would exceed
    /// [`MAX_MESSAGE_LEN`]. `buf` is unchanged on error.
    // Not inlined on devices, as `open_packet`; inlined with the platform
    // backend (servers), where the call costs more than the code.
    #[cfg_attr(not(feature = "platform-aes-gcm"), inline(never))]
    #[cfg_attr(feature = "platform-aes-gcm", inline)]
    pub fn seal_in_place(
        &self,
        ksi: Ksi,
        direction: Direction,
        seq: u32,
        buf: &mut [u8],
        payload_len: usize,
    ) -> Result<usize, Error> {
        let tag_len = self.suite().tag_len();
        // Checked arithmetic: a payload length near `usize::MAX` must not
        // wrap to a short message.
        let max = MAX_MESSAGE_LEN - data::HEADER_LEN - tag_len;
        if payload_len > max {
            return Err(Error::PayloadTooLong {
                len: payload_len,
                max,
            });
        }
        let len = data::HEADER_LEN + payload_len + tag_len;
        let got = buf.len();
        let too_small = Error::BufferTooSmall { needed: len, got };
        let msg = buf.get_mut(..len).ok_or(too_small)?;
        // `msg` is header ‖ payload ‖ tag; the checked splits keep any panic
        // path out of the build.
        let (covered, tag) = msg.split_at_mut_checked(len - tag_len).ok_or(too_small)?;
        let (header, payload) = covered
            .split_at_mut_checked(data::HEADER_LEN)
            .ok_or(too_small)?;
        let header: &mut [u8; data::HEADER_LEN] = header.try_into().map_err(|_| too_small)?;
        data::write_header(header, ksi, direction, self.suite(), seq);
        let dir = direction.bit();
        match *self {
            #[cfg(feature = "suite-nea2-nia2")]
            SuiteCipher::Nea2Nia2 { ref enc, ref int } => {
                enc.apply(seq, bearer(ksi), dir, payload, payload_len * 8)?;
                let tag: &mut [u8; MAC_LEN] = tag.try_into().map_err(|_| too_small)?;
                // 128-NIA2 covers header ‖ ciphertext: encrypt, then MAC.
                *tag = int.mac(seq, bearer(ksi), dir, covered, covered.len() * 8)?;
            }
            #[cfg(feature = "suite-aes-gcm")]
            SuiteCipher::Aes128Gcm(ref gcm) => {
                let tag: &mut [u8; aes_gcm::TAG_LEN] = tag.try_into().map_err(|_| too_small)?;
                gcm.seal_to(&aes_gcm::nonce(dir, seq), header, payload, tag)?;
            }
        }
        Ok(len)
    }

    /// Copies `payload` into `out` and protects it there; returns the length.
    ///
    /// # Errors
    /// As [`SuiteCipher::seal_in_place`].
    #[cfg_attr(feature = "platform-aes-gcm", inline)]
    pub fn seal(
        &self,
        ksi: Ksi,
        direction: Direction,
        seq: u32,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let len = self.message_len(payload.len());
        let got = out.len();
        let slot = out
            .get_mut(data::HEADER_LEN..data::HEADER_LEN + payload.len())
            .ok_or(Error::BufferTooSmall { needed: len, got })?;
        slot.copy_from_slice(payload);
        self.seal_in_place(ksi, direction, seq, out, payload.len())
    }

    /// Verifies a data message's MAC/tag and, only if it holds, decrypts the
    /// payload in place. Does not consult a replay window (see
    /// [`SuiteCipher::open_with_window`]).
    ///
    /// # Errors
    /// [`Error::Wire`] for a malformed message, [`Error::SuiteMismatch`] when
    /// the message names another suite, [`Error::BadTag`]. On any error `buf`
    /// is unchanged.
    pub fn open_in_place(&self, buf: &mut [u8]) -> Result<Opened, Error> {
        self.open_packet(DataPacket::new_checked(buf)?, None)
    }

    /// [`SuiteCipher::open_in_place`] guarded by a replay window, with RFC 8613
    /// §7.4 semantics: the window is checked before anything is decrypted and
    /// updated only after the tag verified.
    ///
    /// # Errors
    /// [`Error::Replayed`] or [`Error::TooOld`] before any cryptography; then
    /// as [`SuiteCipher::open_in_place`]. On any error neither `buf` nor
    /// `window` changes.
    pub fn open_with_window(
        &self,
        buf: &mut [u8],
        window: &mut ReplayWindow,
    ) -> Result<Opened, Error> {
        self.open_packet(DataPacket::new_checked(buf)?, Some(window))
    }

    /// Opens a data message whose view the caller already checked
    /// ([`DataPacket::new_checked`]), so nothing is checked twice: the replay
    /// window (if any) first, then the suite, the MAC/tag, and only then the
    /// payload is decrypted in place and the window updated.
    ///
    /// # Errors
    /// As [`SuiteCipher::open_with_window`], without [`Error::Wire`]. On any
    /// error neither the buffer nor the window changes.
    // Not inlined on devices: its frame then stays apart from the one holding
    // the expanded cipher while the cipher is built (a device's stack).
    // Inlined with the platform backend (servers).
    #[cfg_attr(not(feature = "platform-aes-gcm"), inline(never))]
    #[cfg_attr(feature = "platform-aes-gcm", inline)]
    pub fn open_packet(
        &self,
        packet: DataPacket<&mut [u8]>,
        window: Option<&mut ReplayWindow>,
    ) -> Result<Opened, Error> {
        let (ksi, direction, seq, got) = (
            packet.ksi(),
            packet.direction(),
            packet.seq(),
            packet.suite(),
        );
        if let Some(w) = &window {
            w.check(seq)?;
        }
        if got != self.suite() {
            return Err(Error::SuiteMismatch {
                expected: self.suite(),
                got,
            });
        }
        let dir = direction.bit();
        // The view is checked: the message holds a header and this suite's
        // tag. (The checked forms keep any panic path out of the build.)
        let buf = packet.into_inner();
        let tag_start = buf.len().checked_sub(got.tag_len()).ok_or(Error::BadTag)?;
        let (covered, tag) = buf.split_at_mut_checked(tag_start).ok_or(Error::BadTag)?;
        let payload_len = covered.len().saturating_sub(data::HEADER_LEN);
        match *self {
            #[cfg(feature = "suite-nea2-nia2")]
            SuiteCipher::Nea2Nia2 { ref enc, ref int } => {
                let mac: &[u8; MAC_LEN] = (&*tag).try_into().map_err(|_| Error::BadTag)?;
                // 128-NIA2 covers header ‖ ciphertext: verify, then decrypt.
                int.verify(seq, bearer(ksi), dir, covered, covered.len() * 8, mac)?;
                let payload = covered.get_mut(data::HEADER_LEN..).ok_or(Error::BadTag)?;
                enc.apply(seq, bearer(ksi), dir, payload, payload_len * 8)?;
            }
            #[cfg(feature = "suite-aes-gcm")]
            SuiteCipher::Aes128Gcm(ref gcm) => {
                let (header, payload) = covered
                    .split_at_mut_checked(data::HEADER_LEN)
                    .ok_or(Error::BadTag)?;
                let tag: &[u8; aes_gcm::TAG_LEN] = (&*tag).try_into().map_err(|_| Error::BadTag)?;
                gcm.open(&aes_gcm::nonce(dir, seq), header, payload, tag)?;
            }
        }
        if let Some(w) = window {
            w.accept(seq)?;
        }
        Ok(Opened {
            ksi,
            direction,
            seq,
            payload: data::HEADER_LEN..data::HEADER_LEN + payload_len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(suite: Suite) -> SuiteCipher {
        SuiteKeys::derive(
            KdfProfile::Ts33220,
            &KeySet::from_bytes([3; 32]),
            suite,
            1,
            &UeNonce([5; 16]),
        )
        .unwrap()
        .cipher()
    }

    #[test]
    fn seal_then_open_gives_the_payload_back_for_both_suites() {
        for suite in Suite::KNOWN {
            let c = keys(*suite);
            let mut buf = [0u8; 64];
            let n = c
                .seal(Ksi(33), Direction::Downlink, 5, b"hello", &mut buf)
                .unwrap();
            assert_eq!(n, 9 + 5 + suite.tag_len());
            assert_ne!(&buf[9..14], b"hello", "{suite}: payload must be encrypted");
            let o = c.open_in_place(&mut buf[..n]).unwrap();
            assert_eq!(
                (o.ksi, o.direction, o.seq),
                (Ksi(33), Direction::Downlink, 5)
            );
            assert_eq!(&buf[o.payload], b"hello");
        }
    }

    #[test]
    fn seal_in_place_refuses_a_payload_length_that_would_wrap() {
        // The message length was header + payload + tag without a check: a
        // length near usize::MAX wrapped to a short message.
        for suite in Suite::KNOWN {
            let mut buf = [0u8; 64];
            let got =
                keys(*suite).seal_in_place(Ksi(1), Direction::Uplink, 0, &mut buf, usize::MAX - 3);
            assert!(
                matches!(got, Err(Error::PayloadTooLong { .. })),
                "{suite}: {got:?}"
            );
            assert_eq!(buf, [0u8; 64]);
        }
    }

    #[test]
    fn suite_mismatch_is_rejected() {
        let mut buf = [0u8; 64];
        let n = keys(Suite::AES_128_GCM)
            .seal(Ksi(1), Direction::Uplink, 0, b"x", &mut buf)
            .unwrap();
        assert_eq!(
            keys(Suite::NEA2_NIA2).open_in_place(&mut buf[..n]),
            Err(Error::SuiteMismatch {
                expected: Suite::NEA2_NIA2,
                got: Suite::AES_128_GCM
            })
        );
    }

    #[test]
    fn unknown_suite_has_no_keys() {
        assert_eq!(
            SuiteKeys::derive(
                KdfProfile::Ts33220,
                &KeySet::from_bytes([0; 32]),
                Suite(9),
                1,
                &UeNonce([0; 16])
            ),
            Err(Error::UnknownSuite(Suite(9)))
        );
    }
}
