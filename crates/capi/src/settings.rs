//! A UE's settings and root key from C: the defaults, their conversion to
//! the crate's configuration, and solution #5's root from CK and IK.

use core::time::Duration;

use ciot_e2e::endpoint::UeConfig;
use ciot_e2e::kdf::{Ck, CkIk, Ik, KdfProfile, RootBytes, RootKey, RootKind, int_key};
use zeroize::Zeroize;

use crate::codes::{
    CIOT_E2E_ERR_BUFFER_TOO_SMALL, CIOT_E2E_ERR_LENGTH, CIOT_E2E_ERR_UNSUPPORTED,
    CIOT_E2E_ERR_VALUE, CIOT_E2E_OK,
};
use crate::ffi::{bytes, bytes_mut, code, out};
use crate::types::ciot_e2e_ue_config;
use crate::{CIOT_E2E_KDF_HKDF_SHA256, CIOT_E2E_NEVER, CIOT_E2E_ROOT_LEN};

/// A span in whole milliseconds, saturating, with 64-bit arithmetic only.
pub(crate) fn millis(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(d.subsec_millis()))
}

/// `Duration::from_millis` without a 64-bit division, which a 32-bit device
/// links as a library routine of almost a kilobyte: the quotient by 1000 is
/// taken 16 bits at a time with 32-bit divisions (schoolbook long division;
/// each partial dividend is below 1000 · 2^16).
#[inline(never)]
pub(crate) fn from_millis(ms: u64) -> Duration {
    let (mut secs, mut rem) = (0u64, 0u32);
    for shift in [48u32, 32, 16, 0] {
        let chunk = (rem << 16) | ((ms >> shift) as u32 & 0xffff);
        secs = (secs << 16) | u64::from(chunk / 1000);
        rem = chunk % 1000;
    }
    Duration::new(secs, rem * 1_000_000)
}

pub(crate) fn profile(code: u8) -> Result<KdfProfile, i32> {
    match KdfProfile::from_code(code) {
        Some(p) => Ok(p),
        None if code == CIOT_E2E_KDF_HKDF_SHA256 => Err(CIOT_E2E_ERR_UNSUPPORTED),
        None => Err(CIOT_E2E_ERR_VALUE),
    }
}

/// The crate's configuration from the C settings. Refuses, with
/// `CIOT_E2E_ERR_VALUE`, settings under which the UE would say hello
/// without pause, so that a drain loop at one instant (the UE's, or the UE's
/// and an EESE's that answers at once) might not end: a first hello
/// back-off of 0, a longest back-off below the first (the back-off would
/// shrink to it), and a keepalive of 0 (a hello after every answer, at the
/// instant of the answer).
pub(crate) fn config(c: &ciot_e2e_ue_config) -> Result<UeConfig, i32> {
    let interval = |ms: u64| (ms != CIOT_E2E_NEVER).then(|| from_millis(ms));
    let profile = profile(c.kdf_profile)?;
    if c.hello_backoff_ms == 0 || c.hello_backoff_max_ms < c.hello_backoff_ms || c.keepalive_ms == 0
    {
        return Err(CIOT_E2E_ERR_VALUE);
    }
    Ok(UeConfig {
        profile,
        grace: from_millis(c.grace_ms),
        probe_after: interval(c.probe_after_ms),
        keepalive: interval(c.keepalive_ms),
        hello_backoff: from_millis(c.hello_backoff_ms),
        hello_backoff_max: from_millis(c.hello_backoff_max_ms),
    })
}

pub(crate) fn root_key(kind: u8, octets: &[u8]) -> Result<RootKey, i32> {
    let kind = RootKind::from_code(kind).map_err(|_| CIOT_E2E_ERR_VALUE)?;
    let mut key: [u8; CIOT_E2E_ROOT_LEN] = octets.try_into().map_err(|_| CIOT_E2E_ERR_LENGTH)?;
    let root = RootKey::new(kind, RootBytes::from_bytes(key));
    key.zeroize();
    Ok(root)
}

/// Fills `config` with the defaults: TS 33.220 profile, grace 30 s, probe
/// after 60 s, keepalive 600 s, hello back-off 1 s doubling to 64 s.
///
/// Returns `CIOT_E2E_OK`, or `CIOT_E2E_ERR_NULL`.
///
/// # Safety
/// `config` is NULL or points to a `ciot_e2e_ue_config` the caller owns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_ue_config_default(config: *mut ciot_e2e_ue_config) -> i32 {
    // SAFETY: the caller lends `config` for writing.
    code(unsafe { out(config) }.map(|slot| {
        let d = UeConfig::default();
        let ms = |d: Option<Duration>| d.map_or(CIOT_E2E_NEVER, millis);
        slot.write(ciot_e2e_ue_config {
            kdf_profile: d.profile.code(),
            grace_ms: millis(d.grace),
            probe_after_ms: ms(d.probe_after),
            keepalive_ms: ms(d.keepalive),
            hello_backoff_ms: millis(d.hello_backoff),
            hello_backoff_max_ms: millis(d.hello_backoff_max),
        });
        CIOT_E2E_OK
    }))
}

/// Derives solution #5's root, `e2e_int_key = KDF(CK‖IK, "CIoT
/// End-to-end")`, into `root_out` (`CIOT_E2E_ROOT_LEN` octets; kind
/// `CIOT_E2E_ROOT_INT_KEY`). Clear `root_out` once the UE is initialized.
///
/// Returns `CIOT_E2E_OK`; `CIOT_E2E_ERR_NULL`, `CIOT_E2E_ERR_LENGTH` (CK or
/// IK not 16 octets), `CIOT_E2E_ERR_BUFFER_TOO_SMALL`, `CIOT_E2E_ERR_VALUE`
/// or `CIOT_E2E_ERR_UNSUPPORTED` (profile).
///
/// # Safety
/// Each pointer is NULL or points to its length in octets; `root_out` is
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ciot_e2e_int_key(
    kdf_profile: u8,
    ck: *const u8,
    ck_len: usize,
    ik: *const u8,
    ik_len: usize,
    root_out: *mut u8,
    root_out_len: usize,
) -> i32 {
    let run = || -> Result<i32, i32> {
        let profile = profile(kdf_profile)?;
        // SAFETY: the caller promises `ck_len` / `ik_len` readable octets.
        let (ck, ik) = unsafe { (bytes(ck, ck_len)?, bytes(ik, ik_len)?) };
        // SAFETY: the caller lends `root_out_len` writable octets.
        let out = unsafe { bytes_mut(root_out, root_out_len)? };
        let out: &mut [u8; CIOT_E2E_ROOT_LEN] = out
            .get_mut(..CIOT_E2E_ROOT_LEN)
            .and_then(|o| o.try_into().ok())
            .ok_or(CIOT_E2E_ERR_BUFFER_TOO_SMALL)?;
        let ck = Ck::from_bytes(ck.try_into().map_err(|_| CIOT_E2E_ERR_LENGTH)?);
        let ik = Ik::from_bytes(ik.try_into().map_err(|_| CIOT_E2E_ERR_LENGTH)?);
        *out = *int_key(profile, &CkIk::new(&ck, &ik)).key().as_bytes();
        Ok(CIOT_E2E_OK)
    };
    code(run())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_millis_is_durations() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let edges = [
            0,
            1,
            999,
            1000,
            65_535_999,
            1 << 32,
            (1 << 48) + 7,
            u64::MAX - 1,
            u64::MAX,
        ];
        for ms in edges.into_iter().chain((0..10_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x >> (x % 64)
        })) {
            assert_eq!(from_millis(ms), Duration::from_millis(ms), "{ms}");
        }
    }
}
