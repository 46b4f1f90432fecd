//! The UE's entry points: its state's life (init, deinit), then what goes
//! in (datagrams, payloads, timeouts) and what comes out (datagrams,
//! events, status).

use core::ffi::c_void;

use ciot_e2e::endpoint::{Datagram, Event, Instant, Received, Sent, UeId};
use ciot_e2e::kdf::UeNonce;

use crate::codes::{
    CIOT_E2E_ERR_LENGTH, CIOT_E2E_ERR_RNG, CIOT_E2E_ERR_STATE_SIZE, CIOT_E2E_HELD, CIOT_E2E_OK,
    CIOT_E2E_QUEUED, reject, send_error,
};
use crate::ffi::{
    MARK, STATE_LEN, bytes, bytes_mut, code, input, length, out, state_ptr, ue_mut, ue_ref,
};
#[allow(unused_imports)] // For the documentation's link.
use crate::settings::ciot_e2e_int_key;
use crate::settings::{config, root_key};
use crate::types::*;
use crate::{CIOT_E2E_NEVER, CIOT_E2E_NONCE_LEN, CUe, State, ciot_e2e_ue};

/// The octets of state this library needs: at most `CIOT_E2E_UE_SIZE` of
/// the header it was built with (a library whose protocol crate another
/// package of its build gave kept ciphers needs more: see
/// `docs/c-api.md`).
#[unsafe(no_mangle)]
pub extern "C" fn ciot_e2e_ue_state_size() -> usize {
    STATE_LEN
}

/// Drops the UE the state holds, if any (its keys zeroized), and clears the
/// mark: the state reads as not initialized.
///
/// # Safety
/// `state` is non-null and aligned, and points to a `ciot_e2e_ue` the
/// caller owns and no one else uses during the call.
unsafe fn clear(state: *mut State) {
    // SAFETY: as the function requires. A UE behind a set mark is
    // initialized (only `ciot_e2e_ue_init` sets it, once the UE is
    // complete): it is dropped once, the mark cleared first.
    unsafe {
        let mark = core::ptr::addr_of_mut!((*state).mark);
        if mark.read() == MARK {
            mark.write(0);
            core::ptr::drop_in_place(core::ptr::addr_of_mut!((*state).ue));
        }
    }
}

/// Checks the configuration, root and identifier (nothing is written when
/// one is refused); then drops the UE the state holds, if any, and writes a
/// new one for this start, leaving the mark clear.
///
/// The UE is built in this frame of its own, apart from the entry point's
/// and from the random source's call.
///
/// # Safety
/// `state` is non-null, aligned and spans the library's state, which the
/// caller owns; the other pointers as in [`ciot_e2e_ue_init`].
#[allow(clippy::too_many_arguments)]
#[inline(never)]
unsafe fn write_new(
    state: *mut State,
    config_in: *const ciot_e2e_ue_config,
    root_kind: u8,
    root: *const u8,
    root_len: usize,
    id: *const u8,
    id_len: usize,
    nonce: UeNonce,
) -> Result<(), i32> {
    // SAFETY: the caller passes an initialized configuration.
    let cfg = config(unsafe { input(config_in)? })?;
    // SAFETY: the caller promises `root_len` and `id_len` readable octets.
    let (root, id) = unsafe { (bytes(root, root_len)?, bytes(id, id_len)?) };
    let id = UeId::new(id).map_err(|_| CIOT_E2E_ERR_LENGTH)?;
    let root = root_key(root_kind, root)?;
    // SAFETY: as the function requires; `clear` leaves the slot without a
    // UE, so writing one leaks nothing and drops nothing twice.
    unsafe {
        clear(state);
        core::ptr::addr_of_mut!((*state).ue).write(CUe::new(cfg, root, id, nonce));
    }
    Ok(())
}

