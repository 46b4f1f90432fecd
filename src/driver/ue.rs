//! The UE's loop.

use std::vec::Vec;

use crate::endpoint::{Datagram, Event, Instant, Received, Reject, Ue};

/// What a [`UeDriver`] asks of its embedder: the I/O.
pub trait UeIo<const N: usize> {
    /// Why the embedder could not do what was asked.
    type Error;

    /// Sends one datagram to the EESE (best effort, as UDP is).
    ///
    /// # Errors
    /// The socket failed in a way the embedder cannot go on from.
    fn transmit(&mut self, datagram: &[u8], what: Datagram) -> Result<(), Self::Error>;

    /// Reports one event; the UE is handed over for what an event may need
    /// (the keys of a new keyset for a key log).
    ///
    /// # Errors
    /// Whatever the embedder makes of it.
    fn event(&mut self, ue: &Ue<N>, event: Event) -> Result<(), Self::Error>;
}

/// A [`Ue`] with the loop that runs it: timers, transmit, events. A UE
/// stores nothing (every start draws a new nonce), so there is no persist
/// step.
pub struct UeDriver<const N: usize> {
    ue: Ue<N>,
    out: Vec<u8>,
    unanswered: u32,
}

impl<const N: usize> UeDriver<N> {
    /// A driver around `ue`.
    #[must_use]
    pub fn new(ue: Ue<N>) -> Self {
        UeDriver {
            ue,
            out: std::vec![0u8; Ue::<N>::MAX_DATAGRAM],
            unanswered: 0,
        }
    }

    /// The UE.
    #[must_use]
    pub const fn ue(&self) -> &Ue<N> {
        &self.ue
    }

    /// The UE, handed back (the driver's buffer is dropped).
    #[must_use]
    pub fn into_ue(self) -> Ue<N> {
        self.ue
    }

    /// The UE, for calls the driver does not wrap (`send`, `busy`, …);
    /// what they produce goes out at the next [`drain`](Self::drain).
    pub fn ue_mut(&mut self) -> &mut Ue<N> {
        &mut self.ue
    }

