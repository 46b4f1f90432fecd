//! The integer codes every function returns, their names, and how the Rust
//! errors map onto them.
//!
//! 0 and positive values are successes; negative values are errors, in
//! two ranges: calling errors (-1 to -15: a pointer, a length or a value
//! the caller passed, or the random source), and the reasons a received
//! datagram was dropped (-32 to -63, `CIOT_E2E_REJECT_*`). A dropped
//! datagram changed nothing.
//!
//! Numbers of version 1 that no longer exist stay reserved, never given to
//! another code: -11 (a persist token), -16 to -23 (snapshot errors), -45
//! (a keyset restored from a snapshot) and -49 (a keyset not yet durable).
//! The UE keeps no snapshot, so nothing returns them;
//! [`ciot_e2e_error_name`] names them `"UNKNOWN"`.

use core::ffi::c_char;

use ciot_e2e::endpoint::{Reject, SendError};
use ciot_e2e::wire;

/// Success.
pub const CIOT_E2E_OK: i32 = 0;
/// [`crate::ciot_e2e_ue_send`]: the payload goes out at the next
/// [`crate::ciot_e2e_ue_poll_transmit`] (a usable keyset exists).
pub const CIOT_E2E_QUEUED: i32 = 0;
/// [`crate::ciot_e2e_ue_send`]: no usable keyset; the payload waits for the
/// next trigger, which a hello asks for.
pub const CIOT_E2E_HELD: i32 = 1;

/// A pointer that must not be NULL is NULL.
pub const CIOT_E2E_ERR_NULL: i32 = -1;
/// The state is not aligned to `CIOT_E2E_UE_ALIGN`.
pub const CIOT_E2E_ERR_ALIGN: i32 = -2;
/// The state storage is smaller than this library's state
/// (`CIOT_E2E_KEPT_CIPHERS` not defined for a library built with kept
/// ciphers?).
pub const CIOT_E2E_ERR_STATE_SIZE: i32 = -3;
/// The state was not initialized with `ciot_e2e_ue_init` (or was cleared
/// with `ciot_e2e_ue_deinit`, or its last init failed).
pub const CIOT_E2E_ERR_NOT_INITIALIZED: i32 = -4;
/// A length is wrong: a root not 32 octets, CK or IK not 16, a UE
/// identifier not 1 to 64 octets, any length (the state's too) over
/// `PTRDIFF_MAX`.
pub const CIOT_E2E_ERR_LENGTH: i32 = -5;
/// A value is out of range: an unknown root kind or KDF profile code, or
/// settings under which hellos would not pause (a hello back-off of 0, a
/// longest back-off below the first, a keepalive of 0).
pub const CIOT_E2E_ERR_VALUE: i32 = -6;
/// A KDF profile this build does not have (feature `kdf-hkdf`).
pub const CIOT_E2E_ERR_UNSUPPORTED: i32 = -7;
/// An output buffer is too small (`CIOT_E2E_MAX_DATAGRAM`,
/// `CIOT_E2E_ROOT_LEN`).
pub const CIOT_E2E_ERR_BUFFER_TOO_SMALL: i32 = -8;
/// The payload is longer than `CIOT_E2E_HOLD` octets.
pub const CIOT_E2E_ERR_PAYLOAD_TOO_LONG: i32 = -9;
/// The previous payload has not gone out yet, or went out under a keyset
/// that has stopped since and may yet be named refused: drain the effects
/// (the UE asks the EESE by itself) and try again.
pub const CIOT_E2E_ERR_BUSY: i32 = -10;
/// `ciot_e2e_ue_init`: the random source is NULL, or it reported failure
/// (or wrote nothing: 16 zero octets). The state is not initialized; there
/// is no mode without a fresh nonce.
pub const CIOT_E2E_ERR_RNG: i32 = -12;