/// The start's nonce from the caller's random source. No source, a source
/// that reports failure, or one that wrote nothing (16 zero octets, which
/// a working source gives with probability 2^-128) is `CIOT_E2E_ERR_RNG`:
/// there is no fallback.
///
/// A function of its own, called before the UE is built: the random source
/// runs on top of this small frame and the entry point's only (a device's
/// random driver may need a deep stack), and `ci/stack-depth` knows its
/// one indirect call by this name.
///
/// # Safety
/// `rng`, if not NULL, is a function that follows [`ciot_e2e_rng`]'s
/// contract for `ctx`.
#[inline(never)]
unsafe fn draw_nonce(rng: ciot_e2e_rng, ctx: *mut c_void) -> Result<UeNonce, i32> {
    let rng = rng.ok_or(CIOT_E2E_ERR_RNG)?;
    let mut nonce = [0u8; CIOT_E2E_NONCE_LEN];
    // SAFETY: the caller vouches that `rng` writes at most `len` octets to
    // `out` and keeps neither pointer; `out` is this local array of exactly
    // `len` writable octets, alive for the call; `ctx` is passed through
    // untouched, as the caller gave it.
    let r = unsafe { rng(ctx, nonce.as_mut_ptr(), nonce.len()) };
    // (A fold, not `==`: a comparison of arrays links `memcmp`.)
    if r != 0 || nonce.iter().fold(0, |any, &b| any | b) == 0 {
        return Err(CIOT_E2E_ERR_RNG);
    }
    Ok(UeNonce::from_bytes(nonce))
}

/// Starts a UE: call it at every start of the device (power-up, reset,
/// wake from a state that kept nothing), and whenever the UE is to start
/// afresh. The UE has no keyset; its first datagram is a hello, which
/// carries a nonce of 16 octets drawn from `rng` for this start
/// (`CIOT_E2E_NONCE_LEN`; it also seeds the hello back-off's jitter).
/// Every key the UE will use mixes that nonce in, so nothing it seals
/// repeats anything an earlier start, or a copy of the device, sealed:
/// there is no state to restore, whatever the device's storage holds.
///
/// `root` is the root key of kind `root_kind` (`CIOT_E2E_ROOT_LEN` octets,
/// from [`ciot_e2e_int_key`] for solution #5); `id` the UE's identifier (1
/// to 64 octets) as the hello carries it; `rng` the device's random source
/// and `rng_ctx` what it is called with ([`ciot_e2e_rng`]). The source is
/// called once, right after the state pointer and `state_len` are checked,
/// before anything else; neither pointer is kept. It must not call this
/// library with the same state. A state that was initialized is cleared
/// first.
///
/// Returns `CIOT_E2E_OK`; `CIOT_E2E_ERR_NULL`, `CIOT_E2E_ERR_ALIGN`,
/// `CIOT_E2E_ERR_STATE_SIZE` (`state_len` below the library's state),
/// `CIOT_E2E_ERR_LENGTH` (a length over `PTRDIFF_MAX` too),
/// `CIOT_E2E_ERR_VALUE`, `CIOT_E2E_ERR_UNSUPPORTED`: nothing is written
/// then. `CIOT_E2E_ERR_RNG`: `rng` is NULL or gave no nonce; the state is
/// then not initialized (a UE it held is cleared): a device that restarts
/// without a nonce does not go on as the UE it was.
///
/// # Safety
/// `ue` points to `state_len` octets the caller owns and no one else uses
/// during the call; every other pointer is NULL or points to its length in
/// octets (`config` to a `ciot_e2e_ue_config`); `rng` is NULL or a function
/// that follows [`ciot_e2e_rng`]'s contract for `rng_ctx`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ciot_e2e_ue_init(
    ue: *mut ciot_e2e_ue,
    state_len: usize,
    config: *const ciot_e2e_ue_config,
    root_kind: u8,
    root: *const u8,
    root_len: usize,
    id: *const u8,
    id_len: usize,
    rng: ciot_e2e_rng,
    rng_ctx: *mut c_void,
) -> i32 {
    let run = || -> Result<i32, i32> {
        let state = state_ptr(ue)?;
        if length(state_len)? < STATE_LEN {
            return Err(CIOT_E2E_ERR_STATE_SIZE);
        }
        // SAFETY: the caller vouches for the random source. No reference
        // into the state is held while it runs.
        let nonce = match unsafe { draw_nonce(rng, rng_ctx) } {
            Ok(n) => n,
            Err(e) => {
                // SAFETY: a state pointer checked for null and alignment,
                // which the caller owns.
                unsafe { clear(state) };
                return Err(e);
            }
        };
        // SAFETY: the caller's promises, and a state pointer checked for
        // null, alignment and size.
        unsafe { write_new(state, config, root_kind, root, root_len, id, id_len, nonce)? };
        // SAFETY: `write_new` left a valid UE in the state; the mark is set
        // only now that it is complete.
        unsafe { core::ptr::addr_of_mut!((*state).mark).write(MARK) };
        Ok(CIOT_E2E_OK)
    };
    code(run())
}

