//! The C ABI from the caller's side: the tables are the analyzer's, a
//! dissection through the ABI is `Dissection::of` field for field, the key
//! log and the capture context decrypt and find nonce reuse (the same
//! answer on a second pass, in any order), and every misuse is refused
//! with its own code.

use std::ffi::{CStr, CString, c_char};
use std::ptr;

use ciot_e2e::kdf::{AlgKey, Rand};
use ciot_e2e::protect::suite::SuiteKeys;
use ciot_e2e::wire::{Direction, Ksi};
use ciot_e2e_analyze::dissect::{Dissection, FIELDS, FindingKind};
use ciot_e2e_analyze::keylog::KeyLogWriter;
use ciot_e2e_analyze_c::*;

fn cstr(p: *const c_char) -> String {
    assert!(!p.is_null());
    // SAFETY: the ABI hands out NUL-terminated strings that live as long as
    // the tables or the result they came from, which outlive this call.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
}

fn keys() -> SuiteKeys {
    SuiteKeys::Aes128Gcm(AlgKey::from_bytes([7; 16]))
}

fn sealed(seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; payload.len() + 64];
    let n = keys()
        .cipher()
        .seal(Ksi(3), Direction::Downlink, seq, payload, &mut buf)
        .unwrap();
    buf.truncate(n);
    buf
}

/// A key log file with the keys of `sealed`, and its path.
fn keylog_file(name: &str) -> (std::path::PathBuf, CString) {
    let path = std::env::temp_dir().join(format!("ciot-e2e-an-{}-{name}", std::process::id()));
    let mut w = KeyLogWriter::new_insecure(Vec::new());
    w.append(Ksi(3), Some(1), &Rand([5; 16]), &keys()).unwrap();
    std::fs::write(&path, w.into_inner()).unwrap();
    let c = CString::new(path.to_str().unwrap()).unwrap();
    (path, c)
}

fn open(path: &CStr) -> *mut ciot_e2e_an_keylog {
    let mut k = ptr::null_mut();
    let mut err = [0 as c_char; 256];
    // SAFETY: a NUL-terminated path, storage for the handle and 256
    // writable octets.
    let code = unsafe { ciot_e2e_an_keylog_open(path.as_ptr(), &mut k, err.as_mut_ptr(), 256) };
    assert_eq!(code, CIOT_E2E_AN_OK, "{}", cstr(err.as_ptr()));
    k
}

/// Dissects through the ABI: (abbrev, offset, length, display) per field,
/// (kind, message) per finding, and the plaintext.
#[derive(Debug, PartialEq)]
struct Seen {
    fields: Vec<(String, usize, usize, String)>,
    findings: Vec<(String, String)>,
    plaintext: Option<Vec<u8>>,
}

fn through_abi(
    capture: *mut ciot_e2e_an_capture,
    keys: *const ciot_e2e_an_keylog,
    r: *mut ciot_e2e_an_result,
    bytes: &[u8],
    frame: u64,
) -> Seen {
    // SAFETY: live handles (or NULL), and `bytes` spans its length.
    let code = unsafe { ciot_e2e_an_dissect(capture, keys, bytes.as_ptr(), bytes.len(), frame, r) };
    assert_eq!(code, CIOT_E2E_AN_OK);
    let mut s = std::mem::MaybeUninit::<ciot_e2e_an_summary>::uninit();
    // SAFETY: a live result and storage for the summary.
    assert_eq!(
        unsafe { ciot_e2e_an_result_summary(r, s.as_mut_ptr()) },
        CIOT_E2E_AN_OK
    );
    // SAFETY: written by the call that returned OK.
    let s = unsafe { s.assume_init() };
    let mut seen = Seen {
        fields: Vec::new(),
        findings: Vec::new(),
        plaintext: None,
    };
    for i in 0..s.field_count {
        let mut f = std::mem::MaybeUninit::<ciot_e2e_an_field>::uninit();
        // SAFETY: as above.
        assert_eq!(
            unsafe { ciot_e2e_an_result_field(r, i, f.as_mut_ptr()) },
            CIOT_E2E_AN_OK
        );
        // SAFETY: written by the call that returned OK.
        let f = unsafe { f.assume_init() };
        seen.fields.push((
            FIELDS[f.spec].abbrev.to_owned(),
            f.offset,
            f.length,
            cstr(f.display),
        ));
    }
    for i in 0..s.finding_count {
        let mut x = std::mem::MaybeUninit::<ciot_e2e_an_finding>::uninit();
        // SAFETY: as above.
        assert_eq!(
            unsafe { ciot_e2e_an_result_finding(r, i, x.as_mut_ptr()) },
            CIOT_E2E_AN_OK
        );
        // SAFETY: written by the call that returned OK.
        let x = unsafe { x.assume_init() };
        seen.findings.push((
            FindingKind::ALL[x.kind].as_str().to_owned(),
            cstr(x.message),
        ));
    }
    let mut f = std::mem::MaybeUninit::<ciot_e2e_an_field>::uninit();
    // SAFETY: as above; one past the last field.
    let past = unsafe { ciot_e2e_an_result_field(r, s.field_count, f.as_mut_ptr()) };
    assert_eq!(past, CIOT_E2E_AN_ERR_INDEX);
    if s.has_plaintext == 1 {
        // SAFETY: the plaintext spans `plaintext_len` octets of the live
        // result.
        let p = unsafe { std::slice::from_raw_parts(s.plaintext, s.plaintext_len) };
        seen.plaintext = Some(p.to_vec());
    }
    seen
}

