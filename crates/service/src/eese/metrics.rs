//! The EESE's counters, rendered in the Prometheus text format
//! (`GET /metrics` on the admin interface).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a datagram was dropped, as the metrics label it.
pub const REJECT_REASONS: [&str; 19] = [
    "malformed",
    "unexpected",
    "unauthentic",
    "replayed",
    "too_old",
    "unknown_ksi",
    "expired_ksi",
    "retired_ksi",
    "stale",
    "no_session",
    "unknown_ue",
    "root_pending",
    "emks_unreachable",
    "fetch_limited",
    "profile_mismatch",
    "unsupported_suite",
    "lease_lapsed",
    "state_unavailable",
    "other",
];

/// Upper bounds of the EMKS fetch latency histogram, in seconds.
pub const LATENCY_BUCKETS: [f64; 8] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// The counters; shared between the service loop and the admin server.
#[derive(Default)]
pub struct Metrics {
    /// Sessions in the table plus those waiting to be restored.
    pub sessions: AtomicU64,
    /// Datagrams received.
    pub datagrams_in: AtomicU64,
    /// Datagrams sent.
    pub datagrams_out: AtomicU64,
    /// Payloads delivered (uplink).
    pub delivered: AtomicU64,
    /// Payloads sent (downlink).
    pub payloads_sent: AtomicU64,
    /// Keysets offered (triggers with CONFIRM made).
    pub offers: AtomicU64,
    /// Keysets taken into use (the UE used an offer).
    pub rekeys: AtomicU64,
    /// Derive triggers sent.
    pub triggers_sent: AtomicU64,
    /// Key-expired errors sent.
    pub errors_sent: AtomicU64,
    /// Snapshots written.
    pub snapshots_written: AtomicU64,
    /// Durable state transactions.
    pub state_commits: AtomicU64,
    rejects: [AtomicU64; REJECT_REASONS.len()],
    /// Root fetches that succeeded.
    pub emks_fetches_ok: AtomicU64,
    /// Root fetches that failed (unreachable or refused).
    pub emks_fetches_failed: AtomicU64,
    latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_micros: AtomicU64,
    /// RANDs received from the EMKS.
    pub emks_rands: AtomicU64,
    /// Root generation changes applied.
    pub root_changes: AtomicU64,
    /// Uplink payloads handed to the webhook / that it refused.
    pub webhook_ok: AtomicU64,
    /// Webhook calls that failed.
    pub webhook_failed: AtomicU64,
    /// Uplink records in the outbox, waiting for the webhook (gauge).
    pub webhook_queue_depth: AtomicU64,
    /// Age of the oldest record in the outbox, in seconds (gauge).
    pub webhook_oldest_age_seconds: AtomicU64,
    /// Webhook attempts that failed and will be retried.
    pub webhook_retries: AtomicU64,
    /// Outbox records the webhook acknowledged (2xx).
    pub webhook_delivered: AtomicU64,
    /// Outbox records dropped undelivered, older than `--webhook-max-age`.
    pub webhook_expired: AtomicU64,
    /// Downlink payloads (`admin send`) queued for their UE and kept in the
    /// state file until they go out (gauge).
    pub downlink_waiting: AtomicU64,
    /// UEs another instance took over (a shared database): their sessions
    /// were dropped here.
    pub ues_moved: AtomicU64,
    /// Sessions read from a shared database for a hello (at most one per
    /// UE while its session stays in memory here).
    pub sessions_read: AtomicU64,
    /// Times this instance's lease ran out (a shared database unreachable,
    /// or the process stopped) and it dropped every session.
    pub lease_lapses: AtomicU64,
}

