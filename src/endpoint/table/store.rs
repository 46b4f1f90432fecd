//! Where the table keeps its sessions: a dense slab of (id, session) and a
//! hash index of slab positions.
//!
//! Why not a `HashMap<Id, Entry>`: a hash map's capacity rounds up to a power
//! of two at a 7/8 load factor, and every spare bucket is as large as an
//! entry; at 1,000,000 sessions that doubled the table's memory. Here the
//! spare buckets hold a `u32`, the sessions themselves sit in a vector that
//! grows by what is used, and each id is stored once. The index is
//! `hashbrown::HashTable` (the table behind `std`'s hash map).
//!
//! Its hasher is foldhash with a random seed per table, not SipHash. What an
//! attacker cannot do is what decides it: put keys of his choosing into the
//! index, or look up keys that are not the application's. A session is made
//! only for the id the application's `resolve` returns a root for, after the
//! hello verified under that root (or by the application itself: `insert`,
//! `restore`); a hello for any other id is refused before the index is
//! consulted. So the keys are the operator's provisioned UEs, never chosen
//! to collide, and a lookup costs what the table's own probe lengths are
//! whatever the ids a forger names. (foldhash says it is not meant for
//! programs where an adversary studies the running program to make many
//! colliding inputs; no input reaches this index unauthenticated.) SipHash
//! cost more than anything else the table did per message (about 18 ns of
//! a 32-octet send, its latency on the path to the session; see
//! docs/PERFORMANCE.md). Addresses, which unauthenticated datagrams do name,
//! stay in a std `HashMap` (SipHash) in the table.

use foldhash::fast::RandomState;
use std::hash::{BuildHasher, Hash};
use std::vec::Vec;

use hashbrown::HashTable;

pub(super) struct Store<Id, V> {
    index: HashTable<u32>,
    slots: Vec<Option<(Id, V)>>,
    free: Vec<u32>,
    hasher: RandomState,
}

impl<Id: Hash + Eq, V> Store<Id, V> {
    pub(super) fn with_capacity(n: usize) -> Self {
        Store {
            index: HashTable::with_capacity(n),
            slots: Vec::with_capacity(n),
            free: Vec::new(),
            hasher: RandomState::default(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn find(&self, id: &Id) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(self.hasher.hash_one(id), |&i| {
                slots
                    .get(i as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|(k, _)| k == id)
            })
            .map(|&i| i as usize)
    }

    pub(super) fn contains_key(&self, id: &Id) -> bool {
        self.find(id).is_some()
    }

    pub(super) fn get(&self, id: &Id) -> Option<&V> {
        let i = self.find(id)?;
        self.slots.get(i)?.as_ref().map(|(_, v)| v)
    }

    pub(super) fn get_mut(&mut self, id: &Id) -> Option<&mut V> {
        let i = self.find(id)?;
        self.slots.get_mut(i)?.as_mut().map(|(_, v)| v)
    }

    /// Puts `value` under `id`, replacing (and returning) what was there.
    pub(super) fn insert(&mut self, id: Id, value: V) -> Option<V> {
        if let Some(i) = self.find(&id)
            && let Some(Some((_, v))) = self.slots.get_mut(i)
        {
            return Some(core::mem::replace(v, value));
        }
        let hash = self.hasher.hash_one(&id);
        let i = match self.free.pop() {
            Some(i) => {
                if let Some(slot) = self.slots.get_mut(i as usize) {
                    *slot = Some((id, value));
                }
                i
            }
            None => {
                // More than 2^32 sessions cannot be indexed; a table that
                // large does not fit a machine's memory anyway.
                let i = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
                self.slots.push(Some((id, value)));
                i
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash, i, |&j| {
            slots
                .get(j as usize)
                .and_then(Option::as_ref)
                .map_or(0, |(k, _)| hasher.hash_one(k))
        });
        None
    }

    pub(super) fn remove(&mut self, id: &Id) -> Option<V> {
        let slots = &self.slots;
        let entry = self
            .index
            .find_entry(self.hasher.hash_one(id), |&i| {
                slots
                    .get(i as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|(k, _)| k == id)
            })
            .ok()?;
        let (i, _) = entry.remove();
        let (_, v) = self.slots.get_mut(i as usize)?.take()?;
        self.free.push(i);
        Some(v)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&Id, &V)> {
        self.slots.iter().flatten().map(|(k, v)| (k, v))
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &Id> {
        self.iter().map(|(k, _)| k)
    }

    #[cfg_attr(not(feature = "kept-ciphers"), allow(dead_code))]
    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_map_through_inserts_removals_and_slot_reuse() {
        let mut s: Store<u32, u64> = Store::with_capacity(4);
        let mut model = std::collections::BTreeMap::new();
        let mut x = 7u64;
        for step in 0..20_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let k = ((x >> 33) % 500) as u32;
            match (x >> 20) % 3 {
                0 | 1 => assert_eq!(s.insert(k, step), model.insert(k, step)),
                _ => assert_eq!(s.remove(&k), model.remove(&k)),
            }
            assert_eq!(s.len(), model.len());
            assert_eq!(s.get(&k), model.get(&k));
        }
        let mut got: Vec<(u32, u64)> = s.iter().map(|(k, v)| (*k, *v)).collect();
        got.sort_unstable();
        let want: Vec<(u32, u64)> = model.into_iter().collect();
        assert_eq!(got, want);
        // Freed slots are reused: the slab never holds more than the most
        // sessions there ever were at once (500 keys).
        assert!(s.slots.len() <= 500, "{}", s.slots.len());
    }
}
