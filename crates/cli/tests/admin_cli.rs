//! `ciot-e2e pki init`, `pki issue` and `ciot-e2e admin` against a running
//! `ciot-e2e emks` and `ciot-e2e eese --emks … --admin …` on loopback: the
//! admin interface answers over HTTPS only, the read token only reads.
//! Every process started here is killed when the test ends.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;

use common::{Proc, bin, free_port, wait_tcp};

fn run(args: &[&str], dir: &Path) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ciot-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn admin_over_https_with_the_walkthrough_files() {
    let d = tmp("admin");
    let o = run(&["pki", "init", "tls"], &d);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("tls-ca"), "{}", text(&o));
    assert!(!d.join("tls/ca.key").exists() && d.join("tls-ca/ca.key").exists());

    let emks_port = free_port();
    let _emks = Proc(
        Command::new(bin())
            .args(["emks", "--listen", &format!("127.0.0.1:{emks_port}")])
            .args(["--db", "emks.db", "--tls-dir", "tls"])
            .current_dir(&d)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_tcp(emks_port);
    let admin_port = free_port();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let _eese = Proc(
        Command::new(bin())
            .args(["eese", "--listen", &udp.to_string()])
            .args(["--emks", &format!("https://127.0.0.1:{emks_port}")])
            .args(["--admin", &format!("127.0.0.1:{admin_port}")])
            .args(["--tls-dir", "tls", "--state", "eese.state", "--quiet"])
            .current_dir(&d)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_tcp(admin_port);

    let url = format!("https://127.0.0.1:{admin_port}");
    let o = run(
        &["admin", "--eese", &url, "--tls-dir", "tls", "metrics"],
        &d,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("ciot_eese_sessions"), "{}", text(&o));

    let o = run(
        &["admin", "--eese", &format!("http://127.0.0.1:{admin_port}")],
        &d,
    );
    assert!(!o.status.success());
    let o = run(
        &[
            "admin",
            "--eese",
            &format!("http://127.0.0.1:{admin_port}"),
            "--tls-dir",
            "tls",
            "metrics",
        ],
        &d,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("https://"), "{}", text(&o));

    // The read token: show and metrics, not expire.
    let read = ["--tls-dir", "tls", "--token-file", "tls/admin-read.token"];
    let o = run(
        &[&["admin", "--eese", &url][..], &read[..], &["metrics"]].concat(),
        &d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run(
        &[
            &["admin", "--eese", &url][..],
            &read[..],
            &["expire", "--all"],
        ]
        .concat(),
        &d,
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("403"), "{}", text(&o));
    let o = run(
        &[
            &["admin", "--eese", &url][..],
            &read[..],
            &["show", "--ue", "has space"],
        ]
        .concat(),
        &d,
    );
    assert!(text(&o).contains("404"), "{}", text(&o));
    assert!(text(&o).contains("has space"), "{}", text(&o));

    // A world-readable token file is refused, naming the file and mode.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::copy(d.join("tls/admin.token"), d.join("open.token")).unwrap();
        std::fs::set_permissions(d.join("open.token"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let o = run(
            &[
                "admin",
                "--eese",
                &url,
                "--tls-dir",
                "tls",
                "--token-file",
                "open.token",
                "metrics",
            ],
            &d,
        );
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(
            text(&o).contains("open.token") && text(&o).contains("0644"),
            "{}",
            text(&o)
        );
    }

    // pki issue: one role into its own folder, from the CA folder.
    let o = run(
        &[
            "pki", "issue", "--role", "eese", "--name", "beta", "--out", "beta", "--ca-dir",
            "tls-ca", "--days", "30",
        ],
        &d,
    );
    assert!(o.status.success(), "{}", text(&o));
    for f in ["beta/eese.crt", "beta/eese.key", "beta/ca.crt"] {
        assert!(d.join(f).exists(), "{f}");
    }
    let o = run(
        &[
            "pki", "issue", "--role", "eese", "--out", "gamma", "--ca-dir", "tls-ca",
        ],
        &d,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("--name"), "{}", text(&o));
    drop(_eese);
    drop(_emks);
    let _ = std::fs::remove_dir_all(&d);
}
