//! A C ABI over the `ciot-e2e` analyzer, for packet analyzers written in C.
//!
//! The Wireshark plugin in `dissector/plugin/` links
//! `libciot_e2e_analyze_c.a` and includes `include/ciot_e2e_analyze.h`,
//! which cbindgen writes from this crate (the test `header` fails when the
//! committed header differs). Everything the plugin shows comes from here,
//! so Wireshark and `ciot-e2e dissect` run the same code:
//!
//! - the tables a dissector registers before it sees a message: every
//!   field the analyzer can emit ([`ciot_e2e_an_field_spec_at`]) and every
//!   kind of finding ([`ciot_e2e_an_finding_kind_at`]);
//! - a key log ([`ciot_e2e_an_keylog_open`]), to decrypt data messages;
//! - a capture context ([`ciot_e2e_an_capture_new`]): the nonce-reuse
//!   ledger of one capture, whose answer for a frame is kept by frame
//!   number, so dissecting a frame again (a second pass, a display filter,
//!   a click) gives the same findings as the first time;
//! - [`ciot_e2e_an_dissect`]: one message into a reusable result, whose
//!   fields, findings and plaintext are read by index.
//!
//! Every function that can fail returns an integer code: `CIOT_E2E_AN_OK`
//! (0) on success, a negative `CIOT_E2E_AN_ERR_*` otherwise, which
//! [`ciot_e2e_an_error_name`] names. A pointer that must not be NULL is
//! refused with `CIOT_E2E_AN_ERR_NULL`. No octets, however hostile, make
//! the analyzer panic; should a bug make it panic, the call returns
//! `CIOT_E2E_AN_ERR_INTERNAL` instead of unwinding into C.
//!
//! Not thread-safe per object: a key log may be shared by threads that only
//! read it; a capture context and a result are used by one thread at a time.
//!
//! Every `unsafe` block is an FFI boundary and says why it holds.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]
// The C names are the API.
#![allow(non_camel_case_types)]

mod codes;
mod result;
mod tables;

pub use codes::*;
pub use result::*;
pub use tables::*;

use std::collections::HashMap;
use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use ciot_e2e_analyze::dissect::{Finding, NonceLedger};
use ciot_e2e_analyze::keylog::KeyLog;

/// A key log read from a file (`docs/keylog.md`): the keys to decrypt data
/// messages with. Opaque; made by [`ciot_e2e_an_keylog_open`], freed by
/// [`ciot_e2e_an_keylog_free`].
pub struct ciot_e2e_an_keylog {
    log: KeyLog,
}

/// The state one capture needs across its frames: which (keys, direction,
/// seq) each decrypted data message used, and the nonce-reuse answer given
/// for each frame. Opaque; one per capture file, made by
/// [`ciot_e2e_an_capture_new`], freed by [`ciot_e2e_an_capture_free`].
pub struct ciot_e2e_an_capture {
    ledger: NonceLedger,
    /// Frame number → the nonce-reuse finding its message got when first
    /// dissected (or none).
    answers: HashMap<u64, Option<Finding>>,
}

