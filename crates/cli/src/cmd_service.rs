//! `ciot-e2e pki`, `emks`, `admin` and the EMKS mode of `eese`: flags in,
//! the `ciot-e2e-service` package does the work.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ciot_e2e::endpoint::EeseConfig;
use ciot_e2e::kdf::{Ck, CkIk, Ik, KdfProfile, int_key};
use ciot_e2e_service::admin::{AdminClient, AdminConfig};
use ciot_e2e_service::eese::{EeseService, RandChoice, ServiceConfig};
use ciot_e2e_service::emks::client::EmksClient;
use ciot_e2e_service::emks::{EmksConfig, serve};
use ciot_e2e_service::{ServiceError, pki};
use clap::{Args, Subcommand, ValueEnum};

use crate::Failure;
use crate::args::{KdfArg, hex_array, kdf_name};

fn fail(e: ServiceError) -> Failure {
    match e {
        ServiceError::Usage(_) | ServiceError::Tls(_) | ServiceError::Io(_) => {
            Failure::usage(e.to_string())
        }
        _ => Failure::rejected(e.to_string()),
    }
}

/// `ciot-e2e pki …`.
#[derive(Subcommand)]
pub enum PkiCommand {
    /// Write a test CA (its key into --ca-dir), the EMKS/HSS/EESE/admin certificates and the admin tokens into DIR.
    Init(PkiInitArgs),
    /// Issue one role's certificate and key into a folder of its own, signed by the CA of --ca-dir.
    Issue(PkiIssueArgs),
}

/// `--role` of `ciot-e2e pki issue`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    /// An enterprise's EESE (--name: the enterprise).
    Eese,
    /// The HSS.
    Hss,
    /// The EESE's admin interface (--name: its host names; also writes the tokens).
    Admin,
    /// The EMKS (--name: its host names).
    Emks,
}

/// Arguments of `ciot-e2e pki issue`.
#[derive(Args)]
pub struct PkiIssueArgs {
    /// The role.
    #[arg(long, value_enum)]
    role: RoleArg,
    /// eese: the enterprise; emks/admin: a host name or address clients use (repeatable); hss: none.
    #[arg(long = "name")]
    names: Vec<String>,
    /// Folder to write ROLE.crt, ROLE.key (0600) and ca.crt into (created).
    #[arg(long)]
    out: PathBuf,
    /// Folder holding ca.crt and ca.key (`pki init`'s --ca-dir).
    #[arg(long)]
    ca_dir: PathBuf,
    /// How long the certificate lasts, in days.
    #[arg(long, default_value_t = pki::DEFAULT_DAYS)]
    days: u32,
}

/// Arguments of `ciot-e2e pki init`.
#[derive(Args)]
pub struct PkiInitArgs {
    /// Directory to write into (created; must not hold a CA yet).
    dir: PathBuf,
    /// Enterprise(s) to make an EESE certificate for (repeatable); the
    /// first is also written as eese.crt/eese.key.
    #[arg(long = "enterprise", default_value = "acme")]
    enterprises: Vec<String>,
    /// Folder for the CA's key and certificate, apart from DIR (which every
    /// process is given); default: DIR-ca beside DIR.
    #[arg(long)]
    ca_dir: Option<PathBuf>,
    /// How long the certificates last, in days (the CA lasts 3650).
    #[arg(long, default_value_t = pki::DEFAULT_DAYS)]
    days: u32,
}

/// Runs `ciot-e2e pki`.
pub fn pki(c: &PkiCommand) -> Result<(), Failure> {
    match c {
        PkiCommand::Init(a) => {
            let ca_dir = match &a.ca_dir {
                Some(d) => d.clone(),
                None => pki::default_ca_dir(&a.dir).map_err(fail)?,
            };
            let files = pki::init_with(&a.dir, &ca_dir, &a.enterprises, a.days).map_err(fail)?;
            for f in files {
                crate::outln!("wrote {}", f.display());
            }
            crate::outln!(
                "the CA key is in {}: keep it off the machines that run the services",
                ca_dir.display()
            );
            Ok(())
        }
        PkiCommand::Issue(a) => {
            let role = match a.role {
                RoleArg::Eese => pki::Role::Eese,
                RoleArg::Hss => pki::Role::Hss,
                RoleArg::Admin => pki::Role::Admin,
                RoleArg::Emks => pki::Role::Emks,
            };
            let files = pki::issue(role, &a.names, &a.out, &a.ca_dir, a.days).map_err(fail)?;
            for f in files {
                crate::outln!("wrote {}", f.display());
            }
            Ok(())
        }
    }
}

