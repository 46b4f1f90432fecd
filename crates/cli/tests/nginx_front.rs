//! Two EESE instances on one PostgreSQL database behind the distribution's
//! nginx (stream module, UDP, `hash $remote_addr consistent`), as
//! docs/DEPLOYMENT.md sets it up: UEs from ten source addresses know only
//! the front's address; one instance is killed (SIGKILL) mid-run, nginx
//! sends its UEs' datagrams to the other instance, their next hello moves
//! them there, and every payload is echoed.
//!
//! Needs nginx with its stream module and PostgreSQL: skipped, and said,
//! without them, unless `CIOT_E2E_REQUIRE_NGINX=1` (`.ci/run`, which
//! installs nginx) and `CIOT_E2E_REQUIRE_POSTGRES=1`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ciot_e2e_testkit::postgres::Cluster;

mod common;

use common::{Proc, bin, free_udp_port, pki_init, provision, start_emks};

const CK: &str = "000102030405060708090a0b0c0d0e0f";
const IK: &str = "f0e0d0c0b0a090807060504030201000";
const UES: usize = 10;
const COUNT: u32 = 20;

/// nginx and the `load_module` line its stream module needs (none when it
/// is built in), or `None` when either is missing.
fn find_nginx() -> Option<(PathBuf, String)> {
    let exe = [
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .or_else(|| {
        Command::new("nginx")
            .arg("-v")
            .stderr(Stdio::null())
            .status()
            .ok()
            .filter(|s| s.success())
            .map(|_| PathBuf::from("nginx"))
    });
    let exe = exe.or_else(|| {
        assert!(
            std::env::var("CIOT_E2E_REQUIRE_NGINX").as_deref() != Ok("1"),
            "nginx is required (CIOT_E2E_REQUIRE_NGINX=1) but was not found"
        );
        eprintln!("skipped: nginx is not installed");
        None
    })?;
    let v = Command::new(&exe).arg("-V").output().ok()?;
    let conf = String::from_utf8_lossy(&v.stderr).to_string();
    if conf.contains("--with-stream ") || conf.ends_with("--with-stream") {
        return Some((exe, String::new()));
    }
    let module = [
        "/usr/lib/nginx/modules/ngx_stream_module.so",
        "/usr/lib64/nginx/modules/ngx_stream_module.so",
        "/usr/share/nginx/modules/ngx_stream_module.so",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists());
    match module {
        Some(m) => Some((exe, format!("load_module {m};"))),
        None => {
            assert!(
                std::env::var("CIOT_E2E_REQUIRE_NGINX").as_deref() != Ok("1"),
                "nginx's stream module is required (CIOT_E2E_REQUIRE_NGINX=1) but was not found \
                 (Debian: libnginx-mod-stream)"
            );
            eprintln!("skipped: nginx has no stream module (Debian: libnginx-mod-stream)");
            None
        }
    }
}

/// nginx in the foreground, stopped on drop with SIGTERM (its fast
/// shutdown, which stops the worker processes too; a SIGKILL of the master
/// would leave them running) and reaped.
struct Nginx(std::process::Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The front, as docs/DEPLOYMENT.md has it.
fn nginx_conf(dir: &Path, load: &str, front: u16, a: u16, b: u16) -> String {
    format!(
        "{load}
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
stream {{
    upstream eese {{
        # One UE's datagrams to one instance while its address holds.
        hash $remote_addr consistent;
        # An instance that answers with ICMP port unreachable is left out
        # for 10 s; its UEs' next datagrams go to the next instance.
        server 127.0.0.1:{a} max_fails=1 fail_timeout=10s;
        server 127.0.0.1:{b} max_fails=1 fail_timeout=10s;
    }}
    server {{
        listen 127.0.0.1:{front} udp;
        proxy_pass eese;
        # Downlink and triggers come when the EESE has them, not only in
        # answer: keep each UE's mapping longer than its keepalive.
        proxy_timeout 300s;
        proxy_next_upstream on;
    }}
}}
",
        dir = dir.display()
    )
}

fn eese(dir: &Path, emks: u16, url: &str, name: &str, udp: u16) -> Proc {
    Proc(
        Command::new(bin())
            .args(["eese", "--listen", &format!("127.0.0.1:{udp}")])
            .args(["--emks", &format!("https://127.0.0.1:{emks}")])
            .arg("--tls-dir")
            .arg(dir.join("tls"))
            .args(["--state", url, "--instance", name, "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[test]
fn two_instances_behind_nginx_serve_every_ue_through_the_loss_of_one() {
    let Some((nginx, load)) = find_nginx() else {
        return;
    };
    let Some(pg) = Cluster::start() else { return };
    let dir = std::env::temp_dir().join(format!("ciot-e2e-nginx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    pki_init(&dir);
    let (_emks, emks_port) = start_emks(&dir);
    let ids: Vec<String> = (0..UES).map(|i| format!("nat-{i}")).collect();
    for id in &ids {
        provision(&dir, emks_port, id, CK, IK);
    }
    let (pa, pb, front) = (free_udp_port(), free_udp_port(), free_udp_port());
    let mut a = Some(eese(&dir, emks_port, &pg.url(), "a", pa));
    let mut b = Some(eese(&dir, emks_port, &pg.url(), "b", pb));
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(&dir, &load, front, pa, pb)).unwrap();
    let check = Command::new(&nginx)
        .arg("-t")
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let _front = Nginx(
        Command::new(&nginx)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(700));

    // Each UE from its own address (as behind ten NATs).
    let ues: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            Command::new(bin())
                .args(["ue", "--id", id, "--ck", CK, "--ik", IK])
                .args(["--connect", &format!("127.0.0.1:{front}")])
                .args(["--bind", &format!("127.0.0.{}:0", 10 + i)])
                .args(["--count", &COUNT.to_string()])
                .args(["--interval-ms", "250", "--timeout-ms", "800"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    // The hash spreads the ten addresses over the two instances as the
    // random ports fall: the instance serving more of them is killed.
    let on = |o: &str| {
        pg.psql(&format!(
            "SELECT count(*) FROM eese_sessions WHERE owner = '{o}'"
        ))
        .parse::<usize>()
        .unwrap()
    };
    let (on_a, on_b) = (on("a"), on("b"));
    let (killed, survivor, on_killed) = if on_a >= on_b {
        (a.take(), "b", on_a)
    } else {
        (b.take(), "a", on_b)
    };
    drop(killed);
    let mut failures = Vec::new();
    for (id, u) in ids.iter().zip(ues) {
        let out = u.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let last = text.lines().last().unwrap_or_default().to_string();
        if !(out.status.success() && last.starts_with(&format!("echoed {COUNT}/{COUNT}"))) {
            failures.push(format!("{id}: {last}"));
        }
    }
    let owners =
        pg.psql("SELECT owner || ':' || count(*) FROM eese_sessions GROUP BY owner ORDER BY owner");
    println!(
        "nginx front: {}/{UES} UEs echoed {COUNT}/{COUNT}; {on_killed} were on the killed instance; owners at the end: {}",
        UES - failures.len(),
        owners.replace('\n', ", ")
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(
        pg.psql("SELECT count(*) FROM eese_sessions"),
        UES.to_string()
    );
    assert_eq!(
        owners,
        format!("{survivor}:{UES}"),
        "every UE ended on the surviving instance"
    );
    assert!(on_killed >= 1, "no UE on the instance killed");
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}
