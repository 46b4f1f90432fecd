//! Datagrams in and payloads out; root and RAND fetches and what the workers report back.

use super::*;

impl EeseService {
    /// One datagram from `from`.
    pub(super) fn receive(&mut self, from: SocketAddr, d: &mut [u8]) -> Result<(), ServiceError> {
        inc(&self.metrics.datagrams_in);
        let now = self.clock.now();
        if peek_type(d).ok() == Some(MessageType::HELLO) {
            let Some(id) = HelloPacket::new_checked(&d[..])
                .ok()
                .and_then(|p| UeId::new(p.id()).ok())
            else {
                self.metrics.reject("malformed");
                return Ok(());
            };
            if !self.roots.contains_key(&id) {
                // Not known yet: fetch its root; the UE's next hello is taken.
                let f = self.fetches.get(&id);
                let reason = match f {
                    Some(f) if f.unknown => "unknown_ue",
                    Some(f) if f.unreachable => "emks_unreachable",
                    _ => "root_pending",
                };
                self.metrics.reject(reason);
                self.request_root(&id);
                return Ok(());
            }
            self.restore_pending(&id);
        }
        let had = self.table.len();
        let roots = &self.roots;
        let result = self.table.handle_datagram(now, &from, d, |b| {
            let id = UeId::new(b).ok()?;
            roots.get(&id).map(|(_, r)| (id, r.clone()))
        });
        match result {
            Ok((id, Received::Data(got))) => {
                inc(&self.metrics.delivered);
                let payload = d[got.payload].to_vec();
                self.deliver(now, id, payload)?;
            }
            Ok((_, Received::Control(_))) => {}
            Err(r) => self.metrics.reject(reject_reason(&r)),
        }
        if self.table.len() > had && self.table.len() > self.cfg.max_sessions {
            self.evict_quietest()?;
        }
        Ok(())
    }

    pub(super) fn deliver(
        &mut self,
        now: Instant,
        id: UeId,
        payload: Vec<u8>,
    ) -> Result<(), ServiceError> {
        if let Some(w) = &self.webhook {
            if let Err(TrySendError::Full(_)) = w.try_send((id, payload)) {
                inc(&self.metrics.webhook_failed);
            }
            return Ok(());
        }
        let mut echo = Vec::with_capacity(6 + payload.len());
        echo.extend_from_slice(b"echo: ");
        echo.extend_from_slice(&payload);
        self.send_payload(now, &id, &echo).map(|_| ())
    }

