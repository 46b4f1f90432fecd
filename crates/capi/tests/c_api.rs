//! The C API as a C caller uses it, called from Rust: every pointer and
//! length is checked, every code has a name, and a UE driven only through
//! the C functions runs the TR 33.863 cycle against an EESE.

#![allow(unsafe_code)]

use std::mem::MaybeUninit;
use std::ptr::{null, null_mut};
use std::time::Duration;

use ciot_e2e::endpoint::{EESE_SNAPSHOT_LEN, Eese, EeseConfig, Instant, Received};
use ciot_e2e::kdf::{Ck, CkIk, Ik, KdfProfile, Rand, int_key};
use ciot_e2e_c::*;

const CK: [u8; 16] = [0x01; 16];
const IK: [u8; 16] = [0x02; 16];
const ID: &[u8] = b"ue-test";

/// Storage as a C caller declares it (aligned by its type).
fn storage() -> Box<ciot_e2e_ue> {
    Box::new(ciot_e2e_ue {
        opaque: [0; CIOT_E2E_UE_SIZE],
    })
}

fn config() -> ciot_e2e_ue_config {
    let mut c = MaybeUninit::uninit();
    assert_eq!(
        unsafe { ciot_e2e_ue_config_default(c.as_mut_ptr()) },
        CIOT_E2E_OK
    );
    unsafe { c.assume_init() }
}

fn root() -> [u8; 32] {
    let mut r = [0u8; 32];
    let code = unsafe {
        ciot_e2e_int_key(
            CIOT_E2E_KDF_TS33220,
            CK.as_ptr(),
            16,
            IK.as_ptr(),
            16,
            r.as_mut_ptr(),
            32,
        )
    };
    assert_eq!(code, CIOT_E2E_OK);
    r
}

fn init(ue: &mut ciot_e2e_ue, cfg: &ciot_e2e_ue_config) -> i32 {
    let r = root();
    unsafe {
        ciot_e2e_ue_init(
            ue,
            size_of::<ciot_e2e_ue>(),
            cfg,
            CIOT_E2E_ROOT_INT_KEY,
            r.as_ptr(),
            32,
            ID.as_ptr(),
            ID.len(),
            7,
        )
    }
}

fn name(code: i32) -> String {
    let p = ciot_e2e_error_name(code);
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn int_key_is_the_crates_e2e_int_key() {
    let want = int_key(
        KdfProfile::Ts33220,
        &CkIk::new(&Ck::from_bytes(CK), &Ik::from_bytes(IK)),
    );
    assert_eq!(&root(), want.key().as_bytes());
}

#[test]
fn every_code_has_its_own_name() {
    let codes: Vec<i32> = [0, 1]
        .into_iter()
        .chain((-11..=-1).chain(-20..=-16).chain(-50..=-32))
        .chain([-63])
        .collect();
    let mut names: Vec<String> = codes.iter().map(|&c| name(c)).collect();
    for (c, n) in codes.iter().zip(&names) {
        assert_ne!(n, "UNKNOWN", "code {c}");
    }
    assert_eq!(name(CIOT_E2E_REJECT_UNAUTHENTIC), "REJECT_UNAUTHENTIC");
    assert_eq!(name(CIOT_E2E_ERR_NULL), "ERR_NULL");
    assert_eq!(name(-12), "UNKNOWN");
    assert_eq!(name(i32::MIN), "UNKNOWN");
    let n = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), n, "two codes share a name");
}

