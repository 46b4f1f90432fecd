//! Delivering a datagram in the simulated world, and checking what it did:
//! deliveries against the ledger (I2), and input that is not genuine against
//! the endpoint's state, and every address against the octets sent to it
//! (I3).

use ciot_e2e::endpoint::{Received, UeId};

use super::world::{EESE, Packet, World, root};

impl World {
    /// Delivers a datagram to where it is addressed, checking I2 and I3.
    pub(crate) fn deliver(&mut self, p: Packet) {
        if self.trace {
            eprintln!(
                "  deliver {} → {}: {}",
                p.src,
                p.dst,
                crate::describe::datagram(&p.bytes)
            );
        }
        if p.dst == EESE {
            self.deliver_to_eese(p);
        } else if let Some(j) =
            (0..self.ues.len() + self.clones.len()).find(|&j| self.slot(j).addr == p.dst)
        {
            self.deliver_to_ue(j, p);
        }
    }

    fn deliver_to_eese(&mut self, p: Packet) {
        let genuine = self.from_ues.contains(&p.bytes);
        let now = self.now;
        if self.eese.poll_timeout().is_some_and(|t| t <= now) {
            // Timers the call would run anyway run first, so what the EESE
            // sends next is the datagram's doing alone (late timers still
            // reach the endpoints' own sends).
            self.eese.handle_timeout(now);
            self.drain_all();
        }
        let before = (!genuine).then(|| self.eese_state());
        self.oracle.received_from(p.src, p.bytes.len());
        let mut bytes = p.bytes.clone();
        let seed = self.seed;
        let epochs: Vec<u32> = self.ues.iter().map(|u| u.epoch).collect();
        let ids: Vec<UeId> = self.ues.iter().map(|u| u.id).collect();
        let result = self.eese.handle_datagram(now, &p.src, &mut bytes, |id| {
            let i = ids.iter().position(|x| x.as_bytes() == id)?;
            Some((ids[i], root(seed, i as u8, epochs[i])))
        });
        if self.trace {
            match &result {
                Ok((_, Received::Data(d))) => eprintln!(
                    "      EESE delivers {:?}",
                    String::from_utf8_lossy(&bytes[d.payload.clone()])
                ),
                Ok(_) => {}
                Err(e) => eprintln!("      EESE drops it: {e}"),
            }
        }
        if let Ok((id, Received::Data(d))) = &result {
            let i = self.index_of(id).unwrap_or(0);
            let payload = bytes[d.payload.clone()].to_vec();
            let prefix = format!("u:{i}:").into_bytes();
            if self.oracle.delivered("EESE", &payload, &prefix) {
                self.counts.delivered += 1;
            }
        }
        let out = self.count_answers(p.src);
        if let Some(before) = before {
            let after = self.eese_state();
            if after != before {
                self.oracle.fail(
                    "I3",
                    format!(
                        "a datagram no UE sent changed the EESE ({:?} from source {}): {before:?} → {after:?}",
                        result.as_ref().err(),
                        p.src
                    ),
                );
            }
        }
        // What the EESE refused is answered within what the address sent.
        if result.is_err() {
            self.oracle.answered(p.src, out);
        }
    }

    /// Drains after a datagram from `src`: the octets the EESE sent to `src`.
    fn count_answers(&mut self, src: u16) -> usize {
        let before = self.eese_octets_to.get(&src).copied().unwrap_or(0);
        self.drain_all();
        let after = self.eese_octets_to.get(&src).copied().unwrap_or(0);
        usize::try_from(after - before).unwrap_or(usize::MAX)
    }

    fn deliver_to_ue(&mut self, j: usize, p: Packet) {
        let genuine = self.slot(j).genuine.contains(&p.bytes);
        let i = self.slot(j).index;
        let now = self.now;
        if !genuine {
            self.slot(j).ue.handle_timeout(now);
            self.drain_all();
        }
        let before = (!genuine).then(|| self.ue_state(j));
        let sent_before = self.slot(j).octets;
        let mut bytes = p.bytes.clone();
        let r = self.slot(j).ue.handle_datagram(now, &mut bytes);
        if let Ok(Received::Data(d)) = &r {
            let payload = bytes[d.payload.clone()].to_vec();
            let prefix = format!("d:{i}:").into_bytes();
            if self.oracle.delivered(&format!("UE {i}"), &payload, &prefix) {
                self.counts.delivered += 1;
            }
        }
        if let Some(before) = before {
            let after = self.ue_state(j);
            if after != before {
                self.oracle.fail(
                    "I3",
                    format!("a datagram the EESE never sent changed UE {i} ({:?}): {before:?} → {after:?}", r.err()),
                );
            }
            self.drain_all();
            if self.slot(j).octets != sent_before {
                self.oracle.fail(
                    "I3",
                    format!("UE {i} answered a datagram the EESE never sent"),
                );
            }
        } else {
            self.drain_all();
        }
    }

    /// What unauthenticated input must not change at the EESE.
    pub(crate) fn eese_state(&self) -> String {
        let mut s = format!("sessions {}", self.eese.len());
        for u in &self.ues {
            let st = self.eese.status(self.now, &u.id);
            let keys = self
                .eese
                .current_keys(&u.id)
                .map(|(r, k)| (r.clone(), k.clone()));
            s.push_str(&format!("; {}: {st:?} {keys:?}", u.id));
        }
        s
    }

    /// What unauthenticated input must not change at the UE (or copy) at
    /// position `j`.
    fn ue_state(&mut self, j: usize) -> String {
        let u = &self.slot(j).ue;
        let keys = u.current_keys().map(|(r, k)| (r.clone(), k.clone()));
        format!(
            "{:?} {} {:?} holding {}",
            u.status(),
            u.last_counter(),
            keys,
            u.holding()
        )
    }
}