    pub(super) fn send_payload(
        &mut self,
        now: Instant,
        id: &UeId,
        p: &[u8],
    ) -> Result<&'static str, ServiceError> {
        let mut out = std::mem::take(&mut self.out);
        let r = match self.table.send(now, id, p, &mut out) {
            Ok(SendOutcome::Sent { sealed, to }) => {
                if self.sock.send_to(&out[..sealed.len], to).is_ok() {
                    inc(&self.metrics.datagrams_out);
                    inc(&self.metrics.payloads_sent);
                }
                Ok("sent")
            }
            Ok(SendOutcome::Queued) => Ok("queued"),
            Err(e) => Err(ServiceError::Refused {
                status: 409,
                message: format!("not sent: {e}"),
            }),
        };
        self.out = out;
        r
    }

    /// Restores `id`'s stored snapshot into the table if it waits for it
    /// (its root is cached).
    pub(super) fn restore_pending(&mut self, id: &UeId) {
        if self.table.contains(id) {
            return;
        }
        let Some(snap) = self.pending.remove(id) else {
            return;
        };
        let Some((_, root)) = self.roots.get(id) else {
            self.pending.insert(*id, snap);
            return;
        };
        if let Err(e) = self.table.restore(*id, root.clone(), &snap) {
            // A snapshot of an older root generation (re-provisioned while
            // this EESE was down) or a damaged one: the UE starts afresh. That
            // is safe: the new session's first counter is above the clock
            // floor and above the highest the UE's hello says it accepted,
            // and every key is bound to the nonce of the UE's start.
            self.log(format_args!(
                "{id}: snapshot not restored ({e}); new session"
            ));
        }
    }

    pub(super) fn request_root(&mut self, id: &UeId) {
        if self.fetches.len() >= MAX_FETCH_ENTRIES {
            // Bounded: forget the settled ones (a flood of hellos naming
            // unknown UEs cannot grow this without bound).
            self.fetches.retain(|_, f| f.in_flight);
        }
        let f = self.fetches.entry(*id).or_default();
        if f.in_flight || f.retry_at.is_some_and(|t| StdInstant::now() < t) {
            return;
        }
        f.in_flight = true;
        let _ = self.jobs.send(Job::Root(*id));
    }

    pub(super) fn retry_fetches(&mut self) {
        if (!self.rand_waiting.is_empty() || self.pool.borrow().len() < RAND_BATCH / 4)
            && self.cfg.rand == RandChoice::Emks
            && !self.rands_in_flight
            && self.rand_retry_at.is_none_or(|t| StdInstant::now() >= t)
        {
            self.rands_in_flight = true;
            let _ = self.jobs.send(Job::Rands(RAND_BATCH));
        }
        if self.parked.is_empty() {
            return;
        }
        let ids: Vec<UeId> = self.parked.keys().copied().collect();
        for id in ids {
            self.request_root(&id);
        }
    }

    pub(super) fn message(&mut self, msg: Msg) -> Result<(), ServiceError> {
        let now = self.clock.now();
        match msg {
            Msg::Root { ue, result } => {
                let f = self.fetches.entry(ue).or_default();
                f.in_flight = false;
                match result {
                    Ok((generation, root)) => {
                        self.fetches.remove(&ue);
                        let old = self.roots.insert(ue, (generation, root.clone()));
                        if let Some((g, _)) = old
                            && g != generation
                            && self.table.contains(&ue)
                        {
                            // A new AKA run: the old root's keysets are void.
                            self.table.replace_root(&ue, root);
                            inc(&self.metrics.root_changes);
                            self.log(format_args!(
                                "{ue}: new root generation {generation}; its keysets are invalid"
                            ));
                        }
                        for r in self.parked.remove(&ue).unwrap_or_default() {
                            self.admin(r)?;
                        }
                    }
                    Err(e) => {
                        f.failures = f.failures.saturating_add(1);
                        let refused = matches!(e, ServiceError::Refused { status: 404, .. });
                        f.unknown = refused;
                        f.unreachable = !refused;
                        let backoff = if refused {
                            Duration::from_secs(10)
                        } else {
                            Duration::from_millis(500 << f.failures.min(5))
                                .min(Duration::from_secs(10))
                        };
                        f.retry_at = Some(StdInstant::now() + backoff);
                        self.log(format_args!("{ue}: root fetch failed: {e}"));
                        // Admin requests waiting for this root: refused now.
                        for r in self.parked.remove(&ue).unwrap_or_default() {
                            let status = if refused { 404 } else { 503 };
                            let _ = r.reply.send(Err((status, format!("root of {ue}: {e}"))));
                        }
                    }
                }
            }
            Msg::Rands(r) => {
                self.rands_in_flight = false;
                match r {
                    Ok(rands) => {
                        self.metrics
                            .emks_rands
                            .fetch_add(rands.len() as u64, std::sync::atomic::Ordering::Relaxed);
                        self.pool.borrow_mut().extend(rands);
                        self.rand_retry_at = None;
                        let waiting = std::mem::take(&mut self.rand_waiting);
                        for ue in waiting {
                            let rand = self.pool.borrow_mut().pop_front();
                            match rand {
                                Some(rand) => self.table.provide_rand(now, &ue, rand),
                                None => self.rand_waiting.push(ue),
                            }
                        }
                    }
                    Err(e) => {
                        self.rand_retry_at = Some(StdInstant::now() + Duration::from_secs(1));
                        self.log(format_args!("RAND fetch failed: {e}"));
                    }
                }
            }
            Msg::Change { ue, generation } => {
                let stale = self.roots.get(&ue).is_some_and(|(g, _)| *g < generation);
                if stale {
                    // Fetch now, whatever the back-off said.
                    self.fetches.remove(&ue);
                    self.request_root(&ue);
                }
            }
            Msg::Reset => {
                let ids: Vec<UeId> = self.roots.keys().copied().collect();
                for id in ids {
                    self.fetches.remove(&id);
                    self.request_root(&id);
                }
            }
            Msg::Admin(r) => self.admin(r)?,
        }
        Ok(())
    }
}
