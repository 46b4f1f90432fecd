//! What the UDP front ends (`demo`, `eese`, `ue`) share: a clock, a sink that
//! collects datagrams and events, and one-line descriptions for transcripts.

use std::net::SocketAddr;
use std::time::Instant as StdInstant;

use ciot_e2e::endpoint::{Event, Instant, Sink, TableSink};
use ciot_e2e::wire::{Cause, Ksi, Message};

/// Milliseconds since the program started, as endpoint time.
pub struct Clock(StdInstant);

impl Clock {
    /// Starts now.
    pub fn start() -> Self {
        Clock(StdInstant::now())
    }

    /// Endpoint time now.
    pub fn now(&self) -> Instant {
        Instant::from_millis(u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// Seconds since start, for transcripts.
    pub fn secs(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

/// An event with owned data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    /// A payload arrived.
    Data {
        ksi: Ksi,
        seq: u32,
        payload: Vec<u8>,
    },
    /// New keyset in use.
    Rekeyed { ksi: Ksi, counter: u64 },
    /// Keyset expired.
    Expired { ksi: Ksi, cause: Cause },
    /// A RAND from the EMKS is needed.
    RandNeeded,
    /// Held message sent again.
    Retransmitted { ksi: Ksi, seq: u32 },
    /// Datagram dropped.
    Rejected(String),
}

impl Ev {
    fn from(e: Event<'_>) -> Option<Self> {
        Some(match e {
            Event::Data { ksi, seq, payload } => Ev::Data {
                ksi,
                seq,
                payload: payload.to_vec(),
            },
            Event::Rekeyed { ksi, counter } => Ev::Rekeyed { ksi, counter },
            Event::KeysExpired { ksi, cause } => Ev::Expired { ksi, cause },
            Event::RandNeeded => Ev::RandNeeded,
            Event::Retransmitted { ksi, seq } => Ev::Retransmitted { ksi, seq },
            Event::Rejected(r) => Ev::Rejected(r.to_string()),
            _ => return None,
        })
    }

    /// One line for a transcript.
    pub fn describe(&self) -> String {
        match self {
            Ev::Data { ksi, seq, payload } => {
                format!(
                    "received {:?} (KSI {ksi}, seq {seq})",
                    String::from_utf8_lossy(payload)
                )
            }
            Ev::Rekeyed { ksi, counter } => {
                format!("now using keyset KSI {ksi} (trigger counter {counter})")
            }
            Ev::Expired { ksi, cause } => format!("keyset KSI {ksi} expired ({cause})"),
            Ev::RandNeeded => "needs a RAND from the EMKS".into(),
            Ev::Retransmitted { ksi, seq } => {
                format!("retransmitted the held message under KSI {ksi} (seq {seq})")
            }
            Ev::Rejected(why) => format!("dropped a datagram: {why}"),
        }
    }
}

/// One thing an endpoint said.
pub enum Item {
    /// A datagram to send.
    Datagram(Vec<u8>),
    /// An event.
    Event(Ev),
}

/// Collects what one endpoint (or a table) says, in order, with the peer.
pub struct Collect<P = ()> {
    /// Datagrams and events in the order they were said.
    pub items: Vec<(P, Item)>,
}

impl<P> Default for Collect<P> {
    fn default() -> Self {
        Collect { items: Vec::new() }
    }
}

impl Sink for Collect<()> {
    fn transmit(&mut self, d: &[u8]) {
        self.items.push(((), Item::Datagram(d.to_vec())));
    }
    fn event(&mut self, e: Event<'_>) {
        if let Some(e) = Ev::from(e) {
            self.items.push(((), Item::Event(e)));
        }
    }
}

impl TableSink<SocketAddr> for Collect<SocketAddr> {
    fn transmit(&mut self, ue: &SocketAddr, d: &[u8]) {
        self.items.push((*ue, Item::Datagram(d.to_vec())));
    }
    fn event(&mut self, ue: &SocketAddr, e: Event<'_>) {
        if let Some(e) = Ev::from(e) {
            self.items.push((*ue, Item::Event(e)));
        }
    }
}

/// One line describing a datagram of the protocol.
pub fn describe(bytes: &[u8]) -> String {
    match Message::parse(bytes) {
        Ok(Message::Trigger(t)) => format!(
            "derive-trigger  KSI {}, counter {}, RAND {}…, {} / {}, te2e {} s",
            t.ksi,
            t.counter,
            hex::encode(&t.rand.0[..4]),
            t.profile.name(),
            t.suite,
            t.lifetime
        ),
        Ok(Message::KeyExpired(k)) => {
            format!(
                "key-expired     KSI {} refused: {} (counter {})",
                k.ksi, k.cause, k.counter
            )
        }
        Ok(Message::Data(d)) => format!(
            "data            KSI {}, seq {}, {}, {} octets protected",
            d.ksi,
            d.seq,
            d.suite,
            d.ciphertext.len()
        ),
        Err(e) if bytes.is_empty() => format!("(connect: empty datagram) {e}"),
        Err(e) => format!("malformed: {e}"),
    }
}
