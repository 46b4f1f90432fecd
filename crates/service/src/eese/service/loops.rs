//! The long-poll of the EMKS's root changes and the webhook sender, each on a thread of its own.

use super::*;

pub(super) fn changes_loop(emks: &EmksClient, tx: &Sender<Msg>) {
    let mut since: Option<u64> = None;
    let mut backoff = Duration::from_millis(500);
    loop {
        // The first call only learns where the log stands.
        let wait = if since.is_some() {
            Duration::from_secs(25)
        } else {
            Duration::ZERO
        };
        match emks.changes(since.unwrap_or(u64::MAX / 2), wait) {
            Ok(r) => {
                backoff = Duration::from_millis(500);
                if since.is_none() {
                    since = Some(r.next.min(u64::MAX / 2));
                    // What changed while we did not listen: look again.
                    if tx.send(Msg::Reset).is_err() {
                        return;
                    }
                    continue;
                }
                since = Some(r.next);
                if r.reset && tx.send(Msg::Reset).is_err() {
                    return;
                }
                for c in r.changes {
                    let Some(Ok(ue)) = c.ue_octets().map(|o| UeId::new(&o)) else {
                        continue;
                    };
                    // A revocation is taken as a newer generation: the
                    // cached root is fetched again (and found gone).
                    if tx
                        .send(Msg::Change {
                            ue,
                            generation: c.generation.saturating_add(u64::from(c.revoked)),
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            }
            Err(_) => {
                // The position is kept: the EMKS's log (100,000 changes)
                // still has what happened during the outage, and says
                // `reset` when it does not. No refetch per failed attempt
                // (that would be one fetch per cached root per retry).
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

pub(super) fn webhook_loop(url: &str, rx: &Receiver<(UeId, Vec<u8>)>, metrics: &Metrics) {
    let agent = crate::tls::plain_agent(Duration::from_secs(5));
    while let Ok((ue, payload)) = rx.recv() {
        let body = json!({ "ue": ue.to_string(), "payload": hex::encode(&payload) });
        match agent.post(url).send_json(&body) {
            Ok(r) if r.status().is_success() => inc(&metrics.webhook_ok),
            _ => inc(&metrics.webhook_failed),
        }
    }
}
