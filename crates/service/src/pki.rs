//! `ciot-e2e pki init` and `pki issue`: a test PKI, so the whole setup runs
//! on a fresh machine without openssl commands.
//!
//! One CA signs every certificate. A certificate's common name says what its
//! holder is: `emks` (the EMKS server), `hss` (provisions roots),
//! `eese:<enterprise>` (fetches the roots of its enterprise's UEs), `admin`
//! (the EESE's admin interface, a server). The EMKS reads the role and the
//! enterprise from the client certificate ([`crate::tls::Peer::from_cert`]);
//! nothing else says who a client is.
//!
//! The CA key lives in a folder of its own (`--ca-dir`, by default the
//! sibling `<dir>-ca`), never in the TLS directory that every process is
//! given: a process that can read the CA key could issue itself any role.
//! Certificates last [`DEFAULT_DAYS`] unless told otherwise; the CA lasts
//! [`CA_DAYS`].

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::ServiceError;

/// The CA certificate, in every TLS directory and in the CA folder.
pub const CA_CERT: &str = "ca.crt";
/// The CA key, only in the CA folder.
pub const CA_KEY: &str = "ca.key";
/// The admin interface's bearer token (may do everything).
pub const ADMIN_TOKEN: &str = "admin.token";
/// The admin interface's read-only bearer token (show, metrics).
pub const ADMIN_READ_TOKEN: &str = "admin-read.token";
/// How long a role's certificate lasts unless `--days` says otherwise.
pub const DEFAULT_DAYS: u32 = 365;
/// How long the CA's certificate lasts.
pub const CA_DAYS: u32 = 3650;
/// Longest `--days`.
pub const MAX_DAYS: u32 = 3650;

/// A role a certificate can be issued for (`pki issue --role`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// An enterprise's EESE (client of the EMKS); the name is the enterprise.
    Eese,
    /// The HSS (client of the EMKS).
    Hss,
    /// The EESE's admin interface (server); the names are its host names.
    Admin,
    /// The EMKS (server); the names are its host names.
    Emks,
}

impl Role {
    /// The file stem the role's processes load (`<stem>.crt`, `<stem>.key`).
    #[must_use]
    pub fn stem(self) -> &'static str {
        match self {
            Role::Eese => "eese",
            Role::Hss => "hss",
            Role::Admin => "admin",
            Role::Emks => "emks",
        }
    }
}

fn pki_err(e: rcgen::Error) -> ServiceError {
    ServiceError::Tls(format!("certificate generation: {e}"))
}

fn io_err(path: &Path, e: &std::io::Error) -> ServiceError {
    ServiceError::Io(format!("{}: {e}", path.display()))
}

/// Writes a new file (never an existing one); secrets get mode 0600.
fn write_new(path: &Path, bytes: &[u8], secret: bool) -> Result<(), ServiceError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let _ = secret;
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            ServiceError::Usage(format!(
                "{} exists already; nothing is overwritten (use another directory)",
                path.display()
            ))
        } else {
            io_err(path, &e)
        }
    })?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| io_err(path, &e))
}

/// Creates a directory (and its parents); a new one holding keys is 0700.
fn make_dir(dir: &Path, private: bool) -> Result<(), ServiceError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    let _ = private;
    b.create(dir).map_err(|e| io_err(dir, &e))
}

/// Whether an enterprise name is usable in a certificate and a file name:
/// 1 to 32 of `a-z 0-9 -`.
#[must_use]
pub fn valid_enterprise(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Where `pki init DIR` keeps the CA unless told: the sibling `DIR-ca`.
///
/// # Errors
/// [`ServiceError::Usage`] when `dir` has no last component (`.`, `/`).
pub fn default_ca_dir(dir: &Path) -> Result<PathBuf, ServiceError> {
    let name = dir.file_name().ok_or_else(|| {
        ServiceError::Usage(format!(
            "{} has no name to put the CA folder beside; give --ca-dir",
            dir.display()
        ))
    })?;
    let mut n = name.to_os_string();
    n.push("-ca");
    Ok(dir.parent().unwrap_or_else(|| Path::new("")).join(n))
}

fn check_days(days: u32) -> Result<(), ServiceError> {
    if (1..=MAX_DAYS).contains(&days) {
        Ok(())
    } else {
        Err(ServiceError::Usage(format!(
            "--days must be 1 to {MAX_DAYS}, got {days}"
        )))
    }
}

fn validity(p: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    // An hour back for clocks a little behind.
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::days(i64::from(days));
}

fn random_token() -> Result<String, ServiceError> {
    let mut t = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut *t).map_err(|e| ServiceError::Io(format!("random: {e}")))?;
    Ok(format!("{}\n", hex::encode(*t)))
}

/// One leaf certificate: the common name, the SANs of a server, its days.
struct Leaf<'a> {
    cn: &'a str,
    server_names: Option<&'a [String]>,
    days: u32,
}

