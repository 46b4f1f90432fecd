//! The UE's entry points: its state's life (init, restore, deinit), then
//! what goes in (datagrams, payloads, timeouts) and what comes out (persist
//! effects, datagrams, events, status).

use ciot_e2e::endpoint::{Datagram, Event, Instant, Persist, Received, Sent, UeId};

use crate::codes::{
    CIOT_E2E_ERR_BUFFER_TOO_SMALL, CIOT_E2E_ERR_LENGTH, CIOT_E2E_ERR_STATE_SIZE,
    CIOT_E2E_ERR_UNKNOWN_PERSIST, CIOT_E2E_HELD, CIOT_E2E_OK, CIOT_E2E_QUEUED, reject, send_error,
    snapshot_error,
};
use crate::ffi::{MARK, STATE_LEN, bytes, bytes_mut, code, input, out, state_ptr, ue_mut, ue_ref};
#[allow(unused_imports)] // For the documentation's link.
use crate::settings::ciot_e2e_int_key;
use crate::settings::{config, root_key};
use crate::types::*;
use crate::{CIOT_E2E_NEVER, CIOT_E2E_SNAPSHOT_LEN, CUe, State, ciot_e2e_ue};

/// The octets of state this library needs (at most `CIOT_E2E_UE_SIZE`).
#[unsafe(no_mangle)]
pub extern "C" fn ciot_e2e_ue_state_size() -> usize {
    STATE_LEN
}

/// What `init` and `restore` share: checks every argument, writes a new UE
/// into the state (dropping one that was there) and, for a restore, loads
/// the snapshot into it there. The UE is not built in this frame, so the
/// deepest stack is the larger of building and restoring, not their sum.
///
/// # Safety
/// As [`ciot_e2e_ue_init`].
#[allow(clippy::too_many_arguments)]
unsafe fn install(
    ue: *mut ciot_e2e_ue,
    state_len: usize,
    config: *const ciot_e2e_ue_config,
    root_kind: u8,
    root: *const u8,
    root_len: usize,
    id: *const u8,
    id_len: usize,
    seed: u64,
    snapshot: Option<&[u8]>,
) -> Result<i32, i32> {
    let state = state_ptr(ue)?;
    if state_len < STATE_LEN {
        return Err(CIOT_E2E_ERR_STATE_SIZE);
    }
    // SAFETY: the caller's promises, and a state pointer checked for null,
    // alignment and size.
    unsafe { write_new(state, config, root_kind, root, root_len, id, id_len, seed)? };
    // SAFETY: `write_new` left a valid UE in the state (its mark still
    // clear); a refused snapshot drops it again, so the state reads as not
    // initialized. The mark is set only once the UE is complete.
    unsafe {
        let slot = core::ptr::addr_of_mut!((*state).ue);
        if let Some(snapshot) = snapshot
            && let Err(e) = (*slot).restore_in_place(snapshot)
        {
            core::ptr::drop_in_place(slot);
            return Err(snapshot_error(e));
        }
        core::ptr::addr_of_mut!((*state).mark).write(MARK);
    }
    Ok(CIOT_E2E_OK)
}

/// Checks the configuration, root and identifier, then drops the UE the
/// state holds, if any, and writes a new one, leaving the mark clear.
/// Nothing is written when an argument is refused.
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
    seed: u64,
) -> Result<(), i32> {
    // SAFETY: the caller passes an initialized configuration.
    let cfg = config(unsafe { input(config_in)? })?;
    // SAFETY: the caller promises `root_len` and `id_len` readable octets.
    let (root, id) = unsafe { (bytes(root, root_len)?, bytes(id, id_len)?) };
    let id = UeId::new(id).map_err(|_| CIOT_E2E_ERR_LENGTH)?;
    let root = root_key(root_kind, root)?;
    // SAFETY: as the function requires. A UE behind a set mark is
    // initialized: it is dropped (its keys zeroized) once, the mark cleared
    // first.
    unsafe {
        let mark = core::ptr::addr_of_mut!((*state).mark);
        let slot = core::ptr::addr_of_mut!((*state).ue);
        if mark.read() == MARK {
            mark.write(0);
            core::ptr::drop_in_place(slot);
        }
        slot.write(CUe::new(cfg, root, id, seed));
    }
    Ok(())
}

/// Initializes a UE with no keyset: its first datagram is a hello (after
/// its first snapshot is persisted). `root` is the root key of kind
/// `root_kind` (`CIOT_E2E_ROOT_LEN` octets, from [`ciot_e2e_int_key`] for
/// solution #5); `id` the UE's identifier (1 to 64 octets) as the hello
/// carries it; `seed` feeds the back-off jitter (differing per device
/// spreads hellos). A state that was initialized is cleared first.
///
/// Returns `CIOT_E2E_OK`; `CIOT_E2E_ERR_NULL`, `CIOT_E2E_ERR_ALIGN`,
/// `CIOT_E2E_ERR_STATE_SIZE` (`state_len` below the library's state),
/// `CIOT_E2E_ERR_LENGTH`, `CIOT_E2E_ERR_VALUE`, `CIOT_E2E_ERR_UNSUPPORTED`;
/// nothing is written then.
///
/// # Safety
/// `ue` points to `state_len` octets the caller owns and no one else uses
/// during the call; every other pointer is NULL or points to its length in
/// octets (`config` to a `ciot_e2e_ue_config`).
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
    seed: u64,
) -> i32 {
    // SAFETY: the caller's promises are `install`'s.
    code(unsafe {
        install(
            ue, state_len, config, root_kind, root, root_len, id, id_len, seed, None,
        )
    })
}

