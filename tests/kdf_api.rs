//! The public API of `ciot_e2e::kdf` from a user's side: every error branch,
//! domain separation between root kinds, profiles, algorithms, trigger
//! counters and UE starts (nonces), the worked example of
//! docs/key-hierarchy.md, and the handling of secrets (no key octets in
//! `Debug`, constant-time equality, zeroize on drop checked by the compiler).

use ciot_e2e::kdf::{
    self, AlgKey, Algorithm, Ck, CkIk, ControlKey, Error, Fc, HkdfKey, Ik, KdfProfile, KeySet,
    MAX_PARAM_LEN, PreparedRoot, Rand, RootBytes, RootKey, RootKind, Ts33220Key, UeNonce,
};
use subtle::ConstantTimeEq;

const KINDS: [RootKind; 3] = [RootKind::IntKey, RootKind::E2mKeyset, RootKind::E2mKey];
const PROFILES: [KdfProfile; 2] = [KdfProfile::Ts33220, KdfProfile::HkdfSha256];
const ALGS: [Algorithm; 3] = [Algorithm::Nea2, Algorithm::Nia2, Algorithm::Aes128Gcm];
/// A UE start's nonce for the tests that are not about the nonce.
const NONCE: UeNonce = UeNonce([0x4e; 16]);

// Compile-time: every secret type zeroizes its octets when dropped. Removing
// `ZeroizeOnDrop` from any of them makes this file fail to compile.
const _: () = {
    const fn assert_zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    assert_zeroize_on_drop::<Ck>();
    assert_zeroize_on_drop::<Ik>();
    assert_zeroize_on_drop::<CkIk>();
    assert_zeroize_on_drop::<RootBytes>();
    assert_zeroize_on_drop::<KeySet>();
    assert_zeroize_on_drop::<AlgKey>();
    assert_zeroize_on_drop::<ControlKey>();
    assert_zeroize_on_drop::<Rand>();
};

fn root(kind: RootKind, octets: [u8; 32]) -> RootKey {
    RootKey::new(kind, RootBytes::from_bytes(octets))
}

// ---- error branches -------------------------------------------------------

#[test]
fn lone_ff_fc_is_reserved() {
    assert_eq!(Fc::new(0xff), Err(Error::ReservedFc));
    assert_eq!(Fc::from_octets(&[0xff]), Err(Error::ReservedFc));
    assert!(Fc::new(0xfe).is_ok());
}

#[test]
fn fc_of_wrong_length_is_refused() {
    assert_eq!(Fc::from_octets(&[]), Err(Error::BadFcLength { len: 0 }));
    assert_eq!(
        Fc::from_octets(&[0xff, 0x01, 0x02]),
        Err(Error::BadFcLength { len: 3 })
    );
    // Two octets are only the escape form `ff || FC2`.
    assert_eq!(
        Fc::from_octets(&[0x10, 0x01]),
        Err(Error::BadFcLength { len: 2 })
    );
    assert_eq!(Fc::from_octets(&[0xff, 0x01]), Ok(Fc::extended(0x01)));
    assert_eq!(Fc::extended(0x01).as_bytes(), &[0xff, 0x01]);
}

#[test]
fn parameter_longer_than_65535_octets_is_refused() {
    let big = vec![0u8; MAX_PARAM_LEN + 1];
    let fc = Fc::new(0x90).unwrap();
    assert_eq!(
        kdf::kdf(&[1; 32], fc, &[b"ok", &big]),
        Err(Error::ParamTooLong {
            index: 1,
            len: 65536
        })
    );
    assert_eq!(
        Ts33220Key::new(&[1; 32]).derive(fc, &[&big]),
        Err(Error::ParamTooLong {
            index: 0,
            len: 65536
        })
    );
    assert!(kdf::kdf(&[1; 32], fc, &[&big[..MAX_PARAM_LEN]]).is_ok());
}

