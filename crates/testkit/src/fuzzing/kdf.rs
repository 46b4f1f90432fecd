//! Key derivation target: the TS 33.220 KDF, the hierarchy and the parsers
//! the command-line tool feeds.

use std::vec::Vec;

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use ciot_e2e::kdf::{
    self, Algorithm, Ck, CkIk, Error, FC_ALG_KEY, FC_CONTROL_KEY, FC_INT_KEY, FC_KEYSET, Fc,
    INT_KEY_LABEL, Ik, KdfProfile, KeySet, MAX_PARAM_LEN, PreparedRoot, Rand, RootBytes, RootKey,
    RootKind, Ts33220Key, UeNonce,
};
use ciot_e2e::wire::{Cause, MessageType, Suite};

use super::reader::{Reader, Writer};

/// A structured `kdf` input.
#[derive(Clone, Debug, Default)]
pub(crate) struct Input<'a> {
    /// Bit 0: append a parameter of `MAX_PARAM_LEN + 1` octets at `long_at`.
    pub flags: u8,
    pub long_at: u8,
    pub key: &'a [u8],
    pub fc: &'a [u8],
    pub params: Vec<&'a [u8]>,
    pub kind: u8,
    pub profile: u8,
    pub root: [u8; 32],
    pub rand: [u8; 16],
    pub ck_ik: [u8; 32],
    /// The rest: a name or hex string as typed on the command line.
    pub text: &'a [u8],
}

impl<'a> Input<'a> {
    pub(crate) fn read(r: &mut Reader<'a>) -> Self {
        let flags = r.u8();
        let long_at = r.u8();
        let key = r.bytes8();
        let fc_len = usize::from(r.u8() % 4);
        let fc = r.take(fc_len);
        let n = r.u8() % 6;
        let params = (0..n).map(|_| r.bytes16()).collect();
        Input {
            flags,
            long_at,
            key,
            fc,
            params,
            kind: r.u8(),
            profile: r.u8(),
            root: r.array(),
            rand: r.array(),
            ck_ik: r.array(),
            text: r.rest(),
        }
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.u8(self.flags).u8(self.long_at).bytes8(self.key);
        w.u8(u8::try_from(self.fc.len()).expect("short fc"))
            .raw(self.fc);
        w.u8(u8::try_from(self.params.len()).expect("few params"));
        for p in &self.params {
            w.bytes16(p);
        }
        w.u8(self.kind)
            .u8(self.profile)
            .raw(&self.root)
            .raw(&self.rand)
            .raw(&self.ck_ik)
            .raw(self.text);
    }
}

/// `HMAC-SHA-256(key, s)` by the `hmac` crate: the reference.
fn hmac_ref(key: &[u8], s: &[u8]) -> [u8; 32] {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(s);
    mac.finalize().into_bytes().into()
}

/// S = FC || P0 || L0 || … written out plainly (TS 33.220 B.2.0).
fn s_ref(fc: &[u8], params: &[&[u8]]) -> Vec<u8> {
    let mut s = fc.to_vec();
    for p in params {
        s.extend_from_slice(p);
        s.extend_from_slice(
            &u16::try_from(p.len())
                .expect("checked length")
                .to_be_bytes(),
        );
    }
    s
}

/// The derivation of `profile` for an S string, by the reference crates.
fn derive_ref(profile: KdfProfile, key: &[u8], s: &[u8]) -> [u8; 32] {
    match profile {
        KdfProfile::Ts33220 => hmac_ref(key, s),
        KdfProfile::HkdfSha256 => {
            let mut okm = [0u8; 32];
            hkdf::Hkdf::<Sha256>::new(None, key)
                .expand(s, &mut okm)
                .expect("32 octets fit HKDF");
            okm
        }
    }
}

