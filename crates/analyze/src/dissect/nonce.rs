//! Nonce reuse across a capture: two data messages under the same keys,
//! direction and sequence number with different contents. Both suites
//! derive their nonce or COUNT from (direction, seq) under a keyset's keys,
//! so such a pair leaks the XOR of two plaintexts (and for GCM the
//! authentication key): the one thing the UE nonce in every algorithm key
//! exists to prevent (a UE that restarts, from lost, rolled-back or cloned
//! storage, derives keys no earlier start of it used; docs/SECURITY.md).
//! "The same keys" is the same entry of the key log: the keys are compared,
//! not KSI and RAND, so two starts of a UE (other nonces, other keys) never
//! share a slot. A datagram captured twice (a duplicate or a replay) has the
//! same contents and is not a finding.

use std::collections::HashMap;
use std::format;
use std::vec::Vec;

use ciot_e2e::wire::{MessageType, data, header};

use super::{Dissection, Finding, FindingKind, Severity};

/// (KSI, suite, key log rank, downlink, seq).
type Slot = (u8, u8, usize, bool, u32);

/// Remembers every decrypted data message of a capture by (keys, direction,
/// seq) and reports a second, different one.
#[derive(Default, Debug)]
pub struct NonceLedger {
    seen: HashMap<Slot, (u64, Vec<u8>)>,
    reused: u64,
}

impl NonceLedger {
    /// An empty ledger.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `msg` (frame `frame`), dissected into `d` with a key log;
    /// returns a finding when its (keys, direction, seq) protected another
    /// message before. Messages that were not decrypted are ignored.
    pub fn check(&mut self, frame: u64, msg: &[u8], d: &Dissection) -> Option<Finding> {
        if d.message_type() != Some(MessageType::DATA) || d.tag_valid() != Some(true) {
            return None;
        }
        let rank = d.keyset_rank()?;
        let ksi = *msg.get(header::KSI)?;
        let flags = *msg.get(header::FLAGS)?;
        let suite = *msg.get(data::field::SUITE)?;
        let seq = u32::from_be_bytes(msg.get(data::field::SEQ)?.try_into().ok()?);
        let downlink = flags & ciot_e2e::wire::FLAG_DOWNLINK != 0;
        let slot = (ksi, suite, rank, downlink, seq);
        match self.seen.get(&slot) {
            None => {
                self.seen.insert(slot, (frame, msg.to_vec()));
                None
            }
            Some((_, first)) if first.as_slice() == msg => None,
            Some((first_frame, _)) => {
                self.reused += 1;
                Some(Finding {
                    severity: Severity::Error,
                    kind: FindingKind::NonceReuse,
                    abbrev: Some("ciot_e2e.data.seq"),
                    offset: data::field::SEQ.start,
                    message: format!(
                        "nonce reuse: KSI {ksi}, {} seq {seq} protected other contents in frame {first_frame}",
                        if downlink { "downlink" } else { "uplink" }
                    ),
                })
            }
        }
    }

    /// Findings so far.
    #[must_use]
    pub const fn reused(&self) -> u64 {
        self.reused
    }
}