#[test]
fn keys_of_wrong_length_are_refused() {
    let buf = [0x42u8; 33];
    assert_eq!(
        Ck::from_slice(&buf[..15]),
        Err(Error::BadKeyLength {
            expected: 16,
            got: 15
        })
    );
    assert_eq!(
        Ik::from_slice(&buf[..17]),
        Err(Error::BadKeyLength {
            expected: 16,
            got: 17
        })
    );
    assert_eq!(
        CkIk::from_slice(&buf[..16]),
        Err(Error::BadKeyLength {
            expected: 32,
            got: 16
        })
    );
    assert_eq!(
        RootBytes::from_slice(&buf),
        Err(Error::BadKeyLength {
            expected: 32,
            got: 33
        })
    );
    assert_eq!(
        KeySet::from_slice(&[]),
        Err(Error::BadKeyLength {
            expected: 32,
            got: 0
        })
    );
    assert_eq!(
        AlgKey::from_slice(&buf[..32]),
        Err(Error::BadKeyLength {
            expected: 16,
            got: 32
        })
    );
    assert_eq!(
        ControlKey::from_slice(&buf[..31]),
        Err(Error::BadKeyLength {
            expected: 32,
            got: 31
        })
    );
    // The right lengths are accepted and keep the octets.
    assert_eq!(Ck::from_slice(&buf[..16]).unwrap().as_bytes(), &[0x42; 16]);
    assert_eq!(
        RootBytes::from_slice(&buf[..32]).unwrap().as_bytes(),
        &[0x42; 32]
    );
}

#[test]
fn ue_nonce_must_be_128_bits() {
    assert_eq!(UeNonce::LEN, 16);
    assert_eq!(
        UeNonce::from_slice(&[7; 15]),
        Err(Error::BadNonceLength { got: 15 })
    );
    assert_eq!(
        UeNonce::from_slice(&[7; 17]),
        Err(Error::BadNonceLength { got: 17 })
    );
    assert_eq!(
        UeNonce::from_slice(&[]),
        Err(Error::BadNonceLength { got: 0 })
    );
    assert!(
        Error::BadNonceLength { got: 15 }
            .to_string()
            .contains("nonce")
    );
    let n = UeNonce::from_slice(&[7; 16]).unwrap();
    assert_eq!(n, UeNonce::from_bytes([7; 16]));
    assert_eq!(n.as_bytes(), &[7; 16]);
}

#[test]
fn rand_must_be_128_bits() {
    assert_eq!(
        Rand::from_slice(&[7; 15]),
        Err(Error::BadRandLength { got: 15 })
    );
    assert_eq!(
        Rand::from_slice(&[7; 17]),
        Err(Error::BadRandLength { got: 17 })
    );
    assert_eq!(Rand::from_slice(&[]), Err(Error::BadRandLength { got: 0 }));
    assert_eq!(Rand::from_slice(&[7; 16]), Ok(Rand([7; 16])));
}

#[test]
fn unknown_root_kind_code_is_refused() {
    for code in [0x00, 0x04, 0x7f, 0xff] {
        assert_eq!(RootKind::from_code(code), Err(Error::UnknownRootKind(code)));
    }
    for kind in KINDS {
        assert_eq!(RootKind::from_code(kind.code()), Ok(kind));
    }
}

#[test]
fn unknown_root_kind_name_is_refused() {
    for name in ["", "int_key", "INT-KEY", "e2m", "e2e-keyset"] {
        assert_eq!(RootKind::from_name(name), None, "{name:?}");
    }
    for kind in KINDS {
        assert_eq!(RootKind::from_name(kind.name()), Some(kind));
    }
}

