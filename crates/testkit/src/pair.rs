//! One UE and one EESE wired back to back, for tests that script a
//! procedure step by step: no sockets, no sleeping, a clock the test moves,
//! an EESE disk the test can crash (and a UE it can restart), and every
//! datagram in the test's hands.

use std::time::Duration;

use ciot_e2e::endpoint::{
    EESE_SNAPSHOT_LEN, Eese, EeseConfig, Event, Instant, Received, Reject, SendError, Ue, UeConfig,
    UeId,
};
use ciot_e2e::kdf::{Rand, RootBytes, RootKey, RootKind, UeNonce};

/// RANDs for tests: a counter, unique per keyset (or a constant one when
/// `repeat`, to stand for a broken source).
#[derive(Clone, Debug, Default)]
pub struct TestRands {
    /// Issued so far.
    pub n: u64,
    /// Give the same RAND every time.
    pub repeat: bool,
    /// Give none (the EMKS is to provide them).
    pub none: bool,
}

impl ciot_e2e::endpoint::RandSource for TestRands {
    fn rand(&mut self) -> Option<Rand> {
        if self.none {
            return None;
        }
        self.n += 1;
        let mut r = [0x5a; 16];
        if !self.repeat {
            r[..8].copy_from_slice(&self.n.to_be_bytes());
        }
        Some(Rand(r))
    }
}

/// The nonce of start `n` of a test UE (distinct per start).
#[must_use]
pub fn test_nonce(n: u64) -> UeNonce {
    let mut b = [0xc3; 16];
    b[8..].copy_from_slice(&n.to_be_bytes());
    UeNonce::from_bytes(b)
}

/// A root for tests.
#[must_use]
pub fn test_root(seed: u8) -> RootKey {
    RootKey::new(RootKind::IntKey, RootBytes::from_bytes([seed; 32]))
}

/// The UE and the EESE, the datagrams between them, their disks.
pub struct Pair {
    /// The UE.
    pub ue: Ue<64>,
    /// The EESE.
    pub eese: Eese<TestRands>,
    /// The clock.
    pub now: Instant,
    /// Datagrams on their way to the UE.
    pub to_ue: Vec<Vec<u8>>,
    /// Datagrams on their way to the EESE.
    pub to_eese: Vec<Vec<u8>>,
    /// Every datagram the EESE ever sent, and the UE.
    pub sent_by_eese: Vec<Vec<u8>>,
    /// Every datagram the UE ever sent.
    pub sent_by_ue: Vec<Vec<u8>>,
    /// Payloads each side delivered.
    pub at_eese: Vec<Vec<u8>>,
    /// Payloads the UE delivered.
    pub at_ue: Vec<Vec<u8>>,
    /// Events each side reported.
    pub ue_events: Vec<Event>,
    /// Events the EESE reported.
    pub eese_events: Vec<Event>,
    /// Rejections each side returned.
    pub ue_rejects: Vec<Reject>,
    /// Rejections the EESE returned.
    pub eese_rejects: Vec<Reject>,
    /// How many times the UE started (its nonce is [`test_nonce`] of it).
    pub ue_starts: u64,
    /// The EESE's snapshots, in the order written.
    pub eese_disk: Vec<Vec<u8>>,
    /// Acknowledge snapshots at once (else they wait for the test).
    pub auto_persist: bool,
    /// The settings.
    pub ue_cfg: UeConfig,
    /// The EESE's settings.
    pub eese_cfg: EeseConfig,
    root: RootKey,
    id: UeId,
}

impl Pair {
    /// A pair sharing `root`, with these settings; nothing has happened yet.
    #[must_use]
    pub fn new(ue_cfg: UeConfig, eese_cfg: EeseConfig, root: RootKey) -> Self {
        let id = UeId::new(b"ue-under-test").expect("short id");
        Pair {
            ue: Ue::new(ue_cfg, root.clone(), id, test_nonce(1)),
            eese: Eese::new(eese_cfg, root.clone(), TestRands::default()),
            now: Instant(1_000),
            to_ue: Vec::new(),
            to_eese: Vec::new(),
            sent_by_eese: Vec::new(),
            sent_by_ue: Vec::new(),
            at_eese: Vec::new(),
            at_ue: Vec::new(),
            ue_events: Vec::new(),
            eese_events: Vec::new(),
            ue_rejects: Vec::new(),
            eese_rejects: Vec::new(),
            ue_starts: 1,
            eese_disk: Vec::new(),
            auto_persist: true,
            ue_cfg,
            eese_cfg,
            root,
            id,
        }
    }

    /// A pair that said hello and holds keyset 0 on both sides.
    #[must_use]
    pub fn started(ue_cfg: UeConfig, eese_cfg: EeseConfig) -> Self {
        let mut p = Pair::new(ue_cfg, eese_cfg, test_root(1));
        p.settle();
        p
    }

    /// Lets both sides say what they have to say, and delivers everything
    /// until the network is quiet.
    pub fn settle(&mut self) {
        for _ in 0..32 {
            self.drain();
            if self.to_ue.is_empty() && self.to_eese.is_empty() {
                return;
            }
            for d in std::mem::take(&mut self.to_eese) {
                let _ = self.deliver_to_eese(d);
            }
            for d in std::mem::take(&mut self.to_ue) {
                let _ = self.deliver_to_ue(d);
            }
        }
    }