#[test]
fn null_pointers_are_refused_by_every_function() {
    let cfg = config();
    let r = root();
    let mut buf = [0u8; 256];
    let mut ue = storage();
    assert_eq!(init(&mut ue, &cfg), CIOT_E2E_OK);
    let ue_ptr: *mut ciot_e2e_ue = &mut *ue;
    unsafe {
        assert_eq!(ciot_e2e_ue_config_default(null_mut()), CIOT_E2E_ERR_NULL);
        assert_eq!(
            ciot_e2e_int_key(1, null(), 16, IK.as_ptr(), 16, buf.as_mut_ptr(), 32),
            CIOT_E2E_ERR_NULL
        );
        assert_eq!(
            ciot_e2e_int_key(1, CK.as_ptr(), 16, IK.as_ptr(), 16, null_mut(), 32),
            CIOT_E2E_ERR_NULL
        );
        let with = |ue: *mut ciot_e2e_ue, cfg: *const ciot_e2e_ue_config, root: *const u8, id| {
            ciot_e2e_ue_init(ue, CIOT_E2E_UE_SIZE, cfg, 1, root, 32, id, 4, 0)
        };
        assert_eq!(
            with(null_mut(), &cfg, r.as_ptr(), ID.as_ptr()),
            CIOT_E2E_ERR_NULL
        );
        assert_eq!(
            with(ue_ptr, null(), r.as_ptr(), ID.as_ptr()),
            CIOT_E2E_ERR_NULL
        );
        assert_eq!(with(ue_ptr, &cfg, null(), ID.as_ptr()), CIOT_E2E_ERR_NULL);
        assert_eq!(with(ue_ptr, &cfg, r.as_ptr(), null()), CIOT_E2E_ERR_NULL);
        assert_eq!(
            ciot_e2e_ue_restore(
                ue_ptr,
                CIOT_E2E_UE_SIZE,
                &cfg,
                1,
                r.as_ptr(),
                32,
                ID.as_ptr(),
                4,
                0,
                null(),
                10
            ),
            CIOT_E2E_ERR_NULL
        );
        let mut rec = MaybeUninit::uninit();
        assert_eq!(
            ciot_e2e_ue_handle_datagram(null_mut(), 0, buf.as_mut_ptr(), 9, rec.as_mut_ptr()),
            CIOT_E2E_ERR_NULL
        );
        assert_eq!(
            ciot_e2e_ue_handle_datagram(ue_ptr, 0, null_mut(), 9, rec.as_mut_ptr()),
            CIOT_E2E_ERR_NULL
        );
        assert_eq!(
            ciot_e2e_ue_handle_datagram(ue_ptr, 0, buf.as_mut_ptr(), 9, null_mut()),
            CIOT_E2E_ERR_NULL
        );
        assert_eq!(
            ciot_e2e_ue_send(null_mut(), 0, b"x".as_ptr(), 1),
            CIOT_E2E_ERR_NULL
        );
        assert_eq!(ciot_e2e_ue_send(ue_ptr, 0, null(), 1), CIOT_E2E_ERR_NULL);
        let mut p = MaybeUninit::uninit();
        assert_eq!(
            ciot_e2e_ue_poll_persist(ue_ptr, null_mut(), 72, p.as_mut_ptr()),
            CIOT_E2E_ERR_NULL
        );
        assert_eq!(
            ciot_e2e_ue_poll_persist(ue_ptr, buf.as_mut_ptr(), 72, null_mut()),
            CIOT_E2E_ERR_NULL
        );
        assert_eq!(ciot_e2e_ue_persisted(ue_ptr, null()), CIOT_E2E_ERR_NULL);
        let mut t = MaybeUninit::uninit();
        assert_eq!(
            ciot_e2e_ue_poll_transmit(ue_ptr, 0, null_mut(), 200, t.as_mut_ptr()),
            CIOT_E2E_ERR_NULL
        );
        assert_eq!(
            ciot_e2e_ue_poll_transmit(ue_ptr, 0, buf.as_mut_ptr(), 200, null_mut()),
            CIOT_E2E_ERR_NULL
        );
        assert_eq!(
            ciot_e2e_ue_poll_event(ue_ptr, null_mut()),
            CIOT_E2E_ERR_NULL
        );
        let mut ev = MaybeUninit::uninit();
        assert_eq!(
            ciot_e2e_ue_poll_event(null_mut(), ev.as_mut_ptr()),
            CIOT_E2E_ERR_NULL
        );
        assert_eq!(
            ciot_e2e_ue_poll_timeout(ue_ptr, null_mut()),
            CIOT_E2E_ERR_NULL
        );
        assert_eq!(ciot_e2e_ue_handle_timeout(null_mut(), 0), CIOT_E2E_ERR_NULL);
        assert_eq!(ciot_e2e_ue_status(ue_ptr, null_mut()), CIOT_E2E_ERR_NULL);
        assert_eq!(
            ciot_e2e_ue_replace_root(ue_ptr, 0, 1, null(), 32),
            CIOT_E2E_ERR_NULL
        );
        assert_eq!(ciot_e2e_ue_deinit(null_mut()), CIOT_E2E_ERR_NULL);
        // A zero length needs no pointer: an empty payload is a payload.
        assert_eq!(ciot_e2e_ue_send(ue_ptr, 0, null(), 0), CIOT_E2E_HELD);
    }
}