/// Fewer octets than the message needs.
pub const CIOT_E2E_REJECT_TRUNCATED: i32 = -32;
/// Longer than any message, or octets after a fixed-length one.
pub const CIOT_E2E_REJECT_TOO_LONG: i32 = -33;
/// A protocol version this library does not speak.
pub const CIOT_E2E_REJECT_UNKNOWN_VERSION: i32 = -34;
/// A message type this version does not define.
pub const CIOT_E2E_REJECT_UNKNOWN_TYPE: i32 = -35;
/// A field holds a value this version does not allow (flags, suite, KDF
/// profile, lifetime, cause, sequence number, identifier, padding).
pub const CIOT_E2E_REJECT_MALFORMED: i32 = -36;
/// A message the UE never receives (a hello).
pub const CIOT_E2E_REJECT_UNEXPECTED: i32 = -37;
/// A data message in the UE's own direction (uplink).
pub const CIOT_E2E_REJECT_WRONG_DIRECTION: i32 = -38;
/// The tag or MAC does not verify: not made with this UE's keys.
pub const CIOT_E2E_REJECT_UNAUTHENTIC: i32 = -39;
/// A data message names another suite than its keyset's.
pub const CIOT_E2E_REJECT_SUITE_MISMATCH: i32 = -40;
/// A sequence number already accepted: a replay or a duplicate.
pub const CIOT_E2E_REJECT_REPLAYED: i32 = -41;
/// A sequence number left of the replay window.
pub const CIOT_E2E_REJECT_TOO_OLD: i32 = -42;
/// Data under a KSI the UE holds no receiving keyset for.
pub const CIOT_E2E_REJECT_UNKNOWN_KSI: i32 = -43;
/// Data under a keyset that has expired.
pub const CIOT_E2E_REJECT_EXPIRED_KSI: i32 = -44;
/// An authentic trigger whose counter is not above the last accepted.
pub const CIOT_E2E_REJECT_STALE_TRIGGER: i32 = -46;
/// An authentic key-expired error naming another keyset or message.
pub const CIOT_E2E_REJECT_STALE_ERROR: i32 = -47;
/// An authentic trigger for another KDF profile than the UE's.
pub const CIOT_E2E_REJECT_PROFILE_MISMATCH: i32 = -48;
/// An authentic trigger for a suite this build does not have.
pub const CIOT_E2E_REJECT_UNSUPPORTED_SUITE: i32 = -50;
/// Dropped for a reason this version of the API does not name.
pub const CIOT_E2E_REJECT_OTHER: i32 = -63;

/// The name of a code returned by this library, as the header spells it
/// without the `CIOT_E2E_` prefix (`"REJECT_UNAUTHENTIC"`), or `"UNKNOWN"`.
/// The string is static and NUL-terminated. `CIOT_E2E_HELD` (1) is named
/// `"HELD"`; `CIOT_E2E_OK` (0) `"OK"`.
#[unsafe(no_mangle)]
pub extern "C" fn ciot_e2e_error_name(code: i32) -> *const c_char {
    let name: &'static [u8] = match code {
        CIOT_E2E_OK => b"OK\0",
        CIOT_E2E_HELD => b"HELD\0",
        CIOT_E2E_ERR_NULL => b"ERR_NULL\0",
        CIOT_E2E_ERR_ALIGN => b"ERR_ALIGN\0",
        CIOT_E2E_ERR_STATE_SIZE => b"ERR_STATE_SIZE\0",
        CIOT_E2E_ERR_NOT_INITIALIZED => b"ERR_NOT_INITIALIZED\0",
        CIOT_E2E_ERR_LENGTH => b"ERR_LENGTH\0",
        CIOT_E2E_ERR_VALUE => b"ERR_VALUE\0",
        CIOT_E2E_ERR_UNSUPPORTED => b"ERR_UNSUPPORTED\0",
        CIOT_E2E_ERR_BUFFER_TOO_SMALL => b"ERR_BUFFER_TOO_SMALL\0",
        CIOT_E2E_ERR_PAYLOAD_TOO_LONG => b"ERR_PAYLOAD_TOO_LONG\0",
        CIOT_E2E_ERR_BUSY => b"ERR_BUSY\0",
        CIOT_E2E_ERR_RNG => b"ERR_RNG\0",
        CIOT_E2E_REJECT_TRUNCATED => b"REJECT_TRUNCATED\0",
        CIOT_E2E_REJECT_TOO_LONG => b"REJECT_TOO_LONG\0",
        CIOT_E2E_REJECT_UNKNOWN_VERSION => b"REJECT_UNKNOWN_VERSION\0",
        CIOT_E2E_REJECT_UNKNOWN_TYPE => b"REJECT_UNKNOWN_TYPE\0",
        CIOT_E2E_REJECT_MALFORMED => b"REJECT_MALFORMED\0",
        CIOT_E2E_REJECT_UNEXPECTED => b"REJECT_UNEXPECTED\0",
        CIOT_E2E_REJECT_WRONG_DIRECTION => b"REJECT_WRONG_DIRECTION\0",
        CIOT_E2E_REJECT_UNAUTHENTIC => b"REJECT_UNAUTHENTIC\0",
        CIOT_E2E_REJECT_SUITE_MISMATCH => b"REJECT_SUITE_MISMATCH\0",
        CIOT_E2E_REJECT_REPLAYED => b"REJECT_REPLAYED\0",
        CIOT_E2E_REJECT_TOO_OLD => b"REJECT_TOO_OLD\0",
        CIOT_E2E_REJECT_UNKNOWN_KSI => b"REJECT_UNKNOWN_KSI\0",
        CIOT_E2E_REJECT_EXPIRED_KSI => b"REJECT_EXPIRED_KSI\0",
        CIOT_E2E_REJECT_STALE_TRIGGER => b"REJECT_STALE_TRIGGER\0",
        CIOT_E2E_REJECT_STALE_ERROR => b"REJECT_STALE_ERROR\0",
        CIOT_E2E_REJECT_PROFILE_MISMATCH => b"REJECT_PROFILE_MISMATCH\0",
        CIOT_E2E_REJECT_UNSUPPORTED_SUITE => b"REJECT_UNSUPPORTED_SUITE\0",
        CIOT_E2E_REJECT_OTHER => b"REJECT_OTHER\0",
        _ => b"UNKNOWN\0",
    };
    name.as_ptr().cast()
}

