//! The generic key derivation function of TS 33.220 Annex B.2.
//!
//! `S = FC || P0 || L0 || P1 || L1 || … || Pn || Ln` and
//! `derived key = HMAC-SHA-256(Key, S)`.
//!
//! The S string is streamed into the MAC: no parameter is copied and nothing
//! allocates, whatever the parameters' lengths.

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::Error;

/// The function code `FC` that starts every S string.
///
/// TS 33.220 B.2.2: FC is one octet; the value `0xFF` is reserved and means
/// "a second octet `FC2` follows", so `0xFF` alone is not a valid FC.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Fc(FcRepr);

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum FcRepr {
    One([u8; 1]),
    Two([u8; 2]),
}

impl Fc {
    /// A one-octet FC.
    ///
    /// # Errors
    /// [`Error::ReservedFc`] for `0xFF`, which TS 33.220 B.2.2 reserves as the
    /// escape to a two-octet FC (use [`Fc::extended`]).
    pub const fn new(fc: u8) -> Result<Self, Error> {
        if fc == 0xff {
            Err(Error::ReservedFc)
        } else {
            Ok(Fc(FcRepr::One([fc])))
        }
    }

    /// The two-octet form `0xFF || FC2`.
    #[must_use]
    pub const fn extended(fc2: u8) -> Self {
        Fc(FcRepr::Two([0xff, fc2]))
    }

    /// Parses one or two octets as written on the wire of S (`10`, `ff01`).
    ///
    /// # Errors
    /// [`Error::ReservedFc`] for the lone octet `0xFF`;
    /// [`Error::BadFcLength`] for an empty slice, more than two octets, or
    /// two octets not starting with `0xFF`.
    pub fn from_octets(octets: &[u8]) -> Result<Self, Error> {
        match *octets {
            [fc] => Fc::new(fc),
            [0xff, fc2] => Ok(Fc::extended(fc2)),
            _ => Err(Error::BadFcLength { len: octets.len() }),
        }
    }

    /// The octets this FC puts at the head of S.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            FcRepr::One(b) => b,
            FcRepr::Two(b) => b,
        }
    }
}

/// The largest parameter: `Li` is two octets (TS 33.220 B.2.1).
pub const MAX_PARAM_LEN: usize = u16::MAX as usize;

/// Feeds `S = FC || P0 || L0 || …` to `sink`, in order, without copying.
///
/// Checks every length before feeding anything, so a rejected call has fed
/// nothing.
///
/// # Errors
/// [`Error::ParamTooLong`] when a parameter exceeds [`MAX_PARAM_LEN`].
pub(crate) fn encode_s(fc: Fc, params: &[&[u8]], mut sink: impl FnMut(&[u8])) -> Result<(), Error> {
    for (index, p) in params.iter().enumerate() {
        if p.len() > MAX_PARAM_LEN {
            return Err(Error::ParamTooLong {
                index,
                len: p.len(),
            });
        }
    }
    sink(fc.as_bytes());
    for p in params {
        sink(p);
        // TS 33.220 B.2.1: Li is the length of Pi in octets, two octets big endian.
        // The bound was checked above, so the cast keeps every bit.
        sink(&(p.len() as u16).to_be_bytes());
    }
    Ok(())
}

/// The TS 33.220 Annex B.2 KDF: `HMAC-SHA-256(key, FC || P0 || L0 || …)`.
///
/// ```
/// use ciot_e2e::kdf::{kdf, Fc};
/// // RFC 5448 Appendix C test case 1 (CK'||IK', FC 0x20).
/// let key = [0x53, 0x49, 0xfb, 0xe0, 0x98, 0x64, 0x9f, 0x94, 0x8f, 0x5d, 0x2e, 0x97,
///            0x3a, 0x81, 0xc0, 0x0f, 0x97, 0x44, 0x87, 0x1a, 0xd3, 0x2b, 0xf9, 0xbb,
///            0xd1, 0xdd, 0x5c, 0xe5, 0x4e, 0x3e, 0x2e, 0x5a];
/// let out = kdf(&key, Fc::new(0x20)?, &[b"WLAN", &[0xbb, 0x52, 0xe9, 0x1c, 0x74, 0x7a]])?;
/// assert_eq!(out[..4], [0x00, 0x93, 0x96, 0x2d]);
/// # Ok::<(), ciot_e2e::kdf::Error>(())
/// ```
///
/// # Errors
/// [`Error::ParamTooLong`] when a parameter is longer than 65535 octets.
pub fn kdf(key: &[u8], fc: Fc, params: &[&[u8]]) -> Result<[u8; 32], Error> {
    Ts33220Key::new(key).derive(fc, params)
}

