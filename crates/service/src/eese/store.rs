//! Where the EESE service keeps its state: a state file (one instance) or a
//! PostgreSQL database (several instances sharing it). `--state PATH` or
//! `--state postgres://USER@HOST:PORT/DB`.
//!
//! The service talks to both through [`State`]; what only the database
//! does (ownership, leases, notifications) is reached through
//! [`State::pg`].

use std::collections::HashMap;
use std::path::Path;

use ciot_e2e::endpoint::UeId;

use super::pg::{PgOutbox, PgState};
use super::state::{Downlink, Outbox, StateStore, Uplink};
use crate::ServiceError;

/// The service's state, in a file or in PostgreSQL.
pub enum State {
    /// A redb file of this instance's own.
    File(StateStore),
    /// A database shared with other instances.
    Pg(Box<PgState>),
}

/// What opening the state gave the service to start from.
pub struct Opened {
    /// The state.
    pub state: State,
    /// Snapshots to restore lazily (a file's; none from a database, which
    /// is read UE by UE as their hellos arrive).
    pub pending: HashMap<UeId, Box<[u8]>>,
    /// Lines an operator should see (a file moved aside, snapshots set
    /// aside).
    pub notes: Vec<String>,
    /// Snapshots of wire format 2 removed (a file's).
    pub format2_removed: usize,
    /// Downlink records waiting (a file's; a database's are read per UE).
    pub downlinks: Vec<(u64, Downlink)>,
}

impl State {
    /// Opens `--state`: a PostgreSQL URL (`postgres://…`, `postgresql://…`)
    /// or a file path. `instance` names this instance in a database (a
    /// random name when `None`); `init` moves a damaged file aside.
    ///
    /// # Errors
    /// As [`StateStore::open_checked`] and [`PgState::open`].
    pub fn open(state: &Path, instance: Option<&str>, init: bool) -> Result<Opened, ServiceError> {
        if let Some(url) = state.to_str().filter(|s| super::pg::is_url(s)) {
            let pg = PgState::open(url, instance)?;
            return Ok(Opened {
                notes: vec![format!(
                    "state in PostgreSQL as instance {} (sessions read as their UEs say hello)",
                    pg.name()
                )],
                state: State::Pg(Box::new(pg)),
                pending: HashMap::new(),
                format2_removed: 0,
                downlinks: Vec::new(),
            });
        }
        let (mut file, moved) = StateStore::open_checked(state, init)?;
        let mut notes = Vec::new();
        if let Some(aside) = moved {
            notes.push(format!(
                "state file {} was damaged: moved aside to {} (--init); starting with no sessions",
                state.display(),
                aside.display()
            ));
        }
        // A snapshot that cannot be restored is set aside: its UE starts a
        // new session at its next hello, the others are restored.
        let (mut pending, set_aside) = file.load_all_checked()?;
        notes.extend(set_aside.into_iter().map(|(_, note)| note));
        // Snapshots of wire format 2 serve no session of this one: removed,
        // their UEs start afresh at their next hello (see `state`).
        let format2_removed = file.remove_format2(&mut pending)?;
        let downlinks = file.downlinks()?;
        Ok(Opened {
            state: State::File(file),
            pending,
            notes,
            format2_removed,
            downlinks,
        })
    }

    /// The database, when the state is in one.
    pub fn pg(&mut self) -> Option<&mut PgState> {
        match self {
            State::Pg(p) => Some(p),
            State::File(_) => None,
        }
    }

    /// Whether the state is shared with other instances.
    #[must_use]
    pub const fn shared(&self) -> bool {
        matches!(self, State::Pg(_))
    }

