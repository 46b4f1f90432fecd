//! The C API of the `ciot-e2e` UE, for device firmware.
//!
//! A C program links `libciot_e2e_c.a` (or, on a host, `libciot_e2e_c.so`)
//! and includes `include/ciot_e2e.h`, which cbindgen writes from this crate
//! (the test `header` fails when the committed header differs). The API maps
//! one-to-one onto [`ciot_e2e::endpoint::Ue`]:
//!
//! - the caller allocates the UE's state ([`ciot_e2e_ue`], size and
//!   alignment in the header); the library keeps no global state and never
//!   allocates;
//! - [`ciot_e2e_ue_init`] at every start of the device, with the caller's
//!   random source ([`ciot_e2e_rng`]) for the start's nonce; the UE keeps
//!   nothing that must survive a restart;
//! - [`ciot_e2e_ue_handle_datagram`], [`ciot_e2e_ue_send`] and
//!   [`ciot_e2e_ue_handle_timeout`] push in;
//! - after every call the caller drains the effects:
//!   [`ciot_e2e_ue_poll_transmit`] until it yields nothing, then
//!   [`ciot_e2e_ue_poll_event`] until it yields nothing;
//!   [`ciot_e2e_ue_poll_timeout`] says when to call
//!   [`ciot_e2e_ue_handle_timeout`].
//!
//! Every function returns an integer code: `CIOT_E2E_OK` (0) or a positive
//! value on success, a negative `CIOT_E2E_ERR_*` / `CIOT_E2E_REJECT_*` code
//! otherwise, which [`ciot_e2e_error_name`] names. Every pointer and length
//! is checked. The one callback is the random source, called only from
//! within [`ciot_e2e_ue_init`]. `docs/c-api.md` has a complete example.
//!
//! Every `unsafe` block is an FFI boundary and says why it holds.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
// The C names are the API.
#![allow(non_camel_case_types)]

#[cfg(not(target_os = "none"))]
extern crate std;

mod codes;
mod ffi;
mod settings;
mod types;
mod ue;

pub use codes::*;
pub use settings::*;
pub use types::*;
pub use ue::*;

use ciot_e2e::endpoint::Ue;
use ciot_e2e::kdf::UeNonce;
use ciot_e2e::wire::hello::MAX_ID_LEN;

/// The major version of the C API: it goes up with every change that breaks
/// a caller compiled against an earlier header (a function, a code, a
/// structure's layout). Version 1 was the API of wire format 2, with
/// snapshots; 2 is that of wire format 3, with a nonce per start.
pub const CIOT_E2E_VERSION_MAJOR: u32 = 2;
/// The minor version: additions that break no caller of the same major.
pub const CIOT_E2E_VERSION_MINOR: u32 = 0;
/// The patch version: fixes that change no declaration.
pub const CIOT_E2E_VERSION_PATCH: u32 = 0;

/// The largest payload the UE takes, in octets: it keeps the last one to
/// send again when the EESE names it refused (TR 33.863 §6.5.2.3 step 5).
pub const CIOT_E2E_HOLD: usize = 128;

/// The UE the C API runs.
pub(crate) type CUe = Ue<CIOT_E2E_HOLD>;

/// Octets of the state a caller allocates for one UE (the size of
/// [`ciot_e2e_ue`]). A build with the feature `kept-ciphers` (the default
/// on hosts) keeps the expanded AES key schedules in the state: C code that
/// links such a library defines `CIOT_E2E_KEPT_CIPHERS` before including the
/// header. [`ciot_e2e_ue_init`] refuses storage smaller than the library's.
#[cfg(feature = "kept-ciphers")]
pub const CIOT_E2E_UE_SIZE: usize = 2304;
/// Octets of the state a caller allocates for one UE (the size of
/// [`ciot_e2e_ue`]), for a build without the feature `kept-ciphers` (a
/// device build): AES key schedules are expanded for each message instead.
/// [`ciot_e2e_ue_state_size`] says what the library uses; a library built
/// in a workspace where another package turned on the protocol crate's
/// `kept-ciphers` needs more, and [`ciot_e2e_ue_init`] says so
/// (`CIOT_E2E_ERR_STATE_SIZE`).
#[cfg(not(feature = "kept-ciphers"))]
pub const CIOT_E2E_UE_SIZE: usize = 720;

/// The state size of a library with kept ciphers: the most any build of
/// this crate needs, whatever features the protocol crate was unified with.
const UE_SIZE_KEPT: usize = 2304;

/// Alignment, in octets, of the state (of [`ciot_e2e_ue`]).
pub const CIOT_E2E_UE_ALIGN: usize = 16;

/// The longest datagram the UE transmits: a [`ciot_e2e_ue_poll_transmit`]
/// buffer of this size always suffices. Receive buffers are sized by the
/// EESE's datagrams (a data message carries up to 65 507 octets).
pub const CIOT_E2E_MAX_DATAGRAM: usize = 153;

/// Octets of the nonce a UE draws at every start: what
/// [`ciot_e2e_ue_init`] asks its random source for.
pub const CIOT_E2E_NONCE_LEN: usize = 16;

/// Octets of a root key (`e2e_int_key`, `e2mKEYSET` or `e2m_key`).
pub const CIOT_E2E_ROOT_LEN: usize = 32;

/// Octets of CK and of IK.
pub const CIOT_E2E_CK_LEN: usize = 16;

/// The longest UE identifier, in octets (at least 1).
pub const CIOT_E2E_MAX_ID_LEN: usize = 64;

/// A time that never comes: what [`ciot_e2e_ue_poll_timeout`] reports when
/// no timer is set, and the value of a [`ciot_e2e_ue_config`] interval that
/// is off.
pub const CIOT_E2E_NEVER: u64 = u64::MAX;