/// Clears a UE: its keys and held payload are zeroized and the state reads
/// as not initialized. Calling it on a cleared state does nothing.
///
/// Returns `CIOT_E2E_OK`, `CIOT_E2E_ERR_NULL` or `CIOT_E2E_ERR_ALIGN`.
///
/// # Safety
/// `ue` is NULL or points to a `ciot_e2e_ue` the caller owns and no one
/// else uses during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_ue_deinit(ue: *mut ciot_e2e_ue) -> i32 {
    code(state_ptr(ue).map(|state| {
        // SAFETY: a state pointer checked for null and alignment, which the
        // caller owns and lends for the call.
        unsafe { clear(state) };
        CIOT_E2E_OK
    }))
}

/// Handles a datagram from the EESE, `len` octets in `buf`. A trigger
/// installs a keyset, a key-expired error stops the keyset it names, a data
/// message is decrypted in place: `received` says where its payload lies in
/// `buf`. Then drain the effects.
///
/// Returns `CIOT_E2E_OK` and fills `received`; a `CIOT_E2E_REJECT_*` code
/// for a datagram that is forged, replayed, stale or malformed, which
/// changed nothing (not even `buf`); or a calling error.
///
/// # Safety
/// `ue` as in [`ciot_e2e_ue_deinit`]; `buf` is NULL or points to `len`
/// writable octets; `received` is NULL or points to a `ciot_e2e_received`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_ue_handle_datagram(
    ue: *mut ciot_e2e_ue,
    now_ms: u64,
    buf: *mut u8,
    len: usize,
    received: *mut ciot_e2e_received,
) -> i32 {
    let run = || -> Result<i32, i32> {
        // SAFETY: the caller lends the state, `len` writable octets and the
        // output structure, each distinct.
        let (ue, buf, received) = unsafe { (ue_mut(ue)?, bytes_mut(buf, len)?, out(received)?) };
        let r = match ue.handle_datagram(Instant(now_ms), buf).map_err(reject)? {
            Received::Data(d) => ciot_e2e_received {
                kind: crate::CIOT_E2E_RECEIVED_DATA,
                message_type: ciot_e2e::wire::MessageType::DATA.0,
                ksi: d.ksi.0,
                seq: d.seq,
                counter: d.counter,
                payload_offset: d.payload.start,
                payload_len: d.payload.len(),
            },
            Received::Control(ty) => ciot_e2e_received {
                kind: crate::CIOT_E2E_RECEIVED_CONTROL,
                message_type: ty.0,
                ksi: 0,
                seq: 0,
                counter: 0,
                payload_offset: 0,
                payload_len: 0,
            },
        };
        received.write(r);
        Ok(CIOT_E2E_OK)
    };
    code(run())
}

