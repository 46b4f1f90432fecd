//! Counting what happened to each datagram, at the side that received it.

use std::collections::BTreeMap;

use ciot_e2e::endpoint::{Event, Reject};
use ciot_e2e::protect;
use ciot_e2e::wire;

use super::faults::{Class, Kind};

/// How a receiver handled the injected datagrams of one class.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outcomes {
    /// Received.
    pub received: u64,
    /// Rejected with an error (nothing changed).
    pub rejected: u64,
    /// Dropped silently as a repeat of what is in use (a repeated trigger).
    pub ignored: u64,
    /// Authentic messages delivered late (replays of a datagram that was
    /// lost): not an attack that succeeded, a delay.
    pub late: u64,
    /// Accepted as authentic although forged or garbage: must stay 0.
    pub accepted: u64,
}

/// What one datagram did to the endpoint that received it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Effect {
    /// The endpoint rejected it, why.
    pub rejected: Option<Reject>,
    /// It delivered a payload.
    pub data: bool,
    /// It installed a keyset.
    pub rekeyed: bool,
}

impl Effect {
    /// Notes an event the datagram caused.
    pub fn note(&mut self, e: &Event<'_>) {
        match e {
            Event::Rejected(r) => self.rejected = Some(*r),
            Event::Data { .. } => self.data = true,
            Event::Rekeyed { .. } => self.rekeyed = true,
            _ => {}
        }
    }
}

/// Counts of one receiving side.
#[derive(Clone, Debug, Default)]
pub struct Received {
    /// Injected datagrams, per class.
    pub injected: [Outcomes; 3],
    /// Rejections of injected datagrams, per reason.
    pub injected_reasons: BTreeMap<&'static str, u64>,
    /// Rejections of honest datagrams (duplicates, late arrivals), per reason.
    pub honest_reasons: BTreeMap<&'static str, u64>,
    /// Accepted forgeries, with what they were (must stay empty).
    pub accepted_kinds: BTreeMap<&'static str, u64>,
}

impl Received {
    /// Counts one received datagram: `kind` if it was injected.
    pub fn count(&mut self, kind: Option<Kind>, effect: &Effect) {
        let Some(kind) = kind else {
            if let Some(r) = effect.rejected {
                *self.honest_reasons.entry(reason(&r)).or_insert(0) += 1;
            }
            return;
        };
        let o = &mut self.injected[kind.class.index()];
        o.received += 1;
        if effect.data || effect.rekeyed {
            if kind.class == Class::Replayed {
                o.late += 1;
            } else {
                o.accepted += 1;
                *self.accepted_kinds.entry(kind.what).or_insert(0) += 1;
            }
        } else if let Some(r) = effect.rejected {
            o.rejected += 1;
            *self.injected_reasons.entry(reason(&r)).or_insert(0) += 1;
        } else {
            o.ignored += 1;
        }
    }

    /// Accepted forgeries and garbage.
    pub fn accepted(&self) -> u64 {
        self.injected.iter().map(|o| o.accepted).sum()
    }
}

/// A short name for a rejection reason: the error's type and variant.
pub fn reason(r: &Reject) -> &'static str {
    match r {
        Reject::Wire(e) => match e {
            wire::Error::Truncated { .. } => "Reject::Wire(Truncated)",
            wire::Error::UnknownVersion(_) => "Reject::Wire(UnknownVersion)",
            wire::Error::UnknownType(_) => "Reject::Wire(UnknownType)",
            wire::Error::WrongType { .. } => "Reject::Wire(WrongType)",
            wire::Error::Malformed { .. } => "Reject::Wire(Malformed)",
            wire::Error::TrailingData { .. } => "Reject::Wire(TrailingData)",
            wire::Error::BadLength { .. } => "Reject::Wire(BadLength)",
            wire::Error::BadTag => "Reject::Wire(BadTag)",
            wire::Error::StaleCounter { .. } => "Reject::Wire(StaleCounter)",
            _ => "Reject::Wire(other)",
        },
        Reject::Protect(e) => match e {
            protect::Error::BadTag => "Reject::Protect(BadTag)",
            protect::Error::Replayed { .. } => "Reject::Protect(Replayed)",
            protect::Error::TooOld { .. } => "Reject::Protect(TooOld)",
            protect::Error::SuiteMismatch { .. } => "Reject::Protect(SuiteMismatch)",
            protect::Error::UnknownSuite(_) => "Reject::Protect(UnknownSuite)",
            protect::Error::Wire(_) => "Reject::Protect(Wire)",
            _ => "Reject::Protect(other)",
        },
        Reject::UnknownKsi(_) => "Reject::UnknownKsi",
        Reject::ExpiredKsi(_) => "Reject::ExpiredKsi",
        Reject::Unexpected(_) => "Reject::Unexpected",
        Reject::WrongDirection => "Reject::WrongDirection",
        Reject::StaleError { .. } => "Reject::StaleError",
        Reject::NoSession => "Reject::NoSession",
        _ => "Reject::(other)",
    }
}

/// Peak resident memory of this process (VmHWM), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Datagrams the kernel dropped because a UDP receive buffer was full
/// (system-wide `RcvbufErrors` of /proc/net/snmp).
pub fn udp_rcvbuf_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let names = udp.next()?;
    let values = udp.next()?;
    let at = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(at)?.parse().ok()
}
