//! A cursor over the fuzzer's octets that never fails: past the end it reads
//! zeros, so every input is a complete script. Scripts are written with
//! [`Writer`], which mirrors it, so seeds are built rather than hand-typed.

use std::vec::Vec;

/// Reads a script.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) const fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    pub(crate) const fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` octets (fewer at the end of the input).
    pub(crate) fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// A length octet, then that many octets.
    pub(crate) fn bytes8(&mut self) -> &'a [u8] {
        let n = usize::from(self.u8());
        self.take(n)
    }

    /// A two-octet length, then that many octets.
    pub(crate) fn bytes16(&mut self) -> &'a [u8] {
        let n = usize::from(self.u16());
        self.take(n)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let got = self.take(N);
        out[..got.len()].copy_from_slice(got);
        out
    }

    pub(crate) const fn rest(&mut self) -> &'a [u8] {
        let rest = self.data;
        self.data = &[];
        rest
    }
}

/// Writes a script that [`Reader`] reads back.
#[derive(Default)]
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    pub(crate) fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }

    /// `v` with a length octet; panics above 255 octets (seeds only).
    pub(crate) fn bytes8(&mut self, v: &[u8]) -> &mut Self {
        let n = u8::try_from(v.len()).expect("seed field longer than 255 octets");
        self.u8(n).raw(v)
    }

    /// `v` with a two-octet length; panics above 65535 octets (seeds only).
    pub(crate) fn bytes16(&mut self, v: &[u8]) -> &mut Self {
        let n = u16::try_from(v.len()).expect("seed field longer than 65535 octets");
        self.u16(n).raw(v)
    }
}