/// Arbitrary FC, key and parameters through the KDF, the hierarchy and the
/// CLI-facing parsers.
///
/// Oracle:
/// - `Fc::from_octets` accepts exactly one octet other than `ff`, or `ff`
///   and one octet, and gives the octets back;
/// - `kdf::kdf` equals HMAC-SHA-256 (the `hmac` crate) over S written out
///   plainly, and equals the prepared key's `derive` and its encoded-S fast
///   path; a parameter over 65535 octets is refused, naming the first one;
/// - `PreparedRoot` (keyset, control key) equals the one-shot functions and the
///   reference derivation of the right S string under both profiles, and so
///   do `alg_key` (P2 = the trigger counter) and `int_key`; one keyset under
///   two trigger counters gives two different algorithm keys;
/// - `Suite::from_name`, `Cause::from_name`, `MessageType::from_name` and
///   `RootKind::from_name` accept exactly the names their values print; what
///   hex-decodes feeds `Fc`/`RootBytes`/`Rand` as the CLI's values do.
pub fn kdf(bytes: &[u8]) {
    let mut r = Reader::new(bytes);
    let input = Input::read(&mut r);
    fc_and_kdf(&input);
    hierarchy(&input);
    names(input.text);
}

fn fc_and_kdf(input: &Input<'_>) {
    let fc = Fc::from_octets(input.fc);
    let want_ok = matches!(*input.fc, [b] if b != 0xff) || matches!(*input.fc, [0xff, _]);
    match fc {
        Ok(fc) => {
            assert!(want_ok, "Fc::from_octets accepted {:02x?}", input.fc);
            assert_eq!(fc.as_bytes(), input.fc);
        }
        Err(e) => {
            assert!(!want_ok, "Fc::from_octets refused {:02x?}: {e}", input.fc);
            let want = if input.fc == [0xff] {
                Error::ReservedFc
            } else {
                Error::BadFcLength {
                    len: input.fc.len(),
                }
            };
            assert_eq!(e, want);
        }
    }
    let fc = fc.unwrap_or_else(|_| {
        Fc::new(input.fc.first().copied().unwrap_or(0) & 0x7f).expect("not ff")
    });

    let long = std::vec![0u8; MAX_PARAM_LEN + 1];
    let mut params = input.params.clone();
    if input.flags & 1 == 1 {
        params.insert(usize::from(input.long_at) % (params.len() + 1), &long);
    }
    let got = kdf::kdf(input.key, fc, &params);
    let prepared = Ts33220Key::new(input.key);
    assert_eq!(
        prepared.derive(fc, &params),
        got,
        "prepared and one-shot KDF differ"
    );
    match params.iter().position(|p| p.len() > MAX_PARAM_LEN) {
        Some(index) => {
            assert_eq!(
                got,
                Err(Error::ParamTooLong {
                    index,
                    len: params[index].len()
                })
            );
        }
        None => {
            let s = s_ref(fc.as_bytes(), &params);
            let want = hmac_ref(input.key, &s);
            assert_eq!(got, Ok(want), "KDF differs from HMAC over S");
            assert_eq!(prepared.mac(&s), want, "encoded-S path differs from HMAC");
        }
    }
}

