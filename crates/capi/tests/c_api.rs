//! The C API as a C caller uses it, called from Rust: every pointer and
//! length is checked, every code has a name, the random source is the only
//! way a UE starts, and a UE driven only through the C functions runs the
//! TR 33.863 cycle against an EESE, restarts included.

#![allow(unsafe_code)]

use std::ffi::c_void;
use std::mem::MaybeUninit;
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ciot_e2e::endpoint::{EESE_SNAPSHOT_LEN, Eese, EeseConfig, Instant, Received};
use ciot_e2e::kdf::{Ck, CkIk, Ik, KdfProfile, Rand, int_key};
use ciot_e2e::wire::hello;
use ciot_e2e_c::*;

const CK: [u8; 16] = [0x01; 16];
const IK: [u8; 16] = [0x02; 16];
const ID: &[u8] = b"ue-test";
/// Longer than any object can be (`PTRDIFF_MAX + 1`).
const HUGE: usize = isize::MAX as usize + 1;

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

/// A random source that never gives the same nonce twice in this process
/// (a counter: enough for tests, which only need the nonces distinct).
unsafe extern "C" fn fresh_rng(_ctx: *mut c_void, out: *mut u8, len: usize) -> i32 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let mut nonce = [0x5e; 16];
    nonce[8..].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    let out = unsafe { std::slice::from_raw_parts_mut(out, len) };
    out.copy_from_slice(&nonce[..len]);
    0
}

/// A random source scripted by the test (`ctx` points to it): what it
/// writes, what it returns, and what it was asked.
#[derive(Default)]
struct ScriptedRng {
    writes: Option<[u8; 16]>,
    returns: i32,
    lens: Vec<usize>,
}

unsafe extern "C" fn scripted_rng(ctx: *mut c_void, out: *mut u8, len: usize) -> i32 {
    let rng = unsafe { &mut *ctx.cast::<ScriptedRng>() };
    rng.lens.push(len);
    if let Some(octets) = rng.writes {
        let out = unsafe { std::slice::from_raw_parts_mut(out, len) };
        out.copy_from_slice(&octets[..len]);
    }
    rng.returns
}

fn init_with_rng(
    ue: *mut ciot_e2e_ue,
    cfg: &ciot_e2e_ue_config,
    rng: ciot_e2e_rng,
    ctx: *mut c_void,
) -> i32 {
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
            rng,
            ctx,
        )
    }
}

fn init(ue: &mut ciot_e2e_ue, cfg: &ciot_e2e_ue_config) -> i32 {
    init_with_rng(ue, cfg, Some(fresh_rng), null_mut())
}

fn name(code: i32) -> String {
    let p = ciot_e2e_error_name(code);
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_str()
        .unwrap()
        .to_owned()
}

