//! The result of one dissection, read by index.

use std::ffi::c_char;
use std::io::Write as _;

use ciot_e2e_analyze::dissect::{Dissection, Finding, Severity, Shown, Value};
use ciot_e2e_analyze::keylog::KeyLog;

use crate::codes::{CIOT_E2E_AN_ERR_INDEX, CIOT_E2E_AN_ERR_NULL, CIOT_E2E_AN_OK};
use crate::tables::{
    CIOT_E2E_AN_TYPE_BOOL, CIOT_E2E_AN_TYPE_BYTES, CIOT_E2E_AN_TYPE_UINT, kind_index, severity,
    tables,
};

/// The dissection of one message: its fields, findings and plaintext.
/// Opaque; made by [`ciot_e2e_an_result_new`], filled by
/// [`crate::ciot_e2e_an_dissect`] (again and again: its buffers are
/// reused), freed by [`ciot_e2e_an_result_free`]. What it hands out (strings,
/// octets) stays valid until it is filled again or freed.
#[derive(Default)]
pub struct ciot_e2e_an_result {
    d: Dissection,
    /// A copy of the message: the fields' octets point into it.
    msg: Vec<u8>,
    /// Per field: its index in the field table and where its display
    /// string starts in `text`.
    fields: Vec<(usize, usize)>,
    /// The findings: the dissection's and the capture's (nonce reuse).
    findings: Vec<Finding>,
    /// Per finding: where its message starts in `text`.
    finding_at: Vec<usize>,
    /// Display strings and finding messages, each NUL-terminated.
    text: Vec<u8>,
}

impl ciot_e2e_an_result {
    /// Dissects `bytes` into `self`; `extra` gives the capture's finding
    /// for the dissection (nonce reuse), if any.
    pub(crate) fn fill(
        &mut self,
        bytes: &[u8],
        keys: Option<&KeyLog>,
        extra: impl FnOnce(&Dissection) -> Option<Finding>,
    ) {
        self.empty_buffers();
        self.msg.extend_from_slice(bytes);
        self.d.run(&self.msg, keys);
        let extra = extra(&self.d);
        let t = tables();
        for f in self.d.fields() {
            let spec = t.field_index.get(f.abbrev).copied().unwrap_or(usize::MAX);
            let at = self.text.len();
            let _ = write!(self.text, "{}", f.display(&self.msg, &self.d));
            text_end(&mut self.text, at);
            self.fields.push((spec, at));
        }
        self.findings
            .extend(self.d.findings().iter().cloned().chain(extra));
        for x in &self.findings {
            let at = self.text.len();
            self.text.extend_from_slice(x.message.as_bytes());
            text_end(&mut self.text, at);
            self.finding_at.push(at);
        }
    }

    /// Empties the result (after a panic, nothing half-filled is shown).
    pub(crate) fn clear(&mut self) {
        self.empty_buffers();
        self.d = Dissection::new();
    }

    /// Empties the buffers, keeping their allocations.
    fn empty_buffers(&mut self) {
        self.msg.clear();
        self.fields.clear();
        self.findings.clear();
        self.finding_at.clear();
        self.text.clear();
    }
}

/// Ends the string that starts at `at`: a NUL inside it (none of the
/// analyzer's strings holds one) becomes `?`, then the NUL terminator.
fn text_end(text: &mut Vec<u8>, at: usize) {
    for b in &mut text[at..] {
        if *b == 0 {
            *b = b'?';
        }
    }
    text.push(0);
}

/// What a result holds as a whole.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ciot_e2e_an_summary {
    /// The message type's name (`data`, `unknown`); static.
    pub type_name: *const c_char,
    /// 1 when a finding is an error.
    pub malformed: u8,
    /// 1 when a keyset of the key log verified a data message's tag, 0
    /// when keys for its KSI and suite were logged but none did, -1
    /// without keys for it (or without a key log).
    pub tag_valid: i8,
    /// 1 when there is a plaintext (`plaintext`, `plaintext_len`).
    pub has_plaintext: u8,
    /// The decrypted payload (NULL without one; may be empty).
    pub plaintext: *const u8,
    /// Its length.
    pub plaintext_len: usize,
    /// The number of fields.
    pub field_count: usize,
    /// The number of findings.
    pub finding_count: usize,
    /// The message's length.
    pub length: usize,
}

