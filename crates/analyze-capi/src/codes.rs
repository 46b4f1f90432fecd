//! The integer codes the functions return, and their names.

use std::ffi::c_char;

/// Success.
pub const CIOT_E2E_AN_OK: i32 = 0;
/// A pointer that must not be NULL is NULL.
pub const CIOT_E2E_AN_ERR_NULL: i32 = -1;
/// An index past the end of a table or of a result's fields or findings.
pub const CIOT_E2E_AN_ERR_INDEX: i32 = -2;
/// A length over `PTRDIFF_MAX`.
pub const CIOT_E2E_AN_ERR_LENGTH: i32 = -3;
/// A key log path that is empty or not UTF-8.
pub const CIOT_E2E_AN_ERR_PATH: i32 = -4;
/// The key log file cannot be read.
pub const CIOT_E2E_AN_ERR_KEYLOG_IO: i32 = -5;
/// A line of the key log is not a keyset line (`docs/keylog.md`).
pub const CIOT_E2E_AN_ERR_KEYLOG_FORMAT: i32 = -6;
/// The analyzer panicked: a bug, never the input's fault. The result is
/// left empty.
pub const CIOT_E2E_AN_ERR_INTERNAL: i32 = -7;

/// The name of a code (`"ERR_NULL"`), `"UNKNOWN"` for a code no function
/// returns. A static NUL-terminated string, never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn ciot_e2e_an_error_name(code: i32) -> *const c_char {
    let name: &'static std::ffi::CStr = match code {
        CIOT_E2E_AN_OK => c"OK",
        CIOT_E2E_AN_ERR_NULL => c"ERR_NULL",
        CIOT_E2E_AN_ERR_INDEX => c"ERR_INDEX",
        CIOT_E2E_AN_ERR_LENGTH => c"ERR_LENGTH",
        CIOT_E2E_AN_ERR_PATH => c"ERR_PATH",
        CIOT_E2E_AN_ERR_KEYLOG_IO => c"ERR_KEYLOG_IO",
        CIOT_E2E_AN_ERR_KEYLOG_FORMAT => c"ERR_KEYLOG_FORMAT",
        CIOT_E2E_AN_ERR_INTERNAL => c"ERR_INTERNAL",
        _ => c"UNKNOWN",
    };
    name.as_ptr()
}