/// KDF profile: the 3GPP generic KDF of TS 33.220 Annex B.2.
pub const CIOT_E2E_KDF_TS33220: u8 = 0x01;
/// KDF profile: HKDF-SHA-256 (RFC 5869); needs the feature `kdf-hkdf`.
pub const CIOT_E2E_KDF_HKDF_SHA256: u8 = 0x02;

/// Root kind: solution #5's `e2e_int_key` (see [`ciot_e2e_int_key`]).
pub const CIOT_E2E_ROOT_INT_KEY: u8 = 0x01;
/// Root kind: solution #1's `e2mKEYSET`.
pub const CIOT_E2E_ROOT_E2M_KEYSET: u8 = 0x02;
/// Root kind: solution #2's `e2m_key`.
pub const CIOT_E2E_ROOT_E2M_KEY: u8 = 0x03;

/// Storage for one UE: opaque, allocated by the caller (statically, on the
/// stack or in a pool), [`CIOT_E2E_UE_SIZE`] octets aligned to
/// [`CIOT_E2E_UE_ALIGN`]. Initialize it with [`ciot_e2e_ue_init`] at every
/// start of the device; clear it with [`ciot_e2e_ue_deinit`]. Never copy an
/// initialized state: a copy would seal under the same keys and sequence
/// numbers as the original.
#[repr(C, align(16))]
pub struct ciot_e2e_ue {
    /// Do not touch.
    pub opaque: [u8; CIOT_E2E_UE_SIZE],
}

/// The library's state in a [`ciot_e2e_ue`]: a mark that says it is
/// initialized, then the UE.
#[repr(C)]
pub(crate) struct State {
    pub mark: u64,
    pub ue: CUe,
}

// The header's literals are the crate's values (cbindgen copies literals
// only), and the state fits the storage the header declares.
//
// Without this crate's `kept-ciphers`, the protocol crate may still keep
// ciphers: another package of the same build (a workspace build at the root)
// turns its feature on, and Cargo builds it once for all. The state is then
// larger than the compact header declares. That is not a compile error (the
// workspace must build): `ciot_e2e_ue_init` compares the caller's storage
// with the state at run time (`CIOT_E2E_ERR_STATE_SIZE`), and the library's
// own builds check the header against the state (the test
// `the_declared_state_holds_this_librarys_state`, run by ci/c-api.sh in the
// device configuration, and ci/footprint.sh).
const _: () = {
    #[cfg(feature = "kept-ciphers")]
    assert!(core::mem::size_of::<State>() <= CIOT_E2E_UE_SIZE);
    assert!(
        core::mem::size_of::<State>() <= UE_SIZE_KEPT,
        "the UE state outgrows the kept-ciphers CIOT_E2E_UE_SIZE"
    );
    assert!(core::mem::align_of::<State>() <= CIOT_E2E_UE_ALIGN);
    assert!(core::mem::size_of::<ciot_e2e_ue>() == CIOT_E2E_UE_SIZE);
    assert!(core::mem::align_of::<ciot_e2e_ue>() == CIOT_E2E_UE_ALIGN);
    assert!(CUe::MAX_DATAGRAM == CIOT_E2E_MAX_DATAGRAM);
    assert!(UeNonce::LEN == CIOT_E2E_NONCE_LEN);
    assert!(MAX_ID_LEN == CIOT_E2E_MAX_ID_LEN);
    assert!(CIOT_E2E_VERSION_MAJOR < 256 && CIOT_E2E_VERSION_MINOR < 256);
    assert!(CIOT_E2E_VERSION_PATCH < 256);
};

/// The version of the library: `CIOT_E2E_VERSION_MAJOR << 16 |
/// CIOT_E2E_VERSION_MINOR << 8 | CIOT_E2E_VERSION_PATCH` of the header it
/// was built with. A caller checks `ciot_e2e_version() >> 16 ==
/// CIOT_E2E_VERSION_MAJOR` (and the minor at least its header's) to find a
/// header and a library that do not belong together.
#[unsafe(no_mangle)]
pub extern "C" fn ciot_e2e_version() -> u32 {
    (CIOT_E2E_VERSION_MAJOR << 16) | (CIOT_E2E_VERSION_MINOR << 8) | CIOT_E2E_VERSION_PATCH
}

/// For ci/footprint.sh's self-test only (feature `panic-link-selftest`): an
/// index that is not checked, so this function can panic, and a firmware
/// that links a library built with `panic-link-check` must fail to link.
#[cfg(feature = "panic-link-selftest")]
#[unsafe(no_mangle)]
pub extern "C" fn ciot_e2e_selftest_panic(i: usize) -> u8 {
    core::hint::black_box([1u8, 2, 3, 4])[i]
}

/// On bare metal the library brings the panic handler. No panic is
/// reachable from the C API in the reference build (`ci/footprint.sh`
/// proves it at link time with the feature `panic-link-check`); should one
/// be reached in another build, the handler stops the caller in a loop.
#[cfg(all(target_os = "none", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    #[cfg(feature = "panic-link-check")]
    {
        unsafe extern "C" {
            /// Defined nowhere: a link that keeps a call to it keeps a
            /// panic path, and fails.
            fn ciot_e2e_panic_path_is_linked() -> !;
        }
        // SAFETY: the symbol is never defined, so this line can only ever
        // make the firmware's link fail; it never runs.
        unsafe { ciot_e2e_panic_path_is_linked() }
    }
    #[cfg(not(feature = "panic-link-check"))]
    loop {
        core::hint::spin_loop();
    }
}
