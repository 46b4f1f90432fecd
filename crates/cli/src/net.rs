//! What the UDP front ends (`demo`, `eese`, `ue`) share: atomic file
//! writes and one-line descriptions for transcripts. (Their endpoint time is
//! `ciot_e2e::driver::SystemClock`.)

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ciot_e2e::endpoint::{Event, Reject};
use ciot_e2e::wire::Message;

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
            "derive-trigger  KSI {}, counter {}, RAND {}…, {} / {}, te2e {} s{}",
            t.ksi,
            t.counter,
            hex::encode(&t.rand.0[..4]),
            profile_name(t.profile),
            t.suite,
            t.lifetime,
            if t.confirm {
                ", offered (CONFIRM: used first, then sent under)"
            } else {
                ""
            }
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
            "hello           UE {:?}, start {}…, highest counter {}, hello seq {}{}, {} octets",
            String::from_utf8_lossy(h.id),
            hex::encode(&h.nonce.as_bytes()[..4]),
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
        Event::Offered { ksi, counter } => {
            format!("offers keyset KSI {ksi} (trigger counter {counter})")
        }
        Event::Rekeyed { ksi, counter } => {
            format!("now using keyset KSI {ksi} (trigger counter {counter})")
        }
        Event::KeysExpired { ksi, cause } => format!("keyset KSI {ksi} expired ({cause})"),
        Event::RandNeeded => "needs a RAND from the EMKS".into(),
        Event::Retransmitted { ksi, seq, .. } => {
            format!("retransmitted the refused message under KSI {ksi} (seq {seq})")
        }
        Event::Confirmed { ksi, .. } => format!("the UE used keyset KSI {ksi}"),
        other => format!("{other:?}"),
    }
}

/// One line for a dropped datagram.
pub fn describe_reject(r: &Reject) -> String {
    format!("dropped a datagram: {r}")
}
