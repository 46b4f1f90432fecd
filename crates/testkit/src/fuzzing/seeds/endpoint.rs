//! Simulator schedules for the endpoint target.

use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

/// Simulator schedules: some drawn from seeds, some written to reach the
/// paths where crashes and restores meet the rekey procedure.
pub(super) fn endpoint_scripts() -> Vec<(String, Vec<u8>)> {
    use crate::sim::{Action as A, Forgery, Source};
    let mut out = Vec::new();
    for seed in [1u16, 2, 3, 5, 8, 13, 21, 34] {
        let actions = crate::sim::schedule(u64::from(seed), 64);
        out.push((
            format!("schedule-{seed}"),
            super::super::endpoint::encode(seed, &actions),
        ));
    }
    let written: [(&str, u16, Vec<A>); 5] = [
        (
            "crash-during-write",
            4,
            vec![
                A::DeliverAll,
                A::Disk {
                    eese: false,
                    ue: 0,
                    slow: true,
                },
                A::DeliverAll,
                A::UeSend { ue: 0 },
                A::CrashUe { ue: 0, old: false },
                A::Replay {
                    pick: 1,
                    spoof: false,
                },
                A::DeliverAll,
                A::UeSend { ue: 0 },
                A::DeliverAll,
            ],
        ),
        (
            "eese-restart-and-replay",
            6,
            vec![
                A::DeliverAll,
                A::DeliverAll,
                A::UeSend { ue: 1 },
                A::DeliverAll,
                A::CrashEese {
                    newer: true,
                    back: 0,
                },
                A::Replay {
                    pick: 5,
                    spoof: false,
                },
                A::EeseSend { ue: 1 },
                A::Advance { ms: 6_000 },
                A::DeliverAll,
            ],
        ),
        (
            "expiry-and-lost-answers",
            7,
            vec![
                A::DeliverAll,
                A::DeliverAll,
                A::Advance { ms: 300_000 },
                A::UeSend { ue: 0 },
                A::DeliverAll,
                A::Drop { pick: 0 },
                A::Drop { pick: 0 },
                A::Advance { ms: 6_000 },
                A::DeliverAll,
                A::DeliverAll,
            ],
        ),
        (
            "forgeries",
            9,
            vec![
                A::DeliverAll,
                A::Forge {
                    to_eese: true,
                    ue: 0,
                    kind: Forgery::Hello,
                    from: Source::Attacker(1),
                    seed: 3,
                },
                A::Forge {
                    to_eese: true,
                    ue: 0,
                    kind: Forgery::Data,
                    from: Source::Ue(0),
                    seed: 4,
                },
                A::Forge {
                    to_eese: false,
                    ue: 0,
                    kind: Forgery::Control,
                    from: Source::Attacker(0),
                    seed: 5,
                },
                A::Forge {
                    to_eese: true,
                    ue: 0,
                    kind: Forgery::Mutation,
                    from: Source::Ue(0),
                    seed: 6,
                },
                A::Forge {
                    to_eese: true,
                    ue: 0,
                    kind: Forgery::Empty,
                    from: Source::Attacker(2),
                    seed: 7,
                },
                A::DeliverAll,
                A::Reflect { pick: 0 },
            ],
        ),
        (
            "new-root-and-rebind",
            10,
            vec![
                A::DeliverAll,
                A::ReplaceRoot { ue: 0 },
                A::Rebind { ue: 0 },
                A::DeliverAll,
                A::UeSend { ue: 0 },
                A::EeseSend { ue: 0 },
                A::DeliverAll,
                A::ExpireAll,
                A::SetTe2e { ue: 0, secs: 5 },
                A::ProvideRand { ue: 0 },
                A::Late { ms: 9_000 },
                A::DeliverAll,
            ],
        ),
    ];
    for (name, seed, actions) in written {
        out.push((
            name.to_string(),
            super::super::endpoint::encode(seed, &actions),
        ));
    }
    out
}
