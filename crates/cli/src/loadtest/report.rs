//! The load test's report: counts, rates, memory, and the verdict.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::faults::{Class, FaultStats};
use super::stats::peak_rss_kib;
use super::{LoadtestArgs, Shared, eese, ues};

/// Everything the report is made of.
pub struct Inputs<'a> {
    /// The command line.
    pub args: &'a LoadtestArgs,
    /// Messages to echo.
    pub total: u64,
    /// Every UE's address (the EESE's session key).
    pub addrs: &'a [SocketAddr],
    /// From the first message to the last echo.
    pub duration: Duration,
    /// The UE driver's result.
    pub ue: &'a ues::Report,
    /// The EESE thread's result.
    pub eese: &'a eese::Report,
    /// The registries of injected datagrams.
    pub shared: &'a Shared,
    /// Kernel receive-buffer drops during the run (system-wide).
    pub kernel_drops: Option<u64>,
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

/// Prints the report; `Err` says why the run failed.
pub fn print(x: &Inputs<'_>) -> Result<(), String> {
    let (u, e) = (&x.ue.stats, &x.eese.stats);
    let secs = x.duration.as_secs_f64().max(1e-3);
    let n = x.ue.rekeys.len().max(1);

    // Keys: where both sides are on the same keyset, they must hold the same keys.
    let (mut same, mut eese_ahead, mut mismatched) = (0u64, 0u64, 0u64);
    for (ue, addr) in x.ue.ues.iter().zip(x.addrs) {
        let Some(session) = x.eese.table.get(addr) else {
            mismatched += 1;
            continue;
        };
        match (ue.current(), session.current()) {
            (Some(a), Some(b)) if a.1 == b.1 => {
                if a.0 == b.0 && ue.current_keys() == session.current_keys() {
                    same += 1;
                } else {
                    mismatched += 1;
                }
            }
            (a, Some(b)) if a.is_none_or(|a| a.1 < b.1) => eese_ahead += 1,
            _ => mismatched += 1,
        }
    }

    println!(
        "messages:  sent {}, echoed {}/{}, retransmitted {} after a timeout + {} by the UE \
         under a new keyset (TR step 5) + {} when a trigger came without an error, \
         connects {}, duplicate echoes {}, gave up {}",
        u.started,
        u.echoed,
        x.total,
        u.retransmitted,
        u.held_retransmitted,
        u.resent_on_rekey,
        u.connects,
        u.dup_echoes,
        u.gave_up
    );
    println!(
        "data:      uplink data messages {}, payloads delivered at the EESE {}, echoes {} \
         (refused {}), datagrams received by the EESE {}",
        u.data_sent, e.data, e.echoes, e.echo_failed, e.datagrams_in
    );
    let rekeys: u64 = x.ue.rekeys.iter().map(|&r| u64::from(r)).sum();
    let min = x.ue.rekeys.iter().min().copied().unwrap_or(0);
    let max = x.ue.rekeys.iter().max().copied().unwrap_or(0);
    println!(
        "rekeys:    {} at the UEs (per UE min {min}, mean {:.1}, max {max}), {} keysets made \
         by the EESE, {} ran out (te2e), {} refused by key-expired errors at the UEs",
        rekeys,
        rekeys as f64 / n as f64,
        e.rekeys,
        e.expiries,
        u.expiries
    );
    println!(
        "keys:      at the end {same} UEs share the EESE's current keyset, {eese_ahead} have \
         not received its latest trigger yet, {mismatched} disagree"
    );
    println!("faults:    {}", faults_line("uplink", &x.ue.faults));
    println!("           {}", faults_line("downlink", &x.eese.faults));
    let unreceived_up = x.shared.to_eese.unreceived();
    let unreceived_down = x.shared.to_ue.unreceived();
    for class in Class::ALL {
        let i = class.index();
        let (iu, id) = (x.ue.faults.injected[i], x.eese.faults.injected[i]);
        let (ru, rd) = (&x.eese.received.injected[i], &x.ue.received.injected[i]);
        println!(
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
        );
    }
    let mut kinds = x.ue.faults.kinds.clone();
    for (k, v) in &x.eese.faults.kinds {
        *kinds.entry(k).or_insert(0) += v;
    }
    println!("           kinds: {}", reasons(&kinds));
    println!(
        "           rejected at the EESE: {}",
        reasons(&x.eese.received.injected_reasons)
    );
    println!(
        "           rejected at the UEs: {}",
        reasons(&x.ue.received.injected_reasons)
    );
    println!(
        "honest:    rejected duplicates and late datagrams at the EESE: {}",
        reasons(&x.eese.received.honest_reasons)
    );
    println!(
        "           at the UEs: {}",
        reasons(&x.ue.received.honest_reasons)
    );
    let accepted = x.ue.received.accepted() + x.eese.received.accepted();
    let miskeyed = u.miskeyed + e.miskeyed;
    println!(
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
    );
    println!(
        "sockets:   send errors {} (UEs) / {} (EESE), receive errors {} / {}, kernel \
         receive-buffer drops {}",
        u.send_errors,
        e.send_errors,
        u.recv_errors,
        e.recv_errors,
        x.kernel_drops
            .map_or_else(|| "unknown".into(), |d| format!("{d} (system-wide)"))
    );
    let rate = u.echoed as f64 / secs;
    let mean_latency = u.latency_sum_ms as f64 / u.echoed.max(1) as f64;
    println!(
        "time:      {secs:.2} s, {rate:.0} messages/s echoed, {:.0} datagrams/s into the \
         EESE; echo latency mean {mean_latency:.1} ms, max {} ms",
        e.datagrams_in as f64 / secs,
        u.latency_max_ms
    );
    let peak = peak_rss_kib();
    let peak_mib = peak.map_or(0.0, |k| k as f64 / 1024.0);
    println!(
        "memory:    peak resident {}",
        peak.map_or_else(
            || "unknown".into(),
            |_| format!("{peak_mib:.1} MiB (VmHWM)")
        )
    );

    let mut failures = Vec::new();
    if u.echoed != x.total || x.ue.incomplete > 0 {
        failures.push(format!(
            "{} of {} echoed ({} UEs incomplete)",
            u.echoed, x.total, x.ue.incomplete
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
    if u.deadline_hit {
        failures.push(format!("deadline of {} s passed", x.args.deadline));
    }
    let verdict = if failures.is_empty() { "PASS" } else { "FAIL" };
    println!(
        "loadtest {verdict}: {} UEs, {}/{} echoed, {miskeyed} mis-keyed, {accepted} forged \
         accepted, {} rekeys, {} retransmitted, {} hostile injected, {secs:.1} s, \
         {rate:.0} msg/s, peak {peak_mib:.1} MiB",
        x.args.ues,
        u.echoed,
        x.total,
        rekeys,
        u.retransmitted,
        x.ue.faults.injected.iter().sum::<u64>() + x.eese.faults.injected.iter().sum::<u64>(),
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}