/// Reads the key log at `path` (a NUL-terminated UTF-8 path) into a new
/// handle at `*out`.
///
/// On failure `*out` is NULL and, when `error` is not NULL, a sentence
/// saying why (NUL-terminated, cut to `error_len` octets) is written there:
/// the I/O error, or the line of the key log and what is wrong with it. The
/// sentence never holds the text of a key.
///
/// Returns `CIOT_E2E_AN_OK`, `CIOT_E2E_AN_ERR_NULL` (`path` or `out`),
/// `CIOT_E2E_AN_ERR_PATH` (not UTF-8, or empty), `CIOT_E2E_AN_ERR_KEYLOG_IO`
/// (the file cannot be read) or `CIOT_E2E_AN_ERR_KEYLOG_FORMAT` (a line is
/// not a keyset line).
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out` is NULL or points to
/// writable storage for a pointer; `error` is NULL or points to `error_len`
/// writable octets.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_an_keylog_open(
    path: *const c_char,
    out: *mut *mut ciot_e2e_an_keylog,
    error: *mut c_char,
    error_len: usize,
) -> i32 {
    if out.is_null() {
        return CIOT_E2E_AN_ERR_NULL;
    }
    // SAFETY: `out` is non-null and points to storage for a pointer, which
    // the caller lends for this call.
    unsafe { out.write(std::ptr::null_mut()) };
    let report = |code: i32, text: &str| {
        // SAFETY: the caller promised `error` is NULL or `error_len`
        // writable octets.
        unsafe { write_message(error, error_len, text) };
        code
    };
    if path.is_null() {
        return report(CIOT_E2E_AN_ERR_NULL, "no path");
    }
    // SAFETY: `path` is non-null and NUL-terminated (the caller's promise);
    // it is only read during this call.
    let path = unsafe { CStr::from_ptr(path) };
    let Ok(path) = path.to_str() else {
        return report(CIOT_E2E_AN_ERR_PATH, "the path is not UTF-8");
    };
    if path.is_empty() {
        return report(CIOT_E2E_AN_ERR_PATH, "the path is empty");
    }
    let text = match std::fs::read_to_string(Path::new(path)) {
        Ok(text) => text,
        Err(e) => return report(CIOT_E2E_AN_ERR_KEYLOG_IO, &format!("{path}: {e}")),
    };
    match KeyLog::parse(&text) {
        Ok(log) => {
            let handle = Box::into_raw(Box::new(ciot_e2e_an_keylog { log }));
            // SAFETY: as above, `out` is non-null and writable.
            unsafe { out.write(handle) };
            CIOT_E2E_AN_OK
        }
        Err(e) => {
            // "… is not hex: <the word>" would echo a mistyped key: the
            // sentence stops before the word.
            let reason = e.reason.split(": ").next().unwrap_or_default();
            let text = format!("{path}: key log line {}: {reason}", e.line);
            report(CIOT_E2E_AN_ERR_KEYLOG_FORMAT, &text)
        }
    }
}

/// Writes `text` into `buf` (`len` octets) NUL-terminated, cut to fit.
///
/// # Safety
/// `buf` is NULL or points to `len` writable octets.
unsafe fn write_message(buf: *mut c_char, len: usize, text: &str) {
    if buf.is_null() || len == 0 {
        return;
    }
    let n = text.len().min(len - 1);
    // SAFETY: `buf` is non-null and spans `len` writable octets, and
    // `n + 1 <= len`; `text` is a distinct Rust string, so the two do not
    // overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
        buf.add(n).write(0);
    }
}

/// The number of keysets in a key log (0 for NULL).
///
/// # Safety
/// `keys` is NULL or a handle from [`ciot_e2e_an_keylog_open`] not yet
/// freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_an_keylog_len(keys: *const ciot_e2e_an_keylog) -> usize {
    // SAFETY: `keys` is NULL or a live handle (the caller's promise), read
    // only during this call.
    unsafe { keys.as_ref() }.map_or(0, |k| k.log.entries().len())
}

/// Frees a key log; NULL is ignored.
///
/// # Safety
/// `keys` is NULL or a handle from [`ciot_e2e_an_keylog_open`] not yet
/// freed, and no one uses it after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_an_keylog_free(keys: *mut ciot_e2e_an_keylog) {
    if !keys.is_null() {
        // SAFETY: `keys` came from `Box::into_raw` in
        // `ciot_e2e_an_keylog_open` and is freed once (the caller's
        // promise).
        drop(unsafe { Box::from_raw(keys) });
    }
}

/// A new capture context, empty: one per capture file. Never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn ciot_e2e_an_capture_new() -> *mut ciot_e2e_an_capture {
    Box::into_raw(Box::new(ciot_e2e_an_capture {
        ledger: NonceLedger::new(),
        answers: HashMap::new(),
    }))
}

/// The number of nonce-reuse findings a capture context has given (each
/// frame counted once, however often it was dissected; 0 for NULL).
///
/// # Safety
/// `capture` is NULL or a handle from [`ciot_e2e_an_capture_new`] not yet
/// freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_an_capture_nonce_reuse(
    capture: *const ciot_e2e_an_capture,
) -> u64 {
    // SAFETY: `capture` is NULL or a live handle (the caller's promise),
    // read only during this call.
    unsafe { capture.as_ref() }.map_or(0, |c| c.ledger.reused())
}

/// Frees a capture context; NULL is ignored.
///
/// # Safety
/// `capture` is NULL or a handle from [`ciot_e2e_an_capture_new`] not yet
/// freed, and no one uses it after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_an_capture_free(capture: *mut ciot_e2e_an_capture) {
    if !capture.is_null() {
        // SAFETY: `capture` came from `Box::into_raw` in
        // `ciot_e2e_an_capture_new` and is freed once (the caller's promise).
        drop(unsafe { Box::from_raw(capture) });
    }
}

/// Dissects the message `bytes` (`len` octets) into `out`, replacing what
/// it held.
///
/// With `keys` (not NULL) a data message is decrypted: the plaintext and
/// the tag's verdict become fields, a tag no keyset verifies a finding.
/// With `keys` and `capture` (both not NULL) and a `frame` number other
/// than 0, a decrypted data message is also checked for nonce reuse
/// against the capture's earlier frames; the answer for a frame is kept, so
/// dissecting the same frame again gives the same findings. Frame 0 means
/// a message that is not a frame of its own (one quoted inside another
/// packet): it is dissected and decrypted but neither checked nor recorded.
///
/// `bytes` may be NULL only when `len` is 0. Returns `CIOT_E2E_AN_OK`,
/// `CIOT_E2E_AN_ERR_NULL` (`out`, or `bytes` with octets),
/// `CIOT_E2E_AN_ERR_LENGTH` (`len` over `PTRDIFF_MAX`) or
/// `CIOT_E2E_AN_ERR_INTERNAL` (a bug in the analyzer: `out` is then empty).
///
/// # Safety
/// `capture`, `keys` and `out` are NULL or live handles of their kind, none
/// used by another thread during the call; `bytes` is NULL or points to
/// `len` readable octets.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_an_dissect(
    capture: *mut ciot_e2e_an_capture,
    keys: *const ciot_e2e_an_keylog,
    bytes: *const u8,
    len: usize,
    frame: u64,
    out: *mut ciot_e2e_an_result,
) -> i32 {
    // SAFETY: `out` is NULL or a live result the caller lends exclusively
    // for this call.
    let Some(out) = (unsafe { out.as_mut() }) else {
        return CIOT_E2E_AN_ERR_NULL;
    };
    if len > isize::MAX as usize {
        return CIOT_E2E_AN_ERR_LENGTH;
    }
    let bytes: &[u8] = if len == 0 {
        &[]
    } else if bytes.is_null() {
        return CIOT_E2E_AN_ERR_NULL;
    } else {
        // SAFETY: `bytes` is non-null and points to `len` readable octets
        // (the caller's promise), `len` is at most `isize::MAX`, and the
        // octets are only read during this call (the result copies them).
        unsafe { std::slice::from_raw_parts(bytes, len) }
    };
    // SAFETY: `keys` is NULL or a live key log, only read here.
    let keys = unsafe { keys.as_ref() }.map(|k| &k.log);
    // SAFETY: `capture` is NULL or a live context the caller lends
    // exclusively for this call.
    let capture = unsafe { capture.as_mut() };
    let run = catch_unwind(AssertUnwindSafe(|| {
        out.fill(bytes, keys, |d| {
            let (Some(_), Some(c), 1..) = (keys, capture, frame) else {
                return None;
            };
            c.answers
                .entry(frame)
                .or_insert_with(|| c.ledger.check(frame, bytes, d))
                .clone()
        });
    }));
    match run {
        Ok(()) => CIOT_E2E_AN_OK,
        Err(_) => {
            out.clear();
            CIOT_E2E_AN_ERR_INTERNAL
        }
    }
}
