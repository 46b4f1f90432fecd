//! The bytes an EESE session asks its caller to store, and restore from
//! them. (A UE stores nothing: every start draws a new nonce, so there is
//! nothing it must remember; `docs/SECURITY.md` §4.)
//!
//! `docs/SECURITY.md` states the contract these serve. A snapshot holds no
//! key: keys are derived again from the root (which the caller keeps), the
//! RAND and the UE's nonce. All integers are big endian.
//!
//! ```text
//! EESE (magic "CEE3"): magic(4) root-check(4) counter(8) te2e_secs(4, 0: default)
//!                      hello_seen(8, 0: none, else seq + 1)
//!                      nonce-flag(1) [UE nonce(16)]
//!                      keyset-flag(1) [ksi(1) counter(8) rand(16) kdf(1) suite(1)
//!                      state(1: 0 valid, else the expiry cause) deadline_ms(8)]
//!                      checksum(4)
//! ```
//!
//! The nonce names the UE start the keyset (and `hello_seen`) belong to; a
//! keyset needs one. A flag is 0 (nothing follows for it) or 1. root-check
//! is the first
//! four octets of the control tag over `"ciot-e2e snapshot"`, so a snapshot
//! restored with another root is refused; checksum is the first four octets
//! of SHA-256 over everything before it, so a torn write is refused.

use nom::bytes::complete::take;
use nom::combinator::{all_consuming, cond};
use nom::number::complete::{be_u8, be_u32, be_u64};
use nom::{IResult, Parser};

use crate::kdf::{KdfProfile, Rand, UeNonce};
use crate::wire::{ControlAuth, Ksi, Suite};

/// Largest EESE session snapshot in octets.
pub const EESE_SNAPSHOT_LEN: usize = 4 + 4 + 8 + 4 + 8 + 1 + 16 + 1 + KEYSET_LEN + 1 + 8 + 4;

/// Trigger counters an EESE skips on restore: insurance for a restore from a
/// snapshot older than the contract allows (a backup), so its next trigger is
/// still above any it issued. (Its first offer after a restore is also at
/// least the time in milliseconds, and a session writes its counter before
/// it runs half of this past the last one written.)
pub const COUNTER_RESERVE: u64 = 1024;

pub(crate) const EESE_MAGIC: &[u8; 4] = b"CEE3";
/// ksi, counter, rand, kdf, suite.
const KEYSET_LEN: usize = 1 + 8 + 16 + 1 + 1;
const CHECK: &[u8] = b"ciot-e2e snapshot";

/// Why a snapshot could not be restored. Nothing is built then.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The snapshot ends early, or has octets after its end.
    #[error("snapshot has the wrong length for its contents")]
    BadLength,
    /// Not a snapshot of this kind and version.
    #[error("not a snapshot of this kind (bad magic)")]
    BadMagic,
    /// The checksum does not match: a torn or damaged write.
    #[error("snapshot checksum does not match (torn or damaged write)")]
    BadChecksum,
    /// Written for another root.
    #[error("snapshot was written for another root")]
    WrongRoot,
    /// A field holds an impossible value.
    #[error("corrupt snapshot: bad {0}")]
    Corrupt(&'static str),
}

/// A keyset as snapshots carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeysetRecord {
    pub ksi: Ksi,
    pub counter: u64,
    pub rand: Rand,
    pub profile: KdfProfile,
    pub suite: Suite,
}

/// An EESE session snapshot's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EeseRecord {
    pub counter: u64,
    pub te2e_secs: u32,
    pub hello_seen: Option<u32>,
    /// The UE start the keyset and `hello_seen` belong to.
    pub ue: Option<UeNonce>,
    /// The keyset, its state octet and its deadline.
    pub keyset: Option<(KeysetRecord, u8, u64)>,
}

pub(crate) fn root_check(auth: &ControlAuth) -> [u8; 4] {
    let t = auth.tag(CHECK);
    [t[0], t[1], t[2], t[3]]
}

fn checksum(bytes: &[u8]) -> [u8; 4] {
    let d = crate::kdf::sha256(bytes);
    [d[0], d[1], d[2], d[3]]
}

