//! The table's traffic: datagrams in, payloads out, and the effects of all
//! sessions polled in one place.

use std::hash::Hash;

use crate::kdf::RootKey;
use crate::wire::{HelloPacket, MessageType, peek_type};

use super::super::eese::Route;
use super::super::effects::{
    Datagram, Persist, RandSource, Received, Reject, SendError, Transmit, UnknownPersist,
};
use super::super::time::Instant;
use super::{EeseTable, Entry2, QUEUED_PER_UE, SendOutcome};

impl<Id: Hash + Eq + Ord + Clone, A: Hash + Eq + Clone, R: RandSource> EeseTable<Id, A, R> {
    /// Handles a datagram from `from`. A hello names its UE, which `resolve`
    /// looks up (its table key and root) when the table has no session for
    /// it: the hello's tag is verified with that root before any state is
    /// made. A fresh, authentic hello from an address the UE has not proven
    /// makes it the UE's candidate address: it gets the hello's answer, and
    /// becomes the UE's address once the UE uses, from there, the keyset that
    /// answer offered. Anything else is taken as from the UE at `from`: data
    /// is decrypted in place and returned.
    ///
    /// # Errors
    /// [`Reject::NoSession`] for a non-hello from an address no UE said hello
    /// from; [`Reject::UnknownUe`] for a hello `resolve` knows nothing of;
    /// the [`Reject`] the session gives otherwise. None of these leaves any
    /// state behind for an unauthenticated sender.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: &A,
        buf: &mut [u8],
        resolve: impl FnOnce(&[u8]) -> Option<(Id, RootKey)>,
    ) -> Result<(Id, Received), Reject> {
        if peek_type(buf)? != MessageType::HELLO {
            let id = self.peers.get(from).cloned().ok_or(Reject::NoSession)?;
            return self
                .session_datagram(now, &id, from, buf, false)
                .map(|r| (id, r));
        }
        let packet = HelloPacket::new_checked(&buf[..])?;
        let (id, root) = resolve(packet.id()).ok_or(Reject::UnknownUe)?;
        let made = !self.sessions.contains_key(&id);
        let remembered = self.forgotten.get(&id).copied();
        if made {
            // Verify before any state exists for this UE (once: the session
            // is told it was).
            let s = self.made_again(&id, root);
            packet.verify(&s.auth(&self.cfg))?;
            self.put(id.clone(), s, now);
        }
        match self.session_datagram(now, &id, from, buf, made) {
            Ok(r) => Ok((id, r)),
            Err(e) => {
                if made {
                    // A hello that is not fresh (replayed after the session
                    // was evicted) leaves nothing behind: not even the session.
                    self.unmake(&id, remembered);
                }
                Err(e)
            }
        }
    }

    /// Runs a datagram from `from` through `ue`'s session; a fresh hello
    /// from elsewhere than the proven address makes `from` the candidate,
    /// and a use of an offer from the candidate proves it.
    fn session_datagram(
        &mut self,
        now: Instant,
        ue: &Id,
        from: &A,
        buf: &mut [u8],
        hello_verified: bool,
    ) -> Result<Received, Reject> {
        let route = match self.sessions.get(ue) {
            Some(e) if e.peer.as_ref() == Some(from) => Route::Peer,
            Some(_) => Route::Hello,
            None => return Err(Reject::NoSession),
        };
        let is_hello = peek_type(buf).ok() == Some(MessageType::HELLO);
        if !is_hello
            && route == Route::Hello
            && self.sessions.get(ue).and_then(|e| e.candidate.as_ref()) != Some(from)
        {
            // An address that is neither proven nor a candidate any more.
            return Err(Reject::NoSession);
        }
        let r = self
            .with(ue, |s, env, e| {
                let r = s.handle_datagram(now, env, buf, route, hello_verified);
                if r.is_ok() {
                    *e.last_active = now;
                }
                r
            })
            .unwrap_or(Err(Reject::NoSession));
        if is_hello && r.is_ok() && route == Route::Hello {
            self.set_candidate(ue, from);
        }
        let promoted = self
            .sessions
            .get_mut(ue)
            .and_then(|e| e.session.promoted_from.take());
        if promoted == Some(Route::Hello) {
            self.prove(ue, from);
        }
        r
    }

    /// `from` is where `ue`'s last fresh hello came from. It does not take
    /// the proven address of another UE (only a proof does).
    fn set_candidate(&mut self, ue: &Id, from: &A) {
        let Some(e) = self.sessions.get_mut(ue) else {
            return;
        };
        if let Some(old) = e.candidate.replace(from.clone())
            && &old != from
            && self.peers.get(&old) == Some(ue)
        {
            self.peers.remove(&old);
        }
        let taken = self.peers.get(from).is_some_and(|other| {
            other != ue
                && self
                    .sessions
                    .get(other)
                    .is_some_and(|o| o.peer.as_ref() == Some(from))
        });
        if !taken
            && let Some(other) = self.peers.insert(from.clone(), ue.clone())
            && &other != ue
            && let Some(o) = self.sessions.get_mut(&other)
            && o.candidate.as_ref() == Some(from)
        {
            o.candidate = None;
        }
        self.touch(ue);
    }

    /// `ue` used a keyset offered to it from `from`: that is where it is.
    /// The new address's answer budget is what it sent and was not
    /// answered with while it was a candidate (the session moved it).
    fn prove(&mut self, ue: &Id, from: &A) {
        let Some(e) = self.sessions.get_mut(ue) else {
            return;
        };
        e.candidate = None;
        if e.peer.as_ref() == Some(from) {
            return;
        }
        if let Some(old) = e.peer.replace(from.clone())
            && self.peers.get(&old) == Some(ue)
        {
            self.peers.remove(&old);
        }
        if let Some(other) = self.peers.insert(from.clone(), ue.clone())
            && &other != ue
            && let Some(o) = self.sessions.get_mut(&other)
        {
            // Another UE was at this address before: it has moved on.
            if o.peer.as_ref() == Some(from) {
                o.peer = None;
            }
            if o.candidate.as_ref() == Some(from) {
                o.candidate = None;
            }
        }
        self.touch(ue);
    }

    /// Sends a payload to `ue`: sealed into `out` when the keyset in use
    /// allows ([`SendOutcome::Sent`]: transmit it), else kept while a new
    /// keyset is offered first (TR 33.863 §6.5.2.3 step 3 skipped: the EESE
    /// starts the contact, trigger first) and handed out by
    /// [`EeseTable::poll_transmit`] once the UE used it.
    ///
    /// # Errors
    /// [`SendError::NoSession`]; [`SendError::Busy`] when
    /// [`QUEUED_PER_UE`] payloads already wait; [`SendError::RandPending`]
    /// while a RAND from the EMKS is awaited (the payload is kept);
    /// [`SendError::BufferTooSmall`], [`SendError::PayloadTooLong`].
    pub fn send(
        &mut self,
        now: Instant,
        ue: &Id,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<SendOutcome<A>, SendError> {
        #[cfg(feature = "kept-ciphers")]
        if let Some(sent) = self.send_plain(now, ue, payload, out) {
            return Ok(sent);
        }
        self.with(ue, |s, env, e| {
            let queue = |e: &mut Entry2<'_, A>| {
                if e.queued.len() >= QUEUED_PER_UE {
                    return Err(SendError::Busy);
                }
                e.queued.push_back(payload.to_vec());
                Ok(SendOutcome::Queued)
            };
            // Keep the order behind payloads already waiting; wait for a
            // proven address to send to.
            let Some(to) = e.peer.cloned().filter(|_| e.queued.is_empty()) else {
                return queue(e);
            };
            match s.send(now, env, payload, out) {
                Ok(sealed) => Ok(SendOutcome::Sent { sealed, to }),
                Err(SendError::EffectsPending) => queue(e),
                Err(SendError::RandPending) => {
                    queue(e)?;
                    Err(SendError::RandPending)
                }
                Err(other) => Err(other),
            }
        })
        .unwrap_or(Err(SendError::NoSession))
    }

    /// [`EeseTable::send`] in the steady state (see `Session::send_plain`):
    /// nothing waits before this payload, the UE's address is proven and its
    /// ciphers are on the kept list. The seal then changes nothing the lists
    /// and the heap depend on, so the session is not rescheduled: one lookup
    /// and the seal. `None` otherwise (nothing has changed).
    #[cfg(feature = "kept-ciphers")]
    #[inline]
    fn send_plain(
        &mut self,
        now: Instant,
        ue: &Id,
        payload: &[u8],
        out: &mut [u8],
    ) -> Option<SendOutcome<A>> {
        let e = self.sessions.get_mut(ue)?;
        if !e.queued.is_empty() || !e.in_kept {
            return None;
        }
        let to = e.peer.as_ref()?;
        let sealed = e.session.send_plain(now, payload, out)?;
        let sent = SendOutcome::Sent {
            sealed,
            to: to.clone(),
        };
        #[cfg(debug_assertions)]
        self.assert_scheduled(ue);
        Some(sent)
    }

    /// The next snapshot to store, with the UE it belongs to; `out` holds
    /// [`EESE_SNAPSHOT_LEN`](crate::endpoint::EESE_SNAPSHOT_LEN) octets. Store it as
    /// that UE's (replacing the previous one), then call
    /// [`EeseTable::persisted`].
    pub fn poll_persist(&mut self, out: &mut [u8]) -> Option<(Id, Persist)> {
        while let Some(id) = self.lists.to_persist.pop_front() {
            let Some(e) = self.sessions.get_mut(&id) else {
                continue;
            };
            e.in_persist = false;
            if let Some(p) = e.session.poll_persist(&self.cfg, out) {
                return Some((id, p));
            }
        }
        None
    }

    /// `ue`'s snapshot of `persist` is durable: what it covers may go out.
    ///
    /// # Errors
    /// [`UnknownPersist`] when it is not the snapshot last polled for `ue`.
    pub fn persisted(&mut self, ue: &Id, persist: Persist) -> Result<(), UnknownPersist> {
        let g = persist.generation();
        let r = self
            .sessions
            .get_mut(ue)
            .map_or(Err(UnknownPersist(g)), |e| e.session.persisted(persist));
        self.touch(ue);
        r
    }

    /// The next datagram to send, with the UE it goes to and where: a
    /// key-expired error or a trigger, or a payload that waited for its
    /// keyset. `out` must hold the largest payload plus 25 octets (and at
    /// least 50, or nothing comes out).
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<(Id, A, Transmit)> {
        if out.len() < crate::wire::TriggerRepr::LEN {
            return None;
        }
        // Each session listed now is polled at most once per call: one that
        // is listed again without having sent anything waits for the next
        // call, so no state can make this loop spin.
        let mut budget = self.lists.to_transmit.len();
        while budget > 0
            && let Some(id) = self.lists.to_transmit.pop_front()
        {
            budget -= 1;
            // Off the list while it runs: `touch` at the end of the call puts
            // it back if it can make progress again.
            match self.sessions.get_mut(&id) {
                Some(e) => e.in_transmit = false,
                None => continue,
            }
            let got = self.with(&id, |s, env, e| {
                if let Some((t, route)) = s.poll_transmit(now, env, out) {
                    return Some((t, route));
                }
                e.peer?;
                let payload = e.queued.front()?;
                match s.send(now, env, payload, out) {
                    Ok(sealed) => {
                        e.queued.pop_front();
                        Some((
                            Transmit {
                                len: sealed.len,
                                what: Datagram::Data {
                                    ksi: sealed.ksi,
                                    counter: sealed.counter,
                                    seq: sealed.seq,
                                    retransmission: false,
                                },
                            },
                            Route::Peer,
                        ))
                    }
                    // Waits for a snapshot, an offer to be used or a RAND:
                    // the session is back on the list once it can go on.
                    Err(SendError::EffectsPending | SendError::RandPending) => None,
                    Err(_) => {
                        // Cannot be sent at all (too long for `out`): dropped.
                        e.queued.pop_front();
                        None
                    }
                }
            });
            if let Some(Some((t, route))) = got {
                let to = self.sessions.get(&id).and_then(|e| match route {
                    Route::Peer => e.peer.clone(),
                    Route::Hello => e.candidate.clone(),
                });
                if let Some(to) = to {
                    return Some((id, to, t));
                }
            }
        }
        None
    }
}
