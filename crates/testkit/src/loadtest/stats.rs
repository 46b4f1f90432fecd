//! Counting what happened to each datagram at the side that received it,
//! what the EESE sent back to input it could not authenticate, and what the
//! system says about memory and dropped datagrams.

use std::collections::{BTreeMap, HashMap};

use ciot_e2e::endpoint::{Received as Accepted, Reject};
use ciot_e2e::wire::{self, MessageType};

use super::hostile::{Class, Kind};

/// How a receiver handled the injected datagrams of one class.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outcomes {
    /// Received.
    pub received: u64,
    /// Rejected with an error (nothing changed).
    pub rejected: u64,
    /// Accepted as a repeat of what is in use (a repeated trigger).
    pub ignored: u64,
    /// Authentic messages accepted late (replays of a datagram that was
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
    /// The endpoint accepted it: a payload, or a control message of this type.
    pub accepted: Option<Option<MessageType>>,
    /// It installed a keyset.
    pub rekeyed: bool,
}

impl Effect {
    /// The effect of a `handle_datagram` result (the `rekeyed` flag is set
    /// by the caller from the events that followed).
    #[must_use]
    pub fn of<T>(r: &Result<T, Reject>, accepted: impl Fn(&T) -> &Accepted) -> Self {
        match r {
            Ok(t) => Effect {
                accepted: Some(match accepted(t) {
                    Accepted::Data(_) => None,
                    Accepted::Control(m) => Some(*m),
                }),
                ..Effect::default()
            },
            Err(e) => Effect {
                rejected: Some(*e),
                ..Effect::default()
            },
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
        if let Some(what) = effect.accepted {
            let repeat = what == Some(MessageType::DERIVE_TRIGGER) && !effect.rekeyed;
            match kind.class {
                Class::Replayed if repeat => o.ignored += 1,
                Class::Replayed => o.late += 1,
                _ => {
                    o.accepted += 1;
                    *self.accepted_kinds.entry(kind.what).or_insert(0) += 1;
                }
            }
        } else if let Some(r) = effect.rejected {
            o.rejected += 1;
            *self.injected_reasons.entry(reason(&r)).or_insert(0) += 1;
        }
    }

    /// Accepted forgeries and garbage.
    #[must_use]
    pub fn accepted(&self) -> u64 {
        self.injected.iter().map(|o| o.accepted).sum()
    }
}

/// A short name for a rejection reason: the variant, and the wire error's.
/// Finer than [`Reject::label`] (the metrics' label, which folds a suite
/// mismatch into `unexpected` and every stale message into `stale`): the
/// load test's report says which check refused an injected datagram.
#[must_use]
pub fn reason(r: &Reject) -> &'static str {
    match r {
        Reject::Malformed(e) => match e {
            wire::Error::Truncated { .. } => "Reject::Malformed(Truncated)",
            wire::Error::UnknownVersion(_) => "Reject::Malformed(UnknownVersion)",
            wire::Error::UnknownType(_) => "Reject::Malformed(UnknownType)",
            wire::Error::WrongType { .. } => "Reject::Malformed(WrongType)",
            wire::Error::Malformed { .. } => "Reject::Malformed(Malformed)",
            wire::Error::TrailingData { .. } => "Reject::Malformed(TrailingData)",
            wire::Error::BadLength { .. } => "Reject::Malformed(BadLength)",
            _ => "Reject::Malformed(other)",
        },
        Reject::Unexpected(_) => "Reject::Unexpected",
        Reject::WrongDirection => "Reject::WrongDirection",
        Reject::Unauthentic => "Reject::Unauthentic",
        Reject::SuiteMismatch { .. } => "Reject::SuiteMismatch",
        Reject::Replayed { .. } => "Reject::Replayed",
        Reject::TooOld { .. } => "Reject::TooOld",
        Reject::UnknownKsi(_) => "Reject::UnknownKsi",
        Reject::ExpiredKsi(_) => "Reject::ExpiredKsi",
        Reject::RetiredKsi(_) => "Reject::RetiredKsi",
        Reject::StaleTrigger { .. } => "Reject::StaleTrigger",
        Reject::StaleError { .. } => "Reject::StaleError",
        Reject::StaleHello { .. } => "Reject::StaleHello",
        Reject::ProfileMismatch { .. } => "Reject::ProfileMismatch",
        Reject::NoSession => "Reject::NoSession",
        Reject::UnknownUe => "Reject::UnknownUe",
        _ => "Reject::(other)",
    }
}

/// Whether a rejection leaves the datagram unauthenticated as fresh input of
/// its UE: everything but an authentic message under an expired keyset,
/// which the EESE answers as the procedure says (TR 33.863 §6.5.2.3 step 3).
#[must_use]
pub fn unauthenticated(r: &Reject) -> bool {
    !matches!(r, Reject::ExpiredKsi(_))
}

