//! The load test, small: 1,000 UEs and 20,000 echoed messages over loopback
//! UDP with 5 % loss, duplication and reordering and 10 % hostile datagrams
//! (forged and replayed hellos among them). It must echo everything, each
//! payload no more often than it was sent, mis-key nothing, accept no
//! forgery and never answer a source with more than it could not
//! authenticate from it. A second run shows the command does fail when it
//! cannot finish in time; bad arguments are refused before anything runs.

use std::process::Command;

fn loadtest(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ciot-e2e"))
        .arg("loadtest")
        .args(args)
        .output()
        .expect("run ciot-e2e loadtest");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn thousand_ues_under_loss_and_hostile_input_echo_everything_and_mis_key_nothing() {
    let (code, out, err) = loadtest(&[
        "--ues",
        "1000",
        "--messages",
        "20000",
        "--garbage-ratio",
        "0.1",
        "--loss-ratio",
        "0.05",
        "--seed",
        "7",
        "--deadline",
        "90",
    ]);
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let last = out.lines().last().unwrap_or_default();
    assert!(last.starts_with("loadtest PASS: 1000 UEs"), "{last}");
    assert!(
        last.contains(" 20000/20000 echoed, 0 mis-keyed, 0 forged accepted,"),
        "{last}"
    );
    // Every kind of hostile input was exercised and none was accepted.
    for class in ["garbage ", "forged  ", "replayed"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("hostile:   {class}")))
            .unwrap_or_else(|| panic!("no line for {class}:\n{out}"));
        assert!(line.contains("ACCEPTED 0,"), "{line}");
        assert!(!line.contains(" injected 0 "), "{line}");
    }
    assert!(out.contains("disagree"), "{out}");
    assert!(out.contains(" 0 disagree"), "{out}");
    assert!(
        out.contains("mis-keyed: 0 (at the EESE 0, at the UEs 0)"),
        "{out}"
    );
    // Hellos, the v2 way in, were forged and replayed too.
    for kind in [
        "forged hello ",
        "forged hello from a stranger ",
        "forged hello, unknown UE ",
        "replayed hello ",
    ] {
        assert!(out.contains(kind), "no {kind:?} injected:\n{out}");
    }
    let line = |prefix: &str| {
        out.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?}:\n{out}"))
            .to_owned()
    };
    // No payload delivered or echoed more often than it was sent.
    let once = line("once:");
    assert!(
        once.ends_with(
            "beyond what was transmitted: 0 deliveries at the EESE, 0 echoes at the UEs"
        ),
        "{once}"
    );
    // The EESE never answered input it could not authenticate with more
    // octets than the source had sent it.
    let unauth = line("unauth:");
    assert!(unauth.ends_with(", over budget 0"), "{unauth}");
    assert!(!unauth.starts_with("unauth:    0 datagrams"), "{unauth}");
}

#[test]
fn a_run_that_cannot_finish_in_time_fails() {
    // Each UE sends one message after another: 2,000 messages through 2 UEs
    // with 30 % loss cannot be echoed within a second.
    let (code, out, err) = loadtest(&[
        "--ues",
        "2",
        "--messages",
        "2000",
        "--loss-ratio",
        "0.3",
        "--deadline",
        "1",
    ]);
    assert_eq!(code, Some(2), "stdout:\n{out}\nstderr:\n{err}");
    let last = out.lines().last().unwrap_or_default();
    assert!(last.starts_with("loadtest FAIL:"), "{last}");
    assert!(err.contains("deadline of 1 s passed"), "{err}");
}

#[test]
fn out_of_range_ratios_are_refused() {
    let (code, _, err) = loadtest(&["--ues", "1", "--messages", "1", "--loss-ratio", "0.9"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--loss-ratio must be between 0 and 0.5"),
        "{err}"
    );
    let (code, _, err) = loadtest(&["--ues", "1", "--garbage-ratio=-0.1"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--garbage-ratio must be between 0 and 0.5"),
        "{err}"
    );
}

#[test]
fn bad_counts_are_refused_before_anything_runs() {
    for (args, want) in [
        (&["--ues", "0"][..], "--ues must be between 1 and 50000"),
        (&["--ues", "50001"][..], "--ues must be between 1 and 50000"),
        (
            &["--window", "0"][..],
            "--te2e, --window, --rto-ms and --deadline must be positive",
        ),
        (
            &["--te2e", "0"][..],
            "--te2e, --window, --rto-ms and --deadline must be positive",
        ),
    ] {
        let (code, out, err) = loadtest(args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?} started a run:\n{out}");
    }
}
