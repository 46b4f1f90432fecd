//! The EMKS and the EESE as services (TR 33.863 §6.5.2.5's three EESE
//! interfaces): the EMKS holds each UE's root and its generation in an
//! embedded database and serves it to the EESE of that UE's enterprise over
//! mutually authenticated HTTPS/JSON; the EESE runs the session table over
//! UDP with durable state, fetches roots and RANDs from the EMKS, learns of
//! new root generations by long-poll, and offers the enterprise an admin
//! interface (expire, te2e, show, send, metrics).
//!
//! `docs/DEPLOYMENT.md` describes how to run them; the `ciot-e2e` binary only
//! parses flags and calls in here.

#![forbid(unsafe_code)]

pub mod admin;
pub mod eese;
pub mod emks;
pub mod pki;
pub mod tls;

/// Why a service or a client call failed. Every variant is one sentence a
/// person can act on.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Bad arguments or configuration.
    #[error("{0}")]
    Usage(String),
    /// A file or socket could not be used.
    #[error("{0}")]
    Io(String),
    /// Certificates or keys could not be loaded or made.
    #[error("TLS: {0}")]
    Tls(String),
    /// The embedded database failed.
    #[error("database: {0}")]
    Db(String),
    /// The peer could not be reached.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The peer answered with an error.
    #[error("{status}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The peer's error message.
        message: String,
    },
}

impl From<redb::Error> for ServiceError {
    fn from(e: redb::Error) -> Self {
        ServiceError::Db(e.to_string())
    }
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for ServiceError {
            fn from(e: $t) -> Self {
                ServiceError::Db(e.to_string())
            }
        }
    )*};
}
db_err!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