fn direct(bytes: &[u8], keys: Option<&ciot_e2e_analyze::keylog::KeyLog>) -> Seen {
    let d = Dissection::of(bytes, keys);
    Seen {
        fields: d
            .fields()
            .iter()
            .map(|f| {
                (
                    f.abbrev.to_owned(),
                    f.offset,
                    f.len,
                    f.display(bytes, &d).to_string(),
                )
            })
            .collect(),
        findings: d
            .findings()
            .iter()
            .map(|x| (x.kind.as_str().to_owned(), x.message.clone()))
            .collect(),
        plaintext: d.plaintext().map(<[u8]>::to_vec),
    }
}

#[test]
fn the_tables_are_the_analyzers() {
    assert_eq!(ciot_e2e_an_field_spec_count(), FIELDS.len());
    for (i, f) in FIELDS.iter().enumerate() {
        let mut s = std::mem::MaybeUninit::<ciot_e2e_an_field_spec>::uninit();
        // SAFETY: storage for the structure.
        assert_eq!(
            unsafe { ciot_e2e_an_field_spec_at(i, s.as_mut_ptr()) },
            CIOT_E2E_AN_OK
        );
        // SAFETY: written by the call that returned OK.
        let s = unsafe { s.assume_init() };
        assert_eq!(cstr(s.abbrev), f.abbrev);
        assert_eq!(cstr(s.name), f.name);
        assert_eq!(s.mask, f.mask.unwrap_or(0));
    }
    let mut s = std::mem::MaybeUninit::<ciot_e2e_an_field_spec>::uninit();
    // SAFETY: storage for the structure; the index is one past the end.
    let past = unsafe { ciot_e2e_an_field_spec_at(FIELDS.len(), s.as_mut_ptr()) };
    assert_eq!(past, CIOT_E2E_AN_ERR_INDEX);
    // SAFETY: NULL is what is checked.
    assert_eq!(
        unsafe { ciot_e2e_an_field_spec_at(0, ptr::null_mut()) },
        CIOT_E2E_AN_ERR_NULL
    );
    assert_eq!(ciot_e2e_an_finding_kind_count(), FindingKind::ALL.len());
    for (i, k) in FindingKind::ALL.iter().enumerate() {
        let mut s = std::mem::MaybeUninit::<ciot_e2e_an_finding_kind>::uninit();
        // SAFETY: storage for the structure.
        assert_eq!(
            unsafe { ciot_e2e_an_finding_kind_at(i, s.as_mut_ptr()) },
            CIOT_E2E_AN_OK
        );
        // SAFETY: written by the call that returned OK.
        let s = unsafe { s.assume_init() };
        assert_eq!(cstr(s.name), k.as_str());
        assert_eq!(cstr(s.title), k.title());
        assert_eq!(s.severity, CIOT_E2E_AN_SEVERITY_ERROR);
    }
    let mut s = std::mem::MaybeUninit::<ciot_e2e_an_finding_kind>::uninit();
    // SAFETY: as above; one past the end.
    let past = unsafe { ciot_e2e_an_finding_kind_at(FindingKind::ALL.len(), s.as_mut_ptr()) };
    assert_eq!(past, CIOT_E2E_AN_ERR_INDEX);
    assert_eq!(
        cstr(ciot_e2e_an_error_name(CIOT_E2E_AN_ERR_NULL)),
        "ERR_NULL"
    );
    assert_eq!(cstr(ciot_e2e_an_error_name(-99)), "UNKNOWN");
}

