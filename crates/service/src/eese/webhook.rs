//! The webhook sender: posts every uplink record of the outbox
//! ([`Outbox`], in the state file) to the enterprise's webhook, signed as
//! **Standard Webhooks** (standardwebhooks.com) specifies, until the webhook
//! acknowledges it with a 2xx; only then is the record deleted.
//!
//! - **Headers.** `webhook-id`: `msg_<state file identity hex>_<outbox key>`,
//!   the same on every attempt for one payload and never used for another
//!   (not across restarts, nor across a new state file); a receiver drops
//!   duplicates by it. `webhook-timestamp`: unix seconds of this attempt.
//!   `webhook-signature`: `v1,<base64 of HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`,
//!   with the key the base64 after `whsec_` in `--webhook-secret-file`.
//! - **Body** ([`body`]): `{"type": "uplink", "ue": <id as text, or null>,
//!   "ue_hex", "payload": <hex>, "ksi", "seq", "received_at": <unix ms>}`.
//! - **Retries.** Anything but a 2xx (a status, a timeout, a refused
//!   connection) is retried with exponential back-off and full jitter
//!   ([`WebhookConfig::backoff_min`] doubling to [`WebhookConfig::backoff_max`]),
//!   without a cap on attempts while the record is younger than
//!   [`WebhookConfig::max_age`]; older records are dropped with a line on
//!   stderr and counted (`ciot_eese_webhook_expired_total`).
//! - **Order.** A UE's next record is not posted before its previous one
//!   was acknowledged; different UEs are posted in parallel, at most
//!   [`WebhookConfig::max_in_flight`] at a time.
//! - **Durability.** The records are in the state file, so a restarted EESE
//!   posts what a previous process left; delivery is at least once (a
//!   crash between the webhook's 2xx and the deletion's commit sends that
//!   record again, under the same `webhook-id`).
//!
//! HTTP is ureq (blocking, already the client of the EMKS fetches, with
//! rustls and the webpki roots for `https://`) inside
//! `tokio::task::spawn_blocking`, one call per record with a timeout
//! ([`WebhookConfig::timeout`]); hyper is in the tree only as a server, and
//! a hyper client would need its connector and TLS plumbing written here.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ciot_e2e::endpoint::UeId;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::metrics::{Metrics, inc};
use super::state::Uplink;
use super::store::OutboxHandle as Outbox;
use crate::ServiceError;

/// Outbox records looked at per pass (the heads of the UEs among them are
/// posted).
const SCAN: usize = 4096;

/// The webhook's signing key (`whsec_<base64>`); zeroized on drop, never
/// printed.
pub struct WebhookSecret {
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

impl WebhookSecret {
    /// Parses `whsec_<base64>` (surrounding white space ignored). The key
    /// must be 24 to 64 octets, as Standard Webhooks recommends.
    ///
    /// # Errors
    /// [`ServiceError::Usage`] with a sentence (the secret is not quoted).
    pub fn parse(text: &str) -> Result<Self, ServiceError> {
        let t = text.trim();
        let Some(b64) = t.strip_prefix("whsec_") else {
            return Err(ServiceError::Usage(
                "the webhook secret must be whsec_ followed by base64 (Standard Webhooks)".into(),
            ));
        };
        let key = Zeroizing::new(B64.decode(b64).map_err(|_| {
            ServiceError::Usage("the webhook secret's part after whsec_ is not base64".into())
        })?);
        if !(24..=64).contains(&key.len()) {
            return Err(ServiceError::Usage(format!(
                "the webhook secret's key is {} octets; it must be 24 to 64",
                key.len()
            )));
        }
        Ok(WebhookSecret { key })
    }