/// Every datagram `poll_transmit` hands out at `now` until it says 0.
fn drain_transmit(ue: *mut ciot_e2e_ue, now: u64) -> Vec<(ciot_e2e_transmit, Vec<u8>)> {
    let mut sent = Vec::new();
    let mut out = [0u8; CIOT_E2E_MAX_DATAGRAM];
    let mut t = MaybeUninit::uninit();
    // Bounded, so that a loop that would not end fails the test instead.
    for _ in 0..100 {
        match unsafe {
            ciot_e2e_ue_poll_transmit(ue, now, out.as_mut_ptr(), out.len(), t.as_mut_ptr())
        } {
            1 => {
                let t = unsafe { t.assume_init() };
                sent.push((t, out[..t.len].to_vec()));
            }
            0 => return sent,
            e => panic!("poll_transmit: {}", name(e)),
        }
    }
    panic!("poll_transmit handed out 100 datagrams at {now} ms and went on");
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
fn the_version_function_is_the_headers_macros() {
    assert_eq!(
        ciot_e2e_version(),
        (CIOT_E2E_VERSION_MAJOR << 16) | (CIOT_E2E_VERSION_MINOR << 8) | CIOT_E2E_VERSION_PATCH
    );
    // Version 1 had snapshots; the nonce per start broke its ABI.
    assert_eq!(ciot_e2e_version() >> 16, 2);
}

#[test]
fn the_declared_state_holds_this_librarys_state() {
    // ci/c-api.sh runs this in the default and the device configuration:
    // the header's CIOT_E2E_UE_SIZE is honest for the libraries it builds.
    assert!(
        ciot_e2e_ue_state_size() <= size_of::<ciot_e2e_ue>(),
        "state {} > CIOT_E2E_UE_SIZE {}",
        ciot_e2e_ue_state_size(),
        CIOT_E2E_UE_SIZE
    );
}

#[test]
fn every_code_has_its_own_name_and_retired_numbers_stay_unnamed() {
    let codes: Vec<i32> = [0, 1]
        .into_iter()
        .chain((-10..=-1).chain([-12]))
        .chain((-44..=-32).chain(-48..=-46).chain([-50, -63]))
        .collect();
    let mut names: Vec<String> = codes.iter().map(|&c| name(c)).collect();
    for (c, n) in codes.iter().zip(&names) {
        assert_ne!(n, "UNKNOWN", "code {c}");
    }
    assert_eq!(name(CIOT_E2E_REJECT_UNAUTHENTIC), "REJECT_UNAUTHENTIC");
    assert_eq!(name(CIOT_E2E_ERR_NULL), "ERR_NULL");
    assert_eq!(name(CIOT_E2E_ERR_RNG), "ERR_RNG");
    // The numbers of version 1's persistence codes are reserved: no code
    // has them, so an old log line cannot be read as a new meaning.
    for reserved in [-11, -16, -17, -18, -19, -20, -45, -49] {
        assert_eq!(name(reserved), "UNKNOWN", "code {reserved}");
        assert!(!codes.contains(&reserved));
    }
    assert_eq!(name(-13), "UNKNOWN");
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
            let rng: ciot_e2e_rng = Some(fresh_rng);
            ciot_e2e_ue_init(
                ue,
                CIOT_E2E_UE_SIZE,
                cfg,
                1,
                root,
                32,
                id,
                4,
                rng,
                null_mut(),
            )
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
        // Each refused before anything was written: the UE is still there.
        assert_eq!(ciot_e2e_ue_handle_timeout(ue_ptr, 0), CIOT_E2E_OK);
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
                Some(fresh_rng),
                null_mut(),
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
            ciot_e2e_ue_init(
                misaligned,
                100,
                &cfg,
                1,
                r.as_ptr(),
                32,
                ID.as_ptr(),
                4,
                Some(fresh_rng),
                null_mut()
            ),
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
fn lengths_over_ptrdiff_max_are_length_errors_before_anything_else() {
    let cfg = config();
    let r = root();
    let mut ue = storage();
    let ue_ptr: *mut ciot_e2e_ue = &mut *ue;
    let mut buf = [0u8; 256];
    unsafe {
        let init_lens = |state_len, root_len, id_len| {
            ciot_e2e_ue_init(
                ue_ptr,
                state_len,
                &cfg,
                1,
                r.as_ptr(),
                root_len,
                ID.as_ptr(),
                id_len,
                Some(fresh_rng),
                null_mut(),
            )
        };
        // `state_len = SIZE_MAX` was taken for enough storage.
        for state_len in [usize::MAX, HUGE] {
            assert_eq!(init_lens(state_len, 32, ID.len()), CIOT_E2E_ERR_LENGTH);
        }
        assert_eq!(
            init_lens(CIOT_E2E_UE_SIZE, usize::MAX, ID.len()),
            CIOT_E2E_ERR_LENGTH
        );
        assert_eq!(init_lens(CIOT_E2E_UE_SIZE, 32, HUGE), CIOT_E2E_ERR_LENGTH);
        assert_eq!(
            ciot_e2e_ue_handle_timeout(ue_ptr, 0),
            CIOT_E2E_ERR_NOT_INITIALIZED,
            "nothing was written"
        );
        // Even with a NULL pointer, the length is what is wrong.
        assert_eq!(
            ciot_e2e_int_key(1, null(), usize::MAX, IK.as_ptr(), 16, buf.as_mut_ptr(), 32),
            CIOT_E2E_ERR_LENGTH
        );
        assert_eq!(
            ciot_e2e_int_key(1, CK.as_ptr(), 16, IK.as_ptr(), HUGE, buf.as_mut_ptr(), 32),
            CIOT_E2E_ERR_LENGTH
        );
        assert_eq!(
            ciot_e2e_int_key(
                1,
                CK.as_ptr(),
                16,
                IK.as_ptr(),
                16,
                buf.as_mut_ptr(),
                usize::MAX
            ),
            CIOT_E2E_ERR_LENGTH
        );
        assert_eq!(init_lens(CIOT_E2E_UE_SIZE, 32, ID.len()), CIOT_E2E_OK);
        let mut rec = MaybeUninit::uninit();
        assert_eq!(
            ciot_e2e_ue_handle_datagram(ue_ptr, 0, buf.as_mut_ptr(), HUGE, rec.as_mut_ptr()),
            CIOT_E2E_ERR_LENGTH
        );
        // Not "payload too long": no payload can be that long.
        assert_eq!(
            ciot_e2e_ue_send(ue_ptr, 0, b"x".as_ptr(), usize::MAX),
            CIOT_E2E_ERR_LENGTH
        );
        let mut t = MaybeUninit::uninit();
        assert_eq!(
            ciot_e2e_ue_poll_transmit(ue_ptr, 0, buf.as_mut_ptr(), usize::MAX, t.as_mut_ptr()),
            CIOT_E2E_ERR_LENGTH
        );
        assert_eq!(
            ciot_e2e_ue_replace_root(ue_ptr, 0, 1, r.as_ptr(), HUGE),
            CIOT_E2E_ERR_LENGTH
        );
        // None of it touched the UE: it has said nothing yet.
        assert_eq!(drain_transmit(ue_ptr, 0).len(), 1);
    }
}

#[test]
fn init_takes_the_nonce_from_the_callers_random_source_and_the_hello_carries_it() {
    let nonce = [0xa7u8; 16];
    let mut rng = ScriptedRng {
        writes: Some(nonce),
        ..ScriptedRng::default()
    };
    let mut ue = storage();
    let ue_ptr: *mut ciot_e2e_ue = &mut *ue;
    let ctx: *mut c_void = (&raw mut rng).cast();
    assert_eq!(
        init_with_rng(ue_ptr, &config(), Some(scripted_rng), ctx),
        CIOT_E2E_OK
    );
    assert_eq!(rng.lens, [CIOT_E2E_NONCE_LEN], "called once, for 16 octets");
    let sent = drain_transmit(ue_ptr, 0);
    assert_eq!(sent.len(), 1);
    let (t, hello_octets) = &sent[0];
    assert_eq!((t.kind, t.seq, t.flag), (CIOT_E2E_DATAGRAM_HELLO, 0, 1));
    assert_eq!(&hello_octets[hello::field::NONCE], &nonce);

    // Init again (a restart): a new nonce, hello sequence numbers from 0.
    let second = [0x3cu8; 16];
    rng.writes = Some(second);
    assert_eq!(
        init_with_rng(ue_ptr, &config(), Some(scripted_rng), ctx),
        CIOT_E2E_OK
    );
    let sent = drain_transmit(ue_ptr, 0);
    assert_eq!(sent[0].0.seq, 0);
    assert_eq!(&sent[0].1[hello::field::NONCE], &second);
}

#[test]
fn without_a_nonce_init_fails_and_leaves_no_ue() {
    let cfg = config();
    let mut ue = storage();
    let ue_ptr: *mut ciot_e2e_ue = &mut *ue;
    let not_initialized = |ue| unsafe { ciot_e2e_ue_handle_timeout(ue, 0) };

    // No source at all.
    assert_eq!(
        init_with_rng(ue_ptr, &cfg, None, null_mut()),
        CIOT_E2E_ERR_RNG
    );
    assert_eq!(not_initialized(ue_ptr), CIOT_E2E_ERR_NOT_INITIALIZED);

    // A source that says it has none, even though it wrote octets.
    let mut failing = ScriptedRng {
        writes: Some([0x11; 16]),
        returns: -1,
        ..ScriptedRng::default()
    };
    assert_eq!(
        init_with_rng(ue_ptr, &cfg, Some(scripted_rng), (&raw mut failing).cast()),
        CIOT_E2E_ERR_RNG
    );
    assert_eq!(not_initialized(ue_ptr), CIOT_E2E_ERR_NOT_INITIALIZED);
    let mut positive = ScriptedRng {
        writes: Some([0x11; 16]),
        returns: 1,
        ..ScriptedRng::default()
    };
    assert_eq!(
        init_with_rng(ue_ptr, &cfg, Some(scripted_rng), (&raw mut positive).cast()),
        CIOT_E2E_ERR_RNG
    );

    // A source that reports success but wrote nothing.
    let mut silent = ScriptedRng::default();
    assert_eq!(
        init_with_rng(ue_ptr, &cfg, Some(scripted_rng), (&raw mut silent).cast()),
        CIOT_E2E_ERR_RNG
    );
    assert_eq!(silent.lens, [16]);
    assert_eq!(not_initialized(ue_ptr), CIOT_E2E_ERR_NOT_INITIALIZED);

    // A UE that was running does not go on after a restart without a
    // nonce: the state is cleared, not left as it was.
    assert_eq!(init(&mut ue, &cfg), CIOT_E2E_OK);
    let ue_ptr: *mut ciot_e2e_ue = &mut *ue;
    assert_eq!(not_initialized(ue_ptr), CIOT_E2E_OK);
    assert_eq!(
        init_with_rng(ue_ptr, &cfg, Some(scripted_rng), (&raw mut failing).cast()),
        CIOT_E2E_ERR_RNG
    );
    assert_eq!(not_initialized(ue_ptr), CIOT_E2E_ERR_NOT_INITIALIZED);
    let mut out = [0u8; CIOT_E2E_MAX_DATAGRAM];
    let mut t = MaybeUninit::uninit();
    assert_eq!(
        unsafe {
            ciot_e2e_ue_poll_transmit(ue_ptr, 0, out.as_mut_ptr(), out.len(), t.as_mut_ptr())
        },
        CIOT_E2E_ERR_NOT_INITIALIZED
    );
}

#[test]
fn settings_under_which_hellos_would_not_pause_are_refused() {
    let mut ue = storage();
    let cfg = config();
    let zero = ciot_e2e_ue_config {
        hello_backoff_ms: 0,
        ..cfg
    };
    assert_eq!(init(&mut ue, &zero), CIOT_E2E_ERR_VALUE);
    let max_below_first = ciot_e2e_ue_config {
        hello_backoff_ms: 1000,
        hello_backoff_max_ms: 999,
        ..cfg
    };
    assert_eq!(init(&mut ue, &max_below_first), CIOT_E2E_ERR_VALUE);
    // A keepalive of 0 says hello again after every answer, at the same
    // instant: with an EESE that answers at once, the exchange never ends.
    let keepalive_zero = ciot_e2e_ue_config {
        keepalive_ms: 0,
        ..cfg
    };
    assert_eq!(init(&mut ue, &keepalive_zero), CIOT_E2E_ERR_VALUE);
    assert_eq!(
        unsafe { ciot_e2e_ue_handle_timeout(&mut *ue, 0) },
        CIOT_E2E_ERR_NOT_INITIALIZED
    );
    let smallest = ciot_e2e_ue_config {
        hello_backoff_ms: 1,
        hello_backoff_max_ms: 1,
        ..cfg
    };
    assert_eq!(init(&mut ue, &smallest), CIOT_E2E_OK);
}

/// The smallest settings init takes: every interval 0 or 1 ms.
fn smallest_settings() -> ciot_e2e_ue_config {
    ciot_e2e_ue_config {
        grace_ms: 0,
        probe_after_ms: 0,
        keepalive_ms: 1,
        hello_backoff_ms: 1,
        hello_backoff_max_ms: 1,
        ..config()
    }
}

#[test]
fn a_drain_at_one_instant_ends_with_the_smallest_settings() {
    let mut ue = storage();
    assert_eq!(init(&mut ue, &smallest_settings()), CIOT_E2E_OK);
    let ue_ptr: *mut ciot_e2e_ue = &mut *ue;
    unsafe {
        assert_eq!(ciot_e2e_ue_send(ue_ptr, 5, b"x".as_ptr(), 1), CIOT_E2E_HELD);
        // Unanswered, at one instant: one hello, however often the timers
        // run and the loop polls.
        let mut hellos = 0;
        for _ in 0..10 {
            assert_eq!(ciot_e2e_ue_handle_timeout(ue_ptr, 5), CIOT_E2E_OK);
            hellos += drain_transmit(ue_ptr, 5).len();
        }
        assert_eq!(hellos, 1);
        // Each later millisecond: at most one more.
        for now in 6..50 {
            assert_eq!(ciot_e2e_ue_handle_timeout(ue_ptr, now), CIOT_E2E_OK);
            assert!(drain_transmit(ue_ptr, now).len() <= 1, "at {now} ms");
        }
    }
    // With the EESE answering at once, on one instant too: the exchange
    // comes to rest (settle fails after 50 passes), and not after a flood;
    // also when the EESE refuses the next message and offers a new keyset.
    let mut p = Pair::with(smallest_settings(), Duration::from_secs(1));
    assert_eq!(p.send(0, b"m"), CIOT_E2E_HELD);
    p.settle(0);
    assert_eq!(p.echoes, [b"echo: m".to_vec()]);
    assert!(p.uplink.len() <= 3, "{} datagrams", p.uplink.len());
    p.settle(0);
    assert!(p.uplink.len() <= 3, "at rest");
    let before = p.uplink.len();
    p.eese.expire_now(Instant::from_millis(0));
    assert_eq!(p.send(0, b"n"), CIOT_E2E_QUEUED);
    p.settle(0);
    assert_eq!(p.echoes.last().unwrap(), b"echo: n");
    // The message, a probe, its retransmission under the new keyset, a
    // probe: no more.
    assert!(p.uplink.len() - before <= 4, "{:?}", &p.uplink[before..]);
}

/// A UE driven through the C API only, and the crate's EESE.
struct Pair {
    ue: Box<ciot_e2e_ue>,
    eese: Eese<Box<dyn FnMut() -> Option<Rand>>>,
    echoes: Vec<Vec<u8>>,
    to_echo: Vec<Vec<u8>>,
    events: Vec<ciot_e2e_event>,
    key_expired_errors: usize,
    /// Every datagram the UE sent.
    uplink: Vec<Vec<u8>>,
    /// Every datagram the EESE sent to the UE.
    downlink: Vec<Vec<u8>>,
}

impl Pair {
    fn new(te2e: Duration) -> Self {
        let cfg = ciot_e2e_ue_config {
            hello_backoff_ms: 200,
            probe_after_ms: 400,
            ..config()
        };
        Self::with(cfg, te2e)
    }

    fn with(cfg: ciot_e2e_ue_config, te2e: Duration) -> Self {
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
            echoes: Vec::new(),
            to_echo: Vec::new(),
            events: Vec::new(),
            key_expired_errors: 0,
            uplink: Vec::new(),
            downlink: Vec::new(),
        }
    }

    /// Drains both sides until nothing moves, the EESE echoing every payload
    /// (once it may send: the keyset in use and its snapshot durable).
    fn settle(&mut self, now: u64) {
        let ue: *mut ciot_e2e_ue = &mut *self.ue;
        let t = Instant::from_millis(now);
        for _ in 0..50 {
            let mut progress = false;
            // The UE's drain loop: transmit, then events.
            for (_, mut d) in drain_transmit(ue, now) {
                self.uplink.push(d.clone());
                if let Ok(Received::Data(got)) = self.eese.handle_datagram(t, &mut d) {
                    self.to_echo.push([b"echo: ", &d[got.payload]].concat());
                }
                progress = true;
            }
            let mut e = MaybeUninit::uninit();
            while unsafe { ciot_e2e_ue_poll_event(ue, e.as_mut_ptr()) } == 1 {
                self.events.push(unsafe { e.assume_init() });
                progress = true;
            }
            // The EESE's: persist, transmit, events; then the echoes.
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
            let mut waiting = Vec::new();
            for echo in std::mem::take(&mut self.to_echo) {
                let mut down = [0u8; 512];
                match self.eese.send(t, &echo, &mut down) {
                    Ok(s) => {
                        self.deliver(now, &mut down[..s.len]);
                        progress = true;
                    }
                    Err(_) => waiting.push(echo),
                }
            }
            self.to_echo = waiting;
            if !progress {
                return;
            }
        }
        panic!("no rest after 50 passes");
    }

    fn deliver(&mut self, now: u64, d: &mut [u8]) {
        self.downlink.push(d.to_vec());
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

    /// Runs the UE's timers as they come due until `until`, and everything
    /// that follows each.
    fn run_until(&mut self, until: u64) {
        let mut at = 0;
        for _ in 0..100 {
            if unsafe { ciot_e2e_ue_poll_timeout(&*self.ue, &mut at) } != 1 || at > until {
                return;
            }
            assert_eq!(
                unsafe { ciot_e2e_ue_handle_timeout(&mut *self.ue, at) },
                CIOT_E2E_OK
            );
            self.settle(at);
        }
        panic!("the UE's timers did not get past {at} ms");
    }

    fn send(&mut self, now: u64, payload: &[u8]) -> i32 {
        unsafe { ciot_e2e_ue_send(&mut *self.ue, now, payload.as_ptr(), payload.len()) }
    }

    fn count(&self, kind: u8) -> usize {
        self.events.iter().filter(|e| e.kind == kind).count()
    }

    fn status(&self) -> ciot_e2e_status {
        let mut status = MaybeUninit::uninit();
        assert_eq!(
            unsafe { ciot_e2e_ue_status(&*self.ue, status.as_mut_ptr()) },
            CIOT_E2E_OK
        );
        unsafe { status.assume_init() }
    }
}

#[test]
fn a_ue_on_the_c_api_runs_the_tr_cycle_and_restarts_with_a_new_nonce() {
    let mut p = Pair::new(Duration::from_secs(2));
    // Hello, trigger, data.
    assert_eq!(p.send(0, b"message 1"), CIOT_E2E_HELD);
    p.settle(0);
    assert_eq!(p.echoes, [b"echo: message 1".to_vec()]);
    assert_eq!(p.count(CIOT_E2E_EVENT_REKEYED), 1);
    // te2e runs out at the EESE; the UE's next message meets the error,
    // the new trigger, and goes out again under the new keyset. (Should the
    // EESE hold its answers back, the UE's probe, probe_after_ms later,
    // fetches them.)
    p.eese.handle_timeout(Instant::from_millis(2500));
    p.settle(2500);
    assert_eq!(p.send(3000, b"message 2"), CIOT_E2E_QUEUED);
    p.settle(3000);
    p.run_until(3400);
    assert_eq!(p.key_expired_errors, 1);
    assert_eq!(p.count(CIOT_E2E_EVENT_REKEYED), 2);
    assert_eq!(p.count(CIOT_E2E_EVENT_RETRANSMITTED), 1);
    assert_eq!(p.echoes.last().unwrap(), b"echo: message 2");
    let rekeyed: Vec<&ciot_e2e_event> = p
        .events
        .iter()
        .filter(|e| e.kind == CIOT_E2E_EVENT_REKEYED)
        .collect();
    assert!(rekeyed[1].counter > rekeyed[0].counter);
    let status = p.status();
    assert_eq!(
        (
            status.has_keyset,
            status.usable,
            status.holding,
            status.counter,
            status.last_counter
        ),
        (1, 1, 0, rekeyed[1].counter, rekeyed[1].counter)
    );
    let old_triggers: Vec<Vec<u8>> = p.downlink.iter().filter(|d| d[1] == 1).cloned().collect();
    assert!(!old_triggers.is_empty());

    // A restart is an init with a new nonce: nothing of the last start is
    // kept, a hello asks for a keyset, and data flows again.
    assert_eq!(init(&mut p.ue, &config()), CIOT_E2E_OK);
    let status = p.status();
    assert_eq!(
        (status.has_keyset, status.last_counter, status.holding),
        (0, 0, 0)
    );
    // The triggers of the last start are not for this one: each is refused
    // as not authentic (bound to the old nonce), even the newest.
    for mut t in old_triggers {
        let mut rec = MaybeUninit::uninit();
        let code = unsafe {
            ciot_e2e_ue_handle_datagram(&mut *p.ue, 4000, t.as_mut_ptr(), t.len(), rec.as_mut_ptr())
        };
        assert_eq!(code, CIOT_E2E_REJECT_UNAUTHENTIC, "{}", name(code));
    }
    assert_eq!(p.status().has_keyset, 0);
    p.settle(4000);
    assert_eq!(p.count(CIOT_E2E_EVENT_REKEYED), 3);
    assert_eq!(p.send(4100, b"message 3"), CIOT_E2E_QUEUED);
    p.settle(4100);
    assert_eq!(p.echoes.last().unwrap(), b"echo: message 3");
    let mut at = 0u64;
    assert_eq!(unsafe { ciot_e2e_ue_poll_timeout(&*p.ue, &mut at) }, 1);
    assert!(at > 4100 && at != CIOT_E2E_NEVER);
}

#[test]
fn a_payload_handed_to_send_is_lost_by_a_restart() {
    // Delivery is at most once: the held payload lives in the state only.
    let mut p = Pair::new(Duration::from_secs(60));
    assert_eq!(p.send(0, b"before the reset"), CIOT_E2E_HELD);
    assert_eq!(init(&mut p.ue, &config()), CIOT_E2E_OK);
    assert_eq!(p.status().holding, 0);
    p.settle(0);
    assert!(p.echoes.is_empty());
    assert_eq!(p.count(CIOT_E2E_EVENT_REKEYED), 1);
}

/// A device built with AES-128-GCM alone gets a trigger for 128-NEA2/NIA2:
/// authentic, but for a suite it does not have. It is refused with its own
/// code and changes nothing (run by ci/c-api.sh, which tests the device
/// configuration: `--no-default-features --features suite-aes-gcm`).
#[cfg(not(feature = "suite-nea2-nia2"))]
#[test]
fn a_trigger_for_a_suite_the_build_lacks_is_refused_and_changes_nothing() {
    use ciot_e2e::kdf::{PreparedRoot, UeNonce};
    use ciot_e2e::wire::{ControlAuth, Ksi, Suite, TriggerRepr};

    let nonce = [0x77u8; 16];
    let mut rng = ScriptedRng {
        writes: Some(nonce),
        ..ScriptedRng::default()
    };
    let mut ue = storage();
    assert_eq!(
        init_with_rng(
            &mut *ue,
            &config(),
            Some(scripted_rng),
            (&raw mut rng).cast()
        ),
        CIOT_E2E_OK
    );
    let root = int_key(
        KdfProfile::Ts33220,
        &CkIk::new(&Ck::from_bytes(CK), &Ik::from_bytes(IK)),
    );
    let auth = ControlAuth::new(&PreparedRoot::new(&root, KdfProfile::Ts33220).control_key());
    let nonce = UeNonce::from_bytes(nonce);
    let mut trigger = [0u8; TriggerRepr::LEN];
    TriggerRepr {
        ksi: Ksi(1),
        confirm: true,
        counter: 1,
        rand: Rand([9; 16]),
        profile: KdfProfile::Ts33220,
        suite: Suite::NEA2_NIA2,
        lifetime: 60,
        tag: [0; 16],
    }
    .emit_signed(&auth.answer(&nonce), &mut trigger)
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