/// Adds one.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Counts a dropped datagram under `reason` (one of [`REJECT_REASONS`]).
    pub fn reject(&self, reason: &str) {
        let i = REJECT_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(REJECT_REASONS.len() - 1);
        if let Some(c) = self.rejects.get(i) {
            inc(c);
        }
    }

    /// Drops counted under `reason`.
    #[must_use]
    pub fn rejects(&self, reason: &str) -> u64 {
        REJECT_REASONS
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.rejects.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Records one EMKS fetch's latency.
    pub fn fetch_latency(&self, d: std::time::Duration) {
        let s = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        if let Some(c) = self.latency.get(i) {
            inc(c);
        }
        self.latency_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The Prometheus text exposition format, version 0.0.4.
    #[must_use]
    pub fn render(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut s = String::with_capacity(4096);
        let mut one = |name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        one(
            "ciot_eese_sessions",
            "gauge",
            "UE sessions held (restored or waiting for their next hello).",
            g(&self.sessions),
        );
        one(
            "ciot_eese_datagrams_received_total",
            "counter",
            "Datagrams received.",
            g(&self.datagrams_in),
        );
        one(
            "ciot_eese_datagrams_sent_total",
            "counter",
            "Datagrams sent.",
            g(&self.datagrams_out),
        );
        one(
            "ciot_eese_payloads_delivered_total",
            "counter",
            "Uplink payloads delivered.",
            g(&self.delivered),
        );
        one(
            "ciot_eese_payloads_sent_total",
            "counter",
            "Downlink payloads sent.",
            g(&self.payloads_sent),
        );
        one(
            "ciot_eese_offers_total",
            "counter",
            "Keysets offered to UEs (derive triggers with CONFIRM).",
            g(&self.offers),
        );
        one(
            "ciot_eese_rekeys_total",
            "counter",
            "Keysets taken into use (a UE used an offer).",
            g(&self.rekeys),
        );
        one(
            "ciot_eese_triggers_sent_total",
            "counter",
            "Derive triggers sent.",
            g(&self.triggers_sent),
        );
        one(
            "ciot_eese_errors_sent_total",
            "counter",
            "Key-expired errors sent.",
            g(&self.errors_sent),
        );
        one(
            "ciot_eese_snapshots_written_total",
            "counter",
            "Session snapshots written to the state file.",
            g(&self.snapshots_written),
        );
        one(
            "ciot_eese_state_commits_total",
            "counter",
            "Durable transactions on the state file.",
            g(&self.state_commits),
        );
        one(
            "ciot_eese_emks_rands_total",
            "counter",
            "RANDs received from the EMKS.",
            g(&self.emks_rands),
        );
        one(
            "ciot_eese_root_changes_total",
            "counter",
            "New root generations applied.",
            g(&self.root_changes),
        );
        one(
            "ciot_eese_webhook_calls_total",
            "counter",
            "Uplink payloads handed to the webhook.",
            g(&self.webhook_ok),
        );
        one(
            "ciot_eese_webhook_failures_total",
            "counter",
            "Webhook calls that failed.",
            g(&self.webhook_failed),
        );
        one(
            "ciot_eese_downlink_waiting",
            "gauge",
            "Downlink payloads queued for their UE, kept in the state file until they go out.",
            g(&self.downlink_waiting),
        );
        one(
            "ciot_eese_webhook_queue_depth",
            "gauge",
            "Uplink payloads in the outbox, waiting for the webhook.",
            g(&self.webhook_queue_depth),
        );
        one(
            "ciot_eese_webhook_oldest_age_seconds",
            "gauge",
            "Age of the oldest uplink payload in the outbox.",
            g(&self.webhook_oldest_age_seconds),
        );
        one(
            "ciot_eese_webhook_retries_total",
            "counter",
            "Webhook attempts that failed (status, timeout, connection) and are retried.",
            g(&self.webhook_retries),
        );
        one(
            "ciot_eese_webhook_delivered_total",
            "counter",
            "Outbox payloads the webhook acknowledged with a 2xx.",
            g(&self.webhook_delivered),
        );
        one(
            "ciot_eese_webhook_expired_total",
            "counter",
            "Outbox payloads dropped undelivered after --webhook-max-age.",
            g(&self.webhook_expired),
        );
        one(
            "ciot_eese_ues_moved_total",
            "counter",
            "UEs another instance took over (shared state); their sessions were dropped here.",
            g(&self.ues_moved),
        );
        one(
            "ciot_eese_sessions_read_total",
            "counter",
            "Sessions read from the shared database for an authentic hello (shared state).",
            g(&self.sessions_read),
        );
        one(
            "ciot_eese_lease_lapses_total",
            "counter",
            "Times the instance's lease ran out and it dropped every session (shared state).",
            g(&self.lease_lapses),
        );
        let _ = writeln!(
            s,
            "# HELP ciot_eese_rejects_total Datagrams dropped, by reason.\n# TYPE ciot_eese_rejects_total counter"
        );
        for (r, c) in REJECT_REASONS.iter().zip(&self.rejects) {
            let _ = writeln!(s, "ciot_eese_rejects_total{{reason=\"{r}\"}} {}", g(c));
        }
        let _ = writeln!(
            s,
            "# HELP ciot_eese_emks_fetches_total Root fetches from the EMKS, by result.\n# TYPE ciot_eese_emks_fetches_total counter"
        );
        let _ = writeln!(
            s,
            "ciot_eese_emks_fetches_total{{result=\"ok\"}} {}",
            g(&self.emks_fetches_ok)
        );
        let _ = writeln!(
            s,
            "ciot_eese_emks_fetches_total{{result=\"failed\"}} {}",
            g(&self.emks_fetches_failed)
        );
        let _ = writeln!(
            s,
            "# HELP ciot_eese_emks_fetch_seconds Latency of root fetches from the EMKS.\n# TYPE ciot_eese_emks_fetch_seconds histogram"
        );
        let mut cum = 0;
        for (b, c) in LATENCY_BUCKETS.iter().zip(&self.latency) {
            cum += g(c);
            let _ = writeln!(s, "ciot_eese_emks_fetch_seconds_bucket{{le=\"{b}\"}} {cum}");
        }
        cum += self.latency.last().map_or(0, g);
        let _ = writeln!(
            s,
            "ciot_eese_emks_fetch_seconds_bucket{{le=\"+Inf\"}} {cum}"
        );
        let _ = writeln!(
            s,
            "ciot_eese_emks_fetch_seconds_sum {}",
            g(&self.latency_micros) as f64 / 1e6
        );
        let _ = writeln!(s, "ciot_eese_emks_fetch_seconds_count {cum}");
        s
    }
}
