//! What the service does only when its state is in a database shared with
//! other instances (`--state postgres://…`): reading a UE's session when
//! its hello arrives, the other instances' notifications, the lease, and
//! admin requests for UEs another instance serves.

use ciot_e2e::endpoint::UeId;
use ciot_e2e::kdf::{PreparedRoot, RootKey};
use ciot_e2e::wire::ControlAuth;
use serde_json::json;

use super::EeseService;
use crate::ServiceError;
use crate::admin::{self, Command, Request2};
use crate::eese::metrics::inc;
use crate::eese::pg::{LEASE, Notice, SKEW};
use crate::eese::state::Downlink;

impl EeseService {
    /// `id`'s hello arrived and its session is not in memory: if the hello
    /// is authentic (checked here, so a forged one costs no database read),
    /// reads its stored session and restores it, with the downlink waiting
    /// for it (one round trip). True when a snapshot was restored. The first write for the
    /// UE then takes it over (see `crate::eese::pg`).
    pub(super) fn restore_shared(
        &mut self,
        id: &UeId,
        root: &RootKey,
        hello: &[u8],
    ) -> Result<bool, ServiceError> {
        let profile = self.driver.table().config().profile;
        let auth = ControlAuth::new(&PreparedRoot::new(root, profile).control_key());
        if auth.open_hello(hello).is_err() {
            // The table refuses it as it would any forged hello.
            return Ok(false);
        }
        let Some(pg) = self.io.state.pg() else {
            return Ok(false);
        };
        inc(&self.io.metrics.sessions_read);
        let (snap, rows) = pg.load_with_downlink(id)?;
        let restored = match snap {
            Some(snap) => match self.driver.table_mut().restore(*id, root.clone(), &snap) {
                Ok(()) => true,
                Err(e) => {
                    // As for a state file: the UE starts afresh, safely (its
                    // hello's counter and a fresh RAND).
                    self.io.log(format_args!(
                        "{id}: stored snapshot not restored ({e}); new session"
                    ));
                    false
                }
            },
            None => false,
        };
        self.merge_downlink(id, rows);
        Ok(restored)
    }

    /// What another instance told this one.
    pub(super) fn notice(&mut self, n: Notice) -> Result<(), ServiceError> {
        match n {
            Notice::Moved(id, epoch) => {
                let moved = self.io.state.pg().is_some_and(|pg| pg.on_moved(&id, epoch));
                if moved && self.driver.table().contains(&id) {
                    self.leave(&id, "taken over by another instance");
                }
            }
            Notice::Downlink(id) => {
                if self.driver.table().contains(&id)
                    && let Some(pg) = self.io.state.pg()
                {
                    match pg.downlinks_of(&id) {
                        Ok(rows) => self.merge_downlink(&id, rows),
                        // Read again when the UE next says hello here.
                        Err(e) => self
                            .io
                            .log(format_args!("{id}: stored downlink not read: {e}")),
                    }
                }
            }
            Notice::Reconnected => {
                // Notifications may have been missed meanwhile: ask.
                let lost = match self.io.state.pg() {
                    Some(pg) => pg.revalidate(),
                    None => Ok(Vec::new()),
                };
                match lost {
                    Ok(lost) => {
                        for id in lost {
                            self.leave(&id, "taken over by another instance");
                        }
                    }
                    Err(e) => self.lapse(&format!("database: {e}")),
                }
            }
        }
        Ok(())
    }

    /// Drops `id`'s session here (another instance has the UE now).
    fn leave(&mut self, id: &UeId, why: &str) {
        self.driver.table_mut().remove(id);
        self.downlinks.forget(id);
        self.update_downlink_gauge();
        inc(&self.io.metrics.ues_moved);
        self.io
            .log(format_args!("{id}: {why}; session dropped here"));
    }

    /// A lease renewal's outcome.
    pub(super) fn lease(&mut self, began: std::time::Instant, ok: Result<(), String>) {
        match ok {
            Ok(()) => {
                let until = began + LEASE - SKEW;
                self.lease_until = Some(self.lease_until.map_or(until, |t| t.max(until)));
                if self.lapsed && std::time::Instant::now() < until {
                    self.lapsed = false;
                    eprintln!("eese: lease renewed; serving again");
                }
            }
            Err(e) => self.io.log(format_args!("lease not renewed: {e}")),
        }
    }

    /// An admin request for a UE whose session is not in this instance's
    /// memory, with a shared database: downlink is stored for the UE's
    /// owner (or its next hello anywhere); `show` says who serves it.
    /// Returns the request when it is not one of those (or the state is a
    /// file).
    pub(super) fn admin_remote(&mut self, r: Request2) -> Option<Request2> {
        let Some(ue) = r.command.ue().copied() else {
            return Some(r);
        };
        if !self.io.state.shared() || self.driver.table().contains(&ue) {
            return Some(r);
        }
        let now_ms = self.io.clock.now().as_millis();
        let Some(pg) = self.io.state.pg() else {
            return Some(r);
        };
        let u = admin::ue_text(&ue);
        let reply = match &r.command {
            Command::Send(_, p) => {
                let d = Downlink {
                    ue,
                    payload: p.clone(),
                    queued_ms: now_ms,
                };
                match pg.queue_downlink(&d) {
                    Ok(_) => Ok(json!({ "ue": u, "outcome": "queued", "octets": p.len() })),
                    Err(ServiceError::Refused { status, message }) => Err((status, message)),
                    Err(e) => Err((503, format!("not stored: {e}"))),
                }
            }
            Command::Show(_) => match pg.row(&ue) {
                Ok(Some((owner, epoch))) => Ok(json!({
                    "ue": u, "session": null, "served_by": owner, "epoch": epoch
                })),
                Ok(None) => Err(no_session(&ue)),
                Err(e) => Err((503, e.to_string())),
            },
            _ => match pg.row(&ue) {
                Ok(Some((owner, _))) => Err((
                    409,
                    format!(
                        "UE {} is served by instance {owner}: send this to that instance",
                        admin::ue_label(&ue)
                    ),
                )),
                Ok(None) => Err(no_session(&ue)),
                Err(e) => Err((503, e.to_string())),
            },
        };
        let _ = r.reply.send(reply);
        None
    }
}

/// The answer for a UE no instance has a session for.
fn no_session(ue: &UeId) -> (u16, String) {
    (
        404,
        format!(
            "no session for UE {} (it has not said hello)",
            admin::ue_label(ue)
        ),
    )
}
