//! The EMKS's audit log: one JSON line per provisioning, revocation, root
//! fetch, RAND request, refused request and failed TLS handshake, appended
//! and flushed before the answer leaves (a line that cannot be written
//! refuses the request). It names who asked, what, for which UE and the
//! outcome; never a root.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::api::ue_text;
use crate::ServiceError;

/// The append-only audit file (mode 0600).
pub struct AuditLog {
    file: Mutex<File>,
    name: String,
}

/// One line's content.
pub struct Line<'a> {
    /// The certificate's name (`hss`, `eese:acme`, …), or the remote
    /// address when there is no certificate.
    pub peer: &'a str,
    /// The remote address.
    pub addr: &'a str,
    /// `provision`, `revoke`, `root_fetch`, `rand`, `changes`,
    /// `tls_handshake`, `request`.
    pub action: &'a str,
    /// The UE, when the request names one.
    pub ue: Option<&'a [u8]>,
    /// The HTTP status and a word, or the error.
    pub result: &'a str,
}

impl AuditLog {
    /// Opens (or creates) the audit file for appending, mode 0600.
    ///
    /// # Errors
    /// [`ServiceError::Io`] naming the file.
    pub fn open(path: &Path) -> Result<Self, ServiceError> {
        Ok(AuditLog {
            file: Mutex::new(super::kek::open_private_append(path)?),
            name: path.display().to_string(),
        })
    }

    /// Appends `line` and flushes it.
    ///
    /// # Errors
    /// [`ServiceError::Io`] when the line could not be written.
    pub fn write(&self, line: &Line<'_>) -> Result<(), ServiceError> {
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let mut v = json!({
            "time": u64::try_from(time_ms).unwrap_or(u64::MAX),
            "peer": line.peer,
            "addr": line.addr,
            "action": line.action,
            "result": line.result,
        });
        if let (Some(ue), Value::Object(m)) = (line.ue, &mut v) {
            let t = ue_text(ue);
            if !t.is_empty() {
                m.insert("ue".into(), Value::String(t));
            }
            m.insert("ue_hex".into(), Value::String(hex::encode(ue)));
        }
        let mut text = v.to_string();
        text.push('\n');
        let mut f = self
            .file
            .lock()
            .map_err(|_| ServiceError::Io(format!("audit log {}: poisoned", self.name)))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.flush())
            .map_err(|e| ServiceError::Io(format!("audit log {}: {e}", self.name)))
    }
}