#[test]
fn every_error_displays_as_one_actionable_line() {
    let all = [
        Error::ReservedFc,
        Error::BadFcLength { len: 3 },
        Error::ParamTooLong {
            index: 2,
            len: 70000,
        },
        Error::BadKeyLength {
            expected: 32,
            got: 31,
        },
        Error::BadRandLength { got: 15 },
        Error::BadNonceLength { got: 17 },
        Error::UnknownRootKind(0x09),
    ];
    for e in all {
        let msg = e.to_string();
        assert!(!msg.is_empty() && !msg.contains('\n'), "{e:?}: {msg:?}");
    }
    assert!(
        Error::ParamTooLong {
            index: 2,
            len: 70000
        }
        .to_string()
        .contains("70000")
    );
    assert!(
        Error::BadKeyLength {
            expected: 32,
            got: 31
        }
        .to_string()
        .contains("31")
    );
    assert!(Error::UnknownRootKind(0x09).to_string().contains("0x09"));
}

// ---- profiles --------------------------------------------------------------

#[test]
fn profile_codes_and_names_round_trip() {
    for p in PROFILES {
        assert_eq!(KdfProfile::from_code(p.code()), Some(p));
    }
    assert_eq!(KdfProfile::from_code(0x00), None);
    assert_eq!(KdfProfile::from_code(0x03), None);
    assert_eq!(KdfProfile::Ts33220.name(), "3gpp");
    assert_eq!(KdfProfile::HkdfSha256.name(), "hkdf");
    assert_eq!(KdfProfile::default(), KdfProfile::Ts33220);
}

#[test]
fn hkdf_profile_is_hkdf_with_the_s_string_as_info() {
    // The keyset of the HKDF profile is HKDF-SHA-256(salt = none, IKM = root,
    // info = S, L = 32), computed here with the hkdf crate directly.
    let octets = [0x3c; 32];
    let rand = Rand([0x5a; 16]);
    for kind in KINDS {
        let mut s = vec![kdf::FC_KEYSET, kind.code(), 0x00, 0x01];
        s.extend_from_slice(&rand.0);
        s.extend_from_slice(&[0x00, 0x10]);
        let mut want = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(None, &octets)
            .expand(&s, &mut want)
            .unwrap();
        let got = PreparedRoot::new(&root(kind, octets), KdfProfile::HkdfSha256).keyset(&rand);
        assert_eq!(got.as_bytes(), &want, "{kind:?}");
        assert_eq!(HkdfKey::new(&octets).expand(&s), want);
    }
}

// ---- domain separation -----------------------------------------------------

#[test]
fn same_root_octets_of_three_kinds_give_three_keysets_and_control_keys() {
    let octets = [0x77; 32];
    let rand = Rand([0x01; 16]);
    for profile in PROFILES {
        let prepared: Vec<PreparedRoot> = KINDS
            .iter()
            .map(|&k| PreparedRoot::new(&root(k, octets), profile))
            .collect();
        let keysets: Vec<KeySet> = prepared.iter().map(|p| p.keyset(&rand)).collect();
        let controls: Vec<ControlKey> = prepared.iter().map(PreparedRoot::control_key).collect();
        for i in 0..3 {
            assert_eq!(prepared[i].kind(), KINDS[i]);
            assert_eq!(prepared[i].profile(), profile);
            for j in i + 1..3 {
                assert_ne!(
                    keysets[i], keysets[j],
                    "{profile:?}: keysets of {i} and {j}"
                );
                assert_ne!(
                    controls[i], controls[j],
                    "{profile:?}: control keys of {i} and {j}"
                );
            }
            // A control key is never a keyset of the same root.
            assert_ne!(controls[i].as_bytes(), keysets[i].as_bytes());
        }
    }
}

#[test]
fn the_two_profiles_derive_different_keys() {
    let ck_ik = CkIk::new(&Ck::from_bytes([0x11; 16]), &Ik::from_bytes([0x22; 16]));
    let a = kdf::int_key(KdfProfile::Ts33220, &ck_ik);
    let b = kdf::int_key(KdfProfile::HkdfSha256, &ck_ik);
    assert_ne!(a, b);
    let rand = Rand([0x09; 16]);
    for kind in KINDS {
        let r = root(kind, [0x33; 32]);
        let k3 = kdf::keyset(KdfProfile::Ts33220, &r, &rand);
        let kh = kdf::keyset(KdfProfile::HkdfSha256, &r, &rand);
        assert_ne!(k3, kh, "{kind:?}");
        let c3 = PreparedRoot::new(&r, KdfProfile::Ts33220).control_key();
        let ch = PreparedRoot::new(&r, KdfProfile::HkdfSha256).control_key();
        assert_ne!(c3, ch, "{kind:?}");
        for alg in ALGS {
            assert_ne!(
                kdf::alg_key(KdfProfile::Ts33220, &k3, alg, 1, &NONCE),
                kdf::alg_key(KdfProfile::HkdfSha256, &k3, alg, 1, &NONCE),
                "{kind:?} {alg:?}"
            );
        }
    }
}

