//! Datagrams in, payloads out, and what the tasks beside the driver report.

use std::net::SocketAddr;

use ciot_e2e::endpoint::{Received, UeId};
use ciot_e2e::wire::{HelloPacket, MessageType, peek_type};

use super::roots::Fetched;
use super::{EeseService, Msg};
use crate::ServiceError;
use crate::eese::metrics::inc;
use crate::eese::state::Uplink;

impl EeseService {
    /// Whether this EESE holds anything for `id` (so its root fetch is not
    /// counted against the limit for unknown UEs).
    fn known(&self, id: &UeId) -> bool {
        self.pending.contains_key(id)
            || self.driver.table().contains(id)
            || self.parked.contains_key(id)
    }

    /// One datagram from `from`.
    pub(super) fn receive(&mut self, from: SocketAddr, d: &mut [u8]) -> Result<(), ServiceError> {
        inc(&self.io.metrics.datagrams_in);
        if let Some(c) = &mut self.io.capture {
            c(from, self.io.local, d);
        }
        if !self.lease_ok() {
            // Nothing may go out until the lease is renewed; the UE repeats.
            self.io.metrics.reject("lease_lapsed");
            return Ok(());
        }
        let now = self.io.clock.now();
        // A hello names its UE: its root must be at hand (fetched once and
        // cached) before the table can check it. Other messages find their
        // session by address.
        let mut hello_root = None;
        if peek_type(d).ok() == Some(MessageType::HELLO) {
            let Some(id) = HelloPacket::new_checked(&d[..])
                .ok()
                .and_then(|p| UeId::new(p.id()).ok())
            else {
                self.io.metrics.reject("malformed");
                return Ok(());
            };
            let Some(c) = self.roots.get(&id) else {
                // Not known yet: fetch its root; the UE's next hello is
                // taken once it is here.
                let known = self.known(&id);
                let why = self.roots.request(&id, known);
                self.io.metrics.reject(why.label());
                return Ok(());
            };
            let root = c.root.clone();
            self.restore_pending(&id);
            if self.io.state.shared() && !self.driver.table().contains(&id) {
                // Read once: a hello the restored session refuses (a
                // replay) leaves it in memory, where the next replay costs
                // no database read; a later fresh hello takes it over only
                // if nobody wrote the row since (else it goes).
                match self.restore_shared(&id, &root, d) {
                    Ok(_) => {}
                    Err(e) => {
                        self.io
                            .log(format_args!("{id}: stored session not read: {e}"));
                        self.io.metrics.reject("state_unavailable");
                        return Ok(());
                    }
                }
            }
            hello_root = Some((id, root));
        }
        let had = self.driver.table().len();
        let roots = &self.roots;
        let result = self.driver.handle_datagram(now, &from, d, |b| {
            if let Some(r) = hello_root {
                return Some(r);
            }
            let id = UeId::new(b).ok()?;
            roots.get(&id).map(|c| (id, c.root.clone()))
        });
        if let Ok((id, _)) = &result {
            self.downlinks.touch(id);
        }
        match result {
            Ok((id, Received::Data(got))) => {
                let payload = d[got.payload].to_vec();
                self.deliver(id, got.ksi.0, got.seq, payload)?;
            }
            Ok((_, Received::Control(_))) => {}
            Err(r) => self.io.metrics.reject(r.label()),
        }
        if self.driver.table().len() > had && self.driver.table().len() > self.max_sessions {
            self.evict_quietest()?;
        }
        Ok(())
    }

    /// An uplink payload: to the webhook's outbox (committed with this
    /// pass's snapshots, before it counts as delivered), or echoed.
    fn deliver(
        &mut self,
        id: UeId,
        ksi: u8,
        seq: u32,
        payload: Vec<u8>,
    ) -> Result<(), ServiceError> {
        if self.webhook {
            let received_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            self.io.uplinks.push(Uplink {
                ue: id,
                payload,
                ksi,
                seq: u64::from(seq),
                received_ms,
            });
            return Ok(());
        }
        inc(&self.io.metrics.delivered);
        let mut echo = Vec::with_capacity(6 + payload.len());
        echo.extend_from_slice(b"echo: ");
        echo.extend_from_slice(&payload);
        // Echo mode shows the protocol working; its echoes are not kept in
        // the state file as `admin send` downlink is: after a crash, a kept
        // echo would reach the UE a second time.
        let now = self.io.clock.now();
        if let Err(e) = self.driver.send(now, &id, &echo, &mut self.io) {
            // Its UE has QUEUED_PER_UE payloads waiting already: said, and
            // the service goes on.
            self.io.log(format_args!("{id}: echo not sent: {e}"));
        }
        Ok(())
    }

    /// Restores `id`'s stored snapshot into the table if it waits for it
    /// (its root is cached).
    pub(super) fn restore_pending(&mut self, id: &UeId) {
        if self.driver.table().contains(id) {
            return;
        }
        let Some(snap) = self.pending.remove(id) else {
            return;
        };
        let Some(c) = self.roots.get(id) else {
            self.pending.insert(*id, snap);
            return;
        };
        let root = c.root.clone();
        if let Err(e) = self.driver.table_mut().restore(*id, root, &snap) {
            // A snapshot of an older root generation (re-provisioned while
            // this EESE was down) or a damaged one: the UE starts afresh. That
            // is safe: the new session's first counter is above the clock
            // floor and above the highest the UE's hello says it accepted,
            // and every key is bound to the nonce of the UE's start.
            self.io.log(format_args!(
                "{id}: snapshot not restored ({e}); new session"
            ));
        }
    }