/// What the EESE sent back to the sources of input it could not
/// authenticate, per source: never more than the source sent it. (The
/// EESE answers such input only over a UE's proven address, from a budget
/// that what came from there fills, up to 512 octets, and that its other
/// answers there draw on too: QUIC's anti-amplification rule at 1×, RFC
/// 9000 §8.)
#[derive(Clone, Debug, Default)]
pub struct Unauth {
    /// Datagrams it could not authenticate.
    pub datagrams: u64,
    /// Their octets.
    pub octets_in: u64,
    /// Octets the EESE sent to their sources right after them.
    pub octets_out: u64,
    /// Per source: octets in (every datagram, authentic or not), octets in
    /// that the EESE could not authenticate, octets sent back right after
    /// those.
    pub per_source: HashMap<u32, (u64, u64, u64)>,
    /// Times a source had been sent more than it brought.
    pub over_budget: u64,
    /// Sources that got an answer at all.
    pub answered_sources: u64,
}

impl Unauth {
    /// A datagram of `len` octets arrived from `source` (authentic or not;
    /// counted before it is handled).
    pub fn input(&mut self, source: u32, len: usize) {
        self.per_source.entry(source).or_default().0 += len as u64;
    }

    /// `len` octets from `source` (counted by [`Unauth::input`] already)
    /// that the EESE could not authenticate, followed by `answered` octets
    /// from the EESE to `source`.
    pub fn note(&mut self, source: u32, len: usize, answered: u64) {
        self.datagrams += 1;
        self.octets_in += len as u64;
        self.octets_out += answered;
        let (i, u, o) = self.per_source.entry(source).or_default();
        if answered > 0 && *o == 0 {
            self.answered_sources += 1;
        }
        *u += len as u64;
        *o += answered;
        if *o > *i {
            self.over_budget += 1;
        }
    }

    /// Sources that sent input the EESE could not authenticate.
    #[must_use]
    pub fn sources(&self) -> usize {
        self.per_source.values().filter(|(_, u, _)| *u > 0).count()
    }

    /// The largest share of its input any source got back.
    #[must_use]
    pub fn max_ratio(&self) -> f64 {
        self.per_source
            .values()
            .filter(|(i, _, _)| *i > 0)
            .map(|(i, _, o)| *o as f64 / *i as f64)
            .fold(0.0, f64::max)
    }
}

/// Peak resident memory of this process (VmHWM), in KiB.
#[must_use]
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Datagrams the kernel dropped because a UDP receive buffer was full
/// (system-wide `RcvbufErrors` of /proc/net/snmp).
#[must_use]
pub fn udp_rcvbuf_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let names = udp.next()?;
    let values = udp.next()?;
    let at = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// Soft limit on open files, from /proc/self/limits.
#[must_use]
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgeries_accepted_count_and_replays_accepted_are_late() {
        let forged = Kind {
            class: Class::Forged,
            what: "forged data",
        };
        let replayed = Kind {
            class: Class::Replayed,
            what: "replayed trigger",
        };
        let trigger = Effect {
            accepted: Some(Some(MessageType::DERIVE_TRIGGER)),
            ..Effect::default()
        };
        let mut r = Received::default();
        r.count(Some(replayed), &trigger);
        r.count(
            Some(replayed),
            &Effect {
                rekeyed: true,
                ..trigger
            },
        );
        r.count(Some(forged), &trigger);
        r.count(
            None,
            &Effect {
                rejected: Some(Reject::Replayed { seq: 1 }),
                ..Effect::default()
            },
        );
        assert_eq!(r.injected[2].ignored, 1);
        assert_eq!(r.injected[2].late, 1);
        assert_eq!(r.accepted(), 1);
        assert_eq!(r.honest_reasons.get("Reject::Replayed"), Some(&1));
    }

    #[test]
    fn the_answer_budget_is_kept_per_source_from_all_its_input() {
        let mut u = Unauth::default();
        // Source 1: 60 authentic octets, then 20 it could not authenticate,
        // answered with 50: within what it sent.
        u.input(1, 60);
        u.input(1, 20);
        u.note(1, 20, 50);
        // Source 2 sent 30 octets that went unanswered.
        u.input(2, 30);
        u.note(2, 30, 0);
        assert_eq!(u.over_budget, 0);
        assert_eq!((u.octets_in, u.octets_out, u.sources()), (50, 50, 2));
        // 10 more from source 2, answered with 50: more than its 40.
        u.input(2, 10);
        u.note(2, 10, 50);
        assert_eq!(u.over_budget, 1);
        assert_eq!(u.answered_sources, 2);
        assert!((u.max_ratio() - 1.25).abs() < 1e-9);
    }
}