#[test]
fn algorithm_keys_are_bound_to_their_algorithm() {
    let keyset = KeySet::from_bytes([0x5e; 32]);
    for profile in PROFILES {
        let keys: Vec<AlgKey> = ALGS
            .iter()
            .map(|&a| kdf::alg_key(profile, &keyset, a, 1, &NONCE))
            .collect();
        assert_ne!(keys[0], keys[1]);
        assert_ne!(keys[0], keys[2]);
        assert_ne!(keys[1], keys[2]);
    }
}

/// A RAND source that repeats a RAND gives the same e2eKEYSET again; the
/// trigger counter, P2 of every algorithm key, still keeps the keys apart.
#[test]
fn the_same_rand_under_counters_1_and_2_gives_different_algorithm_keys() {
    let rand = Rand([0x42; 16]);
    for profile in PROFILES {
        for kind in KINDS {
            let prepared = PreparedRoot::new(&root(kind, [0x17; 32]), profile);
            let first = prepared.keyset(&rand);
            let again = prepared.keyset(&rand);
            assert_eq!(first, again, "the TR's e2eKEYSET = KDF(root, RAND)");
            for alg in ALGS {
                let one = kdf::alg_key(profile, &first, alg, 1, &NONCE);
                let two = kdf::alg_key(profile, &again, alg, 2, &NONCE);
                assert_ne!(one, two, "{profile:?} {kind:?} {alg:?}");
                // Every other counter too, down to the last octet and the first.
                for counter in [0, 3, 0x0100_0000_0000_0001, u64::MAX] {
                    assert_ne!(
                        kdf::alg_key(profile, &first, alg, counter, &NONCE),
                        one,
                        "{profile:?} {alg:?} counter {counter}"
                    );
                }
            }
        }
    }
}

/// A UE that starts again (a reboot, a restore of its storage, a copy of the
/// device) draws a new nonce; an EESE that answers it with a keyset of the
/// same RAND and the same counter (a RAND source that repeats itself, an
/// EESE rolled back) still gives it other algorithm keys, since the nonce
/// is P3 of every one.
#[test]
fn the_same_keyset_rand_and_counter_for_two_nonces_give_different_algorithm_keys() {
    let rand = Rand([0x42; 16]);
    let a = UeNonce([0xa0; 16]);
    for profile in PROFILES {
        for kind in KINDS {
            let keyset = PreparedRoot::new(&root(kind, [0x17; 32]), profile).keyset(&rand);
            for alg in ALGS {
                for counter in [0, 1, 2, u64::MAX] {
                    let mine = kdf::alg_key(profile, &keyset, alg, counter, &a);
                    // Deterministic: the same nonce gives the same key.
                    assert_eq!(mine, kdf::alg_key(profile, &keyset, alg, counter, &a));
                    // Any other nonce, down to one bit anywhere, does not.
                    for bit in 0..128 {
                        let mut b = *a.as_bytes();
                        b[bit / 8] ^= 1 << (bit % 8);
                        assert_ne!(
                            kdf::alg_key(profile, &keyset, alg, counter, &UeNonce(b)),
                            mine,
                            "{profile:?} {kind:?} {alg:?} counter {counter} nonce bit {bit}"
                        );
                    }
                    for other in [UeNonce([0; 16]), UeNonce([0xff; 16]), UeNonce([0xb0; 16])] {
                        assert_ne!(
                            kdf::alg_key(profile, &keyset, alg, counter, &other),
                            mine,
                            "{profile:?} {kind:?} {alg:?} counter {counter} {other:?}"
                        );
                    }
                }
            }
        }
    }
}

