//! One-line descriptions of datagrams, for traces and transcripts.

use ciot_e2e::wire::Message;

/// A datagram of the protocol in one line.
#[must_use]
pub fn datagram(bytes: &[u8]) -> String {
    match Message::parse(bytes) {
        Ok(Message::Trigger(t)) => format!(
            "trigger KSI {} counter {} RAND {}…",
            t.ksi,
            t.counter,
            hex::encode(&t.rand.0[..3])
        ),
        Ok(Message::KeyExpired(k)) => format!(
            "key-expired KSI {} counter {} {} refused {:?}",
            k.ksi, k.counter, k.cause, k.refused
        ),
        Ok(Message::Data(d)) => format!(
            "data KSI {} {} seq {} ({} octets)",
            d.ksi,
            d.direction.name(),
            d.seq,
            bytes.len()
        ),
        Ok(Message::Hello(h)) => format!(
            "hello {:?} counter {} seq {}{}",
            String::from_utf8_lossy(h.id),
            h.counter,
            h.seq,
            if h.rekey { " rekey" } else { "" }
        ),
        Err(e) => format!("({} octets: {e})", bytes.len()),
    }
}