    /// Admin requests waiting for a root are tried again; RANDs asked for.
    pub(super) fn retry_fetches(&mut self) {
        let pool = self.io.pool.borrow().len();
        self.roots
            .want_rands(pool, !self.io.rand_waiting.is_empty());
        let ids: Vec<UeId> = self.parked.keys().copied().collect();
        for id in ids {
            self.roots.request(&id, true);
        }
    }

    /// The EMKS database answering is another one than the cached roots
    /// came from (wiped, or restored from a backup): none of them can be
    /// trusted, so every UE's keys are dropped now.
    fn another_store(&mut self, store: &str) -> Result<bool, ServiceError> {
        let known = self.roots.store.as_deref();
        if known.is_none_or(|k| k == store) {
            self.roots.store = Some(store.to_string());
            return Ok(false);
        }
        self.io.log(format_args!(
            "the EMKS database is another one (identity {store}, was {}): every cached root is dropped",
            known.unwrap_or("-")
        ));
        for id in self.roots.ids() {
            self.drop_ue(&id, "the EMKS database is another one")?;
        }
        self.roots.store = Some(store.to_string());
        Ok(true)
    }

    pub(super) fn message(&mut self, msg: Msg) -> Result<(), ServiceError> {
        let now = self.io.clock.now();
        match msg {
            Msg::Root { ue, result } => {
                if let Ok(a) = &result
                    && self.another_store(&a.store)?
                {
                    // Dropped above; this answer is from the new database.
                }
                match self.roots.fetched(&ue, result) {
                    Fetched::Root => {}
                    Fetched::NewRoot => {
                        // A new AKA run: the old root's keysets are void.
                        if let Some(c) = self.roots.get(&ue) {
                            let (g, root) = (c.generation, c.root.clone());
                            if self.driver.table().contains(&ue) {
                                self.driver.table_mut().replace_root(&ue, root);
                            }
                            self.io.log(format_args!(
                                "{ue}: new root generation {g}; its keysets are invalid"
                            ));
                        }
                    }
                    Fetched::Unknown(e) => {
                        self.drop_ue(&ue, "the EMKS does not know it or revoked it")?;
                        for r in self.parked.remove(&ue).unwrap_or_default() {
                            let _ = r.reply.send(Err((404, format!("root of {ue}: {e}"))));
                        }
                        return Ok(());
                    }
                    Fetched::Failed(e) => {
                        self.io.log(format_args!("{ue}: root fetch failed: {e}"));
                        for r in self.parked.remove(&ue).unwrap_or_default() {
                            let _ = r.reply.send(Err((503, format!("root of {ue}: {e}"))));
                        }
                        return Ok(());
                    }
                }
                for r in self.parked.remove(&ue).unwrap_or_default() {
                    self.admin(r)?;
                }
            }
            Msg::Rands(r) => {
                self.roots.rands_in_flight = false;
                match r {
                    Ok(rands) => {
                        self.roots.count_rands(rands.len());
                        self.io.pool.borrow_mut().extend(rands);
                        self.roots.rand_retry_at = None;
                        // Downlink kept while a RAND was awaited may go now.
                        self.downlinks.touch_all();
                        let waiting = std::mem::take(&mut self.io.rand_waiting);
                        for ue in waiting {
                            let rand = self.io.pool.borrow_mut().pop_front();
                            match rand {
                                Some(rand) => self.driver.table_mut().provide_rand(now, &ue, rand),
                                None => self.io.rand_waiting.push(ue),
                            }
                        }
                    }
                    Err(e) => {
                        self.roots.rand_retry_at =
                            Some(std::time::Instant::now() + std::time::Duration::from_secs(1));
                        self.io.log(format_args!("RAND fetch failed: {e}"));
                    }
                }
            }
            Msg::Change {
                ue,
                generation,
                revoked,
                store,
            } => {
                if self.another_store(&store)? {
                    return Ok(());
                }
                if revoked {
                    // Revocation takes effect now, not at the next fetch.
                    self.drop_ue(&ue, "its root was revoked")?;
                } else if self
                    .roots
                    .get(&ue)
                    .is_some_and(|c| c.generation < generation)
                {
                    self.roots.refetch(&ue);
                }
            }
            Msg::Notice(n) => self.notice(n)?,
            Msg::Lease { began, ok } => self.lease(began, ok),
            Msg::Reset { store } => {
                if !self.another_store(&store)? {
                    for id in self.roots.ids() {
                        self.roots.refetch(&id);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Which hello drops a label is counted under (for tests of the labels).
#[cfg(test)]
mod tests {
    use super::super::roots::NotYet;

    #[test]
    fn every_reason_a_hello_waits_has_a_metrics_label() {
        for n in [
            NotYet::Pending,
            NotYet::Unknown,
            NotYet::Unreachable,
            NotYet::Limited,
        ] {
            assert!(
                crate::eese::metrics::REJECT_REASONS.contains(&n.label()),
                "{n:?}"
            );
        }
    }
}
