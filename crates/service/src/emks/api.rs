//! The EMKS's JSON API, shared by the server and its clients
//! (docs/DEPLOYMENT.md has the table).
//!
//! | method and path | who | body → answer |
//! |---|---|---|
//! | `PUT /v1/ues/{ue}/root` | HSS | [`ProvisionRequest`] → [`ProvisionResponse`] |
//! | `GET /v1/ues/{ue}/root` | EESE of the UE's enterprise | → [`RootResponse`] |
//! | `POST /v1/rand` | EESE | [`RandRequest`] → [`RandResponse`] |
//! | `GET /v1/changes?since=N&wait=S` | EESE | → [`ChangesResponse`] (long-poll) |
//!
//! Errors are `{"error": "<sentence>"}` with a 4xx/5xx status. `{ue}` is the
//! UE identifier as text, percent-encoded.

use serde::{Deserialize, Serialize};

/// Largest request body the EMKS reads.
pub const MAX_BODY: usize = 4096;
/// Longest long-poll wait, in seconds.
pub const MAX_WAIT_SECS: u64 = 30;
/// Most RANDs one request returns.
pub const MAX_RANDS: usize = 64;

/// The HSS provisions a UE's root (after AKA): a new generation.
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ProvisionRequest {
    /// The enterprise whose EESE may fetch it.
    pub enterprise: String,
    /// e2e_int_key, 64 hex digits.
    pub root: String,
    /// KDF profile it was derived with: `3gpp` (default) or `hkdf`.
    #[serde(default)]
    pub kdf: Option<String>,
}

/// What a provisioning made.
#[derive(Serialize, Deserialize, Debug)]
pub struct ProvisionResponse {
    /// The UE.
    pub ue: String,
    /// Its enterprise.
    pub enterprise: String,
    /// The new generation.
    pub generation: u64,
}

/// A UE's current root.
#[derive(Serialize, Deserialize)]
pub struct RootResponse {
    /// The UE.
    pub ue: String,
    /// The root's generation.
    pub generation: u64,
    /// e2e_int_key, 64 hex digits.
    pub root: String,
    /// KDF profile.
    pub kdf: String,
}

impl std::fmt::Debug for RootResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootResponse")
            .field("ue", &self.ue)
            .field("generation", &self.generation)
            .field("root", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// An EESE asks for RANDs (TR 33.863 §6.5.2.5: when it has no good random
/// source).
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RandRequest {
    /// How many, 1 to [`MAX_RANDS`] (default 1).
    #[serde(default)]
    pub count: Option<usize>,
}

/// RANDs, 32 hex digits each.
#[derive(Serialize, Deserialize, Debug)]
pub struct RandResponse {
    /// The RANDs.
    pub rands: Vec<String>,
}

/// One generation change.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ChangeEntry {
    /// The UE.
    pub ue: String,
    /// Its new generation.
    pub generation: u64,
    /// The root was revoked.
    #[serde(default)]
    pub revoked: bool,
}

impl ChangeEntry {
    /// The UE's octets.
    #[must_use]
    pub fn ue_octets(&self) -> Option<Vec<u8>> {
        Some(self.ue.as_bytes().to_vec())
    }
}

/// Changes after `since` for the caller's enterprise.
#[derive(Serialize, Deserialize, Debug)]
pub struct ChangesResponse {
    /// Ask with `since` = this next time.
    pub next: u64,
    /// The changes (empty when the wait ran out).
    pub changes: Vec<ChangeEntry>,
    /// `since` was older than the log keeps: every cached root may be stale.
    #[serde(default)]
    pub reset: bool,
    /// The identity of the EMKS's database.
    #[serde(default)]
    pub store: String,
}

/// An error answer.
#[derive(Serialize, Deserialize, Debug)]
pub struct ErrorBody {
    /// One sentence.
    pub error: String,
}