/// Takes a payload (at most `CIOT_E2E_HOLD` octets) to send. The UE keeps a
/// copy, so it can go out again if the EESE names it refused. The copy is
/// in the state only (RAM): a reset before it went out loses it. Delivery
/// is at most once; a device that needs more keeps its own copy and sends
/// it again after a restart (the EESE sees a new message).
///
/// Returns `CIOT_E2E_QUEUED` (it goes out at the next poll) or
/// `CIOT_E2E_HELD` (it waits for a keyset; a hello asks for one);
/// `CIOT_E2E_ERR_PAYLOAD_TOO_LONG`, `CIOT_E2E_ERR_BUSY` (the previous one has
/// not gone out, or went out under a keyset that has stopped since and the
/// EESE may yet name it refused: it would be lost if this one took its
/// place; the UE's hello settles it), or a calling error; nothing changes
/// then.
///
/// # Safety
/// `ue` as in [`ciot_e2e_ue_deinit`]; `payload` is NULL or points to `len`
/// octets.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_ue_send(
    ue: *mut ciot_e2e_ue,
    now_ms: u64,
    payload: *const u8,
    len: usize,
) -> i32 {
    let run = || -> Result<i32, i32> {
        // SAFETY: the caller lends the state and `len` readable octets.
        let (ue, payload) = unsafe { (ue_mut(ue)?, bytes(payload, len)?) };
        match ue.send(Instant(now_ms), payload).map_err(send_error)? {
            Sent::Queued => Ok(CIOT_E2E_QUEUED),
            Sent::Held => Ok(CIOT_E2E_HELD),
        }
    };
    code(run())
}

/// The first effect to drain, until it returns 0: writes the next datagram
/// for the EESE into `out` (`out_len` at least `CIOT_E2E_MAX_DATAGRAM`): a
/// hello when one is due, else the held payload when a usable keyset covers
/// it. At one `now_ms` it hands out a bounded number of datagrams (never two
/// hellos), so a loop that polls until 0 ends.
///
/// Returns 1 when a datagram was written (`transmit` says its length), 0
/// when nothing may go out now; `CIOT_E2E_ERR_BUFFER_TOO_SMALL` or a calling
/// error.
///
/// # Safety
/// `ue` as in [`ciot_e2e_ue_deinit`]; `out` is NULL or points to `out_len`
/// writable octets; `transmit` is NULL or points to a `ciot_e2e_transmit`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_ue_poll_transmit(
    ue: *mut ciot_e2e_ue,
    now_ms: u64,
    out_buf: *mut u8,
    out_len: usize,
    transmit: *mut ciot_e2e_transmit,
) -> i32 {
    let run = || -> Result<i32, i32> {
        // SAFETY: the caller lends the state, the buffer and the structure.
        let (ue, buf, slot) =
            unsafe { (ue_mut(ue)?, bytes_mut(out_buf, out_len)?, out(transmit)?) };
        let Some(t) = ue.poll_transmit(Instant(now_ms), buf).map_err(send_error)? else {
            return Ok(0);
        };
        let (kind, ksi, flag, seq, counter) = match t.what {
            Datagram::Hello { seq, rekey } => (CIOT_E2E_DATAGRAM_HELLO, 0, rekey, seq, 0),
            Datagram::Data {
                ksi,
                counter,
                seq,
                retransmission,
            } => (CIOT_E2E_DATAGRAM_DATA, ksi.0, retransmission, seq, counter),
            // A UE transmits nothing else.
            _ => (0, 0, false, 0, 0),
        };
        slot.write(ciot_e2e_transmit {
            len: t.len,
            kind,
            ksi,
            flag: u8::from(flag),
            seq,
            counter,
        });
        Ok(1)
    };
    code(run())
}

/// The second effect to drain, until it returns 0: the next event.
///
/// Returns 1 when `event` was filled, 0 when there is none, or a calling
/// error.
///
/// # Safety
/// `ue` as in [`ciot_e2e_ue_deinit`]; `event` is NULL or points to a
/// `ciot_e2e_event`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_ue_poll_event(
    ue: *mut ciot_e2e_ue,
    event: *mut ciot_e2e_event,
) -> i32 {
    let run = || -> Result<i32, i32> {
        // SAFETY: the caller lends the state and the structure.
        let (ue, slot) = unsafe { (ue_mut(ue)?, out(event)?) };
        let Some(e) = ue.poll_event() else {
            return Ok(0);
        };
        let (kind, ksi, cause, seq, counter) = match e {
            Event::Rekeyed { ksi, counter } => (CIOT_E2E_EVENT_REKEYED, ksi.0, 0, 0, counter),
            Event::KeysExpired { ksi, cause } => {
                (CIOT_E2E_EVENT_KEYS_EXPIRED, ksi.0, cause.0, 0, 0)
            }
            Event::Retransmitted { ksi, counter, seq } => {
                (CIOT_E2E_EVENT_RETRANSMITTED, ksi.0, 0, seq, counter)
            }
            _ => (CIOT_E2E_EVENT_OTHER, 0, 0, 0, 0),
        };
        slot.write(ciot_e2e_event {
            kind,
            ksi,
            cause,
            seq,
            counter,
        });
        Ok(1)
    };
    code(run())
}

