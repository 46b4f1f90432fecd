//! The tables a dissector registers before it sees a message: every field
//! the analyzer can emit and every kind of finding, as C strings that live
//! as long as the program.

use std::collections::HashMap;
use std::ffi::{CString, c_char};
use std::sync::OnceLock;

use ciot_e2e::wire::MessageType;
use ciot_e2e_analyze::dissect::{FIELDS, FieldType, FindingKind, Severity};

use crate::codes::{CIOT_E2E_AN_ERR_INDEX, CIOT_E2E_AN_ERR_NULL, CIOT_E2E_AN_OK};

/// A field's value is an unsigned integer (`value`).
pub const CIOT_E2E_AN_TYPE_UINT: u8 = 1;
/// A field's value is octets (`raw`, `raw_len`).
pub const CIOT_E2E_AN_TYPE_BYTES: u8 = 2;
/// A field's value is a verdict (`value`: 0 or 1).
pub const CIOT_E2E_AN_TYPE_BOOL: u8 = 3;

/// A finding that is worth knowing, nothing wrong.
pub const CIOT_E2E_AN_SEVERITY_NOTE: u8 = 1;
/// A finding that something is wrong.
pub const CIOT_E2E_AN_SEVERITY_ERROR: u8 = 2;

/// A finding about the message's format (Wireshark's "Malformed" group).
pub const CIOT_E2E_AN_GROUP_MALFORMED: u8 = 1;
/// A finding about decryption (a tag no logged keyset verifies).
pub const CIOT_E2E_AN_GROUP_DECRYPTION: u8 = 2;
/// A finding about security across messages (nonce reuse).
pub const CIOT_E2E_AN_GROUP_SECURITY: u8 = 3;

/// One field the analyzer can emit.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ciot_e2e_an_field_spec {
    /// Filter-style abbreviation (`ciot_e2e.trigger.rand`); static.
    pub abbrev: *const c_char,
    /// Human-readable name (`RAND`); static.
    pub name: *const c_char,
    /// `CIOT_E2E_AN_TYPE_*`.
    pub ty: u8,
    /// For an integer, its width in octets (1, 4 or 8); else 0.
    pub octets: u8,
    /// For a bit field, the mask of its bits within its octet; else 0.
    pub mask: u8,
    /// 1 when an integer is best shown in hex (code points, flags).
    pub hex: u8,
    /// 1 when the analyzer computes the value (the plaintext, the tag's
    /// verdict) rather than reading it from the message.
    pub generated: u8,
}

/// One kind of finding.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ciot_e2e_an_finding_kind {
    /// Its name (`truncated`, `nonce-reuse`); static.
    pub name: *const c_char,
    /// A short title (`Truncated message`); static.
    pub title: *const c_char,
    /// `CIOT_E2E_AN_SEVERITY_*` of every finding of the kind.
    pub severity: u8,
    /// `CIOT_E2E_AN_GROUP_*`.
    pub group: u8,
}

pub(crate) struct Tables {
    pub(crate) fields: Vec<ciot_e2e_an_field_spec>,
    pub(crate) kinds: Vec<ciot_e2e_an_finding_kind>,
    /// Abbreviation → index in `fields`.
    pub(crate) field_index: HashMap<&'static str, usize>,
    /// Abbreviation → its C string (a finding's field).
    pub(crate) abbrev: HashMap<&'static str, *const c_char>,
    /// Message type octet → its name (`unknown` for a type without one).
    pub(crate) type_names: Vec<*const c_char>,
    /// Each field's C strings and each kind's, owned here for the program's
    /// life.
    _strings: Vec<CString>,
}

// SAFETY: the raw pointers point into `_strings`, which is never changed
// after the tables are built; moving them to another thread moves nothing
// they point to.
unsafe impl Send for Tables {}
// SAFETY: as for `Send`: the tables are immutable once built, and the
// strings their pointers point to live as long as the tables (the
// program).
unsafe impl Sync for Tables {}

/// A C string of a static Rust string (none of the analyzer's names holds
/// a NUL; one would be cut there).
fn c_string(s: &str) -> CString {
    let s = s.split('\0').next().unwrap_or_default();
    CString::new(s).unwrap_or_default()
}