/// Rebuilds a UE from its root and the last snapshot it asked to store
/// (after a reset or a power cycle). Its keyset, if any, is retired: it
/// sends from past the stored reservation and receives nothing, and a hello
/// asks for a new keyset at once (`docs/SECURITY.md` section 4).
///
/// Returns as [`ciot_e2e_ue_init`], and `CIOT_E2E_ERR_SNAPSHOT_*` for a
/// snapshot that is truncated, damaged, of another kind or written under
/// another root: the state is then not initialized (a UE it held before is
/// cleared).
///
/// # Safety
/// As [`ciot_e2e_ue_init`]; `snapshot` is NULL or points to `snapshot_len`
/// octets.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ciot_e2e_ue_restore(
    ue: *mut ciot_e2e_ue,
    state_len: usize,
    config: *const ciot_e2e_ue_config,
    root_kind: u8,
    root: *const u8,
    root_len: usize,
    id: *const u8,
    id_len: usize,
    seed: u64,
    snapshot: *const u8,
    snapshot_len: usize,
) -> i32 {
    // SAFETY: the caller promises `snapshot_len` readable octets.
    let snapshot = match unsafe { bytes(snapshot, snapshot_len) } {
        Ok(s) => s,
        Err(e) => return e,
    };
    // SAFETY: the caller's promises are `install`'s.
    code(unsafe {
        install(
            ue,
            state_len,
            config,
            root_kind,
            root,
            root_len,
            id,
            id_len,
            seed,
            Some(snapshot),
        )
    })
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
        // SAFETY: as in `install`: a set mark means an initialized UE, which
        // is dropped once (the mark goes first).
        unsafe {
            let mark = core::ptr::addr_of_mut!((*state).mark);
            if mark.read() == MARK {
                mark.write(0);
                core::ptr::drop_in_place(core::ptr::addr_of_mut!((*state).ue));
            }
        }
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
/// copy, so it can go out again if the EESE names it refused.
///
/// Returns `CIOT_E2E_QUEUED` (it goes out at the next poll) or
/// `CIOT_E2E_HELD` (it waits for a keyset; a hello asks for one);
/// `CIOT_E2E_ERR_PAYLOAD_TOO_LONG`, `CIOT_E2E_ERR_BUSY` (the previous one has
/// not gone out), or a calling error; nothing changes then.
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

/// The first effect to drain: when the state that decides what may be sent
/// or delivered has moved past the last durable snapshot, writes the next
/// snapshot into `out` (`out_len` at least `CIOT_E2E_SNAPSHOT_LEN`) and
/// fills `persist`. Store `out[0..persist.len]` durably, then call
/// [`ciot_e2e_ue_persisted`]. One write is outstanding at a time.
///
/// Returns 1 when a snapshot was written, 0 when there is none to store;
/// `CIOT_E2E_ERR_BUFFER_TOO_SMALL` or a calling error.
///
/// # Safety
/// `ue` as in [`ciot_e2e_ue_deinit`]; `out` is NULL or points to `out_len`
/// writable octets; `persist` is NULL or points to a `ciot_e2e_persist`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_ue_poll_persist(
    ue: *mut ciot_e2e_ue,
    out_buf: *mut u8,
    out_len: usize,
    persist: *mut ciot_e2e_persist,
) -> i32 {
    let run = || -> Result<i32, i32> {
        // SAFETY: the caller lends the state, the buffer and the structure.
        let (ue, buf, persist) =
            unsafe { (ue_mut(ue)?, bytes_mut(out_buf, out_len)?, out(persist)?) };
        if buf.len() < CIOT_E2E_SNAPSHOT_LEN {
            return Err(CIOT_E2E_ERR_BUFFER_TOO_SMALL);
        }
        Ok(match ue.poll_persist(buf) {
            Some(p) => {
                persist.write(ciot_e2e_persist {
                    generation: p.generation(),
                    len: p.len(),
                });
                1
            }
            None => 0,
        })
    };
    code(run())
}

/// The snapshot of `persist` is durable: what it covers may now go out.
///
/// Returns `CIOT_E2E_OK`, `CIOT_E2E_ERR_UNKNOWN_PERSIST` (not the snapshot
/// last polled; nothing changes), or a calling error.
///
/// # Safety
/// `ue` as in [`ciot_e2e_ue_deinit`]; `persist` is NULL or points to a
/// `ciot_e2e_persist`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_ue_persisted(
    ue: *mut ciot_e2e_ue,
    persist: *const ciot_e2e_persist,
) -> i32 {
    let run = || -> Result<i32, i32> {
        // SAFETY: the caller lends the state and passes the structure.
        let (ue, p) = unsafe { (ue_mut(ue)?, input(persist)?) };
        ue.persisted(Persist::from_parts(p.generation, p.len))
            .map_err(|_| CIOT_E2E_ERR_UNKNOWN_PERSIST)?;
        Ok(CIOT_E2E_OK)
    };
    code(run())
}

/// The second effect to drain: writes the next datagram for the EESE into
/// `out` (`out_len` at least `CIOT_E2E_MAX_DATAGRAM`): a hello when one is
/// due, else the held payload when a usable keyset covers it. Nothing goes
/// out before the snapshot that covers it is reported durable.
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

/// The third effect to drain: the next event.
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
            retired: u8::from(s.is_some_and(|s| s.retired)),
            holding: u8::from(ue.holding()),
            counter: s.map_or(0, |s| s.counter),
            last_counter: ue.last_counter(),
        });
        Ok(CIOT_E2E_OK)
    };
    code(run())
}