#[test]
fn lengths_values_alignment_and_initialization_are_checked() {
    let cfg = config();
    let r = root();
    let mut ue = storage();
    let ue_ptr: *mut ciot_e2e_ue = &mut *ue;
    let id65 = [b'x'; 65];
    unsafe {
        let init_with = |state_len, kind, root_len, id: &[u8], cfg: &ciot_e2e_ue_config| {
            ciot_e2e_ue_init(
                ue_ptr,
                state_len,
                cfg,
                kind,
                r.as_ptr(),
                root_len,
                id.as_ptr(),
                id.len(),
                0,
            )
        };
        // Not initialized yet: every call that needs a UE refuses.
        assert_eq!(
            ciot_e2e_ue_send(ue_ptr, 0, b"x".as_ptr(), 1),
            CIOT_E2E_ERR_NOT_INITIALIZED
        );
        assert_eq!(
            ciot_e2e_ue_handle_timeout(ue_ptr, 0),
            CIOT_E2E_ERR_NOT_INITIALIZED
        );
        assert_eq!(
            init_with(ciot_e2e_ue_state_size() - 1, 1, 32, ID, &cfg),
            CIOT_E2E_ERR_STATE_SIZE
        );
        assert_eq!(
            init_with(CIOT_E2E_UE_SIZE, 1, 31, ID, &cfg),
            CIOT_E2E_ERR_LENGTH
        );
        assert_eq!(
            init_with(CIOT_E2E_UE_SIZE, 1, 32, &[], &cfg),
            CIOT_E2E_ERR_LENGTH
        );
        assert_eq!(
            init_with(CIOT_E2E_UE_SIZE, 1, 32, &id65, &cfg),
            CIOT_E2E_ERR_LENGTH
        );
        assert_eq!(
            init_with(CIOT_E2E_UE_SIZE, 9, 32, ID, &cfg),
            CIOT_E2E_ERR_VALUE
        );
        let bad_profile = ciot_e2e_ue_config {
            kdf_profile: 7,
            ..cfg
        };
        assert_eq!(
            init_with(CIOT_E2E_UE_SIZE, 1, 32, ID, &bad_profile),
            CIOT_E2E_ERR_VALUE
        );
        assert_eq!(
            ciot_e2e_ue_handle_timeout(ue_ptr, 0),
            CIOT_E2E_ERR_NOT_INITIALIZED,
            "a refused init leaves the state as it was"
        );
        // Misaligned storage.
        let misaligned = ue_ptr.cast::<u8>().wrapping_add(4).cast::<ciot_e2e_ue>();
        assert_eq!(
            ciot_e2e_ue_init(misaligned, 100, &cfg, 1, r.as_ptr(), 32, ID.as_ptr(), 4, 0),
            CIOT_E2E_ERR_ALIGN
        );
        // Buffers too small, CK of the wrong size.
        let mut small = [0u8; 31];
        assert_eq!(
            ciot_e2e_int_key(1, CK.as_ptr(), 15, IK.as_ptr(), 16, small.as_mut_ptr(), 32),
            CIOT_E2E_ERR_LENGTH
        );
        assert_eq!(
            ciot_e2e_int_key(1, CK.as_ptr(), 16, IK.as_ptr(), 16, small.as_mut_ptr(), 31),
            CIOT_E2E_ERR_BUFFER_TOO_SMALL
        );
        assert_eq!(init_with(CIOT_E2E_UE_SIZE, 1, 32, ID, &cfg), CIOT_E2E_OK);
        let mut buf = [0u8; 256];
        let mut p = MaybeUninit::uninit();
        assert_eq!(
            ciot_e2e_ue_poll_persist(ue_ptr, buf.as_mut_ptr(), 71, p.as_mut_ptr()),
            CIOT_E2E_ERR_BUFFER_TOO_SMALL
        );
        let mut t = MaybeUninit::uninit();
        assert_eq!(
            ciot_e2e_ue_poll_transmit(ue_ptr, 0, buf.as_mut_ptr(), 152, t.as_mut_ptr()),
            CIOT_E2E_ERR_BUFFER_TOO_SMALL
        );
        let long = [0u8; CIOT_E2E_HOLD + 1];
        assert_eq!(
            ciot_e2e_ue_send(ue_ptr, 0, long.as_ptr(), long.len()),
            CIOT_E2E_ERR_PAYLOAD_TOO_LONG
        );
        assert_eq!(ciot_e2e_ue_send(ue_ptr, 0, b"a".as_ptr(), 1), CIOT_E2E_HELD);
        assert_eq!(
            ciot_e2e_ue_send(ue_ptr, 0, b"b".as_ptr(), 1),
            CIOT_E2E_ERR_BUSY
        );
        let forged = ciot_e2e_persist {
            generation: 99,
            len: 1,
        };
        assert_eq!(
            ciot_e2e_ue_persisted(ue_ptr, &forged),
            CIOT_E2E_ERR_UNKNOWN_PERSIST
        );
        // Cleared: refused again, and clearing twice is harmless.
        assert_eq!(ciot_e2e_ue_deinit(ue_ptr), CIOT_E2E_OK);
        assert_eq!(ciot_e2e_ue_deinit(ue_ptr), CIOT_E2E_OK);
        assert_eq!(
            ciot_e2e_ue_send(ue_ptr, 0, b"x".as_ptr(), 1),
            CIOT_E2E_ERR_NOT_INITIALIZED
        );
    }
}