/// One field of a result.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ciot_e2e_an_field {
    /// Its index in the field table ([`crate::ciot_e2e_an_field_spec_at`]).
    pub spec: usize,
    /// Its first octet in the message.
    pub offset: usize,
    /// Octets it takes in the message (a bit field: the octet that holds
    /// it; the plaintext: the protected payload it lies over).
    pub length: usize,
    /// Depth in the tree: 0 for top-level fields; a field's children follow
    /// it with depth + 1.
    pub depth: u8,
    /// `CIOT_E2E_AN_TYPE_*` of its value.
    pub ty: u8,
    /// 1 when `display` is the value as it is (a number in decimal, octets
    /// in hex), 0 when it says more (a code point's name, a unit, a
    /// verdict, an identifier's text).
    pub plain: u8,
    /// An integer's value (a bit field: its bits shifted down), a
    /// verdict's 0 or 1; else 0.
    pub value: u64,
    /// Its octets: of the message, or for the plaintext the decrypted
    /// payload; NULL for a verdict.
    pub raw: *const u8,
    /// How many.
    pub raw_len: usize,
    /// The display value, as `ciot-e2e dissect` shows it
    /// (`aes-128-gcm (0x02)`, `3600 s`, hex); NUL-terminated.
    pub display: *const c_char,
}

/// One finding of a result.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ciot_e2e_an_finding {
    /// Its kind's index in the kind table
    /// ([`crate::ciot_e2e_an_finding_kind_at`]).
    pub kind: usize,
    /// `CIOT_E2E_AN_SEVERITY_*`.
    pub severity: u8,
    /// Where in the message the problem is.
    pub offset: usize,
    /// The abbreviation of the field it is about (static), NULL for the
    /// message as a whole.
    pub abbrev: *const c_char,
    /// A sentence, as `ciot-e2e dissect` shows it; NUL-terminated.
    pub message: *const c_char,
}

/// A new, empty result. Never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn ciot_e2e_an_result_new() -> *mut ciot_e2e_an_result {
    Box::into_raw(Box::default())
}

/// Frees a result; NULL is ignored.
///
/// # Safety
/// `result` is NULL or a handle from [`ciot_e2e_an_result_new`] not yet
/// freed, and no one uses it (or what it handed out) after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_an_result_free(result: *mut ciot_e2e_an_result) {
    if !result.is_null() {
        // SAFETY: `result` came from `Box::into_raw` in
        // `ciot_e2e_an_result_new` and is freed once (the caller's promise).
        drop(unsafe { Box::from_raw(result) });
    }
}

/// The result as a whole into `*out`. Returns `CIOT_E2E_AN_OK` or
/// `CIOT_E2E_AN_ERR_NULL`.
///
/// # Safety
/// `result` is NULL or a live result; `out` is NULL or points to writable
/// storage for the structure.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_an_result_summary(
    result: *const ciot_e2e_an_result,
    out: *mut ciot_e2e_an_summary,
) -> i32 {
    // SAFETY: `result` is NULL or a live result, only read here.
    let Some(r) = (unsafe { result.as_ref() }) else {
        return CIOT_E2E_AN_ERR_NULL;
    };
    if out.is_null() {
        return CIOT_E2E_AN_ERR_NULL;
    }
    let t = tables();
    let type_name = match r.d.message_type() {
        Some(ty) => t.type_names[usize::from(ty.0)],
        None => t.type_names[0],
    };
    let plaintext = r.d.plaintext();
    let summary = ciot_e2e_an_summary {
        type_name,
        malformed: u8::from(r.findings.iter().any(|x| x.severity == Severity::Error)),
        tag_valid: r.d.tag_valid().map_or(-1, i8::from),
        has_plaintext: u8::from(plaintext.is_some()),
        plaintext: plaintext.map_or(std::ptr::null(), <[u8]>::as_ptr),
        plaintext_len: plaintext.map_or(0, <[u8]>::len),
        field_count: r.fields.len(),
        finding_count: r.findings.len(),
        length: r.msg.len(),
    };
    // SAFETY: `out` is non-null and points to writable storage for the
    // structure (the caller's promise); a `Copy` value is written.
    unsafe { out.write(summary) };
    CIOT_E2E_AN_OK
}