/// The code of a dropped datagram.
pub(crate) fn reject(r: Reject) -> i32 {
    match r {
        Reject::Malformed(e) => wire_error(e),
        Reject::Unexpected(_) => CIOT_E2E_REJECT_UNEXPECTED,
        Reject::WrongDirection => CIOT_E2E_REJECT_WRONG_DIRECTION,
        Reject::Unauthentic => CIOT_E2E_REJECT_UNAUTHENTIC,
        Reject::SuiteMismatch { .. } => CIOT_E2E_REJECT_SUITE_MISMATCH,
        Reject::Replayed { .. } => CIOT_E2E_REJECT_REPLAYED,
        Reject::TooOld { .. } => CIOT_E2E_REJECT_TOO_OLD,
        Reject::UnknownKsi(_) => CIOT_E2E_REJECT_UNKNOWN_KSI,
        Reject::ExpiredKsi(_) => CIOT_E2E_REJECT_EXPIRED_KSI,
        Reject::StaleTrigger { .. } => CIOT_E2E_REJECT_STALE_TRIGGER,
        Reject::StaleError { .. } => CIOT_E2E_REJECT_STALE_ERROR,
        Reject::ProfileMismatch { .. } => CIOT_E2E_REJECT_PROFILE_MISMATCH,
        Reject::UnsupportedSuite(_) => CIOT_E2E_REJECT_UNSUPPORTED_SUITE,
        // EESE-side reasons (a retired keyset, a stale hello, no session);
        // a UE never returns them.
        _ => CIOT_E2E_REJECT_OTHER,
    }
}

/// The code of a datagram that is not a well-formed message.
fn wire_error(e: wire::Error) -> i32 {
    match e {
        wire::Error::Truncated { .. } => CIOT_E2E_REJECT_TRUNCATED,
        wire::Error::TrailingData { .. } | wire::Error::BadLength { .. } => {
            CIOT_E2E_REJECT_TOO_LONG
        }
        wire::Error::UnknownVersion(_) => CIOT_E2E_REJECT_UNKNOWN_VERSION,
        wire::Error::UnknownType(_) => CIOT_E2E_REJECT_UNKNOWN_TYPE,
        wire::Error::BadTag => CIOT_E2E_REJECT_UNAUTHENTIC,
        _ => CIOT_E2E_REJECT_MALFORMED,
    }
}

/// The code of a payload or buffer the UE refused.
pub(crate) fn send_error(e: SendError) -> i32 {
    match e {
        SendError::PayloadTooLong { .. } => CIOT_E2E_ERR_PAYLOAD_TOO_LONG,
        SendError::BufferTooSmall { .. } => CIOT_E2E_ERR_BUFFER_TOO_SMALL,
        // `Busy`, and the EESE-side reasons a UE never returns.
        _ => CIOT_E2E_ERR_BUSY,
    }
}
