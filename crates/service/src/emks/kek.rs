//! The EMKS's key-encryption key (KEK) and its private files.
//!
//! Roots are stored encrypted under the KEK (AES-256-GCM, see
//! [`super::store`]). The KEK lives in a file of its own, 32 random octets,
//! mode 0600, by default `<tls-dir>/emks.kek`: not beside the database, so a
//! copy of the database (a backup, a stolen disk image of the data volume)
//! holds no usable root.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::ServiceError;

/// The KEK file's name in the TLS directory when `--kek-file` is not given.
pub const DEFAULT_KEK_FILE: &str = "emks.kek";

/// Opens `path` for appending, creating it with mode 0600, and tightens an
/// existing file to 0600.
///
/// # Errors
/// [`ServiceError::Io`] naming the file.
pub fn open_private_append(path: &Path) -> Result<File, ServiceError> {
    let mut o = OpenOptions::new();
    o.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let f = o
        .open(path)
        .map_err(|e| ServiceError::Io(format!("{}: {e}", path.display())))?;
    tighten(path)?;
    Ok(f)
}

/// Creates `path` empty with mode 0600 when it does not exist, and sets an
/// existing file to mode 0600.
///
/// # Errors
/// [`ServiceError::Io`] naming the file.
pub fn ensure_private(path: &Path) -> Result<(), ServiceError> {
    if !path.exists() {
        let mut o = OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        match o.open(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(ServiceError::Io(format!("{}: {e}", path.display()))),
        }
    }
    tighten(path)
}

/// Sets `path` to mode 0600 (owner read and write only) when it is a
/// regular file (a device such as `/dev/null` is left as it is).
fn tighten(path: &Path) -> Result<(), ServiceError> {
    if !fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| ServiceError::Io(format!("{}: mode 0600: {e}", path.display())))?;
    }
    let _ = path;
    Ok(())
}

/// A key-encryption key, with the file it came from (for messages).
pub struct Kek {
    key: Zeroizing<[u8; 32]>,
    source: String,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Kek {
    /// A KEK from its octets; `source` names it in error messages.
    #[must_use]
    pub fn from_bytes(key: [u8; 32], source: &str) -> Self {
        Kek {
            key: Zeroizing::new(key),
            source: source.to_string(),
        }
    }

    /// Where it came from (a file name).
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    pub(crate) fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// Reads the KEK file: 32 octets (or 64 hex digits and a line end).
    /// Refused when the file is missing, of another length, or open to the
    /// group or others (any mode bit outside 0700).
    ///
    /// # Errors
    /// [`ServiceError::Usage`] naming the file and what is wrong.
    pub fn load(path: &Path) -> Result<Self, ServiceError> {
        let name = path.display().to_string();
        let mut f =
            File::open(path).map_err(|e| ServiceError::Usage(format!("KEK {name}: {e}")))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = f
                .metadata()
                .map_err(|e| ServiceError::Usage(format!("KEK {name}: {e}")))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(ServiceError::Usage(format!(
                    "KEK {name} is mode {:o}: readable beyond its owner; chmod 600 it \
                     (and consider it disclosed if others could read it)",
                    mode & 0o777
                )));
            }
        }
        let mut raw = Zeroizing::new(Vec::with_capacity(66));
        Read::by_ref(&mut f)
            .take(200)
            .read_to_end(&mut raw)
            .map_err(|e| ServiceError::Usage(format!("KEK {name}: {e}")))?;
        let mut key = Zeroizing::new([0u8; 32]);
        if raw.len() == 32 {
            key.copy_from_slice(&raw);
        } else {
            let text = raw.strip_suffix(b"\n").unwrap_or(&raw);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if hex::decode_to_slice(text, &mut *key).is_err() {
                return Err(ServiceError::Usage(format!(
                    "KEK {name} must hold 32 octets (or 64 hex digits), it holds {}",
                    raw.len()
                )));
            }
        }
        Ok(Kek { key, source: name })
    }

    /// Makes a new KEK file: 32 random octets, mode 0600. Refused when the
    /// file exists.
    ///
    /// # Errors
    /// [`ServiceError::Io`] naming the file; no randomness.
    pub fn create(path: &Path) -> Result<Self, ServiceError> {
        let name = path.display().to_string();
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut *key).map_err(|e| ServiceError::Io(format!("no randomness: {e}")))?;
        let mut o = OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut f = o
            .open(path)
            .map_err(|e| ServiceError::Io(format!("KEK {name}: {e}")))?;
        f.write_all(&*key)
            .and_then(|()| f.sync_all())
            .map_err(|e| ServiceError::Io(format!("KEK {name}: {e}")))?;
        Ok(Kek { key, source: name })
    }
}

/// The KEK file to use: `--kek-file`, else [`DEFAULT_KEK_FILE`] in the TLS
/// directory.
#[must_use]
pub fn kek_path(kek_file: Option<&Path>, tls_dir: &Path) -> PathBuf {
    kek_file.map_or_else(|| tls_dir.join(DEFAULT_KEK_FILE), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ciot-kek-{name}-{}", std::process::id()));
        let _ = fs::remove_file(&d);
        d
    }

    #[test]
    fn a_created_kek_is_private_and_reads_back() {
        let p = tmp("new");
        let k = Kek::create(&p).expect("create");
        assert!(
            Kek::create(&p).is_err(),
            "an existing KEK is never overwritten"
        );
        let k2 = Kek::load(&p).expect("load");
        assert_eq!(k.key(), k2.key());
        assert_ne!(k.key(), &[0u8; 32]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = fs::metadata(&p).expect("meta").permissions().mode();
            assert_eq!(m & 0o777, 0o600);
            fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).expect("chmod");
            let e = Kek::load(&p).expect_err("group readable");
            assert!(e.to_string().contains("chmod 600"), "{e}");
        }
        let _ = fs::remove_file(&p);
    }

    #[test]
    fn a_kek_of_the_wrong_length_is_refused() {
        let p = tmp("short");
        ensure_private(&p).expect("create");
        fs::write(&p, [1u8; 31]).expect("write");
        let e = Kek::load(&p).expect_err("short");
        assert!(e.to_string().contains("32 octets"), "{e}");
        fs::write(&p, format!("{}\n", "ab".repeat(32))).expect("write");
        assert_eq!(Kek::load(&p).expect("hex").key(), &[0xab; 32]);
        let _ = fs::remove_file(&p);
    }
}