#[test]
fn garbage_and_bad_snapshots_get_their_codes_and_change_nothing() {
    let cfg = config();
    let r = root();
    let mut ue = storage();
    assert_eq!(init(&mut ue, &cfg), CIOT_E2E_OK);
    let ue_ptr: *mut ciot_e2e_ue = &mut *ue;
    let cases: [(&[u8], i32); 5] = [
        (&[0x02], CIOT_E2E_REJECT_TRUNCATED),
        (&[0x01, 0x03, 0, 0], CIOT_E2E_REJECT_UNKNOWN_VERSION),
        (&[0x02, 0x09, 0, 0], CIOT_E2E_REJECT_UNKNOWN_TYPE),
        (&[0x02, 0x04, 0, 0], CIOT_E2E_REJECT_UNEXPECTED),
        (
            &[
                0x02, 0x03, 0, 1, 2, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6,
            ],
            CIOT_E2E_REJECT_UNKNOWN_KSI,
        ),
    ];
    for (bytes, want) in cases {
        let mut buf = bytes.to_vec();
        let mut rec = MaybeUninit::uninit();
        let got = unsafe {
            ciot_e2e_ue_handle_datagram(ue_ptr, 0, buf.as_mut_ptr(), buf.len(), rec.as_mut_ptr())
        };
        assert_eq!(got, want, "{bytes:02x?}: {}", name(got));
        assert_eq!(buf, bytes, "the buffer is left as it was");
    }
    let restore = |snapshot: &[u8]| unsafe {
        ciot_e2e_ue_restore(
            ue_ptr,
            CIOT_E2E_UE_SIZE,
            &cfg,
            CIOT_E2E_ROOT_INT_KEY,
            r.as_ptr(),
            32,
            ID.as_ptr(),
            ID.len(),
            1,
            snapshot.as_ptr(),
            snapshot.len(),
        )
    };
    assert_eq!(restore(&[0; 8]), CIOT_E2E_ERR_SNAPSHOT_LENGTH);
    assert_eq!(restore(&[0; 30]), CIOT_E2E_ERR_SNAPSHOT_MAGIC);
    // A real snapshot, then damaged, then under another root.
    assert_eq!(init(&mut ue, &cfg), CIOT_E2E_OK);
    let mut snap = [0u8; CIOT_E2E_SNAPSHOT_LEN];
    let mut p = MaybeUninit::uninit();
    let ue_ptr: *mut ciot_e2e_ue = &mut *ue;
    assert_eq!(
        unsafe { ciot_e2e_ue_send(ue_ptr, 0, b"x".as_ptr(), 1) },
        CIOT_E2E_HELD
    );
    assert_eq!(
        unsafe { ciot_e2e_ue_poll_persist(ue_ptr, snap.as_mut_ptr(), snap.len(), p.as_mut_ptr()) },
        1
    );
    let len = unsafe { p.assume_init() }.len;
    let mut torn = snap;
    torn[10] ^= 1;
    assert_eq!(restore(&torn[..len]), CIOT_E2E_ERR_SNAPSHOT_CHECKSUM);
    let other = [9u8; 32];
    let wrong_root = unsafe {
        ciot_e2e_ue_restore(
            ue_ptr,
            CIOT_E2E_UE_SIZE,
            &cfg,
            1,
            other.as_ptr(),
            32,
            ID.as_ptr(),
            ID.len(),
            1,
            snap.as_ptr(),
            len,
        )
    };
    assert_eq!(wrong_root, CIOT_E2E_ERR_SNAPSHOT_ROOT);
    assert_eq!(
        unsafe { ciot_e2e_ue_handle_timeout(ue_ptr, 0) },
        CIOT_E2E_ERR_NOT_INITIALIZED,
        "a refused restore leaves no UE behind"
    );
    assert_eq!(restore(&snap[..len]), CIOT_E2E_OK);
}