/// Arguments of `ciot-e2e emks`: run the EMKS, or `provision` as the HSS.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EmksArgs {
    #[command(subcommand)]
    sub: Option<EmksCommand>,
    /// HTTPS address to listen on, e.g. 127.0.0.1:8443.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The database file (created if missing).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Directory with ca.crt, emks.crt, emks.key (`ciot-e2e pki init`).
    #[arg(long)]
    tls_dir: Option<PathBuf>,
    /// The key-encryption key file (32 octets, mode 0600) the roots are sealed under
    /// (default: emks.kek in --tls-dir; made on the first start of a new database).
    #[arg(long)]
    kek_file: Option<PathBuf>,
    /// The audit log, JSON lines appended (default: the --db file's name with .audit.jsonl).
    #[arg(long)]
    audit: Option<PathBuf>,
}

/// `ciot-e2e emks provision`, `revoke`, `rotate-kek`.
#[derive(Subcommand)]
pub enum EmksCommand {
    /// Act as the HSS after AKA: derive e2e_int_key from CK/IK and provision it (a new root generation).
    Provision(ProvisionArgs),
    /// Act as the HSS: revoke a UE's root (destroyed; the next provisioning continues above its generation).
    Revoke(RevokeArgs),
    /// With the EMKS stopped: re-seal every root of --db from --kek-file to --new-kek-file (one transaction).
    RotateKek(RotateKekArgs),
}

/// Arguments of `ciot-e2e emks revoke`.
#[derive(Args)]
pub struct RevokeArgs {
    /// The EMKS's URL, e.g. https://127.0.0.1:8443.
    #[arg(long)]
    emks: String,
    /// Directory with ca.crt, hss.crt, hss.key.
    #[arg(long)]
    tls_dir: PathBuf,
    #[command(flatten)]
    ue: UeArg,
}

/// Arguments of `ciot-e2e emks rotate-kek`.
#[derive(Args)]
pub struct RotateKekArgs {
    /// The EMKS database (the EMKS must be stopped).
    #[arg(long)]
    db: PathBuf,
    /// The KEK the roots are sealed under now.
    #[arg(long)]
    kek_file: PathBuf,
    /// The new KEK (made, 32 random octets, mode 0600, when it does not exist).
    #[arg(long)]
    new_kek_file: PathBuf,
}

/// A UE identifier as text, or as hex for any octets.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct UeArg {
    /// The UE's identifier (1 to 64 octets, no control characters), as its hello carries it.
    #[arg(long)]
    ue: Option<String>,
    /// The UE's identifier as hex (for octets that are not text).
    #[arg(long)]
    ue_hex: Option<String>,
}

impl UeArg {
    fn octets(&self) -> Result<Vec<u8>, Failure> {
        let id = match (&self.ue, &self.ue_hex) {
            (Some(t), _) => t.as_bytes().to_vec(),
            (None, Some(h)) => {
                crate::args::hex_bytes(h).map_err(|e| Failure::usage(format!("--ue-hex: {e}")))?
            }
            (None, None) => return Err(Failure::usage("give --ue or --ue-hex")),
        };
        ciot_e2e_service::emks::api::check_ue(&id)
            .map_err(|e| Failure::usage(format!("--ue: {e}")))?;
        Ok(id)
    }
}

/// Arguments of `ciot-e2e emks provision`.
#[derive(Args)]
pub struct ProvisionArgs {
    /// The EMKS's URL, e.g. https://127.0.0.1:8443.
    #[arg(long)]
    emks: String,
    /// Directory with ca.crt, hss.crt, hss.key.
    #[arg(long)]
    tls_dir: PathBuf,
    #[command(flatten)]
    ue: UeArg,
    /// CK, 16 octets hex.
    #[arg(long)]
    ck: String,
    /// IK, 16 octets hex.
    #[arg(long)]
    ik: String,
    /// The enterprise whose EESE may fetch this UE's root.
    #[arg(long, default_value = "acme")]
    enterprise: String,
    /// KDF profile for e2e_int_key.
    #[arg(long, value_enum, default_value_t = KdfArg::Ts33220)]
    kdf: KdfArg,
    /// Provision only when the UE's current root generation is N (0: it has no root); else refused (409).
    #[arg(long, value_name = "N")]
    expect_generation: Option<u64>,
}

