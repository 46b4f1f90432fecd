//! What the UDP front ends (`demo`, `eese`, `ue`) share: a clock, the
//! snapshot store, and one-line descriptions for transcripts.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant as StdInstant;

use ciot_e2e::endpoint::{Event, Instant, Reject};
use ciot_e2e::wire::Message;

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

/// Where a front end keeps its snapshots: in memory (the demo), or in a
/// file replaced atomically (written beside it, synced, renamed), so a crash
/// leaves either the old snapshot or the new one.
pub enum Store {
    /// Kept in memory only.
    Memory(Vec<u8>),
    /// Kept in this file.
    File(PathBuf),
}

impl Store {
    /// Stores `bytes`, durably for a file.
    pub fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Store::Memory(v) => {
                v.clear();
                v.extend_from_slice(bytes);
                Ok(())
            }
            Store::File(path) => write_atomic(path, bytes),
        }
    }
}

/// Writes `bytes` to `path` so that a crash at any point leaves the old file
/// or the new one whole.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename itself must survive a crash: sync the directory.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// One line describing a datagram of the protocol.
pub fn describe(bytes: &[u8]) -> String {
    match Message::parse(bytes) {
        Ok(Message::Trigger(t)) => format!(
            "derive-trigger  KSI {}, counter {}, RAND {}…, {} / {}, te2e {} s",
            t.ksi,
            t.counter,
            hex::encode(&t.rand.0[..4]),
            profile_name(t.profile),
            t.suite,
            t.lifetime
        ),
        Ok(Message::KeyExpired(k)) => match k.refused {
            Some(seq) => format!(
                "key-expired     KSI {} (counter {}) refused: {}; names seq {seq} for retransmission",
                k.ksi, k.counter, k.cause
            ),
            None => format!(
                "key-expired     KSI {} (counter {}) refused: {}",
                k.ksi, k.counter, k.cause
            ),
        },
        Ok(Message::Data(d)) => format!(
            "data            KSI {}, seq {}, {}, {} octets protected",
            d.ksi,
            d.seq,
            d.suite,
            d.ciphertext.len()
        ),
        Ok(Message::Hello(h)) => format!(
            "hello           UE {:?}, highest counter {}, hello seq {}{}, {} octets",
            String::from_utf8_lossy(h.id),
            h.counter,
            h.seq,
            if h.rekey {
                ", asks for a new keyset"
            } else {
                ""
            },
            bytes.len()
        ),
        Err(e) => format!("malformed: {e}"),
    }
}

/// The KDF profile as the command line spells it.
pub fn profile_name(p: ciot_e2e::kdf::KdfProfile) -> &'static str {
    crate::args::kdf_name(p)
}

/// One line for an event.
pub fn describe_event(e: &Event) -> String {
    match e {
        Event::Rekeyed { ksi, counter } => {
            format!("now using keyset KSI {ksi} (trigger counter {counter})")
        }
        Event::KeysExpired { ksi, cause } => format!("keyset KSI {ksi} expired ({cause})"),
        Event::RandNeeded => "needs a RAND from the EMKS".into(),
        Event::Retransmitted { ksi, seq, .. } => {
            format!("retransmitted the refused message under KSI {ksi} (seq {seq})")
        }
        Event::Confirmed { ksi, .. } => format!("the UE confirmed keyset KSI {ksi}"),
        other => format!("{other:?}"),
    }
}

/// One line for a dropped datagram.
pub fn describe_reject(r: &Reject) -> String {
    format!("dropped a datagram: {r}")
}