    /// Reads and parses the secret file; refused when group or others may
    /// read it.
    ///
    /// # Errors
    /// [`ServiceError::Usage`] with a sentence naming the file.
    pub fn from_file(path: &Path) -> Result<Self, ServiceError> {
        let p = path.display();
        let meta = std::fs::metadata(path)
            .map_err(|e| ServiceError::Usage(format!("--webhook-secret-file {p}: {e}")))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(ServiceError::Usage(format!(
                    "--webhook-secret-file {p} is readable by group or others (mode {mode:o}): \
                     chmod 600 {p}"
                )));
            }
        }
        #[cfg(not(unix))]
        let _ = meta;
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| ServiceError::Usage(format!("--webhook-secret-file {p}: {e}")))?,
        );
        Self::parse(&text).map_err(|e| ServiceError::Usage(format!("{p}: {e}")))
    }

    /// `v1,<base64 of HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
    #[must_use]
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key) else {
            // HMAC takes keys of any length.
            return String::new();
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
    }
}

/// How the sender posts.
#[derive(Debug)]
pub struct WebhookConfig {
    /// `http://…` or `https://…`.
    pub url: String,
    /// The signing key; without one the posts carry no `webhook-signature`
    /// (the receiver then cannot tell them from anyone's).
    pub secret: Option<WebhookSecret>,
    /// Records older than this are dropped undelivered (default 24 h).
    pub max_age: Duration,
    /// First retry delay bound (default 250 ms); doubles per failure.
    pub backoff_min: Duration,
    /// Largest retry delay bound (default 60 s).
    pub backoff_max: Duration,
    /// The outbox is looked at this often without a wake-up (default 1 s).
    pub poll: Duration,
    /// Posts in flight at most (different UEs; default 8).
    pub max_in_flight: usize,
    /// Timeout of one post (default 10 s).
    pub timeout: Duration,
}

impl WebhookConfig {
    /// The defaults for this URL and secret.
    ///
    /// # Errors
    /// [`ServiceError::Usage`] when the URL is not `http(s)://`.
    pub fn new(url: &str, secret: Option<WebhookSecret>) -> Result<Self, ServiceError> {
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(ServiceError::Usage(format!(
                "--webhook must be an http(s):// URL, got {url:?}"
            )));
        }
        Ok(WebhookConfig {
            url: url.to_string(),
            secret,
            max_age: Duration::from_secs(24 * 3600),
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            max_in_flight: 8,
            timeout: Duration::from_secs(10),
        })
    }
}

/// The UE id as text when it is printable UTF-8.
fn ue_text(ue: &UeId) -> Option<&str> {
    std::str::from_utf8(ue.as_bytes())
        .ok()
        .filter(|s| !s.chars().any(char::is_control))
}