fn hierarchy(input: &Input<'_>) {
    let profile = if input.profile & 1 == 0 {
        KdfProfile::Ts33220
    } else {
        KdfProfile::HkdfSha256
    };
    assert_eq!(KdfProfile::from_code(profile.code()), Some(profile));
    let kind = match RootKind::from_code(input.kind) {
        Ok(kind) => {
            assert_eq!(kind.code(), input.kind);
            kind
        }
        Err(e) => {
            assert_eq!(e, Error::UnknownRootKind(input.kind));
            [RootKind::IntKey, RootKind::E2mKeyset, RootKind::E2mKey][usize::from(input.kind % 3)]
        }
    };
    let root = RootKey::new(kind, RootBytes::from_bytes(input.root));
    let rand = Rand(input.rand);
    let prepared = PreparedRoot::new(&root, profile);
    assert_eq!((prepared.kind(), prepared.profile()), (kind, profile));

    let keyset = prepared.keyset(&rand);
    assert_eq!(
        keyset,
        kdf::keyset(profile, &root, &rand),
        "prepared and one-shot keyset differ"
    );
    let s = s_ref(&[FC_KEYSET], &[&[kind.code()], &rand.0]);
    assert_eq!(
        keyset.as_bytes(),
        &derive_ref(profile, &input.root, &s),
        "keyset"
    );
    let s = s_ref(&[FC_CONTROL_KEY], &[&[kind.code()]]);
    assert_eq!(
        prepared.control_key().as_bytes(),
        &derive_ref(profile, &input.root, &s),
        "control key"
    );

    let other = u64::from_be_bytes(input.root[..8].try_into().expect("8 octets"));
    let nonce = UeNonce(input.rand);
    let mut other_nonce = input.rand;
    other_nonce[0] ^= 1;
    let other_nonce = UeNonce(other_nonce);
    for alg in [Algorithm::Nea2, Algorithm::Nia2, Algorithm::Aes128Gcm] {
        // The same keyset (as a repeated RAND gives) under another trigger
        // counter, or for another start of the UE: other algorithm keys.
        if other != 1 {
            assert_ne!(
                kdf::alg_key(profile, &keyset, alg, 1, &nonce),
                kdf::alg_key(profile, &keyset, alg, other, &nonce),
                "{alg:?}: counters 1 and {other} share a key"
            );
        }
        assert_ne!(
            kdf::alg_key(profile, &keyset, alg, 1, &nonce),
            kdf::alg_key(profile, &keyset, alg, 1, &other_nonce),
            "{alg:?}: two UE starts share a key"
        );
        for counter in [1, other] {
            let s = s_ref(
                &[FC_ALG_KEY],
                &[
                    &[alg.distinguisher()],
                    &[alg.identity()],
                    &counter.to_be_bytes(),
                    nonce.as_bytes(),
                ],
            );
            let full = derive_ref(profile, keyset.as_bytes(), &s);
            // TS 33.401 A.7: the 128 least significant bits.
            assert_eq!(
                kdf::alg_key(profile, &keyset, alg, counter, &nonce).as_bytes()[..],
                full[16..],
                "{alg:?} key, counter {counter}"
            );
        }
    }
    let again = KeySet::from_slice(keyset.as_bytes()).expect("32 octets");
    assert_eq!(again, keyset);

    let ck = Ck::from_slice(&input.ck_ik[..16]).expect("16 octets");
    let ik = Ik::from_slice(&input.ck_ik[16..]).expect("16 octets");
    let ck_ik = CkIk::new(&ck, &ik);
    assert_eq!(ck_ik.as_bytes(), &input.ck_ik);
    let int = kdf::int_key(profile, &ck_ik);
    let s = s_ref(&[FC_INT_KEY], &[INT_KEY_LABEL]);
    assert_eq!(
        int.key().as_bytes(),
        &derive_ref(profile, &input.ck_ik, &s),
        "e2e_int_key"
    );
    assert_eq!(int.kind(), RootKind::IntKey);
}

fn names(text: &[u8]) {
    let s = &*std::string::String::from_utf8_lossy(text);
    for name in [s, s.trim()] {
        name_parser(name, Suite::from_name, Suite::name, Suite::KNOWN);
        name_parser(name, Cause::from_name, Cause::name, Cause::KNOWN);
        name_parser(
            name,
            MessageType::from_name,
            MessageType::name,
            MessageType::KNOWN,
        );
        let kinds = [RootKind::IntKey, RootKind::E2mKeyset, RootKind::E2mKey];
        match RootKind::from_name(name) {
            Some(k) => assert_eq!(k.name(), name),
            None => {
                assert!(
                    kinds.iter().all(|k| k.name() != name),
                    "RootKind::from_name refused {name:?}"
                );
            }
        }
    }
    if let Ok(octets) = hex::decode(s.trim()) {
        // The tool's `--fc`, `--root`, `--rand` values after hex decoding.
        assert!(hex::encode(&octets).eq_ignore_ascii_case(s.trim()));
        let _ = Fc::from_octets(&octets);
        assert_eq!(RootBytes::from_slice(&octets).is_ok(), octets.len() == 32);
        assert_eq!(Rand::from_slice(&octets).is_ok(), octets.len() == 16);
    }
}

fn name_parser<T: Copy + PartialEq + core::fmt::Debug>(
    name: &str,
    from_name: fn(&str) -> Option<T>,
    to_name: fn(T) -> Option<&'static str>,
    known: &[T],
) {
    match from_name(name) {
        Some(v) => {
            assert_eq!(to_name(v), Some(name), "{v:?}");
            assert!(known.contains(&v));
        }
        None => assert!(
            known.iter().all(|v| to_name(*v) != Some(name)),
            "refused {name:?}"
        ),
    }
    for v in known {
        let n = to_name(*v).expect("known values have names");
        assert_eq!(from_name(n), Some(*v));
    }
}
