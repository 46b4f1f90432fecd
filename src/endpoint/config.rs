//! Role-specific settings, held by the endpoint they configure.

use core::time::Duration;

use crate::kdf::KdfProfile;
use crate::protect;
use crate::wire::Suite;

/// A UE's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UeConfig {
    /// KDF profile of the root's control key. The UE accepts only triggers
    /// whose KDF octet names this profile (`docs/wire-format.md`).
    pub profile: KdfProfile,
    /// How long a keyset replaced while usable still opens in-flight
    /// downlink data; also how long past the te2e a trigger announced the UE
    /// goes on using a keyset (the EESE's refusal is authoritative, this only
    /// bounds use when the EESE is silent).
    pub grace: Duration,
    /// After an uplink message, how long the UE waits for anything authentic
    /// from the EESE before it sends a hello to check (`None`: never). This
    /// is how a UE finds out that the EESE no longer holds its keyset.
    pub probe_after: Option<Duration>,
    /// When nothing authentic has come from the EESE for this long, the UE
    /// sends a hello (`None`: never). A UE that only listens needs it: after
    /// an EESE restart, or a NAT rebinding, its hello is how the EESE finds
    /// it again (WireGuard's persistent keepalive).
    pub keepalive: Option<Duration>,
    /// First interval before an unanswered hello is repeated; it doubles,
    /// with ±25 % jitter, up to `hello_backoff_max`.
    pub hello_backoff: Duration,
    /// Longest interval between repeated hellos.
    pub hello_backoff_max: Duration,
}

impl Default for UeConfig {
    fn default() -> Self {
        UeConfig {
            profile: KdfProfile::Ts33220,
            grace: Duration::from_secs(30),
            probe_after: Some(Duration::from_secs(60)),
            keepalive: Some(Duration::from_secs(600)),
            hello_backoff: Duration::from_secs(1),
            hello_backoff_max: Duration::from_secs(64),
        }
    }
}

/// An EESE's settings, shared by all its sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EeseConfig {
    /// KDF profile of the control key and of the keysets the EESE makes.
    pub profile: KdfProfile,
    /// Suite of the keysets the EESE makes.
    pub suite: Suite,
    /// Default key lifetime te2e (a UE's own value overrides it).
    pub te2e: Duration,
    /// How long a keyset replaced while valid still delivers in-flight
    /// uplink data. It never sends.
    pub grace: Duration,
    /// Sequence number at which the EESE starts a new keyset (key-use soft
    /// limit, well before the 2^32 hard limit).
    pub soft_limit: u32,
    /// First interval before an unconfirmed trigger is repeated; it doubles
    /// up to `trigger_retransmit_max`.
    pub trigger_retransmit: Duration,
    /// Longest interval between repeats of an unconfirmed trigger. While the
    /// UE has not confirmed a keyset, downlink data is preceded by the
    /// trigger at least this often.
    pub trigger_retransmit_max: Duration,
    /// Repeats of an unconfirmed trigger the EESE's own timer makes; after
    /// them, the trigger goes only in front of downlink data.
    pub trigger_attempts: u8,
    /// Minimum interval between answers to input the EESE cannot
    /// authenticate (on top of the octet budget, which forbids
    /// amplification).
    pub unsolicited_interval: Duration,
}

impl Default for EeseConfig {
    fn default() -> Self {
        EeseConfig {
            profile: KdfProfile::Ts33220,
            suite: Suite::AES_128_GCM,
            te2e: Duration::from_secs(3600),
            grace: Duration::from_secs(30),
            soft_limit: protect::replay::DEFAULT_SOFT_LIMIT,
            trigger_retransmit: Duration::from_secs(1),
            trigger_retransmit_max: Duration::from_secs(64),
            trigger_attempts: 4,
            unsolicited_interval: Duration::from_millis(200),
        }
    }
}
