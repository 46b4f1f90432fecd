//! Downlink the enterprise handed over (`admin send`) that could not go out
//! at once: kept in the state file from the moment the enterprise is told
//! "queued" until it went out, so neither a crash nor the eviction of a
//! quiet session loses it.
//!
//! The table's queue for a UE (at most `QUEUED_PER_UE` payloads) lives in
//! memory; the state file holds the same payloads as downlink records. A
//! UE's records are deleted once its queue in the table is empty while
//! they are in it (every one of them went out, in order: the queue is
//! first in, first out). When the UE's session leaves the table (evicted,
//! or the process restarted), the records are handed to the table again as
//! soon as the session is back (its next hello restores it), ahead of
//! anything newer. A payload may so go out twice (sent, then the process
//! died before its record was deleted); it is never lost. The UE sees each
//! under a new sequence number: an application that cares numbers its
//! payloads.
//!
//! Only the UEs something happened to are looked at after a pass (an
//! authentic datagram from them, an `admin send`), so the cost per wake-up
//! does not grow with the number of UEs that have downlink waiting (a fleet
//! of sleeping devices, each with a command queued); RANDs arriving and
//! the periodic sweep look at all of them, for what no datagram announces.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use ciot_e2e::endpoint::{SendError, SendOutcome, UeId};

use super::EeseService;
use crate::ServiceError;
use crate::eese::state::Downlink;

/// The downlink records of one UE.
#[derive(Default)]
pub(super) struct Waiting {
    /// Key and payload of each record, oldest first.
    records: Vec<(u64, Vec<u8>)>,
    /// Whether the payloads are in the table's queue now.
    in_table: bool,
}

/// Downlink records by UE, and the UEs to look at after the next pass.
#[derive(Default)]
pub(super) struct Downlinks {
    by_ue: HashMap<UeId, Waiting>,
    touched: Vec<UeId>,
}

impl Downlinks {
    /// What the state file holds, none of it in the table yet.
    pub(super) fn loaded(records: Vec<(u64, Downlink)>) -> Self {
        let mut by_ue: HashMap<UeId, Waiting> = HashMap::new();
        for (key, d) in records {
            by_ue
                .entry(d.ue)
                .or_default()
                .records
                .push((key, d.payload));
        }
        Downlinks {
            by_ue,
            touched: Vec::new(),
        }
    }

    /// Records waiting, all UEs.
    pub(super) fn len(&self) -> usize {
        self.by_ue.values().map(|w| w.records.len()).sum()
    }

    /// `id`'s session left the table: its queue there is gone.
    pub(super) fn left_table(&mut self, id: &UeId) {
        if let Some(w) = self.by_ue.get_mut(id) {
            w.in_table = false;
        }
    }

    /// `id`'s session went to another instance (a shared database): its
    /// records stay in the database for whoever serves it, and are read
    /// again if it comes back here (so none is sent twice from a stale
    /// copy here).
    pub(super) fn forget(&mut self, id: &UeId) {
        self.by_ue.remove(id);
    }

    /// Something happened to `id` (an authentic datagram): look at its
    /// records after this pass.
    pub(super) fn touch(&mut self, id: &UeId) {
        if !self.by_ue.is_empty() && self.by_ue.contains_key(id) {
            self.touched.push(*id);
        }
    }

    /// Look at every UE's records after this pass.
    pub(super) fn touch_all(&mut self) {
        self.touched.clear();
        self.touched.extend(self.by_ue.keys().copied());
    }
}

