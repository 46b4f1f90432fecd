//! The plain structures and constants the UE's entry points fill or take,
//! and the type of the random source.

use core::ffi::c_void;

// The entry points, for the documentation's links.
#[allow(unused_imports)]
use crate::*;

/// The random source [`ciot_e2e_ue_init`] draws the start's nonce from:
/// writes `len` octets of fresh, unpredictable randomness (a TRNG, a DRBG
/// seeded from one, `getrandom(2)`) to `out` and returns 0; any other value
/// says it has none, and init fails with `CIOT_E2E_ERR_RNG`. `ctx` is the
/// pointer passed to init beside it. Called only from within init, on the
/// caller's thread, before init returns; neither pointer is kept.
pub type ciot_e2e_rng =
    Option<unsafe extern "C" fn(ctx: *mut c_void, out: *mut u8, len: usize) -> i32>;

/// A UE's settings. [`ciot_e2e_ue_config_default`] fills in the defaults;
/// intervals are in milliseconds, `CIOT_E2E_NEVER` turns one off.
/// [`ciot_e2e_ue_init`] refuses (`CIOT_E2E_ERR_VALUE`) a hello back-off of
/// 0, a longest back-off below the first and a keepalive of 0: settings
/// under which hellos would not pause.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ciot_e2e_ue_config {
    /// `CIOT_E2E_KDF_TS33220` or `CIOT_E2E_KDF_HKDF_SHA256`: the profile of
    /// the root's control key; the UE accepts only triggers naming it.
    pub kdf_profile: u8,
    /// How long a replaced keyset still opens in-flight downlink, and how
    /// long past the te2e a trigger announced the UE goes on using a keyset.
    pub grace_ms: u64,
    /// After an uplink message, how long the UE waits for anything authentic
    /// before it checks with a hello (`CIOT_E2E_NEVER`: never).
    pub probe_after_ms: u64,
    /// After this long without anything authentic from the EESE, the UE
    /// sends a hello (`CIOT_E2E_NEVER`: never; at least 1).
    pub keepalive_ms: u64,
    /// First interval before an unanswered hello is repeated (at least 1);
    /// it doubles, with ±25 % jitter, up to `hello_backoff_max_ms`.
    pub hello_backoff_ms: u64,
    /// Longest interval between repeated hellos (at least
    /// `hello_backoff_ms`).
    pub hello_backoff_max_ms: u64,
}

/// A hello (`kind` of [`ciot_e2e_transmit`]).
pub const CIOT_E2E_DATAGRAM_HELLO: u8 = 1;
/// A data message (`kind` of [`ciot_e2e_transmit`]).
pub const CIOT_E2E_DATAGRAM_DATA: u8 = 2;

/// A datagram [`ciot_e2e_ue_poll_transmit`] wrote: send its first `len`
/// octets to the EESE. The other fields describe it, for logs.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ciot_e2e_transmit {
    /// Octets of the datagram at the start of the buffer.
    pub len: usize,
    /// `CIOT_E2E_DATAGRAM_HELLO` or `CIOT_E2E_DATAGRAM_DATA`.
    pub kind: u8,
    /// Data: the KSI it went under.
    pub ksi: u8,
    /// Hello: 1 when it asks for a new keyset. Data: 1 when it is the held
    /// payload sent again under a new keyset (TR 33.863 §6.5.2.3 step 5).
    pub flag: u8,
    /// The hello's or the data message's sequence number.
    pub seq: u32,
    /// Data: the trigger counter of its keyset.
    pub counter: u64,
}

/// A new keyset is in use (`kind` of [`ciot_e2e_event`]).
pub const CIOT_E2E_EVENT_REKEYED: u8 = 1;
/// A keyset may no longer send or receive; `cause` says why.
pub const CIOT_E2E_EVENT_KEYS_EXPIRED: u8 = 2;
/// The held payload went out again under a new keyset, because the EESE
/// named it refused (TR 33.863 §6.5.2.3 step 5).
pub const CIOT_E2E_EVENT_RETRANSMITTED: u8 = 3;
/// An event this version of the API does not name.
pub const CIOT_E2E_EVENT_OTHER: u8 = 255;

/// What happened, from [`ciot_e2e_ue_poll_event`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ciot_e2e_event {
    /// `CIOT_E2E_EVENT_*`.
    pub kind: u8,
    /// The keyset's KSI.
    pub ksi: u8,
    /// Keys expired: the cause code (1 te2e expired, 2 expired by the
    /// enterprise, 3 unknown KSI, 4 root replaced, 5 replaced).
    pub cause: u8,
    /// Retransmitted: the sequence number used.
    pub seq: u32,
    /// Rekeyed, retransmitted: the trigger counter of the keyset.
    pub counter: u64,
}

/// An authentic, fresh payload (`kind` of [`ciot_e2e_received`]).
pub const CIOT_E2E_RECEIVED_DATA: u8 = 1;
/// An authentic control message; its effects are to be polled.
pub const CIOT_E2E_RECEIVED_CONTROL: u8 = 2;

/// What [`ciot_e2e_ue_handle_datagram`] made of an accepted datagram.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ciot_e2e_received {
    /// `CIOT_E2E_RECEIVED_DATA` or `CIOT_E2E_RECEIVED_CONTROL`.
    pub kind: u8,
    /// The message type octet (1 trigger, 2 key-expired error, 3 data).
    pub message_type: u8,
    /// Data: the KSI of its keyset.
    pub ksi: u8,
    /// Data: its sequence number.
    pub seq: u32,
    /// Data: the trigger counter of its keyset.
    pub counter: u64,
    /// Data: where the payload, decrypted in place, starts in the buffer.
    pub payload_offset: usize,
    /// Data: the payload's length.
    pub payload_len: usize,
}

/// The UE's keyset and payload, from [`ciot_e2e_ue_status`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ciot_e2e_status {
    /// 1 when the UE holds a keyset (the fields below describe it).
    pub has_keyset: u8,
    /// Its KSI.
    pub ksi: u8,
    /// 1 when it sends and receives.
    pub usable: u8,
    /// 1 while a payload waits to go out (`ciot_e2e_ue_send` refuses the
    /// next one until it has).
    pub holding: u8,
    /// The trigger counter that installed it.
    pub counter: u64,
    /// The highest trigger counter the UE accepted since it started.
    pub last_counter: u64,
}