/// A UE driven through the C API only, and the crate's EESE.
struct Pair {
    ue: Box<ciot_e2e_ue>,
    eese: Eese<Box<dyn FnMut() -> Option<Rand>>>,
    stored: Vec<u8>,
    echoes: Vec<Vec<u8>>,
    events: Vec<ciot_e2e_event>,
    key_expired_errors: usize,
}

impl Pair {
    fn new(te2e: Duration) -> Self {
        let cfg = ciot_e2e_ue_config {
            hello_backoff_ms: 200,
            ..config()
        };
        let mut ue = storage();
        assert_eq!(init(&mut ue, &cfg), CIOT_E2E_OK);
        let mut n = 0u8;
        let rands: Box<dyn FnMut() -> Option<Rand>> = Box::new(move || {
            n += 1;
            Some(Rand([n; 16]))
        });
        let root = int_key(
            KdfProfile::Ts33220,
            &CkIk::new(&Ck::from_bytes(CK), &Ik::from_bytes(IK)),
        );
        let eese = Eese::new(
            EeseConfig {
                te2e,
                ..EeseConfig::default()
            },
            root,
            rands,
        );
        Pair {
            ue,
            eese,
            stored: Vec::new(),
            echoes: Vec::new(),
            events: Vec::new(),
            key_expired_errors: 0,
        }
    }