/// Appends fields to a buffer the caller sized.
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    /// Writes `bytes`; the buffer is at least the snapshot's largest size,
    /// which callers check before writing.
    pub(crate) fn put(&mut self, bytes: &[u8]) -> &mut Self {
        let end = self.pos + bytes.len();
        if let Some(slot) = self.buf.get_mut(self.pos..end) {
            slot.copy_from_slice(bytes);
        }
        self.pos = end;
        self
    }

    pub(crate) fn keyset(&mut self, k: &KeysetRecord) -> &mut Self {
        self.put(&[k.ksi.0])
            .put(&k.counter.to_be_bytes())
            .put(&k.rand.0)
            .put(&[k.profile.code(), k.suite.0])
    }

    /// Appends the checksum; returns the snapshot's length.
    pub(crate) fn finish(&mut self) -> usize {
        let sum = checksum(self.buf.get(..self.pos).unwrap_or(&[]));
        self.put(&sum);
        self.pos
    }
}

fn keyset(input: &[u8]) -> IResult<&[u8], KeysetRecord> {
    let (rest, (ksi, counter, rand, kdf, suite)) =
        (be_u8, be_u64, take(16usize), be_u8, be_u8).parse(input)?;
    let mut r = [0u8; 16];
    r.copy_from_slice(rand);
    // An unknown profile is a corrupt snapshot; mapped by the caller.
    let profile = KdfProfile::from_code(kdf).unwrap_or_default();
    let record = KeysetRecord {
        ksi: Ksi(ksi),
        counter,
        rand: Rand(r),
        profile,
        suite: Suite(suite),
    };
    if KdfProfile::from_code(kdf).is_none() || !record.suite.is_known() {
        return Err(nom::Err::Failure(nom::error::Error::new(
            input,
            nom::error::ErrorKind::Verify,
        )));
    }
    Ok((rest, record))
}

fn flag(input: &[u8]) -> IResult<&[u8], bool> {
    let (rest, f) = be_u8(input)?;
    match f {
        0 => Ok((rest, false)),
        1 => Ok((rest, true)),
        _ => Err(nom::Err::Failure(nom::error::Error::new(
            input,
            nom::error::ErrorKind::Verify,
        ))),
    }
}

/// Checks the framing every snapshot shares (magic, checksum, root) and
/// returns the body between the root check and the checksum.
fn frame<'a>(
    bytes: &'a [u8],
    magic: &[u8; 4],
    auth: &ControlAuth,
) -> Result<&'a [u8], SnapshotError> {
    if bytes.len() < 12 {
        return Err(SnapshotError::BadLength);
    }
    let (covered, sum) = bytes.split_at(bytes.len() - 4);
    if &covered[..4] != magic {
        return Err(SnapshotError::BadMagic);
    }
    if checksum(covered) != sum {
        return Err(SnapshotError::BadChecksum);
    }
    if covered[4..8] != root_check(auth) {
        return Err(SnapshotError::WrongRoot);
    }
    Ok(&covered[8..])
}

fn corrupt(e: nom::Err<nom::error::Error<&[u8]>>) -> SnapshotError {
    match e {
        nom::Err::Failure(_) => SnapshotError::Corrupt("field value"),
        _ => SnapshotError::BadLength,
    }
}

pub(crate) fn parse_eese(bytes: &[u8], auth: &ControlAuth) -> Result<EeseRecord, SnapshotError> {
    let body = frame(bytes, EESE_MAGIC, auth)?;
    let (rest, (counter, te2e_secs, hello_seen, has_nonce)) = (be_u64, be_u32, be_u64, flag)
        .parse(body)
        .map_err(corrupt)?;
    let (rest, nonce) = cond(has_nonce, take(16usize))
        .parse(rest)
        .map_err(corrupt)?;
    let (rest, has) = flag.parse(rest).map_err(corrupt)?;
    let (_, keyset) = all_consuming(cond(has, (keyset, be_u8, be_u64)))
        .parse(rest)
        .map_err(corrupt)?;
    let ue = match nonce {
        Some(n) => Some(UeNonce::from_slice(n).map_err(|_| SnapshotError::BadLength)?),
        None => None,
    };
    let hello_seen = match hello_seen {
        0 => None,
        n => Some(u32::try_from(n - 1).map_err(|_| SnapshotError::Corrupt("hello seq"))?),
    };
    Ok(EeseRecord {
        counter,
        te2e_secs,
        hello_seen,
        ue,
        keyset,
    })
}
