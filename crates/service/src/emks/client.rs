//! The EMKS's clients: the HSS side (`ciot-e2e emks provision`) and the
//! EESE's fetches. Blocking calls (the EESE runs them on worker threads).

use std::path::Path;
use std::time::Duration;

use ciot_e2e::kdf::{Rand, RootBytes, RootKey, RootKind};
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};

use super::api::{
    ChangesResponse, ErrorBody, ProvisionRequest, ProvisionResponse, RandRequest, RandResponse,
    RevokeResponse, RootAnswer, RootResponse, check_ue,
};
use crate::ServiceError;

/// What a path segment percent-encodes: everything but RFC 3986's
/// unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a path segment (RFC 3986 unreserved characters stay).
#[must_use]
pub fn path_segment(s: &str) -> String {
    path_segment_octets(s.as_bytes())
}

/// Percent-encodes the octets of a path segment, any octets.
#[must_use]
pub fn path_segment_octets(b: &[u8]) -> String {
    percent_encode(b, SEGMENT).to_string()
}

fn checked(ue: &[u8]) -> Result<(), ServiceError> {
    check_ue(ue).map_err(ServiceError::Usage)
}

/// Reads an answer: the body as `T` for 2xx, else the error it names.
pub(crate) fn answer<T: DeserializeOwned>(
    r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    what: &str,
) -> Result<T, ServiceError> {
    let mut r = r.map_err(|e| ServiceError::Unreachable(format!("{what}: {e}")))?;
    let status = r.status().as_u16();
    if (200..300).contains(&status) {
        r.body_mut()
            .with_config()
            .limit(1 << 20)
            .read_json::<T>()
            .map_err(|e| ServiceError::Io(format!("{what}: bad answer: {e}")))
    } else {
        let message = r
            .body_mut()
            .with_config()
            .limit(1 << 16)
            .read_json::<ErrorBody>()
            .map_or_else(|_| format!("{what} failed"), |b| b.error);
        Err(ServiceError::Refused { status, message })
    }
}

/// A client of the EMKS, with one identity from a TLS directory.
#[derive(Clone)]
pub struct EmksClient {
    base: String,
    agent: ureq::Agent,
}

impl EmksClient {
    /// A client of the EMKS at `url` (`https://host:port`) presenting
    /// `<stem>.crt` from `tls_dir`.
    ///
    /// # Errors
    /// [`ServiceError::Usage`] for a URL that is not `https://`; TLS file
    /// errors.
    pub fn new(
        url: &str,
        tls_dir: &Path,
        stem: &str,
        timeout: Duration,
    ) -> Result<Self, ServiceError> {
        if !url.starts_with("https://") {
            return Err(ServiceError::Usage(format!(
                "--emks must be an https:// URL, got {url:?}"
            )));
        }
        Ok(EmksClient {
            base: url.trim_end_matches('/').to_string(),
            agent: crate::tls::client_agent(tls_dir, stem, timeout)?,
        })
    }

    fn root_url(&self, ue: &[u8]) -> String {
        format!("{}/v1/ues/{}/root", self.base, path_segment_octets(ue))
    }

    /// The HSS side: provisions `root` for `ue` of `enterprise` (a new
    /// generation).
    ///
    /// # Errors
    /// [`ServiceError::Usage`] for an identifier that is not 1 to 64
    /// octets without control characters; [`ServiceError::Unreachable`],
    /// or the EMKS's refusal.
    pub fn provision(
        &self,
        ue: &[u8],
        enterprise: &str,
        kdf: &str,
        root: &[u8; 32],
    ) -> Result<ProvisionResponse, ServiceError> {
        self.provision_checked(ue, enterprise, kdf, root, None)
    }

    /// As [`EmksClient::provision`], only when the UE's current generation
    /// is `expected_generation` (0: it has no root); the EMKS answers 409
    /// naming the current generation otherwise.
    ///
    /// # Errors
    /// As [`EmksClient::provision`].
    pub fn provision_checked(
        &self,
        ue: &[u8],
        enterprise: &str,
        kdf: &str,
        root: &[u8; 32],
        expected_generation: Option<u64>,
    ) -> Result<ProvisionResponse, ServiceError> {
        checked(ue)?;
        let body = ProvisionRequest {
            enterprise: enterprise.to_string(),
            root: hex::encode(root),
            kdf: Some(kdf.to_string()),
            expected_generation,
        };
        let body = Zeroizing::new(
            serde_json::to_vec(&body).map_err(|e| ServiceError::Io(format!("provision: {e}")))?,
        );
        answer(
            self.agent
                .put(&self.root_url(ue))
                .header("content-type", "application/json")
                .send(body.as_slice()),
            "provision",
        )
    }

    /// The HSS side: revokes `ue`'s root. Returns the generation revoked.
    ///
    /// # Errors
    /// [`ServiceError::Refused`] with 404 when the UE has no root;
    /// [`ServiceError::Unreachable`].
    pub fn revoke(&self, ue: &[u8]) -> Result<u64, ServiceError> {
        checked(ue)?;
        let r: RevokeResponse = answer(self.agent.delete(&self.root_url(ue)).call(), "revoke")?;
        Ok(r.generation)
    }

    /// The EESE side: `ue`'s current root, its generation and the EMKS
    /// store it comes from.
    ///
    /// # Errors
    /// [`ServiceError::Refused`] with 404 for a UE that is not the caller's
    /// enterprise's, or has no root (revoked); [`ServiceError::Unreachable`].
    pub fn root(&self, ue: &[u8]) -> Result<RootAnswer, ServiceError> {
        checked(ue)?;
        let r: RootResponse = answer(self.agent.get(&self.root_url(ue)).call(), "root fetch")?;
        let hex_root = Zeroizing::new(r.root);
        let mut b = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_root.as_bytes(), &mut *b)
            .map_err(|_| ServiceError::Io("root fetch: root is not 64 hex digits".into()))?;
        Ok(RootAnswer {
            store: r.store,
            generation: r.generation,
            root: RootKey::new(RootKind::IntKey, RootBytes::from_bytes(*b)),
        })
    }

    /// `n` RANDs from the EMKS.
    ///
    /// # Errors
    /// [`ServiceError::Unreachable`], or the EMKS's refusal.
    pub fn rands(&self, n: usize) -> Result<Vec<Rand>, ServiceError> {
        let r: RandResponse = answer(
            self.agent
                .post(&format!("{}/v1/rand", self.base))
                .send_json(&RandRequest { count: Some(n) }),
            "RAND",
        )?;
        r.rands
            .iter()
            .map(|h| {
                let mut x = [0u8; 16];
                hex::decode_to_slice(h, &mut x)
                    .map(|()| Rand(x))
                    .map_err(|_| ServiceError::Io("RAND: not 32 hex digits".into()))
            })
            .collect()
    }

    /// Root generation changes after `since`, waiting up to `wait` for one.
    ///
    /// # Errors
    /// [`ServiceError::Unreachable`], or the EMKS's refusal.
    pub fn changes(&self, since: u64, wait: Duration) -> Result<ChangesResponse, ServiceError> {
        answer(
            self.agent
                .get(&format!(
                    "{}/v1/changes?since={since}&wait={}",
                    self.base,
                    wait.as_secs()
                ))
                .call(),
            "changes",
        )
    }
}