    /// Drains both sides until nothing moves, the EESE echoing every payload.
    fn settle(&mut self, now: u64) {
        let ue: *mut ciot_e2e_ue = &mut *self.ue;
        let t = Instant::from_millis(now);
        for _ in 0..50 {
            let mut progress = false;
            let mut snap = [0u8; CIOT_E2E_SNAPSHOT_LEN];
            let mut p = MaybeUninit::uninit();
            if unsafe {
                ciot_e2e_ue_poll_persist(ue, snap.as_mut_ptr(), snap.len(), p.as_mut_ptr())
            } == 1
            {
                let p = unsafe { p.assume_init() };
                self.stored = snap[..p.len].to_vec();
                assert_eq!(unsafe { ciot_e2e_ue_persisted(ue, &p) }, CIOT_E2E_OK);
                progress = true;
            }
            let mut out = [0u8; CIOT_E2E_MAX_DATAGRAM];
            let mut tx = MaybeUninit::uninit();
            while unsafe {
                ciot_e2e_ue_poll_transmit(ue, now, out.as_mut_ptr(), out.len(), tx.as_mut_ptr())
            } == 1
            {
                let tx = unsafe { tx.assume_init() };
                let mut d = out[..tx.len].to_vec();
                if let Ok(Received::Data(got)) = self.eese.handle_datagram(t, &mut d) {
                    let echo = [b"echo: ", &d[got.payload]].concat();
                    let mut down = [0u8; 512];
                    if let Ok(s) = self.eese.send(t, &echo, &mut down) {
                        self.deliver(now, &mut down[..s.len]);
                    }
                }
                progress = true;
            }
            let mut esnap = [0u8; EESE_SNAPSHOT_LEN];
            if let Some(p) = self.eese.poll_persist(&mut esnap) {
                self.eese.persisted(p).unwrap();
                progress = true;
            }
            let mut down = [0u8; 512];
            while let Ok(Some(tx)) = self.eese.poll_transmit(t, &mut down) {
                self.deliver(now, &mut down[..tx.len]);
                progress = true;
            }
            while self.eese.poll_event().is_some() {}
            let mut e = MaybeUninit::uninit();
            while unsafe { ciot_e2e_ue_poll_event(ue, e.as_mut_ptr()) } == 1 {
                self.events.push(unsafe { e.assume_init() });
                progress = true;
            }
            if !progress {
                return;
            }
        }
        panic!("no rest after 50 passes");
    }

    fn deliver(&mut self, now: u64, d: &mut [u8]) {
        let mut rec = MaybeUninit::uninit();
        let ue: *mut ciot_e2e_ue = &mut *self.ue;
        let code = unsafe {
            ciot_e2e_ue_handle_datagram(ue, now, d.as_mut_ptr(), d.len(), rec.as_mut_ptr())
        };
        if code != CIOT_E2E_OK {
            return;
        }
        let rec = unsafe { rec.assume_init() };
        match rec.kind {
            CIOT_E2E_RECEIVED_DATA => self
                .echoes
                .push(d[rec.payload_offset..rec.payload_offset + rec.payload_len].to_vec()),
            _ if rec.message_type == 2 => self.key_expired_errors += 1,
            _ => {}
        }
    }

    fn send(&mut self, now: u64, payload: &[u8]) -> i32 {
        unsafe { ciot_e2e_ue_send(&mut *self.ue, now, payload.as_ptr(), payload.len()) }
    }

    fn count(&self, kind: u8) -> usize {
        self.events.iter().filter(|e| e.kind == kind).count()
    }
}

