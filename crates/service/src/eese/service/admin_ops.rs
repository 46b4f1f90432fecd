//! The enterprise's commands (admin interface) applied to the table.

use std::time::{Duration, Instant as StdInstant};

use ciot_e2e::endpoint::{Instant, KeysetState, UeId};
use serde_json::{Value, json};

use super::EeseService;
use crate::ServiceError;
use crate::admin::{self, Command, Reply, Request2};

impl EeseService {
    /// Makes sure `ue` is in the table (restored if it waits), or parks the
    /// request until its root arrives. `Err` carries the request back when
    /// it was answered or parked.
    pub(super) fn ensure_session(&mut self, ue: &UeId, r: Request2) -> Option<Request2> {
        if self.driver.table().contains(ue) {
            return Some(r);
        }
        if !self.pending.contains_key(ue) {
            let _ = r.reply.send(Err((
                404,
                format!(
                    "no session for UE {} (it has not said hello)",
                    admin::ue_label(ue)
                ),
            )));
            return None;
        }
        if self.roots.contains(ue) {
            self.restore_pending(ue);
            return Some(r);
        }
        if let Some(f) = self.roots.fetch_state(ue)
            && f.unreachable
            && !f.in_flight
            && f.retry_at.is_some_and(|t| StdInstant::now() < t)
        {
            let _ = r.reply.send(Err((
                503,
                format!(
                    "the EMKS is unreachable: the root of {} cannot be fetched; try again",
                    admin::ue_label(ue)
                ),
            )));
            return None;
        }
        self.parked.entry(*ue).or_default().push(r);
        self.roots.request(ue, true);
        None
    }

    pub(super) fn admin(&mut self, r: Request2) -> Result<(), ServiceError> {
        let now = self.io.clock.now();
        let ue = r.command.ue().copied();
        let Some(r) = self.admin_remote(r) else {
            return Ok(());
        };
        let r = match ue {
            Some(ue) => match self.ensure_session(&ue, r) {
                Some(r) => r,
                None => return Ok(()),
            },
            None => r,
        };
        let reply: Reply = match (&r.command, ue) {
            (Command::Expire(u), Some(id)) => {
                self.driver.table_mut().expire_now(now, &id);
                self.io
                    .log(format_args!("{id}: keys expired by the enterprise"));
                Ok(json!({ "ue": admin::ue_text(u), "expired": true }))
            }
            (Command::ExpireAll, _) => {
                // Sessions still waiting for their hello hold a retired
                // keyset already: expired in effect.
                let n = self.driver.table_mut().expire_all(now);
                self.io.log(format_args!(
                    "all keys expired by the enterprise ({n} sessions)"
                ));
                Ok(json!({ "expired": n, "waiting_for_hello": self.pending.len() }))
            }
            (Command::Te2e(u, secs), Some(id)) => {
                self.driver
                    .table_mut()
                    .set_te2e(&id, Some(Duration::from_secs(u64::from(*secs))));
                Ok(json!({ "ue": admin::ue_text(u), "te2e_secs": secs }))
            }
            (Command::Show(_), Some(id)) => Ok(self.show(now, &id)),
            (Command::Send(u, p), Some(id)) => match self.send_payload(&id, p) {
                Ok(outcome) => {
                    Ok(json!({ "ue": admin::ue_text(u), "outcome": outcome, "octets": p.len() }))
                }
                Err(ServiceError::Refused { status, message }) => Err((status, message)),
                Err(e) => Err((500, e.to_string())),
            },
            _ => Err((500, "internal: command without UE".into())),
        };
        let _ = r.reply.send(reply);
        Ok(())
    }

    pub(super) fn show(&self, now: Instant, id: &UeId) -> Value {
        let u = admin::ue_text(id);
        let Some(s) = self.driver.table().status(now, id) else {
            return json!({ "ue": u, "session": null });
        };
        let keyset = s.keyset.map(|k| {
            let (state, left) = match k.state {
                KeysetState::Valid { remaining } => {
                    ("valid".to_string(), Some(remaining.as_secs_f64()))
                }
                KeysetState::Expired(c) => (format!("expired ({c})"), None),
                KeysetState::Retired => (
                    "retired (restored; the next contact starts a new keyset)".to_string(),
                    None,
                ),
            };
            json!({
                "ksi": k.ksi.0,
                "counter": k.counter,
                "state": state,
                "te2e_left_secs": left,
                "confirmed": k.confirmed,
                "next_seq": k.next_seq,
            })
        });
        // A keyset offered and not used by the UE yet (its trigger went out
        // with CONFIRM; nothing is sealed under it before the UE uses it).
        let offered = s
            .offered
            .map(|(ksi, counter)| json!({ "ksi": ksi.0, "counter": counter }));
        json!({
            "ue": u,
            "keyset": keyset,
            "offered": offered,
            "counter": s.counter,
            "te2e_secs": s.te2e.as_secs(),
            "rand_pending": s.rand_pending,
            "peer": self.driver.table().peer(id).map(ToString::to_string),
            "root_generation": self.roots.get(id).map(|c| c.generation),
            "quiet_secs": self.driver.table().last_active(id).map(|t| t.until(now).as_secs()),
        })
    }
}