    /// Like [`Pair::settle`], but everything the EESE sends is lost on the
    /// way (the UE's datagrams arrive).
    pub fn settle_lossy(&mut self) {
        for _ in 0..32 {
            self.drain();
            self.to_ue.clear();
            if self.to_eese.is_empty() {
                return;
            }
            for d in std::mem::take(&mut self.to_eese) {
                let _ = self.deliver_to_eese(d);
            }
        }
    }

    /// Persists, transmits and reports for both sides, until nothing moves.
    pub fn drain(&mut self) {
        for _ in 0..16 {
            let mut progress = false;
            let mut out = [0u8; 512];
            while let Ok(Some(t)) = self.ue.poll_transmit(self.now, &mut out) {
                let d = out[..t.len].to_vec();
                self.sent_by_ue.push(d.clone());
                self.to_eese.push(d);
                progress = true;
            }
            while let Some(e) = self.ue.poll_event() {
                self.ue_events.push(e);
                progress = true;
            }
            let mut esnap = [0u8; EESE_SNAPSHOT_LEN];
            if self.auto_persist
                && let Some(p) = self.eese.poll_persist(&mut esnap)
            {
                self.eese_disk.push(esnap[..p.len()].to_vec());
                self.eese.persisted(p).expect("the snapshot just polled");
                progress = true;
            }
            while let Ok(Some(t)) = self.eese.poll_transmit(self.now, &mut out) {
                let d = out[..t.len].to_vec();
                self.sent_by_eese.push(d.clone());
                self.to_ue.push(d);
                progress = true;
            }
            while let Some(e) = self.eese.poll_event() {
                self.eese_events.push(e);
                progress = true;
            }
            if !progress {
                return;
            }
        }
    }

    /// Hands a datagram to the UE.
    pub fn deliver_to_ue(&mut self, mut d: Vec<u8>) -> Result<Received, Reject> {
        let r = self.ue.handle_datagram(self.now, &mut d);
        match &r {
            Ok(Received::Data(got)) => self.at_ue.push(d[got.payload.clone()].to_vec()),
            Ok(_) => {}
            Err(e) => self.ue_rejects.push(*e),
        }
        self.drain();
        r
    }

    /// Hands a datagram to the EESE.
    pub fn deliver_to_eese(&mut self, mut d: Vec<u8>) -> Result<Received, Reject> {
        let r = self.eese.handle_datagram(self.now, &mut d);
        match &r {
            Ok(Received::Data(got)) => self.at_eese.push(d[got.payload.clone()].to_vec()),
            Ok(_) => {}
            Err(e) => self.eese_rejects.push(*e),
        }
        self.drain();
        r
    }

    /// The UE's application sends a payload.
    pub fn ue_send(&mut self, payload: &[u8]) {
        self.ue
            .send(self.now, payload)
            .expect("the UE takes the payload");
        self.drain();
    }

    /// The EESE's application sends a payload: sealed straight away, or
    /// `Err(EffectsPending)` when a keyset is offered first (its trigger is
    /// then on its way; [`Pair::eese_send_settled`] waits for the UE).
    pub fn eese_send(&mut self, payload: &[u8]) -> Result<(), SendError> {
        for _ in 0..4 {
            let mut out = [0u8; 512];
            match self.eese.send(self.now, payload, &mut out) {
                Ok(s) => {
                    let d = out[..s.len].to_vec();
                    self.sent_by_eese.push(d.clone());
                    self.to_ue.push(d);
                    return Ok(());
                }
                Err(SendError::EffectsPending) => self.drain(),
                Err(e) => return Err(e),
            }
        }
        Err(SendError::EffectsPending)
    }

    /// [`Pair::eese_send`], letting the network deliver an offer and the
    /// UE's confirmation first when the EESE needs a new keyset.
    pub fn eese_send_settled(&mut self, payload: &[u8]) -> Result<(), SendError> {
        for _ in 0..4 {
            match self.eese_send(payload) {
                Err(SendError::EffectsPending) => self.settle(),
                r => return r,
            }
        }
        Err(SendError::EffectsPending)
    }

    /// Time passes and the timers run.
    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.after(d);
        self.ue.handle_timeout(self.now);
        self.eese.handle_timeout(self.now);
        self.drain();
    }

    /// The UE restarts (a crash, a power cycle, a reboot from any storage at
    /// all): a new start, with a new nonce and nothing else of before.
    pub fn restart_ue(&mut self) {
        self.ue_starts += 1;
        self.ue = Ue::new(
            self.ue_cfg,
            self.root.clone(),
            self.id,
            test_nonce(self.ue_starts),
        );
        self.drain();
    }

    /// A UE with this pair's root and identifier but another start (a copy
    /// of the device), for tests that run two at once.
    #[must_use]
    pub fn another_ue(&mut self) -> Ue<64> {
        self.ue_starts += 1;
        Ue::new(
            self.ue_cfg,
            self.root.clone(),
            self.id,
            test_nonce(self.ue_starts),
        )
    }

    /// The EESE crashes and restores from snapshot `which` of its disk (the
    /// last one when `None`).
    pub fn crash_eese(&mut self, which: Option<usize>) {
        let snap = match which {
            Some(i) => self.eese_disk.get(i).cloned(),
            None => self.eese_disk.last().cloned(),
        };
        let rands = TestRands {
            n: 1000,
            ..TestRands::default()
        };
        self.eese = match snap {
            Some(s) => Eese::restore(self.eese_cfg, self.root.clone(), rands, &s)
                .expect("a snapshot the EESE wrote"),
            None => Eese::new(self.eese_cfg, self.root.clone(), rands),
        };
        self.drain();
    }
}