/// Runs `ciot-e2e emks`.
pub fn emks(a: &EmksArgs) -> Result<(), Failure> {
    match &a.sub {
        Some(EmksCommand::Provision(p)) => return provision(p),
        Some(EmksCommand::Revoke(r)) => return revoke(r),
        Some(EmksCommand::RotateKek(r)) => return rotate_kek(r),
        None => {}
    }
    let (Some(listen), Some(db), Some(tls_dir)) = (a.listen, a.db.clone(), a.tls_dir.clone())
    else {
        return Err(Failure::usage(
            "emks needs --listen, --db and --tls-dir (or the provision subcommand)",
        ));
    };
    let cfg = EmksConfig {
        kek_file: a.kek_file.clone(),
        audit: a.audit.clone(),
        ..EmksConfig::new(listen, db.clone(), tls_dir)
    };
    serve(&cfg, |addr| {
        crate::outln!(
            "emks: listening on https://{addr}, database {}",
            db.display()
        );
    })
    .map_err(fail)
}

fn revoke(r: &RevokeArgs) -> Result<(), Failure> {
    let ue = r.ue.octets()?;
    let client =
        EmksClient::new(&r.emks, &r.tls_dir, "hss", Duration::from_secs(10)).map_err(fail)?;
    let generation = client.revoke(&ue).map_err(fail)?;
    crate::outln!(
        "revoked {}: root generation {generation} destroyed",
        ciot_e2e_service::emks::api::ue_display(&ue)
    );
    Ok(())
}

fn rotate_kek(r: &RotateKekArgs) -> Result<(), Failure> {
    use ciot_e2e_service::emks::{kek::Kek, store};
    let old = Kek::load(&r.kek_file).map_err(fail)?;
    let new = if r.new_kek_file.exists() {
        Kek::load(&r.new_kek_file).map_err(fail)?
    } else {
        Kek::create(&r.new_kek_file).map_err(fail)?
    };
    let n = store::rotate_kek(&r.db, &old, &new).map_err(fail)?;
    crate::outln!(
        "re-sealed {n} roots of {} under {}; start the EMKS with --kek-file {} and destroy {}",
        r.db.display(),
        r.new_kek_file.display(),
        r.new_kek_file.display(),
        r.kek_file.display()
    );
    Ok(())
}

fn provision(p: &ProvisionArgs) -> Result<(), Failure> {
    let ue = p.ue.octets()?;
    let ck = Ck::from_bytes(hex_array("ck", &p.ck).map_err(Failure::usage)?);
    let ik = Ik::from_bytes(hex_array("ik", &p.ik).map_err(Failure::usage)?);
    let profile = KdfProfile::from(p.kdf);
    let root = int_key(profile, &CkIk::new(&ck, &ik));
    let client =
        EmksClient::new(&p.emks, &p.tls_dir, "hss", Duration::from_secs(10)).map_err(fail)?;
    let r = client
        .provision_checked(
            &ue,
            &p.enterprise,
            kdf_name(profile),
            root.key().as_bytes(),
            p.expect_generation,
        )
        .map_err(fail)?;
    crate::outln!(
        "provisioned {} for enterprise {}: root generation {}",
        if r.ue.is_empty() { &r.ue_hex } else { &r.ue },
        r.enterprise,
        r.generation
    );
    Ok(())
}

/// `--rand-source`.
#[derive(Clone, Copy, Debug, ValueEnum, Default)]
pub enum RandSourceArg {
    /// The local CSPRNG.
    #[default]
    Local,
    /// RANDs from the EMKS.
    Emks,
}

