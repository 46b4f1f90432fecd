//! The EMKS's clients: the HSS side (`ciot-e2e emks provision`) and the
//! EESE's fetches. Blocking calls (the EESE runs them on worker threads).

use std::path::Path;
use std::time::Duration;

use ciot_e2e::kdf::{Rand, RootBytes, RootKey, RootKind};
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use super::api::{
    ChangesResponse, ErrorBody, ProvisionRequest, ProvisionResponse, RandRequest, RandResponse,
    RootResponse,
};
use crate::ServiceError;

/// Percent-encodes a path segment (RFC 3986 unreserved characters stay).
/// Hand-written: eight lines, and the one place a path is built.
#[must_use]
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
/// A root as the EMKS hands it out.
#[derive(Debug)]
pub struct RootAnswer {
    /// The identity of the EMKS's database.
    pub store: String,
    /// The root's generation.
    pub generation: u64,
    /// The root.
    pub root: RootKey,
}

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

    fn root_url(&self, ue: &str) -> String {
        format!("{}/v1/ues/{}/root", self.base, path_segment(ue))
    }

    /// The HSS side: provisions `root` for `ue` of `enterprise`.
    ///
    /// # Errors
    /// [`ServiceError::Unreachable`], or the EMKS's refusal.
    pub fn provision(
        &self,
        ue: &str,
        enterprise: &str,
        kdf: &str,
        root: &[u8; 32],
    ) -> Result<ProvisionResponse, ServiceError> {
        let body = ProvisionRequest {
            enterprise: enterprise.to_string(),
            root: hex::encode(root),
            kdf: Some(kdf.to_string()),
        };
        answer(
            self.agent.put(&self.root_url(ue)).send_json(&body),
            "provision",
        )
    }

    /// The EESE side: `ue`'s current root and its generation.
    ///
    /// # Errors
    /// [`ServiceError::Refused`] with 404 for a UE that is not the caller's
    /// enterprise's; [`ServiceError::Unreachable`].
    pub fn root(&self, ue: &[u8]) -> Result<RootAnswer, ServiceError> {
        let ue = String::from_utf8_lossy(ue);
        let r: RootResponse = answer(self.agent.get(&self.root_url(&ue)).call(), "root fetch")?;
        let hex_root = Zeroizing::new(r.root);
        let mut b = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_root.as_bytes(), &mut *b)
            .map_err(|_| ServiceError::Io("root fetch: root is not 64 hex digits".into()))?;
        Ok(RootAnswer {
            store: String::new(),
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