#[test]
fn a_ue_on_the_c_api_runs_the_tr_cycle_and_restarts_from_its_snapshot() {
    let mut p = Pair::new(Duration::from_secs(2));
    // Hello, trigger, data.
    assert_eq!(p.send(0, b"message 1"), CIOT_E2E_HELD);
    p.settle(0);
    assert_eq!(p.echoes, [b"echo: message 1".to_vec()]);
    assert_eq!(p.count(CIOT_E2E_EVENT_REKEYED), 1);
    // te2e runs out at the EESE; the UE's next message meets the error,
    // the new trigger, and goes out again under the new keyset.
    p.eese.handle_timeout(Instant::from_millis(2500));
    p.settle(2500);
    assert_eq!(p.send(3000, b"message 2"), CIOT_E2E_QUEUED);
    p.settle(3000);
    assert_eq!(p.key_expired_errors, 1);
    assert_eq!(p.count(CIOT_E2E_EVENT_REKEYED), 2);
    assert_eq!(p.count(CIOT_E2E_EVENT_RETRANSMITTED), 1);
    assert_eq!(p.echoes.last().unwrap(), b"echo: message 2");
    let mut status = MaybeUninit::uninit();
    assert_eq!(
        unsafe { ciot_e2e_ue_status(&*p.ue, status.as_mut_ptr()) },
        CIOT_E2E_OK
    );
    let status = unsafe { status.assume_init() };
    assert_eq!(
        (
            status.has_keyset,
            status.usable,
            status.counter,
            status.last_counter
        ),
        (1, 1, 2, 2)
    );
    // A restart from the last stored snapshot: the keyset is retired, a
    // hello asks for a new one, and data flows again.
    let cfg = config();
    let r = root();
    let stored = p.stored.clone();
    let code = unsafe {
        ciot_e2e_ue_restore(
            &mut *p.ue,
            CIOT_E2E_UE_SIZE,
            &cfg,
            1,
            r.as_ptr(),
            32,
            ID.as_ptr(),
            ID.len(),
            3,
            stored.as_ptr(),
            stored.len(),
        )
    };
    assert_eq!(code, CIOT_E2E_OK);
    let mut status = MaybeUninit::uninit();
    unsafe { ciot_e2e_ue_status(&*p.ue, status.as_mut_ptr()) };
    assert_eq!(unsafe { status.assume_init() }.retired, 1);
    p.settle(4000);
    assert_eq!(p.count(CIOT_E2E_EVENT_REKEYED), 3);
    assert_eq!(p.send(4100, b"message 3"), CIOT_E2E_QUEUED);
    p.settle(4100);
    assert_eq!(p.echoes.last().unwrap(), b"echo: message 3");
    let mut at = 0u64;
    assert_eq!(unsafe { ciot_e2e_ue_poll_timeout(&*p.ue, &mut at) }, 1);
    assert!(at > 4100 && at != CIOT_E2E_NEVER);
}

/// A device built with AES-128-GCM alone gets a trigger for 128-NEA2/NIA2:
/// authentic, but for a suite it does not have. It is refused with its own
/// code and changes nothing (run by ci/c-api.sh, which tests the device
/// configuration: `--no-default-features --features suite-aes-gcm`).
#[cfg(not(feature = "suite-nea2-nia2"))]
#[test]
fn a_trigger_for_a_suite_the_build_lacks_is_refused_and_changes_nothing() {
    use ciot_e2e::kdf::PreparedRoot;
    use ciot_e2e::wire::{ControlAuth, Ksi, Suite, TriggerRepr};

    let mut ue = storage();
    assert_eq!(init(&mut ue, &config()), CIOT_E2E_OK);
    let root = int_key(
        KdfProfile::Ts33220,
        &CkIk::new(&Ck::from_bytes(CK), &Ik::from_bytes(IK)),
    );
    let auth = ControlAuth::new(&PreparedRoot::new(&root, KdfProfile::Ts33220).control_key());
    let mut trigger = [0u8; TriggerRepr::LEN];
    TriggerRepr {
        ksi: Ksi(1),
        counter: 1,
        rand: Rand([9; 16]),
        profile: KdfProfile::Ts33220,
        suite: Suite::NEA2_NIA2,
        lifetime: 60,
        tag: [0; 16],
    }
    .emit_signed(&auth, &mut trigger)
    .unwrap();
    let sent = trigger;
    let mut rec = MaybeUninit::uninit();
    let code = unsafe {
        ciot_e2e_ue_handle_datagram(
            &mut *ue,
            0,
            trigger.as_mut_ptr(),
            trigger.len(),
            rec.as_mut_ptr(),
        )
    };
    assert_eq!(code, CIOT_E2E_REJECT_UNSUPPORTED_SUITE, "{}", name(code));
    assert_eq!(trigger, sent);
    let mut status = MaybeUninit::uninit();
    assert_eq!(
        unsafe { ciot_e2e_ue_status(&*ue, status.as_mut_ptr()) },
        CIOT_E2E_OK
    );
    let status = unsafe { status.assume_init() };
    assert_eq!((status.has_keyset, status.last_counter), (0, 0));
}