    /// One datagram in (see [`Ue::handle_datagram`]). One the UE accepts
    /// (it was authentic: only then does the UE accept anything) answers its
    /// hellos: [`unanswered_hellos`](Self::unanswered_hellos) is 0 again.
    ///
    /// # Errors
    /// Why it was refused; nothing changed then.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        datagram: &mut [u8],
    ) -> Result<Received, Reject> {
        let r = self.ue.handle_datagram(now, datagram);
        if r.is_ok() {
            self.unanswered = 0;
        }
        r
    }

    /// Hellos sent since the UE last accepted a datagram (or since
    /// [`forget_unanswered`](Self::forget_unanswered)). A UE that knows more
    /// than one address of its EESE moves to the next one when this reaches
    /// a few (the CLI's `ue --connect A --connect B` moves after 3), as
    /// CoAP and LwM2M clients go down their server lists: the hello repeats
    /// back off, so three unanswered ones are a few seconds of silence. A
    /// forged or replayed datagram does not count as an answer.
    #[must_use]
    pub const fn unanswered_hellos(&self) -> u32 {
        self.unanswered
    }

    /// Starts counting unanswered hellos afresh (after moving to another
    /// address of the EESE).
    pub fn forget_unanswered(&mut self) {
        self.unanswered = 0;
    }

    /// Fires due timers, transmits and reports until nothing is left;
    /// returns how many datagrams went out.
    ///
    /// # Errors
    /// A failed [`UeIo::transmit`] or [`UeIo::event`].
    pub fn drain<I: UeIo<N>>(&mut self, now: Instant, io: &mut I) -> Result<u32, I::Error> {
        self.ue.handle_timeout(now);
        let mut sent = 0;
        loop {
            let mut progress = false;
            // The buffer is MAX_DATAGRAM long, so `poll_transmit` cannot
            // refuse it.
            while let Ok(Some(t)) = self.ue.poll_transmit(now, &mut self.out) {
                if matches!(t.what, Datagram::Hello { .. }) {
                    self.unanswered = self.unanswered.saturating_add(1);
                }
                io.transmit(&self.out[..t.len], t.what)?;
                sent += 1;
                progress = true;
            }
            while let Some(ev) = self.ue.poll_event() {
                io.event(&self.ue, ev)?;
                progress = true;
            }
            if !progress {
                return Ok(sent);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use super::*;
    use crate::endpoint::{UeConfig, UeId};
    use crate::kdf::{RootBytes, RootKey, RootKind, UeNonce};

    /// An embedder whose socket fails after `room` datagrams.
    struct Socket {
        sent: Vec<Datagram>,
        room: usize,
    }

    impl UeIo<64> for Socket {
        type Error = &'static str;

        fn transmit(&mut self, _: &[u8], what: Datagram) -> Result<(), Self::Error> {
            if self.sent.len() == self.room {
                return Err("socket gone");
            }
            self.sent.push(what);
            Ok(())
        }

        fn event(&mut self, _: &Ue<64>, _: Event) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    fn driver() -> UeDriver<64> {
        UeDriver::new(Ue::new(
            UeConfig::default(),
            RootKey::new(RootKind::IntKey, RootBytes::from_bytes([7; 32])),
            UeId::new(b"ue-1").unwrap(),
            UeNonce::from_bytes([1; 16]),
        ))
    }

    #[test]
    fn a_start_says_hello_once_per_instant() {
        let mut d = driver();
        let mut io = Socket {
            sent: Vec::new(),
            room: 10,
        };
        let now = Instant::from_millis(5);
        assert_eq!(d.drain(now, &mut io), Ok(1));
        assert_eq!(d.drain(now, &mut io), Ok(0));
        assert!(matches!(io.sent[..], [Datagram::Hello { seq: 0, .. }]));
    }

    #[test]
    fn hellos_count_as_unanswered_until_the_ue_accepts_a_datagram() {
        let mut d = driver();
        let mut io = Socket {
            sent: Vec::new(),
            room: 100,
        };
        // Hellos with no answer: each repeat counts (the back-off spaces
        // them out; 60 s covers several).
        let mut t = 0;
        while t < 60_000 {
            d.drain(Instant::from_millis(t), &mut io).unwrap();
            t += 100;
        }
        let n = d.unanswered_hellos();
        assert!(n >= 3, "{n} hellos counted");
        assert_eq!(
            n as usize,
            io.sent
                .iter()
                .filter(|w| matches!(w, Datagram::Hello { .. }))
                .count()
        );
        // A forged datagram is no answer.
        let mut junk = [0x03u8; 60];
        assert!(
            d.handle_datagram(Instant::from_millis(t), &mut junk)
                .is_err()
        );
        assert_eq!(d.unanswered_hellos(), n);
        d.forget_unanswered();
        assert_eq!(d.unanswered_hellos(), 0);
    }

    #[test]
    fn the_eeses_answer_to_a_hello_resets_the_count() {
        use crate::endpoint::{Eese, EeseConfig};
        use crate::kdf::Rand;
        let mut d = driver();
        let root = RootKey::new(RootKind::IntKey, RootBytes::from_bytes([7; 32]));
        let mut eese = Eese::new(
            EeseConfig::default(),
            root,
            (|| Some(Rand([9; 16]))) as fn() -> _,
        );
        let mut io = Socket {
            sent: Vec::new(),
            room: 100,
        };
        let now = Instant::from_millis(5);
        d.drain(now, &mut io).unwrap();
        assert_eq!(d.unanswered_hellos(), 1);
        let mut hello = [0u8; 256];
        let t = d.ue_mut().poll_transmit(now, &mut hello).unwrap();
        assert!(t.is_none(), "the hello went out in the drain");
        // The EESE's trigger in answer to a hello the UE sends again.
        let mut ue2 = driver().into_ue();
        let h = ue2.poll_transmit(now, &mut hello).unwrap().unwrap();
        eese.handle_datagram(now, &mut hello[..h.len]).unwrap();
        let mut snap = [0u8; crate::endpoint::EESE_SNAPSHOT_LEN];
        while let Some(p) = eese.poll_persist(&mut snap) {
            eese.persisted(p).unwrap();
        }
        let mut trigger = [0u8; 256];
        let t = eese
            .poll_transmit(now, &mut trigger)
            .unwrap()
            .expect("a trigger");
        // Same root, id and nonce: the trigger answers this UE's hello too.
        assert!(d.handle_datagram(now, &mut trigger[..t.len]).is_ok());
        assert_eq!(d.unanswered_hellos(), 0);
    }

    #[test]
    fn a_failed_transmit_ends_the_drain_with_its_error() {
        let mut d = driver();
        let mut io = Socket {
            sent: Vec::new(),
            room: 0,
        };
        assert_eq!(
            d.drain(Instant::from_millis(5), &mut io),
            Err("socket gone")
        );
    }
}
