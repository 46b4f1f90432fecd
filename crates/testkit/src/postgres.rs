//! A throwaway PostgreSQL cluster for tests: `initdb` into a temporary
//! folder, `pg_ctl start` on a random loopback port, stopped and deleted on
//! drop. The binaries are found by their usual names: `initdb` and `pg_ctl`
//! on `PATH`, else the newest `/usr/lib/postgresql/<major>/bin/` (Debian and
//! Ubuntu keep them there). Run as root, the cluster runs as the `postgres`
//! user (PostgreSQL refuses to run as root).
//!
//! [`Cluster::start`] returns `None` when PostgreSQL is not installed, so a
//! test can skip with a line saying why; with `CIOT_E2E_REQUIRE_POSTGRES=1`
//! (set by `.ci/run`) a missing PostgreSQL fails the test instead.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A running cluster; stopped (immediately) and removed on drop.
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn find_bin() -> Option<PathBuf> {
    let on_path = Command::new("initdb")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if on_path {
        // `initdb` and `pg_ctl` side by side on PATH: an empty directory
        // means "by name".
        return Some(PathBuf::new());
    }
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    majors.sort();
    majors.pop().map(|(_, b)| b)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

impl Cluster {
    /// Starts a new cluster, or `None` (with a line on stderr) when
    /// PostgreSQL is not installed.
    ///
    /// # Panics
    /// When PostgreSQL is installed but the cluster does not start, or when
    /// it is missing and `CIOT_E2E_REQUIRE_POSTGRES=1`.
    #[must_use]
    pub fn start() -> Option<Cluster> {
        let Some(bin) = find_bin() else {
            assert!(
                std::env::var("CIOT_E2E_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "PostgreSQL is required (CIOT_E2E_REQUIRE_POSTGRES=1) but neither `initdb` on \
                 PATH nor /usr/lib/postgresql/*/bin/initdb was found"
            );
            eprintln!("skipped: PostgreSQL (initdb, pg_ctl) is not installed");
            return None;
        };
        let dir = std::env::temp_dir().join(format!(
            "ciot-e2e-pg-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cluster folder");
        let as_postgres = is_root();
        if as_postgres {
            let ok = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown postgres {}", dir.display());
        }
        let mut c = Cluster {
            dir,
            bin,
            port: 0,
            as_postgres,
        };
        let data = c.dir.join("data");
        c.run(
            "initdb",
            &[
                "-D",
                path(&data),
                "-U",
                "ciot",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        c.port = free_port();
        c.pg_ctl_start();
        Some(c)
    }

    fn command(&self, tool: &str) -> Command {
        let exe = if self.bin.as_os_str().is_empty() {
            PathBuf::from(tool)
        } else {
            self.bin.join(tool)
        };
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pg_ctl_start(&self) {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
            self.port,
            self.dir.display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                path(&data),
                "-l",
                path(&log),
                "-o",
                &opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// `postgres://ciot@127.0.0.1:<port>/postgres`: the superuser `ciot`
    /// (trust authentication, loopback only) and its default database.
    #[must_use]
    pub fn url(&self) -> String {
        format!("postgres://ciot@127.0.0.1:{}/postgres", self.port)
    }

    /// The port it listens on.
    #[must_use]
    pub const fn port(&self) -> u16 {
        self.port
    }

    /// Stops the cluster (`fast`: open connections are cut) and starts it
    /// again on the same port: a database restart as clients see one.
    ///
    /// # Panics
    /// When it does not come back.
    pub fn restart(&self) {
        let data = self.dir.join("data");
        self.run("pg_ctl", &["-D", path(&data), "-m", "fast", "-w", "stop"]);
        self.pg_ctl_start();
    }

    /// Runs one SQL statement with `psql` (found beside `initdb`) and
    /// returns what it printed, unaligned, tuples only.
    ///
    /// # Panics
    /// When `psql` fails.
    #[must_use]
    pub fn psql(&self, sql: &str) -> String {
        let exe = if self.bin.as_os_str().is_empty() {
            PathBuf::from("psql")
        } else {
            self.bin.join("psql")
        };
        let out = Command::new(exe)
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url())
            .args(["-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = self
            .command("pg_ctl")
            .args(["-D", path(&data), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
