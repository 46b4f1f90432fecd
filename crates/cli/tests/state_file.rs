//! `ciot-e2e eese --emks … --state FILE` with a state file that is not what
//! the EESE wrote: an empty (0 octets) file and one that is not a state file
//! are refused with a sentence naming `--init`, and nothing is changed;
//! with `--init` the file is moved aside and the EESE starts. (No EMKS is
//! needed to get that far: the EESE starts and stops without a UE.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ciot-e2e"))
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ciot-e2e-state-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let st = bin()
        .args(["pki", "init"])
        .arg(d.join("tls"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    d
}

/// Runs the EESE for a second (it stops by itself: `--exit-after 1`).
fn eese(d: &Path, extra: &[&str]) -> Output {
    // A port nothing listens on: the EMKS is not reached in a second
    // without UEs, and its absence does not stop the EESE from starting.
    let emks = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    bin()
        .args(["eese", "--listen", "127.0.0.1:0", "--emks"])
        .arg(format!("https://{emks}"))
        .arg("--tls-dir")
        .arg(d.join("tls"))
        .arg("--state")
        .arg(d.join("eese.state"))
        .args(["--exit-after", "1", "--quiet"])
        .args(extra)
        .output()
        .unwrap()
}

fn aside(d: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(d)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("eese.state.damaged-"))
        .collect()
}

#[test]
fn an_empty_state_file_is_refused_and_init_moves_it_aside() {
    let d = dir("empty");
    std::fs::write(d.join("eese.state"), b"").unwrap();
    let o = eese(&d, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "started on an empty state file");
    assert!(err.contains("is empty (0 octets)"), "{err}");
    assert!(err.contains("--init"), "{err}");
    assert_eq!(std::fs::metadata(d.join("eese.state")).unwrap().len(), 0);
    assert!(aside(&d).is_empty());

    let o = eese(&d, &["--init"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("moved aside to"), "{out}");
    assert!(out.contains("eese: 0 sessions in"), "{out}");
    assert_eq!(aside(&d).len(), 1);
    // The new file is a state file: no --init needed any more.
    let o = eese(&d, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_file_that_is_not_a_state_file_is_refused_unchanged() {
    let d = dir("garbage");
    let junk = vec![0xa5u8; 4096];
    std::fs::write(d.join("eese.state"), &junk).unwrap();
    let o = eese(&d, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("is not a state file"), "{err}");
    assert!(err.contains("restore it from a backup"), "{err}");
    assert_eq!(std::fs::read(d.join("eese.state")).unwrap(), junk);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_webhook_secret_others_may_read_is_refused_at_start() {
    let d = dir("whsec");
    let secret = d.join("whsec");
    std::fs::write(&secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let o = eese(
            &d,
            &[
                "--webhook",
                "http://127.0.0.1:9/hook",
                "--webhook-secret-file",
                secret.to_str().unwrap(),
            ],
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!err.contains("MfKQ9r8"), "the secret was printed: {err}");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let o = eese(
        &d,
        &[
            "--webhook",
            "http://127.0.0.1:9/hook",
            "--webhook-secret-file",
            secret.to_str().unwrap(),
            "--webhook-max-age",
            "600",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let _ = std::fs::remove_dir_all(&d);
}
