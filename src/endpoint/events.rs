//! A small fixed queue of events: an endpoint reports without allocating.

use super::effects::Event;

/// How many unpolled events an endpoint keeps; past it the oldest goes.
pub(crate) const CAPACITY: usize = 4;

#[derive(Clone, Debug)]
pub(crate) struct Events {
    ring: [Option<Event>; CAPACITY],
    head: u8,
    len: u8,
    /// Events pushed out unpolled (the caller polls too rarely).
    pub lost: u32,
}

impl Events {
    pub(crate) const fn new() -> Self {
        Events {
            ring: [None; CAPACITY],
            head: 0,
            len: 0,
            lost: 0,
        }
    }

    pub(crate) fn push(&mut self, e: Event) {
        let cap = CAPACITY as u8;
        if self.len == cap {
            self.head = (self.head + 1) % cap;
            self.len -= 1;
            self.lost = self.lost.saturating_add(1);
        }
        let at = usize::from((self.head + self.len) % cap);
        self.ring[at] = Some(e);
        self.len += 1;
    }

    pub(crate) fn pop(&mut self) -> Option<Event> {
        if self.len == 0 {
            return None;
        }
        // `head` is kept below the capacity; the modulo lets the compiler
        // see it (no bounds check, no panic path).
        let e = self.ring[usize::from(self.head) % CAPACITY].take();
        self.head = (self.head + 1) % CAPACITY as u8;
        self.len -= 1;
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Ksi;

    #[test]
    fn keeps_order_and_drops_the_oldest_when_full() {
        let mut q = Events::new();
        for c in 0..6 {
            q.push(Event::Rekeyed {
                ksi: Ksi(0),
                counter: c,
            });
        }
        assert_eq!(q.lost, 2);
        for c in 2..6 {
            assert_eq!(
                q.pop(),
                Some(Event::Rekeyed {
                    ksi: Ksi(0),
                    counter: c
                })
            );
        }
        assert_eq!(q.pop(), None);
    }
}