#[test]
fn a_dissection_through_the_abi_is_the_analyzers_with_and_without_keys() {
    let (path, c) = keylog_file("same");
    let k = open(&c);
    let log = ciot_e2e_analyze::keylog::KeyLog::read(&path).unwrap();
    let r = ciot_e2e_an_result_new();
    let data = sealed(9, b"meter 42");
    let mut inputs = vec![data.clone(), sealed(10, b"")];
    // Every cut and every octet flipped of a data message, and octets that
    // are no message at all.
    for cut in 0..data.len() {
        inputs.push(data[..cut].to_vec());
    }
    for at in 0..data.len() {
        let mut d = data.clone();
        d[at] ^= 0x41;
        inputs.push(d);
    }
    let mut x: u32 = 1;
    for n in 0..300 {
        inputs.push(
            (0..n % 90)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    if n % 3 == 0 { 3 } else { x as u8 }
                })
                .collect(),
        );
    }
    let mut decrypted = 0;
    for bytes in &inputs {
        let with = through_abi(ptr::null_mut(), k, r, bytes, 0);
        assert_eq!(with, direct(bytes, Some(&log)), "{bytes:02x?}");
        decrypted += usize::from(with.plaintext.is_some());
        let without = through_abi(ptr::null_mut(), ptr::null(), r, bytes, 0);
        assert_eq!(without, direct(bytes, None), "{bytes:02x?}");
        assert!(without.plaintext.is_none());
    }
    assert_eq!(decrypted, 2, "the two sealed messages, nothing else");
    let first = through_abi(ptr::null_mut(), k, r, &data, 0);
    assert_eq!(first.plaintext.as_deref(), Some(&b"meter 42"[..]));
    assert!(
        first
            .fields
            .iter()
            .any(|f| f.0 == "ciot_e2e.data.plaintext")
    );
    // SAFETY: live handles, freed once.
    unsafe {
        assert_eq!(ciot_e2e_an_keylog_len(k), 1);
        ciot_e2e_an_result_free(r);
        ciot_e2e_an_keylog_free(k);
    }
    std::fs::remove_file(path).unwrap();
}

fn reuse_of(seen: &Seen) -> Vec<String> {
    seen.findings
        .iter()
        .filter(|x| x.0 == "nonce-reuse")
        .map(|x| x.1.clone())
        .collect()
}

#[test]
fn nonce_reuse_is_found_once_per_frame_and_again_on_every_later_pass() {
    let (path, c) = keylog_file("reuse");
    let k = open(&c);
    let r = ciot_e2e_an_result_new();
    let cap = ciot_e2e_an_capture_new();
    let a = sealed(7, b"first payload");
    let b = sealed(7, b"other payload");
    // Frames 1 and 2 the same datagram twice (no finding), frame 3 other
    // contents under the same keys and seq.
    let frames: [(u64, &[u8]); 3] = [(1, &a), (2, &a), (3, &b)];
    let first: Vec<_> = frames
        .iter()
        .map(|(n, m)| reuse_of(&through_abi(cap, k, r, m, *n)))
        .collect();
    assert_eq!(
        first,
        vec![
            vec![],
            vec![],
            vec![
                "nonce reuse: KSI 3, downlink seq 7 protected other contents in frame 1".to_owned()
            ]
        ]
    );
    // A second pass, backwards, and one frame alone: the same answers.
    for (n, m) in frames.iter().rev() {
        let again = reuse_of(&through_abi(cap, k, r, m, *n));
        assert_eq!(again, first[*n as usize - 1], "frame {n}");
    }
    assert_eq!(reuse_of(&through_abi(cap, k, r, &b, 3)), first[2]);
    // SAFETY: a live capture context.
    assert_eq!(unsafe { ciot_e2e_an_capture_nonce_reuse(cap) }, 1);
    // Frame 0 (a message quoted in another packet) is neither checked nor
    // recorded; without the capture context nothing is checked.
    assert!(reuse_of(&through_abi(cap, k, r, &b, 0)).is_empty());
    assert!(reuse_of(&through_abi(ptr::null_mut(), k, r, &b, 3)).is_empty());
    // A fresh context (a new capture file) remembers nothing.
    let fresh = ciot_e2e_an_capture_new();
    assert!(reuse_of(&through_abi(fresh, k, r, &b, 3)).is_empty());
    // SAFETY: live handles, freed once.
    unsafe {
        ciot_e2e_an_capture_free(fresh);
        ciot_e2e_an_capture_free(cap);
        ciot_e2e_an_result_free(r);
        ciot_e2e_an_keylog_free(k);
    }
    std::fs::remove_file(path).unwrap();
}