/// The JSON body posted for one record.
#[must_use]
pub fn body(u: &Uplink) -> Vec<u8> {
    let v = serde_json::json!({
        "type": "uplink",
        "ue": ue_text(&u.ue),
        "ue_hex": hex::encode(u.ue.as_bytes()),
        "payload": hex::encode(&u.payload),
        "ksi": u.ksi,
        "seq": u.seq,
        "received_at": u.received_ms,
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A UE whose head record failed: when it may be tried again.
struct Retry {
    key: u64,
    attempts: u32,
    at: Instant,
}

/// A uniformly random delay in `[0, min(max, min * 2^attempts))`, at least
/// a millisecond (full jitter).
fn jitter(cfg: &WebhookConfig, attempts: u32) -> Duration {
    let bound = cfg
        .backoff_min
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(30))
        .min(cfg.backoff_max);
    let ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX).max(1);
    let mut r = [0u8; 8];
    let r = getrandom::fill(&mut r).map_or(ms / 2, |()| u64::from_le_bytes(r) % ms);
    Duration::from_millis(r.max(1))
}

/// One post of one record; on a 2xx the record is deleted. True when
/// delivered.
fn post(
    agent: &ureq::Agent,
    cfg: &WebhookConfig,
    outbox: &Outbox,
    key: u64,
    u: &Uplink,
) -> Result<(), String> {
    let body = body(u);
    let id = outbox.message_id(key);
    let ts = wall_ms() / 1000;
    let mut req = agent
        .post(&cfg.url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", ts.to_string());
    if let Some(s) = &cfg.secret {
        req = req.header("webhook-signature", s.sign(&id, ts, &body));
    }
    match req.send(&body[..]) {
        Ok(r) if r.status().is_success() => outbox
            .ack(&[key])
            .map(|_| ())
            .map_err(|e| format!("delivered, but not deleted from the outbox: {e}")),
        Ok(r) => Err(format!("status {}", r.status().as_u16())),
        Err(e) => Err(e.to_string()),
    }
}

/// Posts the outbox's records until the task is dropped (aborted). Woken
/// by `wake` when the service committed new records; it also looks at the
/// outbox every [`WebhookConfig::poll`], and starts with what a previous
/// process left.
pub async fn run(
    outbox: impl Into<Outbox>,
    cfg: WebhookConfig,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
) {
    let outbox: Outbox = outbox.into();
    let cfg = Arc::new(cfg);
    let agent = crate::tls::plain_agent(cfg.timeout);
    let max_age_ms = u64::try_from(cfg.max_age.as_millis()).unwrap_or(u64::MAX);
    let mut tasks: JoinSet<(UeId, u64, Result<(), String>)> = JoinSet::new();
    let mut busy: HashSet<UeId> = HashSet::new();
    let mut retry: HashMap<UeId, Retry> = HashMap::new();
    let mut failing = false;
    loop {
        let now = Instant::now();
        let now_ms = wall_ms();
        let mut next_look = now + cfg.poll;
        match outbox.next(None, SCAN) {
            Ok(recs) => {
                let mut seen: HashSet<UeId> = HashSet::new();
                let mut expired = Vec::new();
                for (key, u) in recs {
                    if seen.contains(&u.ue) {
                        continue;
                    }
                    if busy.contains(&u.ue) {
                        seen.insert(u.ue);
                        continue;
                    }
                    if now_ms.saturating_sub(u.received_ms) > max_age_ms {
                        // Not marked seen: the UE's next record is its head now.
                        expired.push((key, u));
                        continue;
                    }
                    seen.insert(u.ue);
                    if let Some(r) = retry.get(&u.ue) {
                        if r.key == key && r.at > now {
                            next_look = next_look.min(r.at);
                            continue;
                        }
                    }
                    if tasks.len() >= cfg.max_in_flight.max(1) {
                        continue;
                    }
                    busy.insert(u.ue);
                    let (agent, cfg, outbox) = (agent.clone(), cfg.clone(), outbox.clone());
                    tasks.spawn(async move {
                        let ue = u.ue;
                        let r = tokio::task::spawn_blocking(move || {
                            post(&agent, &cfg, &outbox, key, &u)
                        })
                        .await
                        .unwrap_or_else(|e| Err(format!("post task: {e}")));
                        (ue, key, r)
                    });
                }
                if !expired.is_empty() {
                    let keys: Vec<u64> = expired.iter().map(|(k, _)| *k).collect();
                    match outbox.ack(&keys) {
                        Ok(_) => {
                            for (key, u) in &expired {
                                inc(&metrics.webhook_expired);
                                retry.remove(&u.ue);
                                eprintln!(
                                    "eese: webhook: dropped {} (UE {}, seq {}) undelivered: older than --webhook-max-age ({} s)",
                                    outbox.message_id(*key),
                                    u.ue,
                                    u.seq,
                                    cfg.max_age.as_secs()
                                );
                            }
                        }
                        Err(e) => eprintln!("eese: webhook: outbox: {e}"),
                    }
                }
            }
            Err(e) => eprintln!("eese: webhook: outbox: {e}"),
        }
        if let Ok(d) = outbox.depth() {
            metrics.webhook_queue_depth.store(d, Ordering::Relaxed);
        }
        if let Ok(o) = outbox.oldest_received_ms() {
            let age = o.map_or(0, |t| wall_ms().saturating_sub(t) / 1000);
            metrics
                .webhook_oldest_age_seconds
                .store(age, Ordering::Relaxed);
        }

        let mut done = Vec::new();
        tokio::select! {
            Some(r) = tasks.join_next(), if !tasks.is_empty() => done.push(r),
            () = wake.notified() => {}
            () = tokio::time::sleep_until(next_look) => {}
        }
        while let Some(r) = tasks.try_join_next() {
            done.push(r);
        }
        for r in done {
            let Ok((ue, key, result)) = r else {
                // Only when the task itself failed: look at all UEs again.
                busy.clear();
                continue;
            };
            busy.remove(&ue);
            match result {
                Ok(()) => {
                    inc(&metrics.webhook_delivered);
                    inc(&metrics.webhook_ok);
                    retry.remove(&ue);
                    if failing {
                        failing = false;
                        eprintln!("eese: webhook: delivering again");
                    }
                }
                Err(why) => {
                    inc(&metrics.webhook_failed);
                    inc(&metrics.webhook_retries);
                    if !failing {
                        failing = true;
                        eprintln!("eese: webhook: {why}; retrying with back-off");
                    }
                    let attempts = match retry.get(&ue) {
                        Some(r) if r.key == key => r.attempts + 1,
                        _ => 1,
                    };
                    retry.insert(
                        ue,
                        Retry {
                            key,
                            attempts,
                            at: Instant::now() + jitter(&cfg, attempts),
                        },
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_standard_webhooks_published_example() {
        // The example of the Standard Webhooks specification (the same
        // vector the Svix libraries test their `sign` against).
        let s = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        assert_eq!(
            s.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn malformed_secrets_are_refused_with_a_sentence_that_does_not_quote_them() {
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_not base64!",
            "whsec_c2hvcnQ=",
            "",
        ] {
            let e = WebhookSecret::parse(bad).expect_err(bad).to_string();
            assert!(e.contains("webhook secret"), "{e}");
            if bad.len() > 8 {
                assert!(!e.contains(&bad[6..]), "{e}");
            }
        }
        assert_eq!(
            format!(
                "{:?}",
                WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            ),
            "Ok(WebhookSecret(..))"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_secret_file_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let p = std::env::temp_dir().join(format!("ciot-whsec-{}", std::process::id()));
        std::fs::write(&p, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = WebhookSecret::from_file(&p).expect_err("0644").to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        WebhookSecret::from_file(&p).expect("0600");
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn only_http_urls_are_taken() {
        assert!(WebhookConfig::new("ftp://x", None).is_err());
        assert!(WebhookConfig::new("localhost:80", None).is_err());
        let c = WebhookConfig::new("https://hooks.example/x", None).expect("https");
        assert_eq!(
            (c.max_age, c.max_in_flight),
            (Duration::from_secs(86_400), 8)
        );
    }

    #[test]
    fn the_body_names_the_ue_as_text_only_when_it_is_printable_utf8() {
        let u = |id: &[u8]| Uplink {
            ue: UeId::new(id).expect("id"),
            payload: vec![0xde, 0xad],
            ksi: 3,
            seq: 9,
            received_ms: 1_750_000_000_123,
        };
        let v: serde_json::Value = serde_json::from_slice(&body(&u(b"imsi-001"))).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"type": "uplink", "ue": "imsi-001", "ue_hex": "696d73692d303031",
                "payload": "dead", "ksi": 3, "seq": 9, "received_at": 1_750_000_000_123_u64})
        );
        for id in [&[0xffu8, 0x01][..], b"a\nb"] {
            let v: serde_json::Value = serde_json::from_slice(&body(&u(id))).expect("json");
            assert_eq!(v["ue"], serde_json::Value::Null);
            assert_eq!(v["ue_hex"], hex::encode(id));
        }
    }

    #[test]
    fn back_off_doubles_up_to_the_cap_with_full_jitter() {
        let mut c = WebhookConfig::new("http://x", None).expect("cfg");
        c.backoff_min = Duration::from_millis(100);
        c.backoff_max = Duration::from_millis(1000);
        for _ in 0..50 {
            assert!(jitter(&c, 1) <= Duration::from_millis(100));
            assert!(jitter(&c, 3) <= Duration::from_millis(400));
            assert!(jitter(&c, 40) <= Duration::from_millis(1000));
        }
    }
}