pub(crate) fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut strings = Vec::new();
        let mut keep = |s: &str| {
            let c = c_string(s);
            let p = c.as_ptr();
            strings.push(c);
            p
        };
        let mut field_index = HashMap::new();
        let mut abbrev = HashMap::new();
        let fields = FIELDS
            .iter()
            .enumerate()
            .map(|(i, f)| {
                field_index.insert(f.abbrev, i);
                let (ty, octets) = match f.ty {
                    FieldType::Uint(n) => (CIOT_E2E_AN_TYPE_UINT, n),
                    FieldType::Bytes => (CIOT_E2E_AN_TYPE_BYTES, 0),
                    FieldType::Bool => (CIOT_E2E_AN_TYPE_BOOL, 0),
                };
                let a = keep(f.abbrev);
                abbrev.insert(f.abbrev, a);
                ciot_e2e_an_field_spec {
                    abbrev: a,
                    name: keep(f.name),
                    ty,
                    octets,
                    mask: f.mask.unwrap_or(0),
                    hex: u8::from(f.hex),
                    generated: u8::from(f.generated),
                }
            })
            .collect();
        let kinds = FindingKind::ALL
            .iter()
            .map(|&k| ciot_e2e_an_finding_kind {
                name: keep(k.as_str()),
                title: keep(k.title()),
                severity: severity(k.severity()),
                group: match k {
                    FindingKind::BadTag => CIOT_E2E_AN_GROUP_DECRYPTION,
                    FindingKind::NonceReuse => CIOT_E2E_AN_GROUP_SECURITY,
                    _ => CIOT_E2E_AN_GROUP_MALFORMED,
                },
            })
            .collect();
        let type_names = (0..=u8::MAX)
            .map(|t| keep(MessageType(t).name().unwrap_or("unknown")))
            .collect();
        Tables {
            type_names,
            fields,
            kinds,
            field_index,
            abbrev,
            _strings: strings,
        }
    })
}

pub(crate) const fn severity(s: Severity) -> u8 {
    match s {
        Severity::Note => CIOT_E2E_AN_SEVERITY_NOTE,
        Severity::Error => CIOT_E2E_AN_SEVERITY_ERROR,
    }
}

/// The index of a kind in [`FindingKind::ALL`].
pub(crate) fn kind_index(kind: FindingKind) -> usize {
    FindingKind::ALL
        .iter()
        .position(|&k| k == kind)
        .unwrap_or(usize::MAX)
}

/// How many fields the analyzer can emit: the indexes of
/// [`ciot_e2e_an_field_spec_at`] are `0 .. count`.
#[unsafe(no_mangle)]
pub extern "C" fn ciot_e2e_an_field_spec_count() -> usize {
    tables().fields.len()
}

/// The field of index `index` into `*out`. Returns `CIOT_E2E_AN_OK`,
/// `CIOT_E2E_AN_ERR_NULL` or `CIOT_E2E_AN_ERR_INDEX`.
///
/// # Safety
/// `out` is NULL or points to writable storage for the structure.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_an_field_spec_at(
    index: usize,
    out: *mut ciot_e2e_an_field_spec,
) -> i32 {
    if out.is_null() {
        return CIOT_E2E_AN_ERR_NULL;
    }
    let Some(spec) = tables().fields.get(index) else {
        return CIOT_E2E_AN_ERR_INDEX;
    };
    // SAFETY: `out` is non-null and points to writable storage for the
    // structure (the caller's promise); a `Copy` value is written.
    unsafe { out.write(*spec) };
    CIOT_E2E_AN_OK
}

/// How many kinds of finding there are: the indexes of
/// [`ciot_e2e_an_finding_kind_at`] are `0 .. count`.
#[unsafe(no_mangle)]
pub extern "C" fn ciot_e2e_an_finding_kind_count() -> usize {
    tables().kinds.len()
}

/// The kind of index `index` into `*out`. Returns `CIOT_E2E_AN_OK`,
/// `CIOT_E2E_AN_ERR_NULL` or `CIOT_E2E_AN_ERR_INDEX`.
///
/// # Safety
/// `out` is NULL or points to writable storage for the structure.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_an_finding_kind_at(
    index: usize,
    out: *mut ciot_e2e_an_finding_kind,
) -> i32 {
    if out.is_null() {
        return CIOT_E2E_AN_ERR_NULL;
    }
    let Some(kind) = tables().kinds.get(index) else {
        return CIOT_E2E_AN_ERR_INDEX;
    };
    // SAFETY: `out` is non-null and points to writable storage for the
    // structure (the caller's promise); a `Copy` value is written.
    unsafe { out.write(*kind) };
    CIOT_E2E_AN_OK
}
