//! Where an EESE session keeps the parts it seldom holds (the replaced
//! keyset, a refusal, expanded ciphers): inline for the one-UE [`Eese`]
//! (no allocator), boxed in the [`EeseTable`], so that an idle session pays
//! one pointer for each.
//!
//! [`Eese`]: super::Eese
//! [`EeseTable`]: super::EeseTable

#[cfg(feature = "kept-ciphers")]
use crate::protect::suite::SuiteCipher;

use super::keyset::{CipherRef, Keyset};

/// A storage choice for the parts of a session that are usually empty.
pub trait Storage {
    /// An optional `T`.
    type Slot<T>: Slot<T> + Clone + core::fmt::Debug
    where
        T: Clone + core::fmt::Debug;
}

/// An optional value, stored one way or another.
pub trait Slot<T>: Default {
    /// The value, if any.
    fn get(&self) -> Option<&T>;
    /// The value, if any.
    fn get_mut(&mut self) -> Option<&mut T>;
    /// Takes the value out, leaving the slot empty.
    fn take(&mut self) -> Option<T>;
    /// Puts `value` in, dropping what was there.
    fn put(&mut self, value: T);

    /// Whether a value is held.
    fn is_some(&self) -> bool {
        self.get().is_some()
    }

    /// Sets the slot to `value` or empties it.
    fn set(&mut self, value: Option<T>) {
        match value {
            Some(v) => self.put(v),
            None => drop(self.take()),
        }
    }

    /// The value, made by `f` first if the slot is empty.
    #[cfg_attr(not(feature = "kept-ciphers"), allow(dead_code))]
    fn get_or_put(&mut self, f: impl FnOnce() -> T) -> &mut T;
}

/// Values held in place: no allocator needed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inline;

impl Storage for Inline {
    type Slot<T>
        = Option<T>
    where
        T: Clone + core::fmt::Debug;
}

impl<T> Slot<T> for Option<T> {
    fn get(&self) -> Option<&T> {
        self.as_ref()
    }
    fn get_mut(&mut self) -> Option<&mut T> {
        self.as_mut()
    }
    fn take(&mut self) -> Option<T> {
        Option::take(self)
    }
    fn put(&mut self, value: T) {
        *self = Some(value);
    }
    fn get_or_put(&mut self, f: impl FnOnce() -> T) -> &mut T {
        self.get_or_insert_with(f)
    }
}

/// Values on the heap: an empty slot is one pointer.
#[cfg(feature = "alloc")]
#[derive(Clone, Copy, Debug, Default)]
pub struct Boxed;

#[cfg(feature = "alloc")]
impl Storage for Boxed {
    type Slot<T>
        = Option<alloc::boxed::Box<T>>
    where
        T: Clone + core::fmt::Debug;
}

#[cfg(feature = "alloc")]
impl<T> Slot<T> for Option<alloc::boxed::Box<T>> {
    fn get(&self) -> Option<&T> {
        self.as_deref()
    }
    fn get_mut(&mut self) -> Option<&mut T> {
        self.as_deref_mut()
    }
    fn take(&mut self) -> Option<T> {
        Option::take(self).map(|b| *b)
    }
    fn put(&mut self, value: T) {
        match self {
            // Reuse the allocation.
            Some(b) => **b = value,
            None => *self = Some(alloc::boxed::Box::new(value)),
        }
    }
    fn get_or_put(&mut self, f: impl FnOnce() -> T) -> &mut T {
        self.get_or_insert_with(|| alloc::boxed::Box::new(f()))
    }
}

/// A session's kept ciphers for its current keyset (feature `kept-ciphers`):
/// made on first use, dropped on rekey or when the table evicts them, with
/// a mark for the table's CLOCK list. Without the feature, it keeps nothing
/// and the ciphers are made for each message.
#[derive(Clone, Debug)]
pub(crate) struct Kept<S: Storage> {
    #[cfg(feature = "kept-ciphers")]
    slot: S::Slot<SuiteCipher>,
    #[cfg(feature = "kept-ciphers")]
    used: bool,
    #[cfg(not(feature = "kept-ciphers"))]
    _s: core::marker::PhantomData<S>,
}

impl<S: Storage> Default for Kept<S> {
    fn default() -> Self {
        Kept {
            #[cfg(feature = "kept-ciphers")]
            slot: Default::default(),
            #[cfg(feature = "kept-ciphers")]
            used: false,
            #[cfg(not(feature = "kept-ciphers"))]
            _s: core::marker::PhantomData,
        }
    }
}

impl<S: Storage> Kept<S> {
    /// The ciphers of `ks`, the current keyset's (kept ones, or made now).
    pub(crate) fn get(&mut self, ks: &Keyset) -> CipherRef<'_> {
        #[cfg(feature = "kept-ciphers")]
        {
            self.used = true;
            CipherRef::Kept(self.slot.get_or_put(|| ks.cipher()))
        }
        #[cfg(not(feature = "kept-ciphers"))]
        CipherRef::Made(ks.cipher())
    }

    /// The kept ciphers, marked used; `None` when none are kept (then only
    /// [`Kept::get`] makes them).
    #[cfg(feature = "kept-ciphers")]
    #[inline]
    pub(crate) fn kept(&mut self) -> Option<&SuiteCipher> {
        let c = self.slot.get()?;
        self.used = true;
        Some(c)
    }

    /// Whether ciphers are kept now.
    #[cfg_attr(not(all(feature = "std", feature = "kept-ciphers")), allow(dead_code))]
    pub(crate) fn is_kept(&self) -> bool {
        #[cfg(feature = "kept-ciphers")]
        return self.slot.is_some();
        #[cfg(not(feature = "kept-ciphers"))]
        return false;
    }

    /// Used since the last call (CLOCK's second chance); clears the mark.
    #[cfg_attr(not(all(feature = "std", feature = "kept-ciphers")), allow(dead_code))]
    pub(crate) fn take_used(&mut self) -> bool {
        #[cfg(feature = "kept-ciphers")]
        return core::mem::take(&mut self.used);
        #[cfg(not(feature = "kept-ciphers"))]
        return false;
    }

    /// Drops the kept ciphers (a new keyset, a new root, eviction).
    pub(crate) fn clear(&mut self) {
        #[cfg(feature = "kept-ciphers")]
        {
            self.slot.set(None);
            self.used = false;
        }
    }
}