/// When [`ciot_e2e_ue_handle_timeout`] must next run: writes the time into
/// `at_ms` (`CIOT_E2E_NEVER` when no timer is set).
///
/// Returns 1 when a timer is set, 0 when none is, or a calling error.
///
/// # Safety
/// `ue` as in [`ciot_e2e_ue_deinit`] (only read); `at_ms` is NULL or points
/// to a `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_ue_poll_timeout(ue: *const ciot_e2e_ue, at_ms: *mut u64) -> i32 {
    let run = || -> Result<i32, i32> {
        // SAFETY: the caller lends the state and the integer.
        let (ue, slot) = unsafe { (ue_ref(ue)?, out(at_ms)?) };
        let at = ue.poll_timeout();
        slot.write(at.map_or(CIOT_E2E_NEVER, Instant::as_millis));
        Ok(i32::from(at.is_some()))
    };
    code(run())
}

/// Runs the timers due at `now_ms` (te2e, grace, probe, keepalive, hello
/// back-off); then drain the effects.
///
/// Returns `CIOT_E2E_OK` or a calling error.
///
/// # Safety
/// `ue` as in [`ciot_e2e_ue_deinit`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_ue_handle_timeout(ue: *mut ciot_e2e_ue, now_ms: u64) -> i32 {
    // SAFETY: the caller lends the state.
    code(unsafe { ue_mut(ue) }.map(|ue| {
        ue.handle_timeout(Instant(now_ms));
        CIOT_E2E_OK
    }))
}

/// A new root after a new AKA run: every keyset of the old root is gone
/// (reported as expired, cause root replaced), and a hello asks for a
/// keyset of the new one. A payload waiting to go out still does.
///
/// Returns `CIOT_E2E_OK`, `CIOT_E2E_ERR_LENGTH`, `CIOT_E2E_ERR_VALUE` or a
/// calling error; nothing changes on error.
///
/// # Safety
/// `ue` as in [`ciot_e2e_ue_deinit`]; `root` is NULL or points to
/// `root_len` octets.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_ue_replace_root(
    ue: *mut ciot_e2e_ue,
    now_ms: u64,
    root_kind: u8,
    root: *const u8,
    root_len: usize,
) -> i32 {
    let run = || -> Result<i32, i32> {
        // SAFETY: the caller lends the state and `root_len` readable octets.
        let (ue, root) = unsafe { (ue_mut(ue)?, bytes(root, root_len)?) };
        ue.replace_root(Instant(now_ms), root_key(root_kind, root)?);
        Ok(CIOT_E2E_OK)
    };
    code(run())
}

/// Fills `status` with the UE's keyset and whether a payload is held.
///
/// Returns `CIOT_E2E_OK` or a calling error.
///
/// # Safety
/// `ue` as in [`ciot_e2e_ue_poll_timeout`]; `status` is NULL or points to a
/// `ciot_e2e_status`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_ue_status(
    ue: *const ciot_e2e_ue,
    status: *mut ciot_e2e_status,
) -> i32 {
    let run = || -> Result<i32, i32> {
        // SAFETY: the caller lends the state and the structure.
        let (ue, slot) = unsafe { (ue_ref(ue)?, out(status)?) };
        let s = ue.status();
        slot.write(ciot_e2e_status {
            has_keyset: u8::from(s.is_some()),
            ksi: s.map_or(0, |s| s.ksi.0),
            usable: u8::from(s.is_some_and(|s| s.usable)),
            holding: u8::from(ue.holding()),
            counter: s.map_or(0, |s| s.counter),
            last_counter: ue.last_counter(),
        });
        Ok(CIOT_E2E_OK)
    };
    code(run())
}