/// The nonce and the counter are separate parameters, each with its length:
/// no (counter, nonce) stands in for another by moving octets between them.
#[test]
fn counter_and_nonce_do_not_trade_octets() {
    let keyset = KeySet::from_bytes([0x5e; 32]);
    let mut n = [0u8; 16];
    n[0] = 0x01;
    for profile in PROFILES {
        assert_ne!(
            kdf::alg_key(
                profile,
                &keyset,
                Algorithm::Aes128Gcm,
                0x01,
                &UeNonce([0; 16])
            ),
            kdf::alg_key(profile, &keyset, Algorithm::Aes128Gcm, 0, &UeNonce(n)),
            "{profile:?}"
        );
        assert_ne!(
            kdf::alg_key(profile, &keyset, Algorithm::Nea2, 1, &UeNonce([0; 16])),
            kdf::alg_key(profile, &keyset, Algorithm::Nea2, 0, &UeNonce([0; 16])),
            "{profile:?}"
        );
    }
}

/// The S string of an algorithm key, built here by hand: the generic TS
/// 33.220 encoding `FC ‖ P0 ‖ L0 ‖ P1 ‖ L1 ‖ P2 ‖ L2 ‖ P3 ‖ L3` with P2 the
/// counter (8 octets) and P3 the UE nonce (16 octets): 35 octets.
fn alg_key_s(alg: Algorithm, counter: u64, nonce: &UeNonce) -> Vec<u8> {
    let mut s = vec![kdf::FC_ALG_KEY, alg.distinguisher(), 0x00, 0x01];
    s.extend_from_slice(&[alg.identity(), 0x00, 0x01]);
    s.extend_from_slice(&counter.to_be_bytes());
    s.extend_from_slice(&[0x00, 0x08]);
    s.extend_from_slice(nonce.as_bytes());
    s.extend_from_slice(&[0x00, 0x10]);
    s
}

#[test]
fn algorithm_key_s_is_the_generic_encoding_with_the_nonce_as_p3() {
    use hmac::{Hmac, KeyInit, Mac};
    let keyset = KeySet::from_bytes([0x5e; 32]);
    let nonces = [
        UeNonce([0; 16]),
        UeNonce(core::array::from_fn(|i| 0xa0 | i as u8)),
        UeNonce([0xff; 16]),
    ];
    for alg in ALGS {
        for counter in [0u64, 1, 2, 0x0102_0304_0506_0708, u64::MAX] {
            for nonce in &nonces {
                let s = alg_key_s(alg, counter, nonce);
                assert_eq!(s.len(), 35);
                assert_eq!(&s[17..33], nonce.as_bytes());
                assert_eq!(&s[33..], &[0x00, 0x10]);
                // The crate's raw KDF (held to published vectors) over P0..P3.
                let full = kdf::kdf(
                    keyset.as_bytes(),
                    Fc::new(kdf::FC_ALG_KEY).unwrap(),
                    &[
                        &[alg.distinguisher()],
                        &[alg.identity()],
                        &counter.to_be_bytes(),
                        nonce.as_bytes(),
                    ],
                )
                .unwrap();
                // HMAC-SHA-256 of the hand-built S with the `hmac` crate.
                let mut mac =
                    <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(keyset.as_bytes()).unwrap();
                mac.update(&s);
                assert_eq!(mac.finalize().into_bytes().as_slice(), &full[..]);
                // The key is the low 128 bits of it.
                assert_eq!(
                    kdf::alg_key(KdfProfile::Ts33220, &keyset, alg, counter, nonce).as_bytes(),
                    &full[16..],
                    "{alg:?} counter {counter} {nonce:?}"
                );
                // HKDF: the same S as info, the same truncation.
                let mut okm = [0u8; 32];
                hkdf::Hkdf::<sha2::Sha256>::new(None, keyset.as_bytes())
                    .expand(&s, &mut okm)
                    .unwrap();
                assert_eq!(
                    kdf::alg_key(KdfProfile::HkdfSha256, &keyset, alg, counter, nonce).as_bytes(),
                    &okm[16..],
                    "hkdf {alg:?} counter {counter} {nonce:?}"
                );
            }
        }
    }
}