/// A TS 33.220 KDF key with HMAC's inner and outer pads already absorbed.
///
/// HMAC-SHA-256 (RFC 2104) keeps two SHA-256 chaining values, one after the
/// block `K ⊕ ipad` and one after `K ⊕ opad`. Deriving from them costs the
/// compressions of S and of the inner digest only (two SHA-256 compressions
/// for an S of up to 55 octets, every S of the crate's hierarchy) instead of
/// four. The chaining values are zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Ts33220Key {
    inner: [u32; 8],
    outer: [u32; 8],
}

/// SHA-256 initial hash value (FIPS 180-4 §5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// SHA-256 block size; also the HMAC key block (RFC 2104 §2: B = 64).
const BLOCK: usize = 64;

/// The SHA-256 length field: the message length in bits, 64 bits big endian,
/// in the last eight octets of the last block (FIPS 180-4 §5.1.1).
const LEN_FIELD: usize = BLOCK - 8;

/// One compression of `block` into `state`.
fn compress(state: &mut [u32; 8], block: &[u8; BLOCK]) {
    sha2::block_api::compress256(state, core::slice::from_ref(block));
}

/// SHA-256 state words as the big-endian digest octets.
fn digest_octets(state: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

/// SHA-256 of a message whose first block (the keyed pad) is already in
/// `state`, fed in chunks; counts octets for the final padding. Zeroized on
/// drop, also when a derivation is refused half way.
#[derive(Zeroize, ZeroizeOnDrop)]
struct Stream {
    state: [u32; 8],
    block: [u8; BLOCK],
    fill: usize,
    /// Octets hashed so far, the keyed pad block included.
    len: u64,
}

// `fill` stays below `BLOCK`; the code reaches the block through `get_mut`
// and chunks so that the compiler sees it and links no panic path.
impl Stream {
    fn new(state: [u32; 8]) -> Self {
        Stream {
            state,
            block: [0; BLOCK],
            fill: 0,
            len: BLOCK as u64,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.len = self.len.wrapping_add(data.len() as u64);
        while let Some(free) = self.block.get_mut(self.fill..)
            && !data.is_empty()
        {
            let take = data.len().min(free.len());
            let (head, rest) = data.split_at(take);
            free[..take].copy_from_slice(head);
            self.fill += take;
            data = rest;
            if self.fill >= BLOCK {
                compress(&mut self.state, &self.block);
                self.fill = 0;
            }
        }
    }

    /// FIPS 180-4 §5.1.1 padding: `0x80`, zeros, the 64-bit bit length.
    fn finish(&mut self) -> [u32; 8] {
        if let Some((first, rest)) = self
            .block
            .get_mut(self.fill..)
            .and_then(<[u8]>::split_first_mut)
        {
            *first = 0x80;
            rest.fill(0);
        }
        if self.fill >= LEN_FIELD {
            compress(&mut self.state, &self.block);
            self.block.fill(0);
        }
        if let Some((_, length)) = self.block.split_last_chunk_mut::<8>() {
            *length = self.len.wrapping_mul(8).to_be_bytes();
        }
        compress(&mut self.state, &self.block);
        self.state
    }
}

/// SHA-256 of `data` (FIPS 180-4), on the same compression as the HMAC: for
/// a key longer than a block and for snapshot checksums, so that no second
/// SHA-256 implementation is linked.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let mut stream = Stream::new(SHA256_IV);
    stream.len = 0;
    stream.update(data);
    digest_octets(&stream.finish())
}

impl Ts33220Key {
    /// Absorbs `key` (any length, TS 33.220 uses 256 bits) into a reusable state.
    #[must_use]
    pub fn new(key: &[u8]) -> Self {
        // RFC 2104 §2: a key longer than B is first hashed; then it is padded
        // with zeros to B octets and XORed with ipad (0x36) / opad (0x5c).
        let mut pad = [0u8; BLOCK];
        if key.len() > BLOCK {
            let mut digest = sha256(key);
            pad[..32].copy_from_slice(&digest);
            digest.zeroize();
        } else if let Some(head) = pad.get_mut(..key.len()) {
            head.copy_from_slice(key);
        }
        pad.iter_mut().for_each(|b| *b ^= 0x36);
        let mut inner = SHA256_IV;
        compress(&mut inner, &pad);
        pad.iter_mut().for_each(|b| *b ^= 0x36 ^ 0x5c);
        let mut outer = SHA256_IV;
        compress(&mut outer, &pad);
        pad.zeroize();
        Ts33220Key { inner, outer }
    }

    /// Derives `HMAC-SHA-256(key, S)` for the given FC and parameters.
    ///
    /// # Errors
    /// [`Error::ParamTooLong`] when a parameter is longer than 65535 octets.
    pub fn derive(&self, fc: Fc, params: &[&[u8]]) -> Result<[u8; 32], Error> {
        let mut stream = Stream::new(self.inner);
        encode_s(fc, params, |chunk| stream.update(chunk))?;
        let mut inner = stream.finish();
        let out = self.outer_hash(&inner);
        inner.as_mut_slice().zeroize();
        Ok(out)
    }

    /// `HMAC-SHA-256(key, s)` for an S string that is already encoded.
    pub fn mac(&self, s: &[u8]) -> [u8; 32] {
        self.mac2(s, &[])
    }

    /// `HMAC-SHA-256(key, a || b)` without concatenating `a` and `b` first.
    pub(crate) fn mac2(&self, a: &[u8], b: &[u8]) -> [u8; 32] {
        let n = a.len().saturating_add(b.len());
        if n >= LEN_FIELD {
            let mut stream = Stream::new(self.inner);
            stream.update(a);
            stream.update(b);
            let mut inner = stream.finish();
            let out = self.outer_hash(&inner);
            inner.as_mut_slice().zeroize();
            return out;
        }
        // A short message: it and its padding fill one block. The block holds
        // only the message (S strings are public).
        // `n` is below LEN_FIELD; checked splits and zipped copies keep any
        // panic path out of the build.
        let mut block = [0u8; BLOCK];
        if let Some((message, padding)) = block.split_at_mut_checked(n)
            && let Some((to_a, to_b)) = message.split_at_mut_checked(a.len())
            && let Some(first) = padding.first_mut()
        {
            to_a.iter_mut().zip(a).for_each(|(d, s)| *d = *s);
            to_b.iter_mut().zip(b).for_each(|(d, s)| *d = *s);
            *first = 0x80;
        }
        block[LEN_FIELD..].copy_from_slice(&one_block_len_bits(n).to_be_bytes());
        self.mac_block(&block)
    }

    /// `HMAC-SHA-256(key, m)` for a message `m` that the caller has laid out,
    /// with its SHA-256 padding for a 64-octet prefix (the keyed pad), as the
    /// one block `block` (see [`one_block_len_bits`]).
    #[inline]
    pub(crate) fn mac_block(&self, block: &[u8; BLOCK]) -> [u8; 32] {
        let mut inner = self.inner;
        compress(&mut inner, block);
        let out = self.outer_hash(&inner);
        inner.as_mut_slice().zeroize();
        out
    }

    /// The outer hash `H(K ⊕ opad || inner digest)`: one compression. The
    /// inner digest is key-derived; the callers clear their copy of it.
    #[inline]
    fn outer_hash(&self, inner: &[u32; 8]) -> [u8; 32] {
        // The padding half comes from a template and the digest half is
        // written over the other, each 16-octet lane by one store: the
        // compress function's loads then take the stored data as it is,
        // where octet-wise stores would make them wait.
        let mut block = OUTER_TEMPLATE;
        for (o, w) in block.chunks_exact_mut(4).zip(inner) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        let mut state = self.outer;
        compress(&mut state, &block);
        block[..32].zeroize();
        digest_octets(&state)
    }
}

/// The outer hash's last block with everything but the inner digest: `0x80`
/// after the 32 digest octets and the length of pad + digest, 96 octets =
/// 768 bits.
const OUTER_TEMPLATE: [u8; BLOCK] = {
    let mut b = [0u8; BLOCK];
    b[32] = 0x80;
    let bits = ((BLOCK + 32) as u64 * 8).to_be_bytes();
    let mut i = 0;
    while i < 8 {
        b[LEN_FIELD + i] = bits[i];
        i += 1;
    }
    b
};

/// The length field for a message of `n` octets that follows the keyed pad
/// block and fits, with `0x80`, in one block: `(64 + n) · 8` bits.
pub(crate) const fn one_block_len_bits(n: usize) -> u64 {
    assert!(n < LEN_FIELD, "one block holds the message and its padding");
    (BLOCK + n) as u64 * 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_ff_is_rejected() {
        assert_eq!(Fc::new(0xff), Err(Error::ReservedFc));
        assert_eq!(Fc::from_octets(&[0xff]), Err(Error::ReservedFc));
    }

    #[test]
    fn two_octet_fc_needs_ff_escape() {
        assert_eq!(
            Fc::from_octets(&[0xff, 0x01]).map(|f| f.as_bytes().len()),
            Ok(2)
        );
        assert_eq!(
            Fc::from_octets(&[0x10, 0x01]),
            Err(Error::BadFcLength { len: 2 })
        );
        assert_eq!(Fc::from_octets(&[]), Err(Error::BadFcLength { len: 0 }));
        assert_eq!(
            Fc::from_octets(&[1, 2, 3]),
            Err(Error::BadFcLength { len: 3 })
        );
    }

    #[test]
    fn s_string_layout() {
        let mut s = [0u8; 32];
        let mut n = 0;
        encode_s(Fc::extended(0x07), &[&[0xaa, 0xbb], &[]], |c| {
            s[n..n + c.len()].copy_from_slice(c);
            n += c.len();
        })
        .unwrap();
        assert_eq!(&s[..n], &[0xff, 0x07, 0xaa, 0xbb, 0x00, 0x02, 0x00, 0x00]);
    }

    #[test]
    fn prepared_key_equals_the_hmac_crate_for_every_length() {
        // Every key-length class (short, one block, hashed) and every S length
        // across the one-block/two-block boundary (55/56) and beyond.
        use hmac::{Hmac, KeyInit, Mac};
        use sha2::Sha256;
        let data: [u8; 200] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        for key_len in [0, 1, 16, 32, 63, 64, 65, 100, 200] {
            let key = &data[..key_len];
            let ours = Ts33220Key::new(key);
            for s_len in 0..200 {
                let s = &data[200 - s_len..];
                let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
                mac.update(s);
                let want: [u8; 32] = mac.finalize().into_bytes().into();
                assert_eq!(ours.mac(s), want, "key {key_len} octets, S {s_len} octets");
                // The same S through the streaming path, split in two chunks.
                let mut stream = Stream::new(ours.inner);
                stream.update(&s[..s_len / 3]);
                stream.update(&s[s_len / 3..]);
                let inner = stream.finish();
                assert_eq!(
                    ours.outer_hash(&inner),
                    want,
                    "streamed, key {key_len}, S {s_len}"
                );
            }
        }
    }

    #[test]
    fn param_of_65535_octets_is_accepted_and_65536_rejected() {
        static BIG: [u8; 65536] = [0u8; 65536];
        let fc = Fc::new(0x10).unwrap();
        assert!(kdf(&[1; 32], fc, &[&BIG[..65535]]).is_ok());
        assert_eq!(
            kdf(&[1; 32], fc, &[&[], &BIG[..]]),
            Err(Error::ParamTooLong {
                index: 1,
                len: 65536
            })
        );
    }
}
