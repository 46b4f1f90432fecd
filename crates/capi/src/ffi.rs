//! Turning what C passes into Rust references: every pointer and length is
//! checked here, once, and each `unsafe` block states what the caller
//! promised.

use core::mem::{align_of, size_of};

use crate::codes::{
    CIOT_E2E_ERR_ALIGN, CIOT_E2E_ERR_LENGTH, CIOT_E2E_ERR_NOT_INITIALIZED, CIOT_E2E_ERR_NULL,
};
use crate::{CUe, State, ciot_e2e_ue};

/// Written at the start of an initialized state and cleared by deinit, so a
/// call on storage that was never initialized (or was cleared) is refused
/// instead of read as a UE. "ciot-e2e" as a 64-bit value.
pub(crate) const MARK: u64 = u64::from_be_bytes(*b"ciot-e2e");

/// Checks a state pointer for NULL and alignment (not for initialization).
pub(crate) fn state_ptr(ue: *mut ciot_e2e_ue) -> Result<*mut State, i32> {
    if ue.is_null() {
        return Err(CIOT_E2E_ERR_NULL);
    }
    if (ue as usize) % align_of::<State>() != 0 {
        return Err(CIOT_E2E_ERR_ALIGN);
    }
    Ok(ue.cast())
}

/// A length the caller passed: refused over `PTRDIFF_MAX` (`isize::MAX`),
/// before anything is done with it, since no object is that large and
/// pointer arithmetic past it is undefined.
pub(crate) fn length(len: usize) -> Result<usize, i32> {
    if len > isize::MAX as usize {
        return Err(CIOT_E2E_ERR_LENGTH);
    }
    Ok(len)
}

/// The initialized UE behind a state pointer.
///
/// # Safety
/// `ue` is NULL or points to a `ciot_e2e_ue` the caller owns and no one
/// else uses during the call.
// One copy of these checks, called from every entry point.
#[inline(never)]
pub(crate) unsafe fn ue_mut<'a>(ue: *mut ciot_e2e_ue) -> Result<&'a mut CUe, i32> {
    let state = state_ptr(ue)?;
    // SAFETY: `state` is non-null and aligned, and points to a
    // `ciot_e2e_ue` the caller owns, whose first 8 octets (the mark; the
    // storage is at least `CIOT_E2E_UE_SIZE` octets) are read as a plain
    // integer, whatever the storage holds.
    let mark = unsafe { core::ptr::addr_of!((*state).mark).read() };
    if mark != MARK {
        return Err(CIOT_E2E_ERR_NOT_INITIALIZED);
    }
    // SAFETY: the mark is only written by `ciot_e2e_ue_init`, after it
    // checked that the storage spans the whole state (`state_len` at least
    // `STATE_LEN`) and wrote a valid UE there, and it is cleared before the
    // UE is dropped; so the UE is initialized and in bounds. The caller
    // lends it exclusively for this call.
    Ok(unsafe { &mut (*state).ue })
}

/// The initialized UE behind a state pointer, read only.
///
/// # Safety
/// As [`ue_mut`], shared instead of exclusive.
pub(crate) unsafe fn ue_ref<'a>(ue: *const ciot_e2e_ue) -> Result<&'a CUe, i32> {
    // SAFETY: as `ue_mut`; the reference handed out is shared.
    unsafe { ue_mut(ue.cast_mut()).map(|u| &*u) }
}

/// Octets the caller passed.
///
/// # Safety
/// `ptr` is NULL or points to `len` readable octets that stay unchanged
/// during the call.
pub(crate) unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], i32> {
    if length(len)? == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(CIOT_E2E_ERR_NULL);
    }
    // SAFETY: non-null, `len` octets the caller promised readable, no
    // longer than `isize::MAX`; `u8` has no alignment or validity needs.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// A buffer the caller lends for writing.
///
/// # Safety
/// `ptr` is NULL or points to `len` writable octets no one else uses during
/// the call.
pub(crate) unsafe fn bytes_mut<'a>(ptr: *mut u8, len: usize) -> Result<&'a mut [u8], i32> {
    if length(len)? == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(CIOT_E2E_ERR_NULL);
    }
    // SAFETY: non-null, `len` octets the caller promised writable and
    // exclusive for the call, no longer than `isize::MAX`.
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}

/// An output structure the caller lends.
///
/// # Safety
/// `ptr` is NULL or points to a `T` the caller owns (it need not be
/// initialized: it is only written).
pub(crate) unsafe fn out<'a, T>(ptr: *mut T) -> Result<&'a mut core::mem::MaybeUninit<T>, i32> {
    if ptr.is_null() {
        return Err(CIOT_E2E_ERR_NULL);
    }
    if (ptr as usize) % align_of::<T>() != 0 {
        return Err(CIOT_E2E_ERR_ALIGN);
    }
    // SAFETY: non-null and aligned; the caller lends the `T` for writing,
    // and `MaybeUninit` asks nothing of its contents.
    Ok(unsafe { &mut *ptr.cast() })
}

/// A structure the caller passes in.
///
/// # Safety
/// `ptr` is NULL or points to an initialized `T` (a plain C structure).
pub(crate) unsafe fn input<'a, T>(ptr: *const T) -> Result<&'a T, i32> {
    if ptr.is_null() {
        return Err(CIOT_E2E_ERR_NULL);
    }
    if (ptr as usize) % align_of::<T>() != 0 {
        return Err(CIOT_E2E_ERR_ALIGN);
    }
    // SAFETY: non-null and aligned; the caller promises an initialized `T`,
    // and the C structures passed in are plain integers (any bit pattern is
    // valid).
    Ok(unsafe { &*ptr })
}

/// The state's size as the library needs it.
pub(crate) const STATE_LEN: usize = size_of::<State>();

/// Turns a result into the code a C function returns.
pub(crate) fn code(r: Result<i32, i32>) -> i32 {
    match r {
        Ok(c) | Err(c) => c,
    }
}