fn san(name: &str) -> Result<SanType, ServiceError> {
    if let Ok(ip) = name.parse::<std::net::IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let dns = (1..=253).contains(&name.len())
        && name.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !dns {
        return Err(ServiceError::Usage(format!(
            "--name {name:?}: not a DNS name or IP address"
        )));
    }
    Ok(SanType::DnsName(name.try_into().map_err(pki_err)?))
}

fn make_leaf(l: &Leaf<'_>, issuer: &Issuer<'_, KeyPair>) -> Result<(String, String), ServiceError> {
    let key = KeyPair::generate().map_err(pki_err)?;
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(pki_err)?;
    p.distinguished_name.push(DnType::CommonName, l.cn);
    if let Some(names) = l.server_names {
        p.subject_alt_names = names.iter().map(|n| san(n)).collect::<Result<_, _>>()?;
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    } else {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut p, l.days);
    let cert = p.signed_by(&key, issuer).map_err(pki_err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The names the servers of `pki init` carry.
fn loopback_names() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
}

/// [`init_with`] with the CA in [`default_ca_dir`] and [`DEFAULT_DAYS`].
///
/// # Errors
/// As [`init_with`].
pub fn init(dir: &Path, enterprises: &[String]) -> Result<Vec<PathBuf>, ServiceError> {
    init_with(dir, &default_ca_dir(dir)?, enterprises, DEFAULT_DAYS)
}

/// Writes a CA into `ca_dir` (`ca.crt`, `ca.key`) and into `dir` what the
/// one-machine setup needs: `ca.crt`, the EMKS, HSS, EESE (one per
/// enterprise; the first is also `eese.crt`) and admin-interface
/// certificates and keys, an admin token and a read token. Servers are named
/// `localhost`, `127.0.0.1` and `::1`. Returns the files written.
///
/// # Errors
/// [`ServiceError::Usage`] for a bad enterprise name or days, `ca_dir` equal
/// to or inside `dir`, or a CA already in either (nothing is overwritten);
/// I/O and generation errors.
pub fn init_with(
    dir: &Path,
    ca_dir: &Path,
    enterprises: &[String],
    days: u32,
) -> Result<Vec<PathBuf>, ServiceError> {
    if enterprises.is_empty() {
        return Err(ServiceError::Usage("at least one enterprise".into()));
    }
    if let Some(bad) = enterprises.iter().find(|e| !valid_enterprise(e)) {
        return Err(ServiceError::Usage(format!(
            "enterprise {bad:?}: 1 to 32 of a-z, 0-9 and -"
        )));
    }
    check_days(days)?;
    make_dir(dir, true)?;
    make_dir(ca_dir, true)?;
    let (d, c) = (
        dir.canonicalize().map_err(|e| io_err(dir, &e))?,
        ca_dir.canonicalize().map_err(|e| io_err(ca_dir, &e))?,
    );
    if c.starts_with(&d) {
        return Err(ServiceError::Usage(format!(
            "the CA folder {} must not be {} or inside it: every process reads that directory",
            ca_dir.display(),
            dir.display()
        )));
    }
    for p in [dir.join(CA_CERT), ca_dir.join(CA_KEY), ca_dir.join(CA_CERT)] {
        if p.exists() {
            return Err(ServiceError::Usage(format!(
                "{} already holds a CA; use another directory",
                p.parent().unwrap_or(dir).display()
            )));
        }
    }
    let mut written = Vec::new();
    let mut put = |p: PathBuf, bytes: &[u8], secret: bool| -> Result<(), ServiceError> {
        write_new(&p, bytes, secret)?;
        written.push(p);
        Ok(())
    };

    let ca_key = KeyPair::generate().map_err(pki_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(pki_err)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ciot-e2e test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut ca_params, CA_DAYS);
    let ca_cert = ca_params.self_signed(&ca_key).map_err(pki_err)?;
    let ca_key_pem = zeroize::Zeroizing::new(ca_key.serialize_pem());
    put(ca_dir.join(CA_KEY), ca_key_pem.as_bytes(), true)?;
    put(ca_dir.join(CA_CERT), ca_cert.pem().as_bytes(), false)?;
    put(dir.join(CA_CERT), ca_cert.pem().as_bytes(), false)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let servers = loopback_names();
    let mut leaf = |stem: &str, cn: &str, server: bool| -> Result<(), ServiceError> {
        let l = Leaf {
            cn,
            server_names: server.then_some(servers.as_slice()),
            days,
        };
        let (crt, key) = make_leaf(&l, &issuer)?;
        put(dir.join(format!("{stem}.crt")), crt.as_bytes(), false)?;
        put(
            dir.join(format!("{stem}.key")),
            zeroize::Zeroizing::new(key).as_bytes(),
            true,
        )?;
        Ok(())
    };
    leaf("emks", "emks", true)?;
    leaf("hss", "hss", false)?;
    for (i, e) in enterprises.iter().enumerate() {
        let cn = format!("eese:{e}");
        leaf(&format!("eese-{e}"), &cn, false)?;
        if i == 0 {
            leaf("eese", &cn, false)?;
        }
    }
    leaf("admin", "admin", true)?;
    for name in [ADMIN_TOKEN, ADMIN_READ_TOKEN] {
        let t = zeroize::Zeroizing::new(random_token()?);
        put(dir.join(name), t.as_bytes(), true)?;
    }
    Ok(written)
}

/// Issues one role's certificate and key (`<stem>.crt`, `<stem>.key`, mode
/// 0600) into `out` (created, 0700), with the CA's `ca.crt`, signed by the
/// CA of `ca_dir`. `names`: for [`Role::Eese`] exactly one, the enterprise;
/// for [`Role::Emks`] and [`Role::Admin`] the host names or addresses
/// clients use (at least one); for [`Role::Hss`] none or `hss`. For
/// [`Role::Admin`] the admin and read tokens are written too when `out` has
/// none. Returns the files written.
///
/// # Errors
/// [`ServiceError::Usage`] for bad names or days, or a role's files already
/// in `out` (nothing is overwritten); [`ServiceError::Tls`] for a missing or
/// bad CA; I/O errors.
pub fn issue(
    role: Role,
    names: &[String],
    out: &Path,
    ca_dir: &Path,
    days: u32,
) -> Result<Vec<PathBuf>, ServiceError> {
    check_days(days)?;
    let cn = match role {
        Role::Eese => match names {
            [e] if valid_enterprise(e) => format!("eese:{e}"),
            [e] => {
                return Err(ServiceError::Usage(format!(
                    "--name {e:?}: an enterprise is 1 to 32 of a-z, 0-9 and -"
                )));
            }
            _ => {
                return Err(ServiceError::Usage(
                    "--role eese needs one --name: the enterprise".into(),
                ));
            }
        },
        Role::Hss => {
            if names.iter().any(|n| n != "hss") {
                return Err(ServiceError::Usage(
                    "--role hss takes no --name (its certificate names the role only)".into(),
                ));
            }
            "hss".into()
        }
        Role::Admin | Role::Emks => {
            if names.is_empty() {
                return Err(ServiceError::Usage(format!(
                    "--role {} needs --name: the host name(s) or address(es) its clients use",
                    role.stem()
                )));
            }
            for n in names {
                san(n)?;
            }
            role.stem().into()
        }
    };
    let ca_crt_path = ca_dir.join(CA_CERT);
    let ca_key_path = ca_dir.join(CA_KEY);
    let ca_pem = fs::read_to_string(&ca_crt_path)
        .map_err(|e| ServiceError::Tls(format!("{}: {e}", ca_crt_path.display())))?;
    let key_pem = zeroize::Zeroizing::new(
        fs::read_to_string(&ca_key_path)
            .map_err(|e| ServiceError::Tls(format!("{}: {e}", ca_key_path.display())))?,
    );
    let ca_key = KeyPair::from_pem(&key_pem)
        .map_err(|e| ServiceError::Tls(format!("{}: {e}", ca_key_path.display())))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)
        .map_err(|e| ServiceError::Tls(format!("{}: {e}", ca_crt_path.display())))?;

    let stem = role.stem();
    let (crt_path, key_path) = (
        out.join(format!("{stem}.crt")),
        out.join(format!("{stem}.key")),
    );
    for p in [&crt_path, &key_path] {
        if p.exists() {
            return Err(ServiceError::Usage(format!(
                "{} exists already; nothing is overwritten (use another --out)",
                p.display()
            )));
        }
    }
    let server = matches!(role, Role::Admin | Role::Emks);
    let (crt, key) = make_leaf(
        &Leaf {
            cn: &cn,
            server_names: server.then_some(names),
            days,
        },
        &issuer,
    )?;
    let key = zeroize::Zeroizing::new(key);
    make_dir(out, true)?;
    let mut written = Vec::new();
    let out_ca = out.join(CA_CERT);
    match fs::read_to_string(&out_ca) {
        Ok(existing) if existing == ca_pem => {}
        Ok(_) => {
            return Err(ServiceError::Usage(format!(
                "{} holds another CA's certificate; use another --out",
                out_ca.display()
            )));
        }
        Err(_) => {
            write_new(&out_ca, ca_pem.as_bytes(), false)?;
            written.push(out_ca);
        }
    }
    write_new(&key_path, key.as_bytes(), true)?;
    written.push(key_path);
    write_new(&crt_path, crt.as_bytes(), false)?;
    written.push(crt_path);
    if role == Role::Admin {
        for name in [ADMIN_TOKEN, ADMIN_READ_TOKEN] {
            let p = out.join(name);
            if !p.exists() {
                let t = zeroize::Zeroizing::new(random_token()?);
                write_new(&p, t.as_bytes(), true)?;
                written.push(p);
            }
        }
    }
    Ok(written)
}