/// The worked example of docs/key-hierarchy.md: CK, IK and RAND there, the
/// algorithm keys of the keysets that triggers 1 and 2 install from that
/// one RAND for one start of the UE (nonce f0 f1 … ff), and those trigger 1
/// installs for another start (nonce 00 01 … 0f).
#[test]
fn worked_example_of_the_key_hierarchy_doc() {
    let unhex = |s: &str| hex::decode(s).unwrap();
    let ck_ik = CkIk::new(
        &Ck::from_slice(&unhex("000102030405060708090a0b0c0d0e0f")).unwrap(),
        &Ik::from_slice(&unhex("f0e0d0c0b0a090807060504030201000")).unwrap(),
    );
    let root = kdf::int_key(KdfProfile::Ts33220, &ck_ik);
    assert_eq!(
        hex::encode(root.key().as_bytes()),
        "e13e78c902e13fafcf91962aa96a5c5b1949e23147dc819db727db7da0306331"
    );
    let rand = Rand::from_slice(&unhex("00112233445566778899aabbccddeeff")).unwrap();
    let keyset = PreparedRoot::new(&root, KdfProfile::Ts33220).keyset(&rand);
    assert_eq!(
        hex::encode(keyset.as_bytes()),
        "35f08975d145647d1e9aac907e18ea4fafb76af77ab82f47f9ce55dda1e5d746"
    );
    let a = UeNonce::from_slice(&unhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")).unwrap();
    let b = UeNonce::from_slice(&unhex("000102030405060708090a0b0c0d0e0f")).unwrap();
    for (nonce, counter, nea2, nia2, gcm) in [
        (
            a,
            1,
            "7c35e79715797f87548296ec6b6fa8b8",
            "a15cc44db8f5e47d28022ae135c253d8",
            "10ebd793daa96bef7ade3c7d0b1b3c3a",
        ),
        (
            a,
            2,
            "6d2649ce0c1a5f76337610876250b0c4",
            "768dd87d6f727d86d0b9bc068c03b520",
            "5afe3132087b8e665e16e224dec5087e",
        ),
        (
            b,
            1,
            "81b093fece9d2a0deaf1d03b9f488ff7",
            "90e2386e33145e225130a3261841a154",
            "5d60205df53e84f698234aa9baf54e42",
        ),
    ] {
        for (alg, want) in [
            (Algorithm::Nea2, nea2),
            (Algorithm::Nia2, nia2),
            (Algorithm::Aes128Gcm, gcm),
        ] {
            assert_eq!(
                hex::encode(
                    kdf::alg_key(KdfProfile::Ts33220, &keyset, alg, counter, &nonce).as_bytes()
                ),
                want,
                "{alg:?} counter {counter} {nonce:?}"
            );
        }
    }
}

#[test]
fn int_key_is_the_kdf_of_ck_ik_and_the_label() {
    let ck = Ck::from_bytes([0x11; 16]);
    let ik = Ik::from_bytes([0x22; 16]);
    let ck_ik = CkIk::new(&ck, &ik);
    assert_eq!(&ck_ik.as_bytes()[..16], ck.as_bytes());
    assert_eq!(&ck_ik.as_bytes()[16..], ik.as_bytes());
    let want = kdf::kdf(
        ck_ik.as_bytes(),
        Fc::new(kdf::FC_INT_KEY).unwrap(),
        &[kdf::INT_KEY_LABEL],
    )
    .unwrap();
    let root = kdf::int_key(KdfProfile::Ts33220, &ck_ik);
    assert_eq!(root.kind(), RootKind::IntKey);
    assert_eq!(root.key().as_bytes(), &want);
}

// ---- secrets ---------------------------------------------------------------

/// True when `text` shows `byte` as two hex digits or as a decimal number.
fn shows_octet(text: &str, byte: u8) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains(&format!("{byte:02x}{byte:02x}")) || text.contains(&byte.to_string())
}