/// The EMKS mode of `ciot-e2e eese` (given with `--emks`).
#[derive(Args, Clone)]
pub struct EeseServiceArgs {
    /// The EMKS's URL, e.g. https://127.0.0.1:8443 (without it: the single-root demo mode, --ck/--ik).
    #[arg(long)]
    pub emks: Option<String>,
    /// Directory with ca.crt and the EESE's certificate (`ciot-e2e pki init`).
    #[arg(long)]
    pub tls_dir: Option<PathBuf>,
    /// Which certificate of --tls-dir to present: NAME.crt and NAME.key.
    #[arg(long, default_value = "eese")]
    pub tls_name: String,
    /// The state file (created if missing); a restarted EESE continues from it.
    /// One that exists but is empty or damaged is refused (see --init).
    /// Or a PostgreSQL database several instances share:
    /// postgres://USER@HOST:PORT/DB (docs/SCALING.md).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Move an empty or damaged --state file aside (to FILE.damaged-<unix secs>)
    /// and start with a new one: every UE then starts a new session at its next hello.
    #[arg(long)]
    pub init: bool,
    /// Address of the admin interface (HTTPS, admin.crt/admin.key of --tls-dir), e.g. 127.0.0.1:9090.
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// File holding the admin bearer token, 0600, at least 32 octets (default: admin.token in --tls-dir).
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// File holding the read-only token (show, metrics), 0600, at least 32
    /// octets (default: admin-read.token in --tls-dir, if it exists).
    #[arg(long)]
    pub admin_read_token_file: Option<PathBuf>,
    /// Where RANDs for new keysets come from.
    #[arg(long, value_enum, default_value_t = RandSourceArg::Local)]
    pub rand_source: RandSourceArg,
    /// POST uplink payloads here as JSON instead of echoing them.
    #[arg(long)]
    pub webhook: Option<String>,
    /// Root fetches a second from the EMKS for UEs this EESE holds nothing
    /// for (hellos naming unknown ids); UEs it holds state for are not
    /// limited.
    #[arg(long, default_value_t = ciot_e2e_service::eese::UNKNOWN_FETCH_RATE)]
    pub emks_fetch_rate: u32,
    /// File holding the webhook's signing secret, whsec_<base64> (Standard
    /// Webhooks); mode 0600.
    #[arg(long, value_name = "FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Uplink payloads the webhook has not taken after this many seconds are dropped.
    #[arg(long, value_name = "SECS", default_value_t = 86_400)]
    pub webhook_max_age: u64,
    /// Print no event lines.
    #[arg(long)]
    pub quiet: bool,
    /// This instance's name when --state is a PostgreSQL database shared
    /// by several instances (default: a random one per start). 1 to 64
    /// characters, no spaces.
    #[arg(long, value_name = "NAME")]
    pub instance: Option<String>,
    /// Write every datagram received and sent to this capture (pcap,
    /// Ethernet/IPv4/UDP; IPv4 peers), written through at once, for
    /// `ciot-e2e dissect` (with --keylog: decrypted). Test use.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
}

/// Runs `ciot-e2e eese --emks …`.
#[allow(clippy::too_many_arguments)]
pub fn eese_service(
    a: &EeseServiceArgs,
    emks: &str,
    listen: SocketAddr,
    te2e: u32,
    max_sessions: usize,
    idle_timeout: u64,
    exit_after: Option<u64>,
    keylog: Option<&std::path::Path>,
) -> Result<(), Failure> {
    let tls_dir = a
        .tls_dir
        .clone()
        .ok_or_else(|| Failure::usage("--emks needs --tls-dir"))?;
    let state = a
        .state
        .clone()
        .ok_or_else(|| Failure::usage("--emks needs --state"))?;
    let admin = match a.admin {
        None => None,
        Some(addr) => {
            let path = a
                .admin_token_file
                .clone()
                .unwrap_or_else(|| tls_dir.join(pki::ADMIN_TOKEN));
            let read_path = a.admin_read_token_file.clone().or_else(|| {
                let p = tls_dir.join(pki::ADMIN_READ_TOKEN);
                p.exists().then_some(p)
            });
            Some(
                AdminConfig::from_files(addr, &tls_dir, &path, read_path.as_deref())
                    .map_err(fail)?,
            )
        }
    };
    let cfg = ServiceConfig {
        listen,
        emks: emks.to_string(),
        tls_dir,
        tls_name: a.tls_name.clone(),
        state: state.clone(),
        init_state: a.init,
        admin,
        rand: match a.rand_source {
            RandSourceArg::Local => RandChoice::Local,
            RandSourceArg::Emks => RandChoice::Emks,
        },
        table: EeseConfig {
            te2e: Duration::from_secs(u64::from(te2e.max(1))),
            grace: Duration::from_secs(2),
            trigger_retransmit_max: Duration::from_secs(8),
            ..EeseConfig::default()
        },
        webhook: a.webhook.clone(),
        webhook_secret: a.webhook_secret_file.clone(),
        webhook_max_age: Duration::from_secs(a.webhook_max_age.max(1)),
        max_sessions: max_sessions.max(1),
        idle_timeout: Duration::from_secs(idle_timeout.max(1)),
        unknown_fetch_rate: a.emks_fetch_rate.max(1),
        exit_after: exit_after.map(Duration::from_secs),
        verbose: !a.quiet,
        instance: a.instance.clone(),
        capture: match &a.pcap {
            None => None,
            Some(p) => {
                let file =
                    std::fs::File::create(p).map_err(|e| Failure::usage(format!("--pcap: {e}")))?;
                let mut w = ciot_e2e_analyze::dissect::pcap::UdpPcapWriter::new(file)
                    .map_err(|e| Failure::usage(format!("--pcap: {e}")))?;
                Some(Box::new(
                    move |src: std::net::SocketAddr, dst: std::net::SocketAddr, d: &[u8]| {
                        if let (std::net::SocketAddr::V4(src), std::net::SocketAddr::V4(dst)) =
                            (src, dst)
                        {
                            let t = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .unwrap_or_default();
                            // A capture that cannot be written loses records, not traffic.
                            let _ = w.write(t, src, dst, d);
                        }
                    },
                ))
            }
        },
        keylog: match keylog {
            None => None,
            Some(p) => {
                let mut log = ciot_e2e_analyze::keylog::KeyLogFile::create_insecure(p)
                    .map_err(|e| Failure::usage(format!("--keylog: {e}")))?;
                Some(Box::new(move |_: &_, ksi, counter, rand: &_, keys: &_| {
                    // A key log that cannot be written loses lines, not traffic.
                    let _ = log.append(ksi, Some(counter), rand, keys);
                }))
            }
        },
    };
    let t0 = std::time::Instant::now();
    let shown = ciot_e2e_service::eese::pg::shown(&state.to_string_lossy());
    let mut svc = EeseService::start(cfg, |udp, admin, n| {
        crate::outln!(
            "eese: {n} sessions in {shown} loaded in {} ms",
            t0.elapsed().as_millis()
        );
        if let Some(a) = admin {
            crate::outln!("eese: admin interface on https://{a}");
        }
        crate::outln!("eese: serving on {udp}, EMKS {emks}, te2e {te2e} s");
    })
    .map_err(fail)?;
    for note in svc.state_notes() {
        crate::outln!("eese: {note}");
    }
    let old = svc.format2_removed();
    if old > 0 {
        crate::outln!(
            "eese: removed {old} session snapshots of wire format 2 (CEE2) from {}: \
             those UEs start a new session at their next hello",
            state.display()
        );
    }
    svc.run().map_err(fail)
}

