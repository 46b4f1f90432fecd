//! The load test's report: counts, rates, memory, and the verdict.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::time::Duration;

use ciot_e2e::endpoint::{EeseTable, Instant, RandSource, Ue};

use super::Shared;
use super::faults::FaultStats;
use super::hostile::Class;
use super::ledger::{self, Findings};
use super::payload::HOLD;
use super::stats::peak_rss_kib;
use super::{Settings, eese, ue};

/// Everything the report is made of.
pub struct Inputs<'a> {
    /// How the run was set up.
    pub settings: &'a Settings,
    /// Payloads to echo.
    pub total: u64,
    /// From the first payload to the last echo.
    pub duration: Duration,
    /// The UE driver's result.
    pub ue: &'a ue::Report,
    /// The EESE thread's result.
    pub eese: &'a eese::Report,
    /// The registries of injected datagrams.
    pub shared: &'a Shared,
    /// Kernel receive-buffer drops during the run (system-wide).
    pub kernel_drops: Option<u64>,
}

/// How a run ended: why it failed, if it did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Why the run failed; empty when it passed.
    pub failures: Vec<String>,
}

impl Verdict {
    /// Whether every check held.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

fn faults_line(name: &str, f: &FaultStats) -> String {
    format!(
        "{name}: {} real datagrams; dropped {}, duplicated {}, delayed {} ({} still held at the end)",
        f.real, f.dropped, f.duplicated, f.delayed, f.delayed_discarded
    )
}

fn reasons(map: &BTreeMap<&'static str, u64>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where both sides are on the same keyset, they must hold the same keys.
/// At the end of a run a UE may be a step behind the EESE (its latest
/// trigger is on its way) or a step ahead: it installed the keyset the EESE
/// offered, and its use of it (data, or a hello naming it) has not reached
/// the EESE, which takes an offer into use only then. Anything else is a
/// disagreement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct KeyCounts {
    /// Same keyset in use, same keys.
    same: u64,
    /// The EESE's keyset in use is newer than the UE's.
    ahead: u64,
    /// The UE holds the keyset the EESE offered, not in use there yet.
    offered: u64,
    /// Anything else.
    mismatched: u64,
    /// Neither side has a keyset.
    idle: u64,
}

fn keys<A: Hash + Eq + Clone, R: RandSource>(
    ues: &[Ue<HOLD>],
    table: &EeseTable<u32, A, R>,
    now: Instant,
) -> KeyCounts {
    let mut k = KeyCounts::default();
    for (i, ue) in ues.iter().enumerate() {
        let id = u32::try_from(i).unwrap_or(u32::MAX);
        let status = table.status(now, &id);
        let theirs = status.and_then(|s| s.keyset);
        let offered = status.and_then(|s| s.offered);
        match (ue.status(), theirs) {
            (None, None) if offered.is_none() => k.idle += 1,
            (Some(a), Some(b)) if a.counter == b.counter => {
                let keys = ue.current_keys().map(|k| k.1);
                if a.ksi == b.ksi && keys == table.current_keys(&id).map(|k| k.1) {
                    k.same += 1;
                } else {
                    k.mismatched += 1;
                }
            }
            (Some(a), _) if offered == Some((a.ksi, a.counter)) => k.offered += 1,
            (a, Some(b)) if a.is_none_or(|a| a.counter < b.counter) => k.ahead += 1,
            (None, None) => k.ahead += 1,
            _ => k.mismatched += 1,
        }
    }
    k
}

/// Prints the report, one line at a time, and says whether the run passed.
pub fn print(x: &Inputs<'_>, out: &mut dyn FnMut(&str)) -> Verdict {
    let mut say = |s: String| out(&s);
    let (u, e) = (&x.ue.stats, &x.eese.stats);
    let secs = x.duration.as_secs_f64().max(1e-3);
    let n = x.ue.rekeys.len().max(1);
    let KeyCounts {
        same,
        ahead,
        offered,
        mismatched,
        idle,
    } = keys(&x.ue.ues, &x.eese.table, x.eese.now);
    let once: Findings = ledger::compare(
        &x.ue.transmitted,
        &x.eese.delivered,
        &x.eese.echoed,
        &x.ue.echoes,
    );

    say(format!(
        "messages:  sent {}, echoed {}/{}, retransmitted {} after a timeout + {} by the UE \
         under a new keyset (TR step 5) + {} when a trigger came without an error, \
         hellos {}, duplicate echoes {}, gave up {}",
        u.started,
        u.echoed,
        x.total,
        u.retransmitted,
        u.held_retransmitted,
        u.resent_on_rekey,
        u.hellos,
        u.dup_echoes,
        u.gave_up
    ));
    say(format!(
        "data:      uplink data messages {}, payloads delivered at the EESE {}, echoes {} \
         (refused {}), datagrams received by the EESE {}, hellos it accepted {}",
        u.data_sent, e.data, e.echoes, e.echo_failed, e.datagrams_in, e.hellos
    ));
    say(format!(
        "once:      {} payloads delivered again after a retransmission; beyond what was \
         transmitted: {} deliveries at the EESE, {} echoes at the UEs",
        once.redelivered, once.extra_deliveries, once.extra_echoes
    ));
    let rekeys: u64 = x.ue.rekeys.iter().map(|&r| u64::from(r)).sum();
    let min = x.ue.rekeys.iter().min().copied().unwrap_or(0);
    let max = x.ue.rekeys.iter().max().copied().unwrap_or(0);
    say(format!(
        "rekeys:    {} at the UEs (per UE min {min}, mean {:.1}, max {max}), {} keysets \
         offered by the EESE and {} taken into use (the UE used them), {} ran out (te2e), \
         {} refused by key-expired errors at the UEs",
        rekeys,
        rekeys as f64 / n as f64,
        e.offers,
        e.rekeys,
        e.expiries,
        u.expiries
    ));
    let idle = if idle > 0 {
        format!(", {idle} never sent anything")
    } else {
        String::new()
    };
    say(format!(
        "keys:      at the end {same} UEs share the EESE's current keyset, {ahead} have \
         not received its latest trigger yet, {offered} hold the keyset it offered (their \
         use of it had not reached it), {mismatched} disagree{idle}"
    ));
    say(format!(
        "faults:    {}",
        faults_line("uplink", &x.ue.faults)
    ));
    say(format!(
        "           {}",
        faults_line("downlink", &x.eese.faults)
    ));
    let unreceived_up = x.shared.to_eese.unreceived();
    let unreceived_down = x.shared.to_ue.unreceived();
    for class in Class::ALL {
        let i = class.index();
        let (iu, id) = (x.ue.faults.injected[i], x.eese.faults.injected[i]);
        let (ru, rd) = (&x.eese.received.injected[i], &x.ue.received.injected[i]);
        say(format!(
            "hostile:   {:<8} injected {} (toward the EESE {iu}, toward UEs {id}); rejected {}, \
             ignored as repeats {}, delivered late (original lost) {}, ACCEPTED {}, \
             never received {}",
            class.name(),
            iu + id,
            ru.rejected + rd.rejected,
            ru.ignored + rd.ignored,
            ru.late + rd.late,
            ru.accepted + rd.accepted,
            unreceived_up[i] + unreceived_down[i],
        ));
    }
    let mut kinds = x.ue.faults.kinds.clone();
    for (k, v) in &x.eese.faults.kinds {
        *kinds.entry(k).or_insert(0) += v;
    }
    say(format!("           kinds: {}", reasons(&kinds)));
    say(format!(
        "           rejected at the EESE: {}",
        reasons(&x.eese.received.injected_reasons)
    ));
    say(format!(
        "           rejected at the UEs: {}",
        reasons(&x.ue.received.injected_reasons)
    ));
    say(format!(
        "honest:    rejected duplicates and late datagrams at the EESE: {}",
        reasons(&x.eese.received.honest_reasons)
    ));
    say(format!(
        "           at the UEs: {}",
        reasons(&x.ue.received.honest_reasons)
    ));
    let accepted = x.ue.received.accepted() + x.eese.received.accepted();
    let miskeyed = u.miskeyed + e.miskeyed;
    say(format!(
        "mis-keyed: {miskeyed} (at the EESE {}, at the UEs {}); forged or garbage accepted: \
         {accepted} {}",
        e.miskeyed,
        u.miskeyed,
        if accepted > 0 {
            format!(
                "({} / {})",
                reasons(&x.eese.received.accepted_kinds),
                reasons(&x.ue.received.accepted_kinds)
            )
        } else {
            String::new()
        }
    ));
    let un = &x.eese.unauth;
    say(format!(
        "unauth:    {} datagrams the EESE could not authenticate, {} octets in from {} \
         sources; {} octets sent back to them ({} sources answered, at most {:.2} of all a \
         source's input), over budget {}",
        un.datagrams,
        un.octets_in,
        un.sources(),
        un.octets_out,
        un.answered_sources,
        un.max_ratio(),
        un.over_budget
    ));
    say(format!(
        "sockets:   send errors {} (UEs) / {} (EESE), receive errors {} / {}, kernel \
         receive-buffer drops {}, datagrams to the stranger's address {}",
        u.send_errors,
        e.send_errors,
        u.recv_errors,
        e.recv_errors,
        x.kernel_drops
            .map_or_else(|| "unknown".into(), |d| format!("{d} (system-wide)")),
        u.to_stranger
    ));
    let rate = u.echoed as f64 / secs;
    let mean_latency = u.latency_sum_ms as f64 / u.echoed.max(1) as f64;
    say(format!(
        "time:      {secs:.2} s, {rate:.0} messages/s echoed, {:.0} datagrams/s into the \
         EESE; echo latency mean {mean_latency:.1} ms, max {} ms",
        e.datagrams_in as f64 / secs,
        u.latency_max_ms
    ));
    let peak = peak_rss_kib();
    let peak_mib = peak.map_or(0.0, |k| k as f64 / 1024.0);
    say(format!(
        "memory:    peak resident {}",
        peak.map_or_else(
            || "unknown".into(),
            |_| format!("{peak_mib:.1} MiB (VmHWM)")
        )
    ));

    let mut failures = Vec::new();
    if u.echoed != x.total || x.ue.incomplete > 0 {
        failures.push(format!(
            "{} of {} echoed ({} UEs incomplete)",
            u.echoed, x.total, x.ue.incomplete
        ));
    }
    if once.extra_deliveries + once.extra_echoes > 0 {
        failures.push(format!(
            "{} deliveries and {} echoes more than were sent",
            once.extra_deliveries, once.extra_echoes
        ));
    }
    if miskeyed > 0 {
        failures.push(format!("{miskeyed} mis-keyed"));
    }
    if accepted > 0 {
        failures.push(format!("{accepted} forged or garbage datagrams accepted"));
    }
    if mismatched > 0 {
        failures.push(format!("{mismatched} UEs disagree with the EESE on keys"));
    }
    if un.over_budget > 0 {
        failures.push(format!(
            "the EESE answered input it could not authenticate with more octets than \
             the source had sent it ({} times)",
            un.over_budget
        ));
    }
    if u.deadline_hit {
        failures.push(format!("deadline of {} s passed", x.settings.deadline_secs));
    }
    let verdict = if failures.is_empty() { "PASS" } else { "FAIL" };
    say(format!(
        "loadtest {verdict}: {} UEs, {}/{} echoed, {miskeyed} mis-keyed, {accepted} forged \
         accepted, {} rekeys, {} retransmitted, {} hostile injected, {secs:.1} s, \
         {rate:.0} msg/s, peak {peak_mib:.1} MiB",
        x.settings.ues,
        u.echoed,
        x.total,
        rekeys,
        u.retransmitted,
        x.ue.faults.injected.iter().sum::<u64>() + x.eese.faults.injected.iter().sum::<u64>(),
    ));
    Verdict { failures }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadtest::identity;
    use crate::pair::test_nonce;
    use crate::rng::{Rng, SeededRand};
    use ciot_e2e::endpoint::{EeseConfig, UeConfig};

    /// Everything `ue` has to send, as datagrams.
    fn out(ue: &mut Ue<HOLD>, now: Instant) -> Vec<Vec<u8>> {
        let mut buf = [0u8; 512];
        let mut v = Vec::new();
        while let Ok(Some(t)) = ue.poll_transmit(now, &mut buf) {
            v.push(buf[..t.len].to_vec());
        }
        while ue.poll_event().is_some() {}
        v
    }

    #[test]
    fn a_ue_holding_the_offer_it_has_not_used_yet_is_not_a_disagreement() {
        let now = Instant(5_000);
        let root = identity::root(9, 0);
        let mut table: EeseTable<u32, u8, SeededRand> =
            EeseTable::new(EeseConfig::default(), SeededRand(Rng::new(9)));
        let mut ues = vec![Ue::new(
            UeConfig::default(),
            root.clone(),
            identity::id(0),
            test_nonce(1),
        )];
        assert_eq!(keys(&ues, &table, now).idle, 1);
        // The hello: the EESE offers a keyset; the UE has not got it yet.
        for mut d in out(&mut ues[0], now) {
            table
                .handle_datagram(now, &1, &mut d, |_| Some((0, root.clone())))
                .unwrap();
        }
        assert_eq!(keys(&ues, &table, now).ahead, 1);
        // The UE installs the offer; its use has not reached the EESE.
        let mut buf = [0u8; 512];
        let mut offers = Vec::new();
        while let Some((_, _, t)) = table.poll_transmit(now, &mut buf) {
            offers.push(buf[..t.len].to_vec());
        }
        for mut d in offers {
            ues[0].handle_datagram(now, &mut d).unwrap();
        }
        let k = keys(&ues, &table, now);
        assert_eq!((k.offered, k.mismatched, k.same), (1, 0, 0), "{k:?}");
        // Its use (a hello naming it) arrives: the same keyset, the same keys.
        for mut d in out(&mut ues[0], now) {
            let _ = table.handle_datagram(now, &1, &mut d, |_| Some((0, root.clone())));
        }
        let k = keys(&ues, &table, now);
        assert_eq!((k.same, k.offered, k.mismatched), (1, 0, 0), "{k:?}");
        // A UE holding a keyset the EESE neither uses nor offered (an EESE
        // that lost the session) disagrees.
        let empty: EeseTable<u32, u8, SeededRand> =
            EeseTable::new(EeseConfig::default(), SeededRand(Rng::new(9)));
        let k = keys(&ues, &empty, now);
        assert_eq!((k.mismatched, k.same, k.offered), (1, 0, 0), "{k:?}");
    }
}
