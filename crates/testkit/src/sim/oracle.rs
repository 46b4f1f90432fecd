//! What the simulator checks a run against, kept apart from the endpoints:
//! the keys of every keyset, derived from the triggers seen on the wire; the
//! ledger of every (key, direction, sequence number) used; every payload sent
//! and delivered; the octets unauthenticated sources sent and got back.

use std::collections::{HashMap, HashSet};

use ciot_e2e::kdf::{KdfProfile, PreparedRoot, RootKey, UeNonce};
use ciot_e2e::protect::suite::SuiteKeys;
use ciot_e2e::wire::{ControlAuth, DataPacket, Direction, Ksi, TriggerPacket, TriggerRepr};

/// A violated invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant: `I1` (nonce reuse), `I2` (double or false delivery),
    /// `I3` (unauthenticated input changed state or was amplified), `I4`
    /// (no healing within the bound), or `keys` (UE and EESE disagree on a
    /// keyset they both name).
    pub invariant: &'static str,
    /// What happened.
    pub what: String,
}

/// The simulator's ledgers.
#[derive(Default)]
pub(crate) struct Oracle {
    /// Every nonce each UE (or a copy of it) started with.
    starts: HashMap<u8, Vec<UeNonce>>,
    /// Keysets seen in triggers: (UE, root epoch, KSI) → (counter, keys).
    keysets: HashMap<(u8, u32, Ksi), Vec<(u64, SuiteKeys)>>,
    /// I1: (key octets, direction, seq) → the datagram that used it.
    nonces: HashMap<(Vec<u8>, u8, u32), Vec<u8>>,
    /// I2: payloads sent, and payloads delivered.
    sent: HashSet<Vec<u8>>,
    delivered: HashSet<Vec<u8>>,
    /// I3: octets each address sent the EESE; octets the EESE sent it in
    /// answer to what it refused; octets sent it while it was not the
    /// proven address of the UE they were for.
    pub input: HashMap<u16, u64>,
    pub answers: HashMap<u16, u64>,
    pub unproven: HashMap<u16, u64>,
    pub violations: Vec<Violation>,
}

fn key_octets(keys: &SuiteKeys) -> Vec<u8> {
    match keys {
        SuiteKeys::Aes128Gcm(k) => k.as_bytes().to_vec(),
        SuiteKeys::Nea2Nia2 { enc, int } => [enc.as_bytes().as_slice(), int.as_bytes()].concat(),
    }
}

impl Oracle {
    pub(crate) fn fail(&mut self, invariant: &'static str, what: String) {
        self.violations.push(Violation { invariant, what });
    }

    /// UE `ue` (or a copy of it) started with `nonce`.
    pub(crate) fn ue_started(&mut self, ue: u8, nonce: UeNonce) {
        self.starts.entry(ue).or_default().push(nonce);
    }

    /// A trigger the EESE sent UE `ue` under root `root` of `epoch`: find
    /// the start of the UE it was made for (the nonce its tag is bound to)
    /// and derive its keys as the TR and `docs/key-hierarchy.md` say,
    /// independently of the endpoints.
    pub(crate) fn trigger(
        &mut self,
        ue: u8,
        epoch: u32,
        root: &RootKey,
        profile: KdfProfile,
        bytes: &[u8],
    ) {
        let Ok(p) = TriggerPacket::new_checked(bytes) else {
            self.fail(
                "I1",
                format!("the EESE sent a malformed trigger {bytes:02x?}"),
            );
            return;
        };
        let Ok(t) = TriggerRepr::parse(&p) else {
            return;
        };
        let prepared = PreparedRoot::new(root, profile);
        let control = ControlAuth::new(&prepared.control_key());
        let nonce = self.starts.get(&ue).and_then(|list| {
            list.iter()
                .find(|n| p.verify(&control.answer(n)).is_ok())
                .copied()
        });
        let Some(nonce) = nonce else {
            self.fail(
                "I1",
                format!("UE {ue}: the EESE sent a trigger made for no start of the UE"),
            );
            return;
        };
        let keyset = prepared.keyset(&t.rand);
        let Ok(keys) = SuiteKeys::derive(t.profile, &keyset, t.suite, t.counter, &nonce) else {
            return;
        };
        let list = self.keysets.entry((ue, epoch, t.ksi)).or_default();
        if !list.iter().any(|(c, _)| *c == t.counter) {
            list.push((t.counter, keys));
        }
    }