impl EeseService {
    /// Hands `payload` for `id` to the table; when it is queued rather than
    /// sent, stores it durably before saying so. `id`'s older records go
    /// first.
    pub(super) fn send_payload(
        &mut self,
        id: &UeId,
        payload: &[u8],
    ) -> Result<&'static str, ServiceError> {
        self.requeue_downlink(id);
        let now = self.io.clock.now();
        match self.driver.send(now, id, payload, &mut self.io) {
            Ok(SendOutcome::Sent { .. }) => return Ok("sent"),
            // Queued; or kept in the table's queue until a RAND from the
            // EMKS arrives.
            Ok(SendOutcome::Queued) | Err(SendError::RandPending) => {}
            Err(e) => {
                return Err(ServiceError::Refused {
                    status: 409,
                    message: format!("not sent: {e}"),
                });
            }
        }
        let d = Downlink {
            ue: *id,
            payload: payload.to_vec(),
            queued_ms: self.io.clock.now().as_millis(),
        };
        let key = self.io.state.queue_downlink(&d)?;
        // In the table's queue (`requeue_downlink` above handed any older
        // records to the session the payload was just queued in).
        let w = self.downlinks.by_ue.entry(*id).or_default();
        w.records.push((key, d.payload));
        w.in_table = true;
        // It may go out in this very pass (the snapshot it waited for).
        self.downlinks.touch(id);
        self.update_downlink_gauge();
        Ok("queued")
    }

    /// Hands `id`'s stored records to the table again if its session is
    /// back and they are not in its queue.
    fn requeue_downlink(&mut self, id: &UeId) -> bool {
        let Some(w) = self.downlinks.by_ue.get_mut(id) else {
            return false;
        };
        if w.in_table || !self.driver.table().contains(id) {
            return false;
        }
        w.in_table = true;
        let now = self.io.clock.now();
        let mut dropped = Vec::new();
        for (key, payload) in &w.records {
            match self.driver.send(now, id, payload, &mut self.io) {
                Ok(_) | Err(SendError::RandPending) => {}
                Err(e) => {
                    // Cannot be queued (the queue is full with newer
                    // payloads, or it no longer fits): said, and dropped.
                    self.io.log(format_args!(
                        "{id}: stored downlink payload {key} not queued again ({e}): dropped"
                    ));
                    dropped.push(*key);
                }
            }
        }
        w.records.retain(|(k, _)| !dropped.contains(k));
        if !dropped.is_empty() {
            // Best effort: a record left behind is sent again after a
            // restart, which is what a record is for.
            let _ = self.io.state.downlink_sent(&dropped);
        }
        true
    }

    /// After a pass, for the UEs touched: deletes the records whose payloads
    /// all went out, and hands those of sessions that came back to the
    /// table. Returns whether anything was handed over (the caller drains
    /// again).
    pub(super) fn settle_downlinks(&mut self) -> Result<bool, ServiceError> {
        if self.downlinks.touched.is_empty() {
            return Ok(false);
        }
        let mut ids = std::mem::take(&mut self.downlinks.touched);
        ids.sort_unstable();
        ids.dedup();
        let mut handed = false;
        let mut sent = Vec::new();
        for id in ids {
            handed |= self.requeue_downlink(&id);
            let table = self.driver.table();
            if let Some(w) = self.downlinks.by_ue.get(&id)
                && w.in_table
                && table.contains(&id)
                && table.queued(&id) == 0
            {
                sent.extend(w.records.iter().map(|(k, _)| *k));
                self.downlinks.by_ue.remove(&id);
            }
        }
        if !sent.is_empty() {
            self.io.state.downlink_sent(&sent)?;
            self.update_downlink_gauge();
        }
        Ok(handed)
    }

    /// Adds `id`'s records stored in a shared database that this instance
    /// does not have yet (stored by another instance's `admin send`, or
    /// before the UE came here), oldest first; handed to the table at once
    /// when the UE's earlier records are already there.
    pub(super) fn merge_downlink(&mut self, id: &UeId, rows: Vec<(u64, Downlink)>) {
        let w = self.downlinks.by_ue.entry(*id).or_default();
        let new: Vec<(u64, Vec<u8>)> = rows
            .into_iter()
            .filter(|(k, _)| !w.records.iter().any(|(r, _)| r == k))
            .map(|(k, d)| (k, d.payload))
            .collect();
        if new.is_empty() {
            if w.records.is_empty() {
                self.downlinks.by_ue.remove(id);
            }
            return;
        }
        let in_table = w.in_table && self.driver.table().contains(id);
        w.records.extend(new.iter().cloned());
        if in_table {
            let now = self.io.clock.now();
            let mut refused = Vec::new();
            for (key, payload) in &new {
                if let Err(e) = self.driver.send(now, id, payload, &mut self.io)
                    && e != SendError::RandPending
                {
                    // Not in the table's queue: not counted as sent either;
                    // its row stays for the UE's next restore.
                    self.io.log(format_args!(
                        "{id}: stored downlink payload {key} not queued ({e}); it waits"
                    ));
                    refused.push(*key);
                }
            }
            if let Some(w) = self.downlinks.by_ue.get_mut(id) {
                w.records.retain(|(k, _)| !refused.contains(k));
            }
        }
        self.downlinks.touch(id);
        self.update_downlink_gauge();
    }

    /// `id`'s keys were dropped: so are its waiting payloads.
    pub(super) fn drop_downlink(&mut self, id: &UeId) -> Result<(), ServiceError> {
        if let Some(w) = self.downlinks.by_ue.remove(id) {
            let keys: Vec<u64> = w.records.iter().map(|(k, _)| *k).collect();
            self.io.state.downlink_sent(&keys)?;
            self.io.log(format_args!(
                "{id}: {} queued downlink payloads dropped with its keys",
                keys.len()
            ));
            self.update_downlink_gauge();
        }
        Ok(())
    }

    pub(super) fn update_downlink_gauge(&self) {
        self.io
            .metrics
            .downlink_waiting
            .store(self.downlinks.len() as u64, Ordering::Relaxed);
    }
}
