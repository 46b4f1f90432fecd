//! `ciot-e2e emks` as an operator drives it: provision with
//! `--expect-generation`, `revoke`, and `rotate-kek` with the EMKS stopped,
//! after which only the new KEK opens the database. The EMKS runs as a
//! child process on loopback and is killed at the end of each run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{Proc, bin, free_port};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ciot-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn start_emks(d: &Path, port: u16, kek: Option<&Path>) -> Proc {
    let mut c = Command::new(bin());
    c.args(["emks", "--listen", &format!("127.0.0.1:{port}"), "--db"])
        .arg(d.join("emks.db"))
        .arg("--tls-dir")
        .arg(d.join("tls"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(k) = kek {
        c.arg("--kek-file").arg(k);
    }
    let p = Proc(c.spawn().unwrap());
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(20), "EMKS never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    p
}

fn run(d: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .arg("--tls-dir")
        .arg(d.join("tls"))
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn provision_revoke_and_rotate_the_kek_from_the_command_line() {
    let d = dir("emks-ops");
    let o = Command::new(bin())
        .args(["pki", "init"])
        .arg(d.join("tls"))
        .output()
        .unwrap();
    assert!(o.status.success());
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let provision = |expect: &str| {
        let mut a = vec![
            "emks",
            "provision",
            "--emks",
            &url,
            "--ue",
            "has space",
            "--ck",
            "000102030405060708090a0b0c0d0e0f",
            "--ik",
            "101112131415161718191a1b1c1d1e1f",
        ];
        if !expect.is_empty() {
            a.extend(["--expect-generation", expect]);
        }
        run(&d, &a)
    };
    {
        let _e = start_emks(&d, port, None);
        let o = provision("0");
        assert_eq!(
            stdout(&o),
            "provisioned has space for enterprise acme: root generation 1\n"
        );
        let o = provision("0");
        assert!(!o.status.success());
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("at generation 1"),
            "{o:?}"
        );
        let o = run(&d, &["emks", "revoke", "--emks", &url, "--ue", "has space"]);
        assert_eq!(
            stdout(&o),
            "revoked \"has space\": root generation 1 destroyed\n"
        );
        let o = provision("");
        assert!(stdout(&o).ends_with("root generation 2\n"), "{o:?}");
    }
    // Rotation, with the EMKS stopped.
    let new = d.join("new.kek");
    let o = Command::new(bin())
        .args(["emks", "rotate-kek", "--db"])
        .arg(d.join("emks.db"))
        .arg("--kek-file")
        .arg(d.join("tls/emks.kek"))
        .arg("--new-kek-file")
        .arg(&new)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).starts_with("re-sealed 1 roots of "), "{o:?}");
    assert_eq!(std::fs::read(&new).unwrap().len(), 32);
    // The old KEK no longer opens the database.
    let o = Command::new(bin())
        .args(["emks", "--listen", "127.0.0.1:0", "--db"])
        .arg(d.join("emks.db"))
        .arg("--tls-dir")
        .arg(d.join("tls"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("wrong KEK"),
        "{o:?}"
    );
    {
        let _e = start_emks(&d, port, Some(&new));
        let o = provision("2");
        assert!(stdout(&o).ends_with("root generation 3\n"), "{o:?}");
    }
    let _ = std::fs::remove_dir_all(&d);
}