#[test]
fn debug_of_secret_types_prints_no_key_octets() {
    const B: u8 = 0xa7; // 167
    let printed = [
        format!("{:?}", Ck::from_bytes([B; 16])),
        format!("{:?}", Ik::from_bytes([B; 16])),
        format!("{:?}", CkIk::from_bytes([B; 32])),
        format!("{:?}", RootBytes::from_bytes([B; 32])),
        format!("{:?}", root(RootKind::E2mKey, [B; 32])),
        format!("{:?}", KeySet::from_bytes([B; 32])),
        format!("{:?}", AlgKey::from_bytes([B; 16])),
        format!("{:?}", ControlKey::from_bytes([B; 32])),
        format!(
            "{:?}",
            kdf::alg_key(
                KdfProfile::Ts33220,
                &KeySet::from_bytes([B; 32]),
                ALGS[0],
                1,
                &NONCE
            )
        ),
    ];
    for p in &printed {
        assert!(!shows_octet(p, B), "Debug leaks key octets: {p}");
        assert!(p.contains("redacted"), "{p}");
    }
    // The self-check of the check: it does see octets when they are there.
    assert!(shows_octet(&format!("{:?}", [B; 4]), B));
    // RAND and the UE nonce travel in clear, so their Debug shows them.
    assert_eq!(
        format!("{:?}", Rand([0xab; 16])),
        format!("Rand({})", "ab".repeat(16))
    );
    assert_eq!(
        format!("{:?}", UeNonce([0xab; 16])),
        format!("UeNonce({})", "ab".repeat(16))
    );
}

#[test]
fn constant_time_equality_is_equality() {
    let a = KeySet::from_bytes([0x10; 32]);
    assert_eq!(a, KeySet::from_bytes([0x10; 32]));
    assert!(bool::from(a.ct_eq(&KeySet::from_bytes([0x10; 32]))));
    for i in [0, 15, 31] {
        let mut other = [0x10; 32];
        other[i] ^= 0x01;
        let b = KeySet::from_bytes(other);
        assert_ne!(a, b, "differs at octet {i}");
        assert!(!bool::from(a.ct_eq(&b)));
    }
    assert_eq!(AlgKey::from_bytes([1; 16]), AlgKey::from_bytes([1; 16]));
    assert_ne!(AlgKey::from_bytes([1; 16]), AlgKey::from_bytes([2; 16]));
    assert_ne!(
        ControlKey::from_bytes([0; 32]),
        ControlKey::from_bytes([0xff; 32])
    );
    assert_eq!(Rand([4; 16]), Rand([4; 16]));
    assert_ne!(Rand([4; 16]), Rand([5; 16]));
    assert!(bool::from(Rand([4; 16]).ct_eq(&Rand([4; 16]))));
    // Root keys compare kind and octets.
    assert_eq!(
        root(RootKind::IntKey, [3; 32]),
        root(RootKind::IntKey, [3; 32])
    );
    assert_ne!(
        root(RootKind::IntKey, [3; 32]),
        root(RootKind::E2mKey, [3; 32])
    );
    assert_ne!(
        root(RootKind::IntKey, [3; 32]),
        root(RootKind::IntKey, [4; 32])
    );
}

#[test]
fn zeroize_clears_the_octets() {
    use zeroize::Zeroize;
    let mut k = KeySet::from_bytes([0x99; 32]);
    k.zeroize();
    assert_eq!(k.as_bytes(), &[0; 32]);
    let mut r = Rand([0x99; 16]);
    r.zeroize();
    assert_eq!(r.0, [0; 16]);
}