    /// A data message an honest endpoint sent: find the keyset that opens
    /// it and file its (key, direction, seq); the same triple with other
    /// octets is nonce reuse.
    pub(crate) fn data(&mut self, ue: u8, epoch: u32, bytes: &[u8]) {
        let Ok(p) = DataPacket::new_checked(bytes) else {
            self.fail(
                "I1",
                format!("an endpoint sent a malformed data message {bytes:02x?}"),
            );
            return;
        };
        let (ksi, dir, seq) = (p.ksi(), p.direction(), p.seq());
        let found = self.keysets.get(&(ue, epoch, ksi)).and_then(|list| {
            list.iter().rev().find_map(|(counter, keys)| {
                let mut copy = bytes.to_vec();
                keys.cipher()
                    .open_in_place(&mut copy)
                    .ok()
                    .map(|_| (*counter, key_octets(keys)))
            })
        });
        let Some((_, key)) = found else {
            self.fail(
                "I1",
                format!(
                    "UE {ue}: an endpoint sent {} data under KSI {ksi} seq {seq} that no keyset of a trigger opens",
                    dir.name()
                ),
            );
            return;
        };
        let bit = match dir {
            Direction::Uplink => 0,
            Direction::Downlink => 1,
        };
        match self.nonces.get(&(key.clone(), bit, seq)) {
            Some(prev) if prev.as_slice() != bytes => self.fail(
                "I1",
                format!(
                    "UE {ue}: (key, {}, seq {seq}) under KSI {ksi} protected two different datagrams",
                    dir.name()
                ),
            ),
            Some(_) => {}
            None => {
                self.nonces.insert((key, bit, seq), bytes.to_vec());
            }
        }
    }

    /// An application handed a payload to an endpoint.
    pub(crate) fn sent(&mut self, payload: &[u8]) {
        self.sent.insert(payload.to_vec());
    }

    /// An endpoint delivered `payload`; `expected_prefix` is what payloads
    /// for that receiver start with.
    pub(crate) fn delivered(&mut self, who: &str, payload: &[u8], expected_prefix: &[u8]) -> bool {
        if !payload.starts_with(expected_prefix) || !self.sent.contains(payload) {
            self.fail(
                "I2",
                format!(
                    "{who} delivered {:?}, which was never sent to it",
                    String::from_utf8_lossy(payload)
                ),
            );
            return false;
        }
        if !self.delivered.insert(payload.to_vec()) {
            self.fail(
                "I2",
                format!(
                    "{who} delivered {:?} twice",
                    String::from_utf8_lossy(payload)
                ),
            );
            return false;
        }
        true
    }

    /// Whether `payload` was delivered.
    pub(crate) fn was_delivered(&self, payload: &[u8]) -> bool {
        self.delivered.contains(payload)
    }

    /// `src` sent the EESE a datagram of `len` octets.
    pub(crate) fn received_from(&mut self, src: u16, len: usize) {
        *self.input.entry(src).or_default() += len as u64;
    }

    /// The EESE refused a datagram from `src` and sent it `answered` octets
    /// right after: never more, over the run, than `src` sent in all.
    pub(crate) fn answered(&mut self, src: u16, answered: usize) {
        let o = self.answers.entry(src).or_default();
        *o += answered as u64;
        let (o, i) = (*o, self.input.get(&src).copied().unwrap_or(0));
        if o > i {
            self.fail(
                "I3",
                format!("source {src} got {o} octets of answers to {i} octets it sent"),
            );
        }
    }