#[test]
fn every_misuse_is_refused_with_its_own_code() {
    let r = ciot_e2e_an_result_new();
    let one = [3u8];
    // SAFETY: NULL and over-long arguments are what is checked; no pointer
    // the calls are given is read beyond what it spans.
    unsafe {
        assert_eq!(
            ciot_e2e_an_dissect(
                ptr::null_mut(),
                ptr::null(),
                one.as_ptr(),
                1,
                1,
                ptr::null_mut()
            ),
            CIOT_E2E_AN_ERR_NULL
        );
        assert_eq!(
            ciot_e2e_an_dissect(ptr::null_mut(), ptr::null(), ptr::null(), 5, 1, r),
            CIOT_E2E_AN_ERR_NULL
        );
        assert_eq!(
            ciot_e2e_an_dissect(ptr::null_mut(), ptr::null(), one.as_ptr(), usize::MAX, 1, r),
            CIOT_E2E_AN_ERR_LENGTH
        );
        // No octets (NULL with length 0) is a message: an empty one.
        assert_eq!(
            ciot_e2e_an_dissect(ptr::null_mut(), ptr::null(), ptr::null(), 0, 1, r),
            CIOT_E2E_AN_OK
        );
        let mut s = std::mem::MaybeUninit::<ciot_e2e_an_summary>::uninit();
        assert_eq!(
            ciot_e2e_an_result_summary(ptr::null(), s.as_mut_ptr()),
            CIOT_E2E_AN_ERR_NULL
        );
        assert_eq!(
            ciot_e2e_an_result_summary(r, ptr::null_mut()),
            CIOT_E2E_AN_ERR_NULL
        );
        assert_eq!(
            ciot_e2e_an_result_summary(r, s.as_mut_ptr()),
            CIOT_E2E_AN_OK
        );
        let s = s.assume_init();
        assert_eq!((s.malformed, s.finding_count, s.field_count), (1, 1, 0));
        let mut f = std::mem::MaybeUninit::<ciot_e2e_an_finding>::uninit();
        assert_eq!(
            ciot_e2e_an_result_finding(r, 1, f.as_mut_ptr()),
            CIOT_E2E_AN_ERR_INDEX
        );
        assert_eq!(
            ciot_e2e_an_result_finding(r, 0, ptr::null_mut()),
            CIOT_E2E_AN_ERR_NULL
        );
        assert_eq!(
            ciot_e2e_an_result_field(ptr::null(), 0, ptr::null_mut()),
            CIOT_E2E_AN_ERR_NULL
        );

        let mut k = ptr::null_mut();
        let mut err = [0 as c_char; 200];
        assert_eq!(
            ciot_e2e_an_keylog_open(ptr::null(), &mut k, err.as_mut_ptr(), 200),
            CIOT_E2E_AN_ERR_NULL
        );
        assert_eq!(
            ciot_e2e_an_keylog_open(c"x".as_ptr(), ptr::null_mut(), err.as_mut_ptr(), 200),
            CIOT_E2E_AN_ERR_NULL
        );
        assert_eq!(
            ciot_e2e_an_keylog_open(c"".as_ptr(), &mut k, err.as_mut_ptr(), 200),
            CIOT_E2E_AN_ERR_PATH
        );
        let missing = c"/nonexistent/ciot-e2e.keys";
        assert_eq!(
            ciot_e2e_an_keylog_open(missing.as_ptr(), &mut k, err.as_mut_ptr(), 200),
            CIOT_E2E_AN_ERR_KEYLOG_IO
        );
        assert!(k.is_null());
        assert!(cstr(err.as_ptr()).starts_with("/nonexistent/ciot-e2e.keys: "));
        // A mistyped key: the line is named, the key's text is not shown,
        // and a short buffer gets a cut, terminated sentence.
        let bad = std::env::temp_dir().join(format!("ciot-e2e-an-{}-bad", std::process::id()));
        let key = "0123456789abcdef0123456789abcdeg";
        std::fs::write(
            &bad,
            format!(
                "# comment\nCIOT_E2E_KEYSET 3 1 {} aes-128-gcm {key}\n",
                "05".repeat(16)
            ),
        )
        .unwrap();
        let c = CString::new(bad.to_str().unwrap()).unwrap();
        assert_eq!(
            ciot_e2e_an_keylog_open(c.as_ptr(), &mut k, err.as_mut_ptr(), 200),
            CIOT_E2E_AN_ERR_KEYLOG_FORMAT
        );
        let text = cstr(err.as_ptr());
        assert!(
            text.ends_with("key log line 2: AES-128-GCM key is not hex"),
            "{text}"
        );
        assert!(!text.contains("0123456789abcdef"), "{text}");
        assert_eq!(
            ciot_e2e_an_keylog_open(c.as_ptr(), &mut k, err.as_mut_ptr(), 8),
            CIOT_E2E_AN_ERR_KEYLOG_FORMAT
        );
        assert_eq!(cstr(err.as_ptr()).len(), 7);
        std::fs::remove_file(bad).unwrap();
        ciot_e2e_an_result_free(r);
        // NULL is ignored by every free.
        ciot_e2e_an_result_free(ptr::null_mut());
        ciot_e2e_an_keylog_free(ptr::null_mut());
        ciot_e2e_an_capture_free(ptr::null_mut());
    }
}
