//! What the simulator checks a run against, kept apart from the endpoints:
//! the keys of every keyset, derived from the triggers seen on the wire; the
//! ledger of every (key, direction, sequence number) used; every payload sent
//! and delivered; the octets unauthenticated sources sent and got back.

use std::collections::{HashMap, HashSet};

use ciot_e2e::kdf::{KdfProfile, PreparedRoot, RootKey};
use ciot_e2e::protect::suite::SuiteKeys;
use ciot_e2e::wire::{DataPacket, Direction, Ksi, TriggerPacket, TriggerRepr};

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
    /// Keysets seen in triggers: (UE, root epoch, KSI) → (counter, keys).
    keysets: HashMap<(u8, u32, Ksi), Vec<(u64, SuiteKeys)>>,
    /// I1: (key octets, direction, seq) → the datagram that used it.
    nonces: HashMap<(Vec<u8>, u8, u32), Vec<u8>>,
    /// I2: payloads sent, and payloads delivered.
    sent: HashSet<Vec<u8>>,
    delivered: HashSet<Vec<u8>>,
    /// I2 for hellos: each one the EESE took (each is unique: the UE never
    /// repeats a hello sequence number).
    hellos: HashSet<Vec<u8>>,
    /// I3: octets of unauthenticated input per source, and answered to it.
    pub unauth_in: HashMap<u16, u64>,
    pub unauth_out: HashMap<u16, u64>,
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

    /// A trigger the EESE sent UE `ue` under root `root` of `epoch`: derive
    /// its keys as the TR says, independently of the endpoints.
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
        let keyset = PreparedRoot::new(root, profile).keyset(&t.rand);
        let Ok(keys) = SuiteKeys::derive(t.profile, &keyset, t.suite, t.counter) else {
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

    /// The EESE took `hello` as fresh; taking the same octets twice is a
    /// replay acted on.
    pub(crate) fn hello_taken(&mut self, hello: &[u8]) {
        if !self.hellos.insert(hello.to_vec()) {
            self.fail(
                "I2",
                format!(
                    "the EESE took a hello twice: {}",
                    crate::describe::datagram(hello)
                ),
            );
        }
    }

    /// The EESE crashed before a snapshot covering these hellos was
    /// durable: it may take them again.
    pub(crate) fn hellos_forgotten(&mut self, hellos: &[Vec<u8>]) {
        for h in hellos {
            self.hellos.remove(h);
        }
    }

    /// Whether `payload` was delivered.
    pub(crate) fn was_delivered(&self, payload: &[u8]) -> bool {
        self.delivered.contains(payload)
    }

    /// Octets of unauthenticated input from `src` and of what answered it.
    pub(crate) fn unauthenticated(&mut self, src: u16, input: usize, answered: usize) {
        let i = self.unauth_in.entry(src).or_default();
        *i += input as u64;
        let i = *i;
        let o = self.unauth_out.entry(src).or_default();
        *o += answered as u64;
        if *o > i {
            let o = *o;
            self.fail(
                "I3",
                format!("source {src} got {o} octets back for {i} octets of unauthenticated input"),
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
    fn reuse() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let auth = ciot_e2e::wire::ControlAuth::new(
            &PreparedRoot::new(&root(), KdfProfile::Ts33220).control_key(),
        );
        let t = TriggerRepr {
            ksi: Ksi(0),
            counter: 1,
            rand: ciot_e2e::kdf::Rand([9; 16]),
            profile: KdfProfile::Ts33220,
            suite: Suite::AES_128_GCM,
            lifetime: 60,
            tag: [0; 16],
        };
        let mut trig = vec![0u8; TriggerRepr::LEN];
        t.emit_signed(&auth, &mut trig).unwrap();
        let keyset = PreparedRoot::new(&root(), KdfProfile::Ts33220).keyset(&t.rand);
        let keys = SuiteKeys::derive(KdfProfile::Ts33220, &keyset, Suite::AES_128_GCM, 1).unwrap();
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
    fn i3_counts_octets_per_source() {
        let mut o = Oracle::default();
        o.unauthenticated(7, 30, 0);
        o.unauthenticated(8, 40, 0);
        o.unauthenticated(7, 25, 50);
        assert!(o.violations.is_empty(), "55 in, 50 out from source 7");
        o.unauthenticated(8, 0, 50);
        assert_eq!(o.violations.len(), 1, "source 8 brought 40");
    }
}
