//! The EMKS's JSON API, shared by the server and its clients
//! (docs/DEPLOYMENT.md has the table).
//!
//! | method and path | who | body → answer |
//! |---|---|---|
//! | `PUT /v1/ues/{ue}/root` | HSS | [`ProvisionRequest`] → [`ProvisionResponse`] |
//! | `GET /v1/ues/{ue}/root` | EESE of the UE's enterprise | → [`RootResponse`] |
//! | `POST /v1/rand` | EESE | [`RandRequest`] → [`RandResponse`] |
//! | `DELETE /v1/ues/{ue}/root` | HSS | → [`RevokeResponse`] |
//! | `GET /v1/changes?since=N&wait=S` | EESE | → [`ChangesResponse`] (long-poll) |
//!
//! Errors are `{"error": "<sentence>"}` with a 4xx/5xx status. A UE
//! identifier is 1 to 64 octets without control characters (0x00–0x1f,
//! 0x7f); `{ue}` is the percent-encoding of its octets. In JSON, `ue_hex`
//! is the identifier (authoritative) and `ue` is the same as text when it is
//! printable UTF-8 (absent otherwise).

use ciot_e2e::kdf::RootKey;
use serde::{Deserialize, Serialize};

/// Largest request body the EMKS reads.
pub const MAX_BODY: usize = 4096;
/// Longest long-poll wait, in seconds.
pub const MAX_WAIT_SECS: u64 = 30;
/// Most RANDs one request returns.
pub const MAX_RANDS: usize = 64;

/// Checks a UE identifier: 1 to 64 octets, no control character.
///
/// # Errors
/// The sentence saying what is wrong.
pub fn check_ue(ue: &[u8]) -> Result<(), String> {
    if !(1..=ciot_e2e::wire::hello::MAX_ID_LEN).contains(&ue.len()) {
        return Err(format!(
            "UE identifier must be 1 to 64 octets, got {}",
            ue.len()
        ));
    }
    if let Some(b) = ue.iter().find(|b| **b < 0x20 || **b == 0x7f) {
        return Err(format!(
            "UE identifier must hold no control character, got 0x{b:02x}"
        ));
    }
    Ok(())
}

/// The identifier as text when it is printable UTF-8; empty otherwise.
#[must_use]
pub fn ue_text(ue: &[u8]) -> String {
    match std::str::from_utf8(ue) {
        Ok(s) if !s.is_empty() && !s.chars().any(char::is_control) => s.to_string(),
        _ => String::new(),
    }
}

/// The identifier for a sentence: quoted text when printable, else hex.
#[must_use]
pub fn ue_display(ue: &[u8]) -> String {
    let t = ue_text(ue);
    if t.is_empty() {
        format!("0x{}", hex::encode(ue))
    } else {
        format!("{t:?}")
    }
}

fn is_empty(s: &str) -> bool {
    s.is_empty()
}

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
    /// Check-and-set: provision only when the UE's current generation is
    /// this (0: the UE has no root, never provisioned or revoked); 409
    /// otherwise, nothing changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_generation: Option<u64>,
}

/// What a provisioning made.
#[derive(Serialize, Deserialize, Debug)]
pub struct ProvisionResponse {
    /// The UE as text, when printable.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub ue: String,
    /// The UE's octets, hex.
    pub ue_hex: String,
    /// Its enterprise.
    pub enterprise: String,
    /// The new generation.
    pub generation: u64,
}

/// A revocation: the UE's root is destroyed.
#[derive(Serialize, Deserialize, Debug)]
pub struct RevokeResponse {
    /// The UE as text, when printable.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub ue: String,
    /// The UE's octets, hex.
    pub ue_hex: String,
    /// Its enterprise.
    pub enterprise: String,
    /// The generation revoked; the next provisioning gets the one above.
    pub generation: u64,
    /// Always true.
    pub revoked: bool,
}

/// A UE's current root.
#[derive(Serialize, Deserialize)]
pub struct RootResponse {
    /// The UE as text, when printable.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub ue: String,
    /// The UE's octets, hex.
    pub ue_hex: String,
    /// The identity of the EMKS database it comes from, 32 hex digits.
    pub store: String,
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
            .field("ue_hex", &self.ue_hex)
            .field("store", &self.store)
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

/// A UE's root as the EMKS answers it to an EESE.
#[derive(Debug)]
pub struct RootAnswer {
    /// The identity of the EMKS database, 32 hex digits: another value than
    /// before means a wiped or restored database (every cached root is
    /// suspect).
    pub store: String,
    /// The root's generation.
    pub generation: u64,
    /// e2e_int_key.
    pub root: RootKey,
}

/// One generation change.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ChangeEntry {
    /// The UE as text, when printable (empty otherwise).
    #[serde(default, skip_serializing_if = "is_empty")]
    pub ue: String,
    /// The UE's octets, hex (authoritative).
    #[serde(default)]
    pub ue_hex: String,
    /// Its new generation; for a revocation, the generation revoked.
    pub generation: u64,
    /// The root was revoked: the UE has none now.
    #[serde(default)]
    pub revoked: bool,
}

impl ChangeEntry {
    /// The UE's octets (from `ue_hex`); `None` when they are not a valid
    /// identifier.
    #[must_use]
    pub fn ue_octets(&self) -> Option<Vec<u8>> {
        let b = hex::decode(&self.ue_hex).ok()?;
        check_ue(&b).ok()?;
        Some(b)
    }
}

/// Changes after `since` for the caller's enterprise.
#[derive(Serialize, Deserialize, Debug)]
pub struct ChangesResponse {
    /// The identity of the EMKS database, 32 hex digits.
    pub store: String,
    /// Ask with `since` = this next time.
    pub next: u64,
    /// The changes (empty when the wait ran out).
    pub changes: Vec<ChangeEntry>,
    /// `since` was older than the log keeps: every cached root may be stale.
    #[serde(default)]
    pub reset: bool,
}

/// An error answer.
#[derive(Serialize, Deserialize, Debug)]
pub struct ErrorBody {
    /// One sentence.
    pub error: String,
}