/// The field of index `index` (`0 .. field_count`) into `*out`. Returns
/// `CIOT_E2E_AN_OK`, `CIOT_E2E_AN_ERR_NULL` or `CIOT_E2E_AN_ERR_INDEX`.
///
/// # Safety
/// `result` is NULL or a live result; `out` is NULL or points to writable
/// storage for the structure.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_an_result_field(
    result: *const ciot_e2e_an_result,
    index: usize,
    out: *mut ciot_e2e_an_field,
) -> i32 {
    // SAFETY: `result` is NULL or a live result, only read here.
    let Some(r) = (unsafe { result.as_ref() }) else {
        return CIOT_E2E_AN_ERR_NULL;
    };
    if out.is_null() {
        return CIOT_E2E_AN_ERR_NULL;
    }
    let (Some(f), Some(&(spec, at))) = (r.d.fields().get(index), r.fields.get(index)) else {
        return CIOT_E2E_AN_ERR_INDEX;
    };
    let raw = f.raw(&r.msg, &r.d);
    let (ty, value) = match f.value {
        Value::Uint(v) => (CIOT_E2E_AN_TYPE_UINT, v),
        Value::Bool(b) => (CIOT_E2E_AN_TYPE_BOOL, u64::from(b)),
        Value::Bytes | Value::Plaintext => (CIOT_E2E_AN_TYPE_BYTES, 0),
    };
    let field = ciot_e2e_an_field {
        spec,
        offset: f.offset,
        length: f.len,
        depth: f.depth,
        ty,
        plain: u8::from(matches!(
            (f.value, f.shown),
            (
                Value::Uint(_) | Value::Bytes | Value::Plaintext,
                Shown::Plain
            )
        )),
        value,
        raw: if ty == CIOT_E2E_AN_TYPE_BOOL {
            std::ptr::null()
        } else {
            raw.as_ptr()
        },
        raw_len: raw.len(),
        display: r.text[at..].as_ptr().cast(),
    };
    // SAFETY: `out` is non-null and points to writable storage for the
    // structure (the caller's promise); a `Copy` value is written.
    unsafe { out.write(field) };
    CIOT_E2E_AN_OK
}

/// The finding of index `index` (`0 .. finding_count`) into `*out`.
/// Returns `CIOT_E2E_AN_OK`, `CIOT_E2E_AN_ERR_NULL` or
/// `CIOT_E2E_AN_ERR_INDEX`.
///
/// # Safety
/// `result` is NULL or a live result; `out` is NULL or points to writable
/// storage for the structure.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_an_result_finding(
    result: *const ciot_e2e_an_result,
    index: usize,
    out: *mut ciot_e2e_an_finding,
) -> i32 {
    // SAFETY: `result` is NULL or a live result, only read here.
    let Some(r) = (unsafe { result.as_ref() }) else {
        return CIOT_E2E_AN_ERR_NULL;
    };
    if out.is_null() {
        return CIOT_E2E_AN_ERR_NULL;
    }
    let (Some(x), Some(&at)) = (r.findings.get(index), r.finding_at.get(index)) else {
        return CIOT_E2E_AN_ERR_INDEX;
    };
    let t = tables();
    let finding = ciot_e2e_an_finding {
        kind: kind_index(x.kind),
        severity: severity(x.severity),
        offset: x.offset,
        abbrev: x
            .abbrev
            .and_then(|a| t.abbrev.get(a).copied())
            .unwrap_or(std::ptr::null()),
        message: r.text[at..].as_ptr().cast(),
    };
    // SAFETY: `out` is non-null and points to writable storage for the
    // structure (the caller's promise); a `Copy` value is written.
    unsafe { out.write(finding) };
    CIOT_E2E_AN_OK
}