    /// Stores the snapshots and the uplink records in one durable
    /// transaction. Returns the UEs another instance took over since (a
    /// database's; their snapshots were not written and their sessions must
    /// go).
    ///
    /// # Errors
    /// The store failed: nothing of the batch is stored.
    pub fn commit<'a>(
        &mut self,
        snapshots: impl IntoIterator<Item = (&'a UeId, &'a [u8])>,
        uplinks: &[Uplink],
    ) -> Result<Vec<UeId>, ServiceError> {
        match self {
            State::File(f) => f.commit(snapshots, uplinks).map(|()| Vec::new()),
            State::Pg(p) => p.commit(snapshots, uplinks),
        }
    }

    /// `ue`'s stored snapshot when its session leaves memory: a file keeps
    /// it for the next hello; a database is read again then (and this
    /// instance forgets what it held of the row).
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn evicted(&mut self, ue: &UeId) -> Result<Option<Box<[u8]>>, ServiceError> {
        match self {
            State::File(f) => f.get(ue),
            State::Pg(p) => {
                p.forget(ue);
                Ok(None)
            }
        }
    }

    /// Forgets `ue`'s snapshot (its keys were dropped).
    ///
    /// # Errors
    /// The store failed.
    pub fn remove(&mut self, ue: &UeId) -> Result<(), ServiceError> {
        match self {
            State::File(f) => f.remove(ue),
            State::Pg(p) => p.remove(ue),
        }
    }

    /// Stores a downlink payload; returns its key.
    ///
    /// # Errors
    /// The store failed: nothing is stored.
    pub fn queue_downlink(&mut self, d: &Downlink) -> Result<u64, ServiceError> {
        match self {
            State::File(f) => f.queue_downlink(d),
            State::Pg(p) => p.queue_downlink(d),
        }
    }

    /// Deletes these downlink records.
    ///
    /// # Errors
    /// The store failed: nothing is deleted.
    pub fn downlink_sent(&mut self, keys: &[u64]) -> Result<(), ServiceError> {
        match self {
            State::File(f) => f.downlink_sent(keys),
            State::Pg(p) => p.downlink_sent(keys),
        }
    }

    /// The uplink outbox, for the webhook sender.
    #[must_use]
    pub fn outbox(&self) -> OutboxHandle {
        match self {
            State::File(f) => OutboxHandle::File(f.outbox()),
            State::Pg(p) => OutboxHandle::Pg(Box::new(p.outbox())),
        }
    }
}

/// The uplink outbox of either store.
#[derive(Clone)]
pub enum OutboxHandle {
    /// A state file's.
    File(Outbox),
    /// A database's (one instance sends at a time).
    Pg(Box<PgOutbox>),
}

impl From<Outbox> for OutboxHandle {
    fn from(o: Outbox) -> Self {
        OutboxHandle::File(o)
    }
}

impl From<PgOutbox> for OutboxHandle {
    fn from(o: PgOutbox) -> Self {
        OutboxHandle::Pg(Box::new(o))
    }
}

impl OutboxHandle {
    /// See [`Outbox::message_id`].
    #[must_use]
    pub fn message_id(&self, key: u64) -> String {
        match self {
            OutboxHandle::File(o) => o.message_id(key),
            OutboxHandle::Pg(o) => o.message_id(key),
        }
    }

    /// See [`Outbox::next`].
    ///
    /// # Errors
    /// The store failed.
    pub fn next(&self, after: Option<u64>, max: usize) -> Result<Vec<(u64, Uplink)>, ServiceError> {
        match self {
            OutboxHandle::File(o) => o.next(after, max),
            OutboxHandle::Pg(o) => o.next(after, max),
        }
    }

    /// See [`Outbox::ack`].
    ///
    /// # Errors
    /// The store failed.
    pub fn ack(&self, keys: &[u64]) -> Result<usize, ServiceError> {
        match self {
            OutboxHandle::File(o) => o.ack(keys),
            OutboxHandle::Pg(o) => o.ack(keys),
        }
    }

    /// See [`Outbox::depth`].
    ///
    /// # Errors
    /// The store failed.
    pub fn depth(&self) -> Result<u64, ServiceError> {
        match self {
            OutboxHandle::File(o) => o.depth(),
            OutboxHandle::Pg(o) => o.depth(),
        }
    }

    /// See [`Outbox::oldest_received_ms`].
    ///
    /// # Errors
    /// The store failed.
    pub fn oldest_received_ms(&self) -> Result<Option<u64>, ServiceError> {
        match self {
            OutboxHandle::File(o) => o.oldest_received_ms(),
            OutboxHandle::Pg(o) => o.oldest_received_ms(),
        }
    }
}