/// Arguments of `ciot-e2e admin`.
#[derive(Args)]
pub struct AdminArgs {
    /// The EESE's admin interface, e.g. https://127.0.0.1:9090 (HTTPS only).
    #[arg(long)]
    eese: String,
    /// File holding the bearer token, 0600 (default: admin.token in --tls-dir;
    /// admin-read.token there may only show and read metrics).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Directory holding ca.crt, trusted for the admin interface's
    /// certificate, and admin.token (`ciot-e2e pki init`).
    #[arg(long)]
    tls_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: AdminCommand,
}

/// What to ask the EESE.
#[derive(Subcommand)]
pub enum AdminCommand {
    /// Expire a UE's keys now (--ue), or every UE's (--all).
    Expire {
        /// The UE.
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        ue: Option<String>,
        /// Every UE.
        #[arg(long)]
        all: bool,
    },
    /// Set a UE's key lifetime te2e.
    Te2e {
        /// The UE.
        #[arg(long)]
        ue: String,
        /// te2e in seconds.
        #[arg(long)]
        secs: u64,
    },
    /// Show a UE's session (no key material).
    Show {
        /// The UE.
        #[arg(long)]
        ue: String,
    },
    /// Send a downlink payload to a UE.
    Send {
        /// The UE.
        #[arg(long)]
        ue: String,
        /// The payload, hex.
        #[arg(long)]
        payload: String,
    },
    /// Print the metrics (Prometheus text format).
    Metrics,
}

/// Runs `ciot-e2e admin`.
pub fn admin(a: &AdminArgs) -> Result<(), Failure> {
    let Some(tls_dir) = &a.tls_dir else {
        return Err(Failure::usage(
            "admin needs --tls-dir (its ca.crt is trusted for the admin interface's certificate)",
        ));
    };
    let token_path = a
        .token_file
        .clone()
        .unwrap_or_else(|| tls_dir.join(pki::ADMIN_TOKEN));
    let c = AdminClient::from_files(&a.eese, tls_dir, &token_path).map_err(fail)?;
    let v = match &a.command {
        AdminCommand::Expire { ue: Some(ue), .. } => c.expire(ue.as_bytes()),
        AdminCommand::Expire { ue: None, .. } => c.expire_all(),
        AdminCommand::Te2e { ue, secs } => c.te2e(ue.as_bytes(), *secs),
        AdminCommand::Show { ue } => c.show(ue.as_bytes()),
        AdminCommand::Send { ue, payload } => {
            let p = crate::args::hex_bytes(payload)
                .map_err(|e| Failure::usage(format!("--payload: {e}")))?;
            c.send(ue.as_bytes(), &p)
        }
        AdminCommand::Metrics => {
            let m = c.metrics().map_err(fail)?;
            print!("{m}");
            return Ok(());
        }
    }
    .map_err(fail)?;
    crate::outln!("{v}");
    Ok(())
}