    /// The EESE sent `len` octets to `dst`, an address the UE has not
    /// proven: never more, over the run, than `dst` sent.
    pub(crate) fn unproven_answer(&mut self, dst: u16, len: usize) {
        let o = self.unproven.entry(dst).or_default();
        *o += len as u64;
        let (o, i) = (*o, self.input.get(&dst).copied().unwrap_or(0));
        if o > i {
            self.fail(
                "I3",
                format!(
                    "address {dst}, not proven, got {o} octets from the EESE for {i} octets it sent"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciot_e2e::kdf::{RootBytes, RootKind};
    use ciot_e2e::wire::{Direction, Suite, TriggerRepr};

    fn root() -> RootKey {
        RootKey::new(RootKind::IntKey, RootBytes::from_bytes([4; 32]))
    }

    /// A trigger for counter 1 and two data messages under its keys with the
    /// same seq and different payloads.
    const NONCE: UeNonce = UeNonce([3; 16]);

    fn reuse() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let auth = ciot_e2e::wire::ControlAuth::new(
            &PreparedRoot::new(&root(), KdfProfile::Ts33220).control_key(),
        );
        let t = TriggerRepr {
            ksi: Ksi(0),
            confirm: true,
            counter: 1,
            rand: ciot_e2e::kdf::Rand([9; 16]),
            profile: KdfProfile::Ts33220,
            suite: Suite::AES_128_GCM,
            lifetime: 60,
            tag: [0; 16],
        };
        let mut trig = vec![0u8; TriggerRepr::LEN];
        t.emit_signed(&auth.answer(&NONCE), &mut trig).unwrap();
        let keyset = PreparedRoot::new(&root(), KdfProfile::Ts33220).keyset(&t.rand);
        let keys =
            SuiteKeys::derive(KdfProfile::Ts33220, &keyset, Suite::AES_128_GCM, 1, &NONCE).unwrap();
        let seal = |p: &[u8]| {
            let mut out = vec![0u8; 64];
            let n = keys
                .cipher()
                .seal(Ksi(0), Direction::Uplink, 5, p, &mut out)
                .unwrap();
            out.truncate(n);
            out
        };
        (trig, seal(b"one"), seal(b"two"))
    }

    #[test]
    fn i1_catches_two_datagrams_under_one_key_and_seq() {
        let (trig, a, b) = reuse();
        let mut o = Oracle::default();
        o.ue_started(0, NONCE);
        o.trigger(0, 0, &root(), KdfProfile::Ts33220, &trig);
        o.data(0, 0, &a);
        o.data(0, 0, &a);
        assert!(
            o.violations.is_empty(),
            "the same datagram again is no reuse"
        );
        o.data(0, 0, &b);
        assert_eq!(o.violations.len(), 1);
        assert_eq!(o.violations[0].invariant, "I1");
    }

    #[test]
    fn i1_catches_data_no_trigger_explains() {
        let (_, a, _) = reuse();
        let mut o = Oracle::default();
        o.data(0, 0, &a);
        assert_eq!(o.violations.len(), 1);
    }

    #[test]
    fn i2_catches_double_and_unsent_deliveries() {
        let mut o = Oracle::default();
        o.sent(b"u:0:1");
        assert!(o.delivered("EESE", b"u:0:1", b"u:0:"));
        assert!(!o.delivered("EESE", b"u:0:1", b"u:0:"));
        assert!(!o.delivered("EESE", b"u:0:2", b"u:0:"));
        assert!(!o.delivered("UE 1", b"u:0:1", b"d:1:"));
        assert_eq!(o.violations.len(), 3);
    }

    #[test]
    fn i3_counts_octets_per_address() {
        let mut o = Oracle::default();
        o.received_from(7, 30);
        o.received_from(8, 40);
        o.received_from(7, 25);
        o.answered(7, 50);
        assert!(o.violations.is_empty(), "55 in, 50 out from source 7");
        o.answered(8, 50);
        assert_eq!(o.violations.len(), 1, "source 8 brought 40");
        o.received_from(9, 84);
        o.unproven_answer(9, 83);
        assert_eq!(o.violations.len(), 1, "a hello pays for its answer");
        o.unproven_answer(9, 50);
        assert_eq!(o.violations.len(), 2, "but for no more");
    }

    #[test]
    fn i1_finds_the_start_a_trigger_was_made_for() {
        let (trig, a, _) = reuse();
        let mut o = Oracle::default();
        o.ue_started(0, UeNonce([9; 16]));
        o.trigger(0, 0, &root(), KdfProfile::Ts33220, &trig);
        assert_eq!(o.violations.len(), 1, "made for no start of the UE");
        let mut o = Oracle::default();
        o.ue_started(0, UeNonce([9; 16]));
        o.ue_started(0, NONCE);
        o.trigger(0, 0, &root(), KdfProfile::Ts33220, &trig);
        o.data(0, 0, &a);
        assert!(o.violations.is_empty(), "{:?}", o.violations);
    }
}
